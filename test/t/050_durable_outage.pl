# test/t/050_durable_outage.pl -- durable delivery across a Redis outage
# (DESIGN.md, Delivery guarantees 4 and 5).
#
# While Redis is down or frozen, writes to a table with a write_through
# trigger must never fail and must keep their normal speed: the first
# commit pays at most one Redis timeout, then the circuit breaker sends
# every transaction's effects to cachebridge.outbox without waiting on
# Redis.  When Redis is back the worker delivers the backlog, the breaker
# closes, and Redis holds exactly the committed rows.
#
# Redis runs with an append-only file here, so that a stop and start keeps
# what was delivered before the outage and Redis can be compared with the
# whole table afterwards.

use strict;
use warnings;

use IPC::Run ();
use List::Util qw(max);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

# Redis timeouts of every session and of the worker (ms).
my $connect_timeout = 300;
my $command_timeout = 300;

# Time allowed on top of a timeout for a busy machine.
my $slack = 1.5;

my $redis = CacheBridgeTest::Redis->new(
	name => 'outage',
	conf => [ 'appendonly yes', 'appendfsync always', 'enable-debug-command yes' ]);
my $node = CacheBridgeTest::new_node(
	'outage',
	redis => $redis,
	conf => [
		"cachebridge.connect_timeout = $connect_timeout",
		"cachebridge.command_timeout = $command_timeout",
	]);

$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL, note text);
	SELECT cachebridge.attach('item', 'item:{id}');
	INSERT INTO item SELECT g, 0, 'row ' || g FROM generate_series(1, 100) AS g;
});

# What Redis must hold: one key per row, its row_to_json.
my $expected_cache =
  q{SELECT 'item:' || id, row_to_json(item)::text FROM item ORDER BY id};

is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
	'', 'every row is in Redis before the outage');
is(CacheBridgeTest::stats($node)->{breaker}, 'closed', 'breaker closed before the outage');

