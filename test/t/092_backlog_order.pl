# test/t/092_backlog_order.pl -- while older outbox rows wait for the
# worker, committing backends do not send their own rows: every state of a
# key reaches Redis in commit order, whatever Redis lost in between.
#
# Each round leaves an older write A in the outbox (Redis was down when it
# committed), keeps the worker from sending it (SIGSTOP), brings Redis back
# and lets a sync session close the circuit breaker, then commits a newer
# change B of the same key in durable mode.  The backend of B used to send
# B itself (the breaker was closed), and A came later:
#  - B a TRUNCATE: its pattern deletion found no key, left no marker, and
#    A's INSERT brought the truncated row's key back;
#  - B an UPDATE, and Redis restarted without persistence before the
#    worker went on: B's value and marker were lost, and A's older UPDATE
#    was applied -- an older state after a newer one;
#  - B a DELETE whose tombstone (tombstone_ttl = 1, for every round) expired before A was
#    replayed: the deleted row came back, without a TTL.
# Now B waits behind A (backlog.c), and the worker sends both in order.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'backlog');
my $node = CacheBridgeTest::new_node(
	'backlog',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300', 'cachebridge.retry_interval = 200',
		'cachebridge.tombstone_ttl = 1'
	]);
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	CREATE TABLE probe (id int PRIMARY KEY);
	SELECT cachebridge.attach('probe', 'probe:{id}');
});

# Leaves $older in the outbox with the worker stopped, closes the breaker,
# commits $newer (with the settings %gucs), runs $meanwhile, lets the
# worker go on and waits for delivery.  Returns whether COMMIT of $newer
# already showed its effect (measured by $applied_sql on Redis, a code ref).
sub round
{
	my (%r) = @_;
	my $tag = $r{tag};

	$redis->stop;
	my $a = CacheBridgeTest::run_sql($node, $r{older});
	like($a->{stderr}, qr/could not apply/, "$tag: A's backend could not send it");
	my @pids;
	for (1 .. 100)
	{
		@pids = CacheBridgeTest::worker_pids($node);
		last if @pids;
		sleep(0.05);
	}
	ok(@pids, "$tag: the worker runs");
	kill 'STOP', @pids;
	$redis->start;

	# a sync session's probe closes the breaker while A still waits
	sleep(0.3);
	my $p = CacheBridgeTest::run_sql($node,
		"INSERT INTO probe VALUES ($r{probe})",
		'cachebridge.delivery' => 'sync');
	is($p->{rc}, 0, "$tag: the sync probe committed");
	is($node->safe_psql('postgres', 'SELECT breaker FROM cachebridge.delivery_status()'),
		'closed', "$tag: the breaker is closed, A is still in the outbox");

	my $b = CacheBridgeTest::run_sql($node, $r{newer}, %{ $r{gucs} // {} });
	is($b->{rc}, 0, "$tag: B committed");
	$r{meanwhile}->() if $r{meanwhile};

	kill 'CONT', @pids;
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', "$tag: A and B delivered");
	return;
}

# 1. TRUNCATE after an INSERT that waits for the worker
round(
	tag => 'truncate',
	probe => 1,
	older => 'INSERT INTO item VALUES (1, 0)',
	newer => 'TRUNCATE item');
is($redis->cli('EXISTS', 'item:1'), '0',
	'truncate: the truncated row did not come back');

# 2. UPDATE after an UPDATE that waits, and Redis loses everything between
$node->safe_psql('postgres', 'INSERT INTO item VALUES (2, 0)');
round(
	tag => 'restart',
	probe => 2,
	older => 'UPDATE item SET n = 1 WHERE id = 2',
	newer => 'UPDATE item SET n = 2 WHERE id = 2',
	meanwhile => sub { $redis->stop; $redis->start; });
is($redis->cli('GET', 'item:2'), '{"id":2,"n":2}',
	'restart: the newer UPDATE is what Redis holds, not the older one');

# 3. DELETE after an INSERT that waits, with a tombstone that expires
round(
	tag => 'tombstone',
	probe => 3,
	older => 'INSERT INTO item VALUES (3, 0)',
	newer => 'DELETE FROM item WHERE id = 3',
	meanwhile => sub { sleep(1.5); });
is($redis->cli('EXISTS', 'item:3'), '0',
	'tombstone: the deleted row did not come back');

# with the backlog delivered, backends send their own rows again
my $t0 = time();
$node->safe_psql('postgres', 'INSERT INTO item VALUES (4, 4)');
is($redis->cli('GET', 'item:4'), '{"id":4,"n":4}',
	'no backlog: COMMIT returns with the effect in Redis');
diag(sprintf('commit with no backlog: %.3f s', time() - $t0));

done_testing();
