# test/t/081_worker_wakeup.pl -- no lost wake-ups of the worker.
#
# A committing backend wakes its database's worker by setting its latch.
# If that happens while the worker waits on Redis' socket, the socket wait
# takes the wake-up; the worker must still go on with the new row at once
# rather than nap for a second.  Redis is frozen (DEBUG SLEEP) while the
# worker delivers row A, so that row B's wake-up arrives mid round trip;
# B must be in Redis well within the worker's one-second nap after A.
#
# And no more wake-ups than needed: while commits with stream entries keep
# coming, the worker gathers them for a few milliseconds and delivers many
# in one pass (one transaction of its own), rather than one pass per
# commit; a commit after a quiet spell is still delivered at once.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(
	name => 'wakeup',
	conf => ['enable-debug-command yes']);
my $node = CacheBridgeTest::new_node(
	'wakeup',
	redis => $redis,
	conf => [ "cachebridge.delivery = 'async'", 'cachebridge.command_timeout = 5000' ]);

$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
});

# Seconds until key is in Redis (polled), or undef after $limit seconds.
sub seconds_until_present
{
	my ($key, $t0, $limit) = @_;

	while (time() - $t0 < $limit)
	{
		return time() - $t0 if $redis->cli('EXISTS', $key) eq '1';
		sleep(0.02);
	}
	return undef;
}

for my $try (1 .. 3)
{
	my ($a, $b) = (2 * $try, 2 * $try + 1);

	# keep the worker running (it exits after 2 s idle) and warm
	$node->safe_psql('postgres', "INSERT INTO item VALUES (1000 + $try, 0)");
	ok(defined seconds_until_present("item:" . (1000 + $try), time(), 10),
		"try $try: the worker runs");

	my $frozen = $redis->freeze(1.2);
	$node->safe_psql('postgres', "INSERT INTO item VALUES ($a, 0)");
	sleep(0.3);				# the worker now waits on Redis for row A
	$node->safe_psql('postgres', "INSERT INTO item VALUES ($b, 0)");
	$frozen->finish;
	my $t0 = time();		# Redis answers again
	my $latency = seconds_until_present("item:$b", $t0, 10);
	ok(defined $latency, "try $try: row B delivered");
	# a lost wake-up adds the worker's 1 s nap after row A
	cmp_ok($latency // 99, '<', 0.6,
		"try $try: row B delivered right after row A, without a nap");
	diag(sprintf('try %d: B in Redis %.2f s after Redis woke', $try, $latency // -1));
}

# ---------------------------------------------------------------- gathering

$node->safe_psql('postgres', q{
	CREATE TABLE ev (id bigserial PRIMARY KEY, n int NOT NULL);
	CREATE TRIGGER ev_publish AFTER INSERT ON ev
		FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:flow');
});

# Waits until no worker runs (it exits 2 s after its outbox goes idle,
# reporting its statistics as it exits); true if that happened.
sub worker_gone
{
	for (1 .. 200)
	{
		return 1 if !CacheBridgeTest::worker_pids($node);
		sleep(0.05);
	}
	return 0;
}

sub db_commits
{
	return $node->safe_psql('postgres',
		"SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'");
}

# a lone commit after a quiet spell: in Redis at once
ok(worker_gone(), 'gathering: the worker exits while the outbox is idle');
$node->safe_psql('postgres', 'INSERT INTO ev (n) VALUES (0)');
my $t0 = time();
my $lone;
while (time() - $t0 < 10)
{
	if ($redis->cli('XLEN', 'ev:flow') eq '1') { $lone = time() - $t0; last; }
	sleep(0.002);
}
ok(defined $lone, 'gathering: a lone commit is delivered');
diag(sprintf('a lone commit in the stream %.3f s after COMMIT', $lone // -1));

# a steady flow of commits, each with one entry
ok(worker_gone(), 'gathering: the worker exits again');
sleep(1);
my $before = db_commits();
my $run = CacheBridgeTest::run_pgbench($node,
	script => "INSERT INTO ev (n) VALUES (1);\n",
	clients => 2, seconds => 3);
is($run->{rc}, 0, 'gathering: pgbench ran') or diag($run->{stderr});
my $n = $run->{processed} // 0;
$node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()');
is($redis->cli('XLEN', 'ev:flow'), $n + 1,
	'gathering: every commit of the flow has its entry in the stream');
ok(worker_gone(), 'gathering: the worker exits after the flow');
sleep(1);
# pgbench's commits, the few of this test's own statements, and the worker's
# passes (a transaction each)
my $passes = db_commits() - $before - $n - 8;
diag("gathering: $n commits delivered in about $passes worker passes");
SKIP:
{
	# at a slow rate there is nothing to gather: each commit comes more
	# than the gathering time after the one before
	skip "only $n commits in 3 s: too few to gather", 1 if $n < 1500;
	cmp_ok($passes, '<', $n / 3,
		'gathering: the worker delivered many commits per pass');
}

done_testing();
