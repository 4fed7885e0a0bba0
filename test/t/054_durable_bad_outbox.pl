# test/t/054_durable_bad_outbox.pl -- an outbox row the worker cannot
# decode (DESIGN.md, Delivery guarantee 4).
#
# A corrupt row must not stop delivery: the worker logs a WARNING, marks
# the row dead (kept, with its error, for inspection), counts it, delivers
# the rows around it, and keeps running -- no crash loop.  A row that
# parses but whose step claims more commands than it holds is corrupt
# too: sent as it is, Redis would never send the reply waited for, and
# the row would be retried forever.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(
	name => 'badrow',
	conf => [ 'appendonly yes', 'appendfsync always' ]);
my $node = CacheBridgeTest::new_node(
	'badrow',
	redis => $redis,
	conf => [ 'cachebridge.connect_timeout = 300', 'cachebridge.command_timeout = 300' ]);

$node->safe_psql('postgres', q{
	CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('kv', 'kv:{id}');
	INSERT INTO kv SELECT g, 'v0' FROM generate_series(1, 5) AS g;
});

# What Redis must hold for the rows whose effects were not corrupted.
my $expected_cache = q{SELECT 'kv:' || id, row_to_json(kv)::text FROM kv
	WHERE id NOT IN (2, 5) ORDER BY id};

# Redis is down, so every row stays in the outbox: a good one, one whose
# effects are overwritten, a garbage row inserted by hand (valid magic, a
# truncated step), and another good one.  (The worker may find the bad
# rows before Redis is back: it need not reach Redis to reject them.)
my $log_offset = -s $node->logfile;
my $failed_before = CacheBridgeTest::stats($node)->{failed};
$redis->stop;
$node->safe_psql('postgres', "UPDATE kv SET v = 'good1' WHERE id = 1");
my $corrupt = $node->safe_psql('postgres', q{
BEGIN;
UPDATE kv SET v = 'lost' WHERE id = 2;
COMMIT;
UPDATE cachebridge.outbox SET effects = '\x00deadbeef'
WHERE id = (SELECT max(id) FROM cachebridge.outbox)
RETURNING id;
});
my $miscounted = $node->safe_psql('postgres', q{
BEGIN;
UPDATE kv SET v = 'miscounted' WHERE id = 5;
COMMIT;
UPDATE cachebridge.outbox
SET effects = pg_catalog.set_byte(effects, 9, pg_catalog.get_byte(effects, 9) + 1)
WHERE id = (SELECT max(id) FROM cachebridge.outbox)
  AND pg_catalog.substr(effects, 1, 5) = '\x4342583250'
RETURNING id;
});
my $garbage = $node->safe_psql('postgres', q{
INSERT INTO cachebridge.outbox (id, version, neffects, direct, effects)
OVERRIDING SYSTEM VALUE
VALUES (1000000, '0/1', 1, false, '\x434258315000000001')
RETURNING id;
});
$node->safe_psql('postgres', "UPDATE kv SET v = 'good3' WHERE id = 3");
ok($miscounted, 'a step made to claim one command more than it holds');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox'),
	'5', 'five rows wait in the outbox');

my ($worker) = CacheBridgeTest::worker_pids($node);
ok($worker, 'a worker runs, waiting for Redis');

$redis->start;
ok(defined CacheBridgeTest::wait_outbox_empty($node, 20),
	'every decodable row is delivered');
is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'kv:[134]', $expected_cache)),
	'', 'the rows before and after the bad ones reached Redis');
is($redis->cli('GET', 'kv:2'), '{"id":2,"v":"v0"}', 'the corrupted effect was not applied');
is($redis->cli('GET', 'kv:5'), '{"id":5,"v":"v0"}', 'nor the miscounted one');

is($node->safe_psql('postgres',
		'SELECT id, dead, attempts > 0, last_error IS NOT NULL '
		  . 'FROM cachebridge.outbox ORDER BY id'),
	"$corrupt|t|t|t\n$miscounted|t|t|t\n$garbage|t|t|t",
	'the three bad rows are kept, dead, with their error');
like($node->safe_psql('postgres', "SELECT last_error FROM cachebridge.outbox WHERE id = $corrupt"),
	qr/The encoded effects do not start with CBX/, 'the error says what is wrong');

my $stats = CacheBridgeTest::stats($node);
is($stats->{outbox_dead}, 3, 'stats: outbox_dead = 3');
is($stats->{outbox_depth}, 0, 'stats: outbox_depth = 0');
is($stats->{failed} - $failed_before, 3, 'stats: the bad rows\' effects are counted failed');

my $log = substr(slurp_file($node->logfile), $log_offset);
like($log, qr/WARNING:  cachebridge skipped outbox row $corrupt: its effects cannot be decoded/,
	'WARNING for the corrupted row');
like($log, qr/WARNING:  cachebridge skipped outbox row $garbage: its effects cannot be decoded/,
	'WARNING for the garbage row');
like($log, qr/WARNING:  cachebridge skipped outbox row $miscounted: its effects cannot be decoded/,
	'WARNING for the miscounted row');

# the worker goes on, and is not restarted over and over
$node->safe_psql('postgres', "UPDATE kv SET v = 'after' WHERE id = 4");
ok(defined CacheBridgeTest::wait_outbox_empty($node, 10), 'later rows are delivered');
is($redis->cli('GET', 'kv:4'), '{"id":4,"v":"after"}', 'kv:4 is current');
sleep(3);
# (it may have exited since, idle -- with exit code 0, which is not logged)
is(join(' ', grep { $_ != $worker } CacheBridgeTest::worker_pids($node)),
	'', 'no other worker was started');
$log = substr(slurp_file($node->logfile), $log_offset);
unlike($log, qr/"cachebridge worker" \(PID \d+\) exited with exit code/,
	'no worker exited meanwhile');
is(() = $log =~ /cachebridge skipped outbox row/g, 3,
	'each bad row is reported once');

# A dead row is done with (DESIGN.md: only pending effects keep
# wait_delivered() waiting); it stays for inspection until removed.
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(5000)'),
	't', 'wait_delivered is true with only dead rows left');
$node->safe_psql('postgres', 'DELETE FROM cachebridge.outbox WHERE dead');

$node->stop;
$redis->stop;
done_testing();
