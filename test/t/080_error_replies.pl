# test/t/080_error_replies.pl -- an error reply is not a delivery
# (DESIGN.md, "What a reply means").
#
# Redis answering OOM (maxmemory with noeviction), READONLY (a replica) or
# NOPERM (an ACL without EVALSHA) took no effect: the outbox row must stay,
# wait_delivered() must say false, the statistics must show why, and once
# an operator fixes Redis the worker delivers everything.  A reply no retry
# can change (WRONGTYPE on a marker made a list behind cachebridge's back)
# kills that effect only: its row is kept as dead with the reason and is
# not sent again, and the effects around it, in the same transaction, in
# the same worker round trip and in later transactions, are applied.  In
# sync mode the WARNING names the key and Redis' reply.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'replies');
my $node = CacheBridgeTest::new_node(
	'replies',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 300',
	]);

$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
});

my $expected_cache =
  q{SELECT 'item:' || id, row_to_json(item)::text FROM item ORDER BY id};

# The outbox: "live rows|dead rows".
sub outbox
{
	return $node->safe_psql('postgres',
		'SELECT count(*) FILTER (WHERE NOT dead) || \'|\' || '
		  . 'count(*) FILTER (WHERE dead) FROM cachebridge.outbox');
}

# Waits for the breaker to close and the outbox to hold no live row.
sub settle
{
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 30), "$_[0]: outbox drained");
}

# Runs a statement in a session of its own, with settings; returns stderr.
sub write_rows
{
	my ($sql, %gucs) = @_;
	my $r = CacheBridgeTest::run_sql($node, $sql, %gucs);

	is($r->{rc}, 0, "commit succeeds: $sql") or diag($r->{stderr});
	return $r->{stderr};
}

my $cases = 0;

# Refused for now: the rows stay until Redis takes them.  $break and $fix
# put Redis in the failing state and back.
sub retryable_case
{
	my ($name, $code, $break, $fix, %gucs) = @_;

	$node->safe_psql('postgres', 'SELECT cachebridge.stats_reset()');
	$break->();
	my $base = 100 * ++$cases;
	write_rows("INSERT INTO item SELECT g, 1 FROM generate_series($base, $base + 4) g", %gucs);
	write_rows("UPDATE item SET n = 2 WHERE id = $base", %gucs);
	is($redis->cli('EXISTS', "item:$base"), '0', "$name: nothing applied");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(500)'),
		'f', "$name: wait_delivered is false while Redis refuses");
	sleep(2);					# the worker tries, and tries again
	is(outbox(), '2|0', "$name: both rows stay in the outbox, none dead");
	like(CacheBridgeTest::stats($node)->{last_error}, qr/$code/,
		"$name: stats show the $code reply");
	$fix->();
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
		't', "$name: delivered once Redis takes writes again");
	is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected_cache)),
		'', "$name: Redis holds every committed row");
	settle($name);
}

# OOM: maxmemory below what is used, and no eviction.
retryable_case(
	'oom', 'OOM',
	sub {
		$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
		$redis->cli('CONFIG', 'SET', 'maxmemory', '1');
	},
	sub { $redis->cli('CONFIG', 'SET', 'maxmemory', '0'); });

# OOM again in async mode: only the worker delivers.
retryable_case(
	'oom async', 'OOM',
	sub { $redis->cli('CONFIG', 'SET', 'maxmemory', '1'); },
	sub { $redis->cli('CONFIG', 'SET', 'maxmemory', '0'); },
	'cachebridge.delivery' => 'async');

# READONLY: Redis made a replica of a master that does not answer.
my $nowhere = PostgreSQL::Test::Cluster::get_free_port();
retryable_case(
	'readonly', 'READONLY',
	sub { $redis->cli('REPLICAOF', '127.0.0.1', $nowhere); },
	sub { $redis->cli('REPLICAOF', 'NO', 'ONE'); });

