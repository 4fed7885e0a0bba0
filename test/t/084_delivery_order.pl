# test/t/084_delivery_order.pl -- the worker never sends a row before an
# older one, and never waits on a timer for a backend that is done.
#
# A committing backend that sends its own outbox row holds the row's lock
# until it has acknowledged it or given up.  The worker sends rows in id
# order and stops at a row whose lock is held.  It used to skip such rows
# for connect_timeout + command_timeout instead and send the later ones
# first: an INSERT committed while Redis was down (its backend had tried
# and failed) was then sent after a TRUNCATE that followed it, and the
# truncated row's key came back.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'order');
my $node = CacheBridgeTest::new_node(
	'order',
	redis => $redis,
	conf => [
		# a grace period of 4.3 s in the old code
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 4000',
	]);
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
});

for my $round (1 .. 3)
{
	$redis->stop;
	# the backend tries Redis itself, fails, and leaves its row
	my $r = CacheBridgeTest::run_sql($node, "INSERT INTO item VALUES ($round, 0)");
	like($r->{stderr}, qr/could not apply/, "round $round: the INSERT's backend could not send it");
	$redis->start;
	my $t0 = time();
	$node->safe_psql('postgres', 'TRUNCATE item');
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', "round $round: both rows delivered");
	my $waited = time() - $t0;
	is($redis->cli('EXISTS', "item:$round"), '0',
		"round $round: the TRUNCATE came after the INSERT: no key came back");
	cmp_ok($waited, '<', 3, "round $round: the worker did not wait out a grace period");
	diag(sprintf('round %d: delivered %.2f s after Redis came back', $round, $waited));
}

done_testing();
