# test/t/093_fill_snapshot_age.pl -- a cache-aside fill from a snapshot
# older than the markers that expire is refused.
#
# A fill is refused when its snapshot does not see the transaction that
# wrote the key's marker.  Some markers do not live for ever: a tombstone
# (a deleted key's marker) expires after cachebridge.tombstone_ttl, and the
# marker of a value with a TTL with the value (since 1.4 no sooner than
# tombstone_ttl).  A snapshot older than that may have missed a writer
# whose marker is gone.  The attacks below read a row in a REPEATABLE READ
# transaction, let another session delete or update it, wait until the
# marker has expired and then fill the old row: it used to be accepted --
# a deleted row was cached again, for good.  Now such a fill returns false:
#  - checked before sending, from the transaction's start;
#  - checked by the fill script against a deadline in Redis' own clock,
#    when Redis gets to the fill late (frozen with DEBUG SLEEP while the
#    fill waits in its socket);
#  - for a snapshot imported with SET TRANSACTION SNAPSHOT into a young
#    transaction from an old one.
# A fill from a young snapshot still succeeds.  The marker of a value
# without a TTL never expires: an older outbox row retried after a newer
# sync write of the key (sync sessions deliver past the outbox) must still
# be refused however late it comes (case 6; an earlier 1.4 build expired
# those markers too, and the older value won).
#
# Real PostgreSQL, real redis-server.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(
	name => 'age',
	conf => ['enable-debug-command yes']);
my $node = CacheBridgeTest::new_node(
	'age',
	redis => $redis,
	conf => [
		'cachebridge.tombstone_ttl = 3', 'cachebridge.command_timeout = 10000',
		'cachebridge.retry_interval = 100'
	]);
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	INSERT INTO item SELECT g, 'v0' FROM generate_series(1, 6) g;
});

# A REPEATABLE READ session that has read row $id: its snapshot is taken.
sub old_reader
{
	my ($id) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);

	$s->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	my $row = $s->query_safe("SELECT row_to_json(item)::text FROM item WHERE id = $id");
	return ($s, $row);
}

# The fill of item:$id with $row, in session $s.
sub fill
{
	my ($s, $id, $row) = @_;
	(my $q = $row) =~ s/'/''/g;

	return $s->query("SELECT cachebridge.set('item:$id', '$q')");
}

# ---------------------------------------------------------------------
# Which markers expire
# ---------------------------------------------------------------------
$node->safe_psql('postgres', "UPDATE item SET v = 'w' WHERE id = 6");
is($redis->cli('PTTL', 'item:6#cbv'), '-1',
	"the marker of a value without a TTL does not expire");
$node->safe_psql('postgres', 'DELETE FROM item WHERE id = 6');
my $pttl = $redis->cli('PTTL', 'item:6#cbv');
ok($pttl > 0 && $pttl <= 3000, "a tombstone expires after tombstone_ttl (PTTL $pttl)");
$node->safe_psql('postgres', q{
	CREATE TABLE short (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('short', 'short:{id}', 'write_through', 1);
	INSERT INTO short VALUES (1, 'v0'), (2, 'v0');
});
$pttl = $redis->cli('PTTL', 'short:1#cbv');
ok($pttl > 2000 && $pttl <= 3000,
	"the marker of a value with a shorter TTL lives tombstone_ttl (PTTL $pttl)");
$pttl = $redis->cli('PTTL', 'short:1');
ok($pttl > 0 && $pttl <= 1000, "while the value expires with its TTL (PTTL $pttl)");

# ---------------------------------------------------------------------
# 1. A deleted row, filled from a snapshot older than its tombstone
# ---------------------------------------------------------------------
{
	my ($s, $row) = old_reader(1);
	is($row, '{"id":1,"v":"v0"}', 'delete: the old reader read the row');
	$node->safe_psql('postgres', 'DELETE FROM item WHERE id = 1');
	sleep(3.5);
	is($redis->cli('EXISTS', 'item:1#cbv'), '0', 'delete: the tombstone expired');
	is(fill($s, 1, $row), 'f', 'delete: the fill from the old snapshot is refused');
	is($redis->cli('EXISTS', 'item:1'), '0', 'delete: the deleted row is not cached');
	$s->quit;
}

# ---------------------------------------------------------------------
# 2. A row cached with a TTL, updated, filled from a snapshot older than
#    its marker
# ---------------------------------------------------------------------
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	my $row = $s->query_safe('SELECT row_to_json(short)::text FROM short WHERE id = 2');
	$node->safe_psql('postgres', "UPDATE short SET v = 'v1' WHERE id = 2");
	sleep(3.5);
	is($redis->cli('EXISTS', 'short:2', 'short:2#cbv'), '0',
		'ttl: the value and its marker expired');
	(my $q = $row) =~ s/'/''/g;
	is($s->query("SELECT cachebridge.set('short:2', '$q', 60)"), 'f',
		'ttl: the fill from the old snapshot is refused');
	is($redis->cli('EXISTS', 'short:2'), '0', 'ttl: the old row is not cached');
	$s->quit;
}