# NOPERM: cachebridge's ACL user may not run EVALSHA.
retryable_case(
	'noperm', 'NOPERM',
	sub {
		$redis->cli('ACL', 'SETUSER', 'cb', 'on', '>cbpass', '~*', '&*', '+@all', '-evalsha');
		CacheBridgeTest::set_redis_url($node, $redis->url(user => 'cb', password => 'cbpass'));
	},
	sub { $redis->cli('ACL', 'SETUSER', 'cb', '+evalsha'); });
CacheBridgeTest::set_redis_url($node, $redis->url);

# WRONGTYPE: the marker of item:50 is a list; only item:50's effect dies.
$node->safe_psql('postgres', 'SELECT cachebridge.stats_reset()');
$redis->cli('RPUSH', 'item:50#cbv', 'not a marker');
write_rows('INSERT INTO item VALUES (50, 1), (51, 1)');
write_rows('INSERT INTO item VALUES (52, 1)');
ok( $node->poll_query_until('postgres',
		'SELECT count(*) = 1 FROM cachebridge.outbox WHERE dead'),
	'wrongtype: the row is kept as dead');
like($node->safe_psql('postgres', 'SELECT last_error FROM cachebridge.outbox WHERE dead'),
	qr/WRONGTYPE.*item:50/, 'wrongtype: its reason names the reply and the key');
is($redis->cli('GET', 'item:51'), '{"id":51,"n":1}', 'wrongtype: the effect beside it applied');
is($redis->cli('GET', 'item:52'), '{"id":52,"n":1}', 'wrongtype: the next transaction applied');
my $attempts = $node->safe_psql('postgres', 'SELECT attempts FROM cachebridge.outbox WHERE dead');
sleep(2);
is($node->safe_psql('postgres', 'SELECT attempts FROM cachebridge.outbox WHERE dead'),
	$attempts, 'wrongtype: a dead row is not sent again');
my $stats = CacheBridgeTest::stats($node);
is($stats->{failed}, 1, 'wrongtype: one effect counted failed');
is($stats->{outbox_dead}, 1, 'wrongtype: stats show the dead row');
like($stats->{last_error}, qr/WRONGTYPE/, 'wrongtype: stats show the reply');
# the statistics are cluster-wide, for every cachebridge_reader: no row data
unlike($stats->{last_error}, qr/item:50/, 'wrongtype: but not the key');

# The same in one worker round trip: three transactions queued while
# Redis refuses writes, the middle one poisoned.
$node->safe_psql('postgres', 'DELETE FROM cachebridge.outbox WHERE dead');
$redis->cli('RPUSH', 'item:61#cbv', 'not a marker');
$redis->cli('CONFIG', 'SET', 'maxmemory', '1');
write_rows('INSERT INTO item VALUES (60, 1)');
write_rows('INSERT INTO item VALUES (61, 1), (62, 1)');
write_rows('INSERT INTO item VALUES (63, 1)');
$redis->cli('CONFIG', 'SET', 'maxmemory', '0');
ok( $node->poll_query_until('postgres',
		'SELECT count(*) = 1 FROM cachebridge.outbox WHERE dead '
		  . 'AND NOT EXISTS (SELECT FROM cachebridge.outbox WHERE NOT dead)'),
	'batch: only the poisoned row is left, dead');
like($node->safe_psql('postgres', 'SELECT last_error FROM cachebridge.outbox WHERE dead'),
	qr/WRONGTYPE.*item:61/, 'batch: the dead row has its own reason');
is( join(',', map { $redis->cli('GET', "item:$_") } 60, 62, 63),
	'{"id":60,"n":1},{"id":62,"n":1},{"id":63,"n":1}',
	'batch: the other effects of the round trip applied');
$node->safe_psql('postgres', 'DELETE FROM cachebridge.outbox WHERE dead');

# Sync mode: the WARNING names the key and the reply.
$redis->cli('RPUSH', 'item:70#cbv', 'not a marker');
my $err = write_rows('INSERT INTO item VALUES (70, 1)', 'cachebridge.delivery' => 'sync');
like($err, qr/WARNING:.*could not apply 1 effect/, 'sync: a WARNING');
like($err, qr/WRONGTYPE.*item:70/, 'sync: naming the reply and the key');

done_testing();
