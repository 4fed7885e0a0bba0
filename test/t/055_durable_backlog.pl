# test/t/055_durable_backlog.pl -- a large backlog built while Redis is
# down is delivered completely once it is back, and how long that takes.
#
# Two backlogs, each measured from the Redis restart to the outbox being
# empty (diag lines, not timed assertions):
#   1. 20,000 single-row transactions: 20,000 outbox rows of one effect;
#   2. 1,000 transactions of 100 rows: 100,000 effects in 1,000 rows.
# Afterwards Redis must equal the table, key for key.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use CacheBridgeTest;

my $nrows = 20000;

my $redis = CacheBridgeTest::Redis->new(
	name => 'backlog',
	conf => [ 'appendonly yes', 'appendfsync everysec' ]);
my $node = CacheBridgeTest::new_node(
	'backlog',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 1000',
		'shared_buffers = 64MB',
		'max_wal_size = 1GB',
	]);

$node->safe_psql('postgres', qq{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	INSERT INTO item SELECT g, 0 FROM generate_series(1, $nrows) AS g;
});
my $expected_cache =
  q{SELECT 'item:' || id, row_to_json(item)::text FROM item ORDER BY id};
is(scalar(grep { !/#cbv$/ } $redis->scan_keys('item:*')), $nrows,
	"one transaction cached all $nrows rows");

# Builds a backlog with $sql while Redis is down, restarts Redis and
# measures how long the worker takes to deliver it.
sub backlog
{
	my ($name, $sql) = @_;

	$redis->stop;
	my $t0 = time;
	$node->safe_psql('postgres', $sql);
	my $built = time - $t0;
	my ($rows, $effects) = split(/\|/, $node->safe_psql('postgres',
		'SELECT count(*), sum(neffects) FROM cachebridge.outbox WHERE NOT dead'));

	$redis->start;
	$t0 = time;
	my $done = $node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(150000)');
	my $drained = time - $t0;
	is($done, 't', "$name: the backlog is delivered");
	diag(sprintf('%s: %d outbox rows, %d effects, written in %.1f s while Redis was down; '
		  . 'delivered %.1f s after Redis restarted (%.0f rows/s, %.0f effects/s)',
		  $name, $rows, $effects, $built, $drained, $rows / $drained, $effects / $drained));
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', "$name: Redis equals the table");
	is(CacheBridgeTest::stats($node)->{breaker}, 'closed', "$name: breaker closed");
	return;
}

backlog('single-row transactions', qq{
DO \$\$
BEGIN
	FOR i IN 1..$nrows LOOP
		UPDATE item SET n = n + 1 WHERE id = i;
		COMMIT;
	END LOOP;
END
\$\$;
});

backlog('100-row transactions', q{
DO $$
BEGIN
	FOR i IN 0..999 LOOP
		-- 200 blocks of 100 rows, each updated 5 times
		UPDATE item SET n = n + 1
		WHERE id > (i % 200) * 100 AND id <= (i % 200) * 100 + 100;
		COMMIT;
	END LOOP;
END
$$;
});

$node->stop;
$redis->stop;
done_testing();
