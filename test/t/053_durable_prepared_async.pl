# test/t/053_durable_prepared_async.pl -- two-phase commit and the async
# delivery mode (DESIGN.md, Delivery guarantees 1 and 4).
#
# PREPARE TRANSACTION works through the outbox: the prepared transaction's
# outbox row becomes visible, and is delivered, only at COMMIT PREPARED,
# and disappears with ROLLBACK PREPARED.  In sync mode, where there is no
# outbox, PREPARE of a transaction with effects is refused.  In async mode
# the committing backend never talks to Redis: only the worker delivers.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'twophase');
my $node = CacheBridgeTest::new_node(
	'twophase',
	redis => $redis,
	conf => ['max_prepared_transactions = 5']);

$node->safe_psql('postgres', q{
	CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
	CREATE TABLE plain (id int);
	SELECT cachebridge.attach('kv', 'kv:{id}');
	INSERT INTO kv SELECT g, 'v0' FROM generate_series(1, 6) AS g;
});
my $v0 = sub { qq({"id":$_[0],"v":"v0"}) };

# The cached value a row must have.
sub row_json
{
	my ($id) = @_;

	return $node->safe_psql('postgres',
		"SELECT row_to_json(kv)::text FROM kv WHERE id = $id");
}

# Commits a change of row 6 and waits until it is delivered: the worker has
# then handled everything it could see.
sub flush_worker
{
	my ($tag) = @_;

	$node->safe_psql('postgres', "UPDATE kv SET v = '$tag' WHERE id = 6");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
		't', "$tag: a later transaction is delivered");
	is($redis->cli('GET', 'kv:6'), row_json(6), "$tag: kv:6 is current");
	return;
}

# ---------------------------------------------------------------------
# PREPARE, then COMMIT PREPARED from another session.
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres', q{
BEGIN;
UPDATE kv SET v = 'prepared' WHERE id = 1;
DELETE FROM kv WHERE id = 2;
PREPARE TRANSACTION 'p1';
});
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox'),
		'0', 'the prepared transaction\'s outbox row is not visible');
	flush_worker('after PREPARE');
	is($redis->cli('GET', 'kv:1'), $v0->(1), 'nothing of the prepared transaction in Redis (SET)');
	is($redis->cli('GET', 'kv:2'), $v0->(2), 'nothing of the prepared transaction in Redis (DEL)');

	$node->safe_psql('postgres', "COMMIT PREPARED 'p1'");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
		't', 'COMMIT PREPARED: wait_delivered');
	is($redis->cli('GET', 'kv:1'), row_json(1), 'the committed SET is in Redis');
	is($redis->cli('EXISTS', 'kv:2'), '0', 'the committed DEL is applied');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox'),
		'0', 'the outbox is empty');
}

# ---------------------------------------------------------------------
# PREPARE, then ROLLBACK PREPARED: nothing reaches Redis, no row remains.
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres', q{
BEGIN;
UPDATE kv SET v = 'never' WHERE id = 3;
PREPARE TRANSACTION 'p2';
});
	$node->safe_psql('postgres', "ROLLBACK PREPARED 'p2'");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
		'0', 'no prepared transaction left');
	flush_worker('after ROLLBACK PREPARED');
	is($redis->cli('GET', 'kv:3'), $v0->(3), 'nothing of the rolled back transaction in Redis');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox'),
		'0', 'its outbox row is gone');
}

# ---------------------------------------------------------------------
# sync mode: PREPARE with effects is refused; without effects it works.
# ---------------------------------------------------------------------
{
	my $res = CacheBridgeTest::run_sql($node, q{
BEGIN;
UPDATE kv SET v = 'sync' WHERE id = 4;
PREPARE TRANSACTION 'p3';
}, 'cachebridge.delivery' => 'sync');
	isnt($res->{rc}, 0, 'sync mode: PREPARE with effects fails');
	like($res->{stderr},
		qr/ERROR:  cannot prepare a transaction that has pending cachebridge effects in sync delivery mode\n(.*\n)*HINT:  Set cachebridge\.delivery to durable or async/,
		'sync mode: PREPARE is refused with its message');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
		'0', 'sync mode: nothing was prepared');
	is($node->safe_psql('postgres', 'SELECT v FROM kv WHERE id = 4'),
		'v0', 'sync mode: the transaction was rolled back');
	is($redis->cli('GET', 'kv:4'), $v0->(4), 'sync mode: nothing in Redis');

	$res = CacheBridgeTest::run_sql($node, q{
BEGIN;
INSERT INTO plain VALUES (1);
PREPARE TRANSACTION 'p4';
COMMIT PREPARED 'p4';
}, 'cachebridge.delivery' => 'sync');
	is($res->{rc}, 0, 'sync mode: PREPARE without cachebridge effects works')
	  or diag($res->{stderr});
}

# ---------------------------------------------------------------------
# async mode: the backend does not deliver.  The worker is stopped
# (SIGSTOP, while it sleeps) around the commit, so the value can only
# appear in Redis once the worker runs again.
# ---------------------------------------------------------------------
{
	flush_worker('before async');
	my ($worker) = CacheBridgeTest::worker_pids($node);
	ok($worker, 'a worker runs');

	my $stopped = 0;
	for (1 .. 50)
	{
		kill 'STOP', $worker;
		# sleeping in WaitLatch, so not holding a spinlock
		if ($node->safe_psql('postgres',
				"SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $worker") eq 't')
		{
			$stopped = 1;
			last;
		}
		kill 'CONT', $worker;
		sleep(0.02);
	}
	ok($stopped, 'worker stopped while sleeping');
	my $retried = CacheBridgeTest::stats($node)->{retried};

	my $res = CacheBridgeTest::run_sql($node,
		"UPDATE kv SET v = 'async' WHERE id = 5;\n"
		  . "SELECT direct FROM cachebridge.outbox;\n",
		'cachebridge.delivery' => 'async');
	is($res->{stdout}, 'f', 'async: the outbox row is left to the worker');
	sleep(0.5);
	is($redis->cli('GET', 'kv:5'), $v0->(5), 'async: the backend delivered nothing');

	kill 'CONT', $worker;
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
		't', 'async: wait_delivered once the worker runs');
	is($redis->cli('GET', 'kv:5'), row_json(5), 'async: the worker delivered the value');
	is(CacheBridgeTest::stats($node)->{retried}, $retried + 1,
		'async: counted as delivered by the worker');
	# (it may have exited since, idle; no other worker may have run)
	is(join(' ', grep { $_ != $worker } CacheBridgeTest::worker_pids($node)),
		'', 'async: no other worker started');
}

$node->stop;
$redis->stop;
done_testing();
