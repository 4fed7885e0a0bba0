# test/t/051_durable_crash.pl -- nothing committed is lost when PostgreSQL
# or the cachebridge worker dies (DESIGN.md, Delivery guarantee 4).
#
# Effects are left undelivered in cachebridge.outbox by stopping Redis
# while writing; then
#   1. PostgreSQL is stopped in immediate mode (a crash), Redis started,
#      PostgreSQL started: the launcher starts the worker, which delivers
#      them;
#   2. the worker is terminated while it has work: the postmaster starts it
#      again, and it drains the outbox once Redis is back;
#   3. a backend is killed with SIGKILL, so the postmaster reinitialises
#      shared memory (crash restart): the launcher and worker come back and
#      deliver.
# Each time Redis must end up equal to the table.  Rows are watched with
# plain queries, never cachebridge.wait_delivered(), which would wake (and
# so start) a worker itself.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(
	name => 'crash',
	conf => [ 'appendonly yes', 'appendfsync always' ]);
my $node = CacheBridgeTest::new_node(
	'crash',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 300',
		'restart_after_crash = on',
	]);

$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	INSERT INTO item SELECT g, 0 FROM generate_series(1, 50) AS g;
});
my $expected_cache =
  q{SELECT 'item:' || id, row_to_json(item)::text FROM item ORDER BY id};

# Commits $n single-row updates, one transaction each.
sub write_rows
{
	my ($n) = @_;

	$node->safe_psql('postgres', qq{
DO \$\$
BEGIN
	FOR i IN 1..$n LOOP
		UPDATE item SET n = n + 1 WHERE id = 1 + i % 50;
		COMMIT;
	END LOOP;
END
\$\$;
});
	return;
}

# Number of outbox rows waiting for delivery.
sub outbox_depth
{
	return $node->safe_psql('postgres',
		'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead');
}

# Waits up to $timeout_s for a worker whose pid is not in @old; returns
# its pid and the seconds waited, or undef.
sub wait_new_worker
{
	my ($timeout_s, @old) = @_;
	my %old = map { $_ => 1 } @old;
	my $t0 = time;

	while (time - $t0 < $timeout_s)
	{
		my ($pid) = grep { !$old{$_} } CacheBridgeTest::worker_pids($node);
		return ($pid, time - $t0) if $pid;
		sleep(0.05);
	}
	return;
}

is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
	'', 'Redis equals the table at the start');

# ---------------------------------------------------------------------
# 1. Crash (immediate stop) with undelivered effects.
# ---------------------------------------------------------------------
{
	$redis->stop;
	write_rows(200);
	my $depth = outbox_depth();
	ok($depth >= 200, "200 transactions wait in the outbox: $depth rows");

	$node->stop('immediate');
	$redis->start;
	my $t0 = time;
	$node->start;

	my $waited = CacheBridgeTest::wait_outbox_empty($node, 30);
	ok(defined $waited, 'after the crash, the launcher\'s worker empties the outbox');
	diag(sprintf('outbox of %d rows delivered %.2f s after PostgreSQL started',
			$depth, time - $t0));
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', 'Redis equals the table after the crash');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'cachebridge launcher'"),
		'1', 'the launcher runs after the restart');
}

# ---------------------------------------------------------------------
# 2. The worker terminated while Redis is down and the outbox has rows:
# the postmaster restarts it, and it delivers once Redis is back.
# ---------------------------------------------------------------------
{
	$redis->stop;
	write_rows(20);
	ok(outbox_depth() > 0, 'outbox has rows while Redis is down');

	my ($old) = wait_new_worker(10);
	ok($old, 'a worker runs, backing off while Redis is down');
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($old)"),
		't', 'worker terminated');

	my ($new, $waited) = wait_new_worker(10, $old);
	ok($new, 'the postmaster started the worker again');
	diag(sprintf('worker %s restarted as %s after %.2f s',
			$old, $new // 'none', $waited // -1)) if $new;
	ok(!kill(0, $old), 'the terminated worker is gone');
	ok(outbox_depth() > 0, 'the outbox still waits for Redis');

	$redis->start;
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 30),
		'the restarted worker empties the outbox');
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', 'Redis equals the table after the worker restart');
}

# ---------------------------------------------------------------------
# 3. A backend killed with SIGKILL: the postmaster kills every process and
# reinitialises shared memory (restart_after_crash).  The outbox, being a
# table, survives; the launcher starts a worker that delivers it.
# ---------------------------------------------------------------------
{
	$redis->stop;
	write_rows(50);
	my $depth = outbox_depth();
	ok($depth > 0, "outbox has $depth rows before the crash restart");

	my $victim = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $victim->query_safe('SELECT pg_backend_pid()');
	kill 'KILL', $pid;
	eval { $victim->quit; };

	# the postmaster reinitialises; wait until it accepts connections again
	$node->poll_query_until('postgres', 'SELECT 1', '1')
	  or die 'PostgreSQL did not come back after the crash restart';
	ok($node->log_contains(qr/all server processes terminated; reinitializing/),
		'the postmaster reinitialised after the SIGKILL');

	$redis->start;
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 30),
		'after the crash restart, the outbox is emptied');
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', 'Redis equals the table after the crash restart');

	# new work still finds a worker
	write_rows(5);
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
		't', 'later commits are delivered');
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', 'Redis equals the table at the end');
	my @workers = CacheBridgeTest::worker_pids($node);
	ok(@workers <= 1,
		'at most one worker serves the database: ' . join(' ', @workers));
}

$node->stop;
$redis->stop;
done_testing();
