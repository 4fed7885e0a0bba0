# test/t/096_stats_restart.pl -- cachebridge.stats keeps its counters across
# a clean restart, as pg_stat_statements does, and starts from zero after a
# crash.
#
# The postmaster writes the shared counters (and the last error, and when
# they were last reset) to pg_stat/cachebridge.stat at a clean shutdown and
# reads, then removes, that file at start.  After a crash (here: a backend
# killed with SIGKILL, which makes the postmaster reinitialise shared
# memory) there is no file, so nothing stale is brought back.  The lag
# windows are recent samples and start empty after every restart.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'restart');
my $node = CacheBridgeTest::new_node('restart', redis => $redis,
	conf => ['restart_after_crash = on']);

$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, v text);
	CREATE TRIGGER item_cache AFTER INSERT OR UPDATE OR DELETE ON item
	    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('item:{id}');
	SELECT cachebridge.stats_reset();
	INSERT INTO item SELECT i, 'v' FROM generate_series(1, 25) i;
	SELECT cachebridge.set('k', 'v');
	SELECT cachebridge.get('k');
	SELECT cachebridge.get('nope');
});
my $before = CacheBridgeTest::stats($node);
is($before->{delivered}, 25, 'the 25 row writes are delivered');
ok($before->{direct_lag_samples} >= 1, 'and their delivery lag is sampled');

$node->restart;    # fast shutdown: a clean one
ok(!-e $node->data_dir . '/pg_stat/cachebridge.stat',
	'the statistics file is removed once read');
my $after = CacheBridgeTest::stats($node);
for my $c (qw(queued delivered round_trips cache_hits cache_misses stats_reset))
{
	is($after->{$c}, $before->{$c}, "$c survives a clean restart");
}
is($after->{direct_lag_samples}, 0, 'the lag window starts empty');

# a counter moves on from where it was
$node->safe_psql('postgres', "SELECT cachebridge.get('k')");
is(CacheBridgeTest::stats($node)->{cache_hits}, $before->{cache_hits} + 1,
	'and counts on from its saved value');

# the last error survives too
$redis->stop;
$node->psql('postgres', "SELECT cachebridge.get('k')");
$redis->start;
my $err = CacheBridgeTest::stats($node);
ok(defined $err->{last_error}, 'an error is recorded') or diag explain $err;
$node->restart;
is(CacheBridgeTest::stats($node)->{last_error}, $err->{last_error},
	'the last error survives a clean restart');

# a crash: the postmaster reinitialises shared memory, and there is no file
my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $victim = $bg->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $victim;
eval { $bg->quit };
$node->poll_query_until('postgres', 'SELECT true', 't')
  or die 'the server did not come back after the crash';
my $crashed = CacheBridgeTest::stats($node);
is($crashed->{cache_hits}, 0, 'a crash resets the counters');
is($crashed->{delivered}, 0, 'all of them');
ok(!defined $crashed->{last_error}, 'and the last error');

# and a clean stop after that saves the fresh counters, not the old ones
# (the restarted redis-server keeps no data: fill the key again)
$node->safe_psql('postgres', "SELECT cachebridge.set('k', 'v'), cachebridge.get('k')");
$node->restart;
is(CacheBridgeTest::stats($node)->{cache_hits}, 1,
	'a clean restart after the crash keeps what was counted since');

$node->stop;
done_testing();
