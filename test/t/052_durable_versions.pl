# test/t/052_durable_versions.pl -- per key, the last committed state wins
# (DESIGN.md, Delivery guarantee 3).
#
# Redis applies every effect through a compare-and-set on the key's version
# marker ("<key>#cbv" = "<version>:<xid>", the version "V", generation,
# timeline and WAL position in 32 hex digits: src/version.c), so that
# neither a late reply, nor the worker's retry of a row the committing
# backend had given up on, nor a replayed outbox row, nor a cache-aside
# fill from an old snapshot can put an older value over a newer one.  Each case below
# is built so that, without the version check, the older value would win.

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

# A worker stopped by the test is let go on any exit, or the server could
# not shut down.
my $stopped_worker;
END { kill 'CONT', $stopped_worker if $stopped_worker; }

my $redis = CacheBridgeTest::Redis->new(
	name => 'versions',
	conf => ['enable-debug-command yes']);
my $node = CacheBridgeTest::new_node(
	'versions',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 5000',
	]);

$node->safe_psql('postgres', q{
	CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('kv', 'kv:{id}');
	INSERT INTO kv SELECT g, 'v0' FROM generate_series(1, 4) AS g;
});

# The cached value a row must have.
sub row_json
{
	my ($id) = @_;

	return $node->safe_psql('postgres',
		"SELECT row_to_json(kv)::text FROM kv WHERE id = $id");
}

# The xid part of a version marker.
sub marker_xid
{
	my ($key) = @_;
	my ($xid) = $redis->cli('GET', "$key#cbv") =~ /^V[0-9A-F]{32}:(\d+)$/;

	return $xid // 'none';
}

is($redis->cli('GET', 'kv:1'), row_json(1), 'rows are cached at INSERT');
like($redis->cli('GET', 'kv:1#cbv'), qr/^V[0-9A-F]{32}:\d+$/,
	'each key has a version marker "<version>:<xid>"');

# ---------------------------------------------------------------------
# A late reply, then a retry of the same effect after a newer one.
#
# Redis is frozen with DEBUG SLEEP.  Session A commits v1; its backend
# writes the EVALSHA to its connection, gets no answer within its 200 ms
# command_timeout, gives up (WARNING, breaker open) and closes the
# connection.  The command stays in Redis' socket buffer and Redis runs it
# when it wakes up: a late apply of v1.  (Under CLIENT PAUSE it would not:
# Redis drops a paused client's command when the client disconnects.)
#
# A's outbox row is not acknowledged, so the worker delivers it again as
# soon as it gets to it -- here it is slow to (stopped with SIGSTOP while
# idle, as a worker busy elsewhere or descheduled would be).  Before that,
# session B (sync mode, so it delivers by itself even though the breaker
# is open) commits v2 and applies it.  The worker's retry of v1 then comes
# after v2: without the compare-and-set on the marker, v1 would overwrite
# v2 for good.
# ---------------------------------------------------------------------
{
	my $a = $node->background_psql('postgres', on_error_stop => 0);
	$a->query_safe("SET cachebridge.command_timeout = 200");
	is($a->query_safe("SELECT cachebridge.get('kv:1') IS NOT NULL"),
		't', 'session A has a connection to Redis');
	my $retried_before = CacheBridgeTest::stats($node)->{retried};

	# MONITOR shows the order in which Redis ran the commands
	my $monitor_log = CacheBridgeTest::scratch_dir('monitor') . '/monitor.log';
	my $monitor = IPC::Run::start(
		[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'MONITOR' ],
		'<', \undef, '>', $monitor_log, '2>', '/dev/null');
	sleep(0.2);

	# a running, idle worker, stopped until B has applied v2.  Idle is not
	# enough: woken by the UPDATE's acknowledgement, it may not have begun
	# the pass that deletes the row yet; an empty outbox says it ran.
	$node->safe_psql('postgres', "UPDATE kv SET v = 'v0' WHERE id = 4");
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity "
			  . "WHERE backend_type = 'cachebridge worker' AND state = 'idle' "
			  . "AND NOT EXISTS (SELECT FROM cachebridge.outbox)"),
		'the worker waits for work');
	($stopped_worker) = CacheBridgeTest::worker_pids($node);
	kill 'STOP', $stopped_worker;

	my $freeze = $redis->freeze(1.5);
	my $res = CacheBridgeTest::bg_query($a, "UPDATE kv SET v = 'v1' WHERE id = 1");
	like($res->{stderr}, qr/WARNING:  cachebridge could not apply 1 effect/,
		'A\'s delivery timed out while Redis was frozen');
	my ($r1, $a_xid, $direct) = split(/\|/,
		$node->safe_psql('postgres', 'SELECT id, xid, direct FROM cachebridge.outbox'));
	is($direct, 't', 'A\'s outbox row waits, marked as delivered by the backend');
	my $json_v1 = row_json(1);

	$freeze->finish;
	is($redis->cli('GET', 'kv:1'), $json_v1,
		'Redis applied A\'s timed-out command late, after the freeze');

	my $b_xid = $node->safe_psql('postgres', q{
SET cachebridge.delivery = sync;
SET cachebridge.retry_interval = 1;
BEGIN;
UPDATE kv SET v = 'v2' WHERE id = 1;
SELECT pg_current_xact_id();
COMMIT;
});
	my $json_v2 = row_json(1);
	is($redis->cli('GET', 'kv:1'), $json_v2, 'B applied v2');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM cachebridge.outbox WHERE id = $r1"),
		'1', 'A\'s row is still in the outbox: its retry comes after v2');
	kill 'CONT', $stopped_worker;
	$stopped_worker = undef;

	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', 'the worker delivered A\'s row again');
	ok(CacheBridgeTest::stats($node)->{retried} > $retried_before,
		'the worker counted the retry');
	is($redis->cli('GET', 'kv:1'), $json_v2, 'v2 stays in Redis after the retry of v1');
	is(marker_xid('kv:1'), $b_xid, 'the marker is B\'s');

	# the values of kv:1 sent with EVALSHA, in the order Redis ran them
	$monitor->kill_kill;
	my @sent = map { /\\"v\\":\\"(v\d)\\"/ ? $1 : () }
	  grep { /"EVALSHA" "\w+" "2" "kv:1"/ } split(/\n/, slurp_file($monitor_log));
	is(join(' ', @sent), 'v1 v2 v1',
		'Redis ran v1 (late), v2, then v1 again: without the version check v1 would win');
	isnt($a_xid, $b_xid, 'A and B are different transactions');
	$a->quit;
}