# Median of a list of numbers.
sub median
{
	my @s = sort { $a <=> $b } @_;

	return undef unless @s;
	return @s % 2 ? $s[$#s / 2] : ($s[ @s / 2 - 1 ] + $s[ @s / 2 ]) / 2;
}

# ---------------------------------------------------------------------
# Redis stopped in the middle of a pgbench write workload.
#
# pgbench logs every transaction (-l): its latency and when it ended, so
# the transactions that ran while Redis was down can be told apart.  The
# rate is capped (-R) to keep the backlog, and so the test, small; with
# -R, pgbench's logged latency counts from the scheduled start, so the
# schedule lag (7th field) is taken off.
# ---------------------------------------------------------------------
{
	my $dir = CacheBridgeTest::scratch_dir('pgbench_outage');
	my $script = "$dir/update.sql";
	my ($out, $err) = ('', '');
	my $duration = 6;

	open(my $fh, '>', $script) or die "could not write $script: $!";
	print $fh "\\set id random(1, 100)\n"
	  . "UPDATE item SET n = n + 1 WHERE id = :id;\n";
	close($fh);

	my $bench = IPC::Run::start(
		[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port,
			'-c', 4, '-j', 4, '-T', $duration, '-R', 1000,
			'-l', "--log-prefix=$dir/tx", '-f', $script, 'postgres' ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($duration + 60));

	sleep(1.5);
	my $t_stop = time;
	$redis->stop;
	$bench->finish;

	is($bench->full_result(0) >> 8, 0, 'pgbench succeeded while Redis went down')
	  or diag("pgbench stdout:\n$out\nstderr:\n$err");
	my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $out =~ /number of failed transactions: (\d+)/;
	is($failed // 0, 0, 'no transaction failed');

	# client_id transaction_no latency_us script_no end_epoch end_us lag_us
	my (@before, @during);
	for my $log (glob("$dir/tx.*"))
	{
		open(my $lh, '<', $log) or die "could not read $log: $!";
		while (my $line = <$lh>)
		{
			my @f = split(' ', $line);
			next unless @f >= 6;
			my $end = $f[4] + $f[5] / 1e6;
			my $latency = ($f[2] - ($f[6] // 0)) / 1e6;
			if ($end < $t_stop) { push @before, $latency; }
			else { push @during, [ $end, $latency ]; }
		}
		close($lh);
	}
	is(scalar(@before) + scalar(@during), $processed // -1,
		'pgbench logged every transaction');
	ok(@during > 100,
		sprintf('writes went on while Redis was down: %d transactions', scalar @during));

	my $worst = max(map { $_->[1] } @during) // 0;
	ok($worst < $connect_timeout / 1000 + $slack,
		sprintf('no transaction after the stop waited more than connect_timeout: worst %.3f s',
			$worst));

	# once the breaker is open, commits do not touch Redis at all
	my @settled = map { $_->[1] } grep { $_->[0] > $t_stop + 1 } @during;
	my $median_before = median(@before) // 0;
	my $median_settled = median(@settled) // 1;
	diag(sprintf('pgbench latency median: %.2f ms before the stop, %.2f ms while Redis was down '
		  . '(%d and %d transactions)', $median_before * 1000, $median_settled * 1000,
		  scalar @before, scalar @settled));
	ok($median_settled < $connect_timeout / 1000 / 10,
		sprintf('median latency while Redis is down (%.2f ms) is far below connect_timeout',
			$median_settled * 1000));

	my $stats = CacheBridgeTest::stats($node);
	is($stats->{breaker}, 'open', 'breaker open while Redis is down');
	ok($stats->{outbox_depth} > 0,
		"outbox holds the undelivered transactions: $stats->{outbox_depth} rows");
	ok(defined $stats->{oldest_undelivered_age}, 'oldest_undelivered_age is set');

	$redis->start;
	my $t_start = time;
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'),
		't', 'wait_delivered after Redis is back');
	diag(sprintf('outbox of %d rows drained %.2f s after Redis restarted',
			$stats->{outbox_depth}, time - $t_start));

	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', 'Redis equals the table after the outage');
	$stats = CacheBridgeTest::stats($node);
	is($stats->{breaker}, 'closed', 'breaker closed again');
	is($stats->{outbox_depth}, 0, 'outbox empty');
	ok(defined $stats->{worker_last_success}, 'worker_last_success is set');
}

# ---------------------------------------------------------------------
# Redis frozen (DEBUG SLEEP): connections are accepted by the kernel but
# nothing is answered, so the first commit waits for a timeout.  Only that
# one: the next 50 commits, made while Redis is still frozen, are fast.
# Latencies are measured inside the server, from before each UPDATE to
# after its COMMIT (which is when effects are delivered).
# ---------------------------------------------------------------------
{
	my $freeze = $redis->freeze(3);
	my $res = CacheBridgeTest::run_sql($node, q{
DO $$
DECLARE
	t0 timestamptz;
	lat float8[] := '{}';
BEGIN
	FOR i IN 1..51 LOOP
		t0 := clock_timestamp();
		UPDATE item SET n = n + 1000 WHERE id = i;
		COMMIT;
		lat := lat || extract(epoch FROM clock_timestamp() - t0)::float8;
	END LOOP;
	RAISE NOTICE 'latencies %', array_to_string(lat, ' ');
END
$$;
SELECT breaker, outbox_depth > 0 FROM cachebridge.stats;
});
	is($res->{rc}, 0, 'writes succeed while Redis is frozen')
	  or diag($res->{stderr});
	my ($list) = $res->{stderr} =~ /NOTICE:  latencies ([\d.e\- ]+)/;
	my @lat = split(' ', $list // '');
	is(scalar @lat, 51, 'latency of every commit measured');
	my $first = shift @lat;
	ok($first >= $command_timeout / 1000 * 0.9
		  && $first < ($connect_timeout + $command_timeout) / 1000 + $slack,
		sprintf('the first commit waited one timeout: %.3f s', $first // -1));
	my $median = median(@lat) // 1;
	diag(sprintf('frozen Redis: first commit %.1f ms, then median %.2f ms, worst %.2f ms',
			$first * 1000, $median * 1000, (max(@lat) // 0) * 1000));
	ok($median < $command_timeout / 1000 / 10,
		sprintf('later commits are fast: median %.2f ms', $median * 1000));
	is(scalar(grep { $_ > $command_timeout / 1000 / 2 } @lat), 0,
		'no later commit waited on Redis');
	is($res->{stdout}, 'open|t', 'breaker open and outbox non-empty while Redis is frozen');
	my @warnings = $res->{stderr} =~ /WARNING:  cachebridge could not apply/g;
	is(scalar @warnings, 1, 'one WARNING, for the commit that found Redis frozen');

	$freeze->finish;
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'),
		't', 'wait_delivered after Redis thawed');
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', 'Redis equals the table after the freeze');
	is(CacheBridgeTest::stats($node)->{breaker}, 'closed', 'breaker closed after the freeze');
}

$node->stop;
$redis->stop;
done_testing();
