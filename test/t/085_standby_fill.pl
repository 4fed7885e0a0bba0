# test/t/085_standby_fill.pl -- cache-aside fills from a hot standby (the
# read-replica pattern) never put an older value over a newer trigger
# write.
#
# cachebridge.set() hands the caller's snapshot to the fill script, which
# refuses the fill when the transaction that wrote the key's version
# marker is not visible to that snapshot.  On a standby, a snapshot keeps
# the transactions still in progress (as far as replay has got) in subxip,
# not in xip.  The case below makes a transaction X that the standby
# knows as in progress and a snapshot whose xmax is past X (a later
# transaction committed and was replayed), pauses replay, commits X on the
# primary -- its trigger writes the new value to Redis -- and fills the old
# row read on the standby: the fill must return false and leave the new
# value.  An overflowed standby snapshot (a transaction with more than 64
# subtransactions is running) refuses every fill.  Once replay has caught
# up, fills from the standby are accepted again.
#
# Real primary, real streaming standby, real redis-server.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'standby');

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf',
	"shared_preload_libraries = 'cachebridge'\n"
	  . "cachebridge.redis_url = '"
	  . $redis->url . "'\n");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION cachebridge;
	CREATE TABLE item (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	INSERT INTO item VALUES (1, 'v0'), (2, 'v0');
	CREATE TABLE scratch (n int);
});

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# The fill of item:$id with the row as the standby reads it now.
sub standby_fill
{
	my ($id) = @_;

	return $standby->safe_psql('postgres',
		"SELECT cachebridge.set('item:' || id, row_to_json(item)::text) "
		  . "FROM item WHERE id = $id");
}

# Pauses replay on the standby and waits until it has stopped.
sub pause_replay
{
	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	$standby->poll_query_until('postgres',
		"SELECT pg_get_wal_replay_pause_state() = 'paused'")
	  or die 'standby replay did not pause';
	return;
}

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');
is($redis->cli('GET', 'item:1'), '{"id":1,"v":"v0"}',
	'the primary\'s trigger cached the row');

# ---------------------------------------------------------------------
# The writer is known to the standby as in progress, below its xmax.
# ---------------------------------------------------------------------
{
	my $t1 = $primary->background_psql('postgres');
	$t1->query_safe('BEGIN');
	$t1->query_safe("UPDATE item SET v = 'new' WHERE id = 1");
	my $x = $t1->query_safe('SELECT pg_current_xact_id()');

	# a later transaction commits, and the standby replays it: its
	# snapshots' xmax passes X, which stays in progress (in subxip)
	$primary->safe_psql('postgres', "UPDATE item SET v = 'later' WHERE id = 2");
	$primary->wait_for_catchup($standby);
	is( $standby->safe_psql('postgres',
			"SELECT pg_snapshot_xmax(pg_current_snapshot()) > '$x'::xid8"),
		't',
		'the standby\'s snapshot xmax is past the open writer X');

	pause_replay();
	$t1->query_safe('COMMIT');
	$t1->quit;
	is($primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'X committed and was delivered');
	is($redis->cli('GET', 'item:1'), '{"id":1,"v":"new"}',
		'Redis holds X\'s new value');

	is( $standby->safe_psql('postgres',
			'SELECT row_to_json(item)::text FROM item WHERE id = 1'),
		'{"id":1,"v":"v0"}',
		'the paused standby still reads the old row');
	is(standby_fill(1), 'f',
		'a fill of the old row from the lagging standby returns false');
	is($redis->cli('GET', 'item:1'), '{"id":1,"v":"new"}',
		'and Redis keeps the newer value');

	# a writer the standby has not even seen begin is refused too
	$primary->safe_psql('postgres', "UPDATE item SET v = 'newer' WHERE id = 2");
	is($primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'a writer unknown to the standby was delivered');
	is(standby_fill(2), 'f', 'a fill of its old row returns false');
	is($redis->cli('GET', 'item:2'), '{"id":2,"v":"newer"}',
		'and Redis keeps its value');

	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby);
	$redis->cli('DEL', 'item:1', 'item:2');
	is(standby_fill(1), 't',
		'once replay has caught up, a fill from the standby is accepted');
	is($redis->cli('GET', 'item:1'), '{"id":1,"v":"new"}', 'and stores the row');
	is(standby_fill(2), 't', 'for the other writer too');
	is($redis->cli('GET', 'item:2'), '{"id":2,"v":"newer"}', 'with its row');
}

