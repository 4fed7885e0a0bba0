# test/t/081_worker_wakeup.pl -- no lost wake-ups of the worker.
#
# A committing backend wakes its database's worker by setting its latch.
# If that happens while the worker waits on Redis' socket, the socket wait
# takes the wake-up; the worker must still go on with the new row at once
# rather than nap for a second.  Redis is frozen (DEBUG SLEEP) while the
# worker delivers row A, so that row B's wake-up arrives mid round trip;
# B must be in Redis well within the worker's one-second nap after A.

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

done_testing();