# ---------------------------------------------------------------------
# A replayed outbox row after a DELETE: the delete's marker (a tombstone,
# kept for cachebridge.tombstone_ttl) stops an older SET from bringing the
# key back.  The old row is saved while Redis is down and put back into
# the outbox after the DELETE, as a replay after a restore would.
# ---------------------------------------------------------------------
{
	$redis->stop;
	$node->safe_psql('postgres', "UPDATE kv SET v = 'old' WHERE id = 2");
	$node->safe_psql('postgres',
		'CREATE TABLE saved AS SELECT * FROM cachebridge.outbox');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM saved'),
		'1', 'the undelivered row is saved');
	$redis->start;
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', 'delivered once Redis is back');
	is($redis->cli('GET', 'kv:2'), row_json(2), 'kv:2 holds the old value');

	my $del_xid = $node->safe_psql('postgres', q{
BEGIN;
DELETE FROM kv WHERE id = 2;
SELECT pg_current_xact_id();
COMMIT;
});
	is($redis->cli('EXISTS', 'kv:2'), '0', 'DELETE removed kv:2');
	is(marker_xid('kv:2'), $del_xid, 'the delete left its marker');
	my $ttl = $redis->cli('TTL', 'kv:2#cbv');
	ok($ttl > 0 && $ttl <= 300, "the marker expires (tombstone_ttl): TTL $ttl");

	$node->safe_psql('postgres', q{
INSERT INTO cachebridge.outbox (version, neffects, direct, effects)
SELECT version, neffects, false, effects FROM saved;
});
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', 'the old row was replayed');
	is($redis->cli('EXISTS', 'kv:2'), '0', 'the replayed SET did not bring kv:2 back');
	is(marker_xid('kv:2'), $del_xid, 'the marker is still the delete\'s');

	# and over a newer SET
	$node->safe_psql('postgres', q{
INSERT INTO kv VALUES (2, 'new');
INSERT INTO cachebridge.outbox (version, neffects, direct, effects)
SELECT version, neffects, false, effects FROM saved;
});
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', 'the old row was replayed again');
	is($redis->cli('GET', 'kv:2'), row_json(2), 'the replayed SET did not overwrite a newer one');
}

# ---------------------------------------------------------------------
# Cache-aside fills: cachebridge.set() refuses a value read in a snapshot
# that does not see the transaction that wrote the key's marker.
# ---------------------------------------------------------------------
{
	my $reader = $node->background_psql('postgres', on_error_stop => 0);
	$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	my $stale = $reader->query_safe("SELECT row_to_json(kv)::text FROM kv WHERE id = 3");
	is($stale, '{"id":3,"v":"v0"}', 'the reader\'s snapshot sees v0');

	$node->safe_psql('postgres', "UPDATE kv SET v = 'fresh' WHERE id = 3");
	my $fresh = row_json(3);
	is($redis->cli('GET', 'kv:3'), $fresh, 'the writer\'s commit delivered the new value');

	(my $quoted = $stale) =~ s/'/''/g;
	is($reader->query_safe("SELECT cachebridge.set('kv:3', '$quoted')"),
		'f', 'a fill from the old snapshot returns false');
	is($redis->cli('GET', 'kv:3'), $fresh, 'and leaves the newer value in Redis');

	# a deleted key: the tombstone refuses the stale fill too
	my $stale4 = $reader->query_safe("SELECT row_to_json(kv)::text FROM kv WHERE id = 4");
	$node->safe_psql('postgres', 'DELETE FROM kv WHERE id = 4');
	($quoted = $stale4) =~ s/'/''/g;
	is($reader->query_safe("SELECT cachebridge.set('kv:4', '$quoted')"),
		'f', 'a fill of a deleted row from the old snapshot returns false');
	is($redis->cli('EXISTS', 'kv:4'), '0', 'and does not bring the key back');
	$reader->query_safe('COMMIT');

	# snapshots that see the change may fill
	$redis->cli('DEL', 'kv:3');
	is($reader->query_safe(
			"SELECT cachebridge.set('kv:3', row_to_json(kv)::text) FROM kv WHERE id = 3"),
		't', 'a fill from a snapshot that sees the change returns true');
	is($redis->cli('GET', 'kv:3'), $fresh, 'and stores the value');
	$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	is($reader->query_safe(
			"SELECT cachebridge.set('kv:3', row_to_json(kv)::text, 60) FROM kv WHERE id = 3"),
		't', 'so does one from a REPEATABLE READ snapshot taken after the commit');
	$reader->query_safe('COMMIT');
	is($reader->query_safe("SELECT cachebridge.set('plain:key', 'x')"),
		't', 'a key without a marker may always be filled');
	$reader->quit;
}

$node->stop;
$redis->stop;
done_testing();