# ---------------------------------------------------------------------
# 3. Young snapshots still fill, also once the markers have expired
# ---------------------------------------------------------------------
is( $node->safe_psql('postgres',
		"SELECT cachebridge.set('item:2', row_to_json(item)::text) FROM item WHERE id = 2"),
	't', 'a fill from a new snapshot succeeds');
is($redis->cli('GET', 'item:2'), '{"id":2,"v":"v0"}', 'and caches the current row');
{
	my ($s, $row) = old_reader(3);
	is(fill($s, 3, $row), 't', 'a fill in a REPEATABLE READ transaction a moment old succeeds');
	$s->quit;
}

# ---------------------------------------------------------------------
# 4. Redis gets to the fill late: the deadline in Redis' clock refuses it
# ---------------------------------------------------------------------
{
	my ($s, $row) = old_reader(4);
	$node->safe_psql('postgres', 'DELETE FROM item WHERE id = 4');
	my $frozen = $redis->freeze(5);
	my $t0 = time();
	my $res = fill($s, 4, $row);
	my $waited = time() - $t0;
	$frozen->finish;
	ok($waited > 2, sprintf('frozen: the fill waited for Redis (%.1f s)', $waited));
	is($res, 'f', 'frozen: the fill Redis ran after the deadline is refused');
	is($redis->cli('EXISTS', 'item:4'), '0', 'frozen: the deleted row is not cached');
	$s->quit;
}

# ---------------------------------------------------------------------
# 5. A young transaction importing an old snapshot
# ---------------------------------------------------------------------
{
	my $exporter = $node->background_psql('postgres', on_error_stop => 0);
	$exporter->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	my $snapshot = $exporter->query_safe('SELECT pg_export_snapshot()');
	$node->safe_psql('postgres', 'DELETE FROM item WHERE id = 5');
	sleep(3.5);

	my $importer = $node->background_psql('postgres', on_error_stop => 0);
	$importer->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$importer->query_safe("SET TRANSACTION SNAPSHOT '$snapshot'");
	my $row = $importer->query_safe('SELECT row_to_json(item)::text FROM item WHERE id = 5');
	is($row, '{"id":5,"v":"v0"}', 'import: the imported snapshot still sees the deleted row');
	is(fill($importer, 5, $row), 'f', 'import: the fill from the imported snapshot is refused');
	is($redis->cli('EXISTS', 'item:5'), '0', 'import: the deleted row is not cached');
	$importer->query_safe('COMMIT');
	is( $importer->query(
			"SELECT cachebridge.set('item:3', row_to_json(item)::text) FROM item WHERE id = 3"),
		't', 'import: the next transaction of that session fills again');
	$_->quit for ($exporter, $importer);
}

# ---------------------------------------------------------------------
# 6. An older outbox row retried after a newer sync write of its key
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres', q{
		CREATE TABLE blk (id int PRIMARY KEY);
		SELECT cachebridge.attach('blk', 'blk:{id}');
		INSERT INTO item VALUES (7, 'v0');
	});
	# an ACL that does not cover blk:*: NOPERM, retried, holds A behind X
	is($redis->cli('ACL', 'SETUSER', 'default', 'resetkeys', '~item:*'), 'OK',
		'sync: the ACL is narrowed');
	$node->psql('postgres', 'INSERT INTO blk VALUES (1)');
	$node->psql('postgres', "UPDATE item SET v = 'v1' WHERE id = 7");
	# (A's effect may have reached Redis already, sent in one round trip with
	# X, whose failure keeps both rows: what matters is that A is retried)
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead'),
		'2', 'sync: A waits in the outbox');
	sleep(0.5);    # past retry_interval: the sync session tries Redis again
	my $b = CacheBridgeTest::run_sql($node, "UPDATE item SET v = 'v2' WHERE id = 7",
		'cachebridge.delivery' => 'sync');
	is($redis->cli('GET', 'item:7'), '{"id":7,"v":"v2"}', 'sync: B delivered v2 itself');
	sleep(3.5);    # longer than tombstone_ttl, while the worker retries A
	$redis->cli('ACL', 'SETUSER', 'default', 'allkeys');
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', 'sync: the outbox is delivered');
	is($redis->cli('GET', 'item:7'), '{"id":7,"v":"v2"}',
		'sync: Redis keeps the last committed state, not the older row retried');
}

done_testing();
