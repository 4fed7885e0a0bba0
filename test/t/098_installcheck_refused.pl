# test/t/098_installcheck_refused.pl -- "make installcheck" against a running
# server touches neither its Redis nor its statistics.
#
# The regression tests flush Redis (FLUSHALL), write keys, reset
# cachebridge.stats and create and drop databases: run against a server
# someone uses, they would destroy its cache.  So the Makefile refuses
# installcheck, with a message saying how to run the tests against servers
# of their own.  Here a server with a cache and counters worth keeping, and
# its Redis (named by CB_REDIS_PORT, as the tests would find it), come out
# of "make installcheck" untouched.

use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my $src = dirname($ENV{TESTDIR} // 'test');
my $redis = CacheBridgeTest::Redis->new(name => 'installcheck');
my $node = CacheBridgeTest::new_node('installcheck', redis => $redis);

$node->safe_psql('postgres', q{
	SELECT cachebridge.set('precious', 'keep me');
	SELECT cachebridge.get('precious');
});
my $before = CacheBridgeTest::stats($node);
my $keys_before = $redis->cli('DBSIZE');
my $dbs_before = $node->safe_psql('postgres', 'SELECT count(*) FROM pg_database');

my $pg_config = $ENV{PG_CONFIG} // '/usr/lib/postgresql/15/bin/pg_config';
my ($stdout, $stderr) = ('', '');
my $ok = IPC::Run::run(
	[ 'make', '-s', '-C', $src, 'installcheck', "PG_CONFIG=$pg_config" ],
	'>', \$stdout, '2>', \$stderr,
	init => sub {
		$ENV{PGHOST} = $node->host;
		$ENV{PGPORT} = $node->port;
		$ENV{CB_REDIS_PORT} = $redis->port;
	});
ok(!$ok, 'make installcheck against a running server fails');
like($stderr, qr/make installcheck is refused/, 'and says it is refused');
like($stderr, qr{bash test/run\.sh regress}, 'and how to run the tests instead');

is($redis->cli('GET', 'precious'), 'keep me', 'the cached value is still in Redis');
is($redis->cli('DBSIZE'), $keys_before, 'Redis holds as many keys as before');
my $after = CacheBridgeTest::stats($node);
is($after->{stats_reset}, $before->{stats_reset}, 'the statistics were not reset');
is($after->{cache_hits}, $before->{cache_hits}, 'nor counted anything');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_database'), $dbs_before,
	'no database was created or dropped');

$node->stop;
done_testing();
