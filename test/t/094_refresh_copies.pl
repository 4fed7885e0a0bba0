# test/t/094_refresh_copies.pl -- a refresh batch's early copies never
# leave a stale value, and never lose one (README, "Backfill").
#
# A batch of cachebridge.refresh() sends its copies of the rows it holds
# locked before it commits, as plain commands without version markers
# (src/refresh.c says why that is safe).  Against a real Redis:
#   - an older write delivered late, after the copy, is still refused by
#     the newer write's marker: the copy left the markers alone (the
#     worker, stopped, holds the older write; a sync write delivers the
#     newer one);
#   - Redis answering OOM part-way through a batch's copies (maxmemory a
#     little above what is used), or READONLY (a replica), or not being
#     there at all: the batch is delivered with versions at commit, through
#     the outbox, the refresh completes, and once Redis takes writes again
#     it holds every row, and every snapshot entry once (not twice: the
#     batch fires its publish triggers once; not fewer: see 063).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'copies');
my $node = CacheBridgeTest::new_node(
	'copies',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 1000',
	]);

# ---------------------------------------------------------------------
# An older write delivered after the copy is refused.
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE late (id int PRIMARY KEY, v text);
	INSERT INTO late VALUES (1, 'first');
	SELECT cachebridge.attach('late', 'late:{id}');
	UPDATE late SET v = 'a' WHERE id = 1;
});
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'), 't',
	'late: the first write is delivered');

my @workers = CacheBridgeTest::worker_pids($node);
ok(@workers > 0, 'late: the worker runs');
kill 'STOP', @workers;
# b: left to the worker, which is stopped; c: delivered by its backend
my $r = CacheBridgeTest::run_sql($node, "UPDATE late SET v = 'b' WHERE id = 1",
	'cachebridge.delivery' => 'async');
is($r->{rc}, 0, 'late: the older write commits, for the worker to deliver');
$r = CacheBridgeTest::run_sql($node, "UPDATE late SET v = 'c' WHERE id = 1",
	'cachebridge.delivery' => 'sync');
is($r->{rc}, 0, 'late: the newer write commits and is delivered');
is($redis->cli('GET', 'late:1'), '{"id":1,"v":"c"}', 'late: Redis holds the newer write');
$node->safe_psql('postgres', "CALL cachebridge.refresh('late')");
is($redis->cli('GET', 'late:1'), '{"id":1,"v":"c"}', 'late: the refresh copied it');
kill 'CONT', @workers;
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'), 't',
	'late: the worker delivers the older write');
is($redis->cli('GET', 'late:1'), '{"id":1,"v":"c"}',
	'late: the older write, delivered after the copy, is refused');

# ---------------------------------------------------------------------
# Redis refusing the copies: the batch goes through the outbox.
# ---------------------------------------------------------------------
my $rows = 30000;
$node->safe_psql('postgres', qq{
	CREATE TABLE item (id int PRIMARY KEY, v text);
	INSERT INTO item SELECT g, 'value ' || g FROM generate_series(1, $rows) g;
	SELECT cachebridge.attach('item', 'item:{id}');
	SELECT cachebridge.attach('item', 'ev:item', 'publish');
});
my $expected_cache =
  q{SELECT 'item:' || id, row_to_json(item)::text FROM item ORDER BY id};

sub live_outbox_rows
{
	return $node->safe_psql('postgres',
		'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead');
}

# $break puts Redis in a refusing state; $fix undoes it.  One batch
# (batch_blocks large) unless $batch_blocks is given.
sub refused_case
{
	my ($name, $break, $fix, $batch_blocks, $meanwhile) = @_;

	$redis->cli('FLUSHALL');
	my $log_at = -s $node->logfile;
	$break->();
	$r = CacheBridgeTest::run_sql($node,
		"CALL cachebridge.refresh('item', batch_blocks => " . ($batch_blocks // 100000)
		  . ", events => true)");
	is($r->{rc}, 0, "$name: the refresh completes") or diag($r->{stderr});
	ok($node->log_contains(qr/delivers a batch with versions at commit/, $log_at),
		"$name: the batch fell back to a versioned delivery");
	ok(live_outbox_rows() > 0, "$name: the outbox holds the batch");
	$meanwhile->() if $meanwhile;
	$fix->();
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(60000)'), 't',
		"$name: delivered once Redis takes writes again");
	my @diff = CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache);
	is(scalar(@diff), 0, "$name: Redis holds every row")
	  or diag(join("\n", @diff[0 .. ($#diff < 9 ? $#diff : 9)]));
	is($redis->cli('XLEN', 'ev:item'), $rows, "$name: one snapshot entry per row");
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 30), "$name: outbox drained");
}

# OOM part-way: room for some of the batch's copies, not all
refused_case(
	'oom mid-batch',
	sub {
		my ($used) = $redis->cli('INFO', 'memory') =~ /^used_memory:(\d+)/m;
		$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
		$redis->cli('CONFIG', 'SET', 'maxmemory', $used + 1024 * 1024);
	},
	sub { $redis->cli('CONFIG', 'SET', 'maxmemory', '0'); },
	undef,
	sub {
		my $keys = $redis->cli('DBSIZE');
		ok($keys > 0 && $keys < $rows,
			"oom mid-batch: Redis took some copies ($keys keys), then refused");
	});

# READONLY: Redis made a replica of a master that does not answer
my $nowhere = PostgreSQL::Test::Cluster::get_free_port();
refused_case(
	'readonly',
	sub { $redis->cli('REPLICAOF', '127.0.0.1', $nowhere); },
	sub { $redis->cli('REPLICAOF', 'NO', 'ONE'); });

# not there at all, in many batches (the breaker opens after the first)
refused_case(
	'unreachable',
	sub { $redis->stop; },
	sub { $redis->start; },
	20);

done_testing();