# ---------------------------------------------------------------------
# An overflowed standby snapshot cannot tell: every fill is refused.
# ---------------------------------------------------------------------
{
	my $t2 = $primary->background_psql('postgres');
	$t2->query_safe('BEGIN');
	# 70 subtransactions with an xid each: past 64, the primary logs
	# their assignment and the standby marks its snapshots overflowed
	$t2->query_safe(join("\n",
			map { "SAVEPOINT s$_; INSERT INTO scratch VALUES ($_);" } 1 .. 70));
	$primary->safe_psql('postgres', 'INSERT INTO scratch VALUES (0)');
	$primary->wait_for_catchup($standby);

	$redis->cli('DEL', 'item:1');
	is(standby_fill(1), 'f',
		'a fill from an overflowed standby snapshot returns false');
	is($redis->cli('EXISTS', 'item:1'), '0', 'and writes nothing');
	is($primary->safe_psql('postgres',
			"SELECT cachebridge.set('item:' || id, row_to_json(item)::text) FROM item WHERE id = 1"),
		't', 'the same fill on the primary is accepted');

	$t2->query_safe('COMMIT');
	$t2->quit;
	$primary->wait_for_catchup($standby);
	$redis->cli('DEL', 'item:1');
	is(standby_fill(1), 't',
		'once that transaction has ended, fills from the standby are accepted');
	is($redis->cli('GET', 'item:1'), '{"id":1,"v":"new"}', 'and store the row');
}

# ---------------------------------------------------------------------
# A standby whose replay waits longer than a tombstone lives: its data are
# older than its snapshot, and the tombstone that would refuse the fill
# has expired.  Fills are counted from the last transaction replayed.
# ---------------------------------------------------------------------
{
	for my $n ($primary, $standby)
	{
		$n->append_conf('postgresql.conf', 'cachebridge.tombstone_ttl = 3');
		$n->reload;
		$n->poll_query_until('postgres',
			"SELECT current_setting('cachebridge.tombstone_ttl') = '3s'")
		  or die 'tombstone_ttl was not reloaded';
	}
	pause_replay();
	$primary->safe_psql('postgres', 'DELETE FROM item WHERE id = 2');
	is($primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'lag: the primary\'s delete was delivered');
	sleep(3.5);
	is($redis->cli('EXISTS', 'item:2#cbv'), '0', 'lag: its tombstone expired');
	is(standby_fill(2), 'f',
		'lag: a fill from a standby whose replay waits longer than a tombstone lives returns false');
	is($redis->cli('EXISTS', 'item:2'), '0', 'lag: the deleted row is not cached');

	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby);
	is(standby_fill(1), 't', 'lag: once replay has caught up, fills are accepted');
	is($standby->safe_psql('postgres', 'SELECT count(*) FROM item WHERE id = 2'),
		'0', 'lag: and the standby no longer has the deleted row');
}

# ---------------------------------------------------------------------
# A snapshot taken while replay lagged, used once the standby caught up:
# its transaction is young and the standby no longer lags, but the data
# it read are older than the tombstone that expired.
# ---------------------------------------------------------------------
{
	$primary->safe_psql('postgres', "INSERT INTO item VALUES (3, 'v0')");
	$primary->wait_for_catchup($standby);
	pause_replay();
	$primary->safe_psql('postgres', 'DELETE FROM item WHERE id = 3');
	is($primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'caught up: the primary\'s delete was delivered');
	sleep(3.5);
	is($redis->cli('EXISTS', 'item:3#cbv'), '0', 'caught up: its tombstone expired');

	my $rr = $standby->background_psql('postgres', on_error_stop => 0);
	$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	my $row = $rr->query_safe('SELECT row_to_json(item)::text FROM item WHERE id = 3');
	is($row, '{"id":3,"v":"v0"}', 'caught up: the lagging snapshot reads the deleted row');
	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby);
	is($rr->query("SELECT cachebridge.set('item:3', '$row')"), 'f',
		'caught up: its fill is refused, counted from the data it read');
	is($redis->cli('EXISTS', 'item:3'), '0', 'caught up: the deleted row is not cached');
	$rr->quit;

	# the same with a snapshot a utility statement took (no executor)
	$primary->safe_psql('postgres', "INSERT INTO item VALUES (4, 'v0')");
	$primary->wait_for_catchup($standby);
	pause_replay();
	$primary->safe_psql('postgres', 'DELETE FROM item WHERE id = 4');
	$primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()');
	sleep(3.5);
	$rr = $standby->background_psql('postgres', on_error_stop => 0);
	$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	like($rr->query_safe('COPY item TO STDOUT'), qr/^4\tv0$/m, 'caught up: COPY of the table reads the deleted row');
	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby);
	is($rr->query(q{SELECT cachebridge.set('item:4', '{"id":4,"v":"v0"}')}), 'f',
		'caught up: a fill after COPY of the lagging snapshot is refused');
	is($redis->cli('EXISTS', 'item:4'), '0', 'caught up: and caches nothing');
	$rr->quit;
}

$standby->stop;
$primary->stop;
$redis->stop;
done_testing();
