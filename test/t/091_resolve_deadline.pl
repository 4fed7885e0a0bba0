# test/t/091_resolve_deadline.pl -- a host name lookup is bounded by
# cachebridge.connect_timeout, at commit too.
#
# The cluster runs with a resolv.conf of its own (a user and mount
# namespace, CacheBridgeTest::run_with_resolv_conf) whose name server is an
# address on the local network that nobody has: each DNS query waits for
# its timeout, so a lookup of a name not in /etc/hosts takes tens of
# seconds.  A blocking getaddrinfo held a committing backend (interrupts
# held) that long.  Where such a resolver cannot be arranged (no user
# namespaces, or no silent address on this network) the test is skipped
# with the reason.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $slack = 2.5;
my $name = 'cachebridge-slow-dns.example.com';

# a name server that does not answer: an unused address of the local
# network (the interface's own /24), so that queries wait for their timeout
my ($net) = `ip -4 -o addr show scope global 2>/dev/null` =~ /inet (\d+\.\d+\.\d+)\.\d+\//;
plan skip_all => 'no IPv4 network to find a silent name server on' unless $net;
my $dir = CacheBridgeTest::scratch_dir('resolv');
my $conf = "$dir/resolv.conf";
open(my $fh, '>', $conf) or die "$conf: $!";
print $fh "nameserver $net.77\noptions timeout:10 attempts:3\n";
close($fh);
chmod 0644, $conf;

# the resolver must really be slow there
my $t0 = time;
my $st = CacheBridgeTest::run_with_resolv_conf($conf, 'timeout', '3', 'getent', 'hosts', $name);
plan skip_all => "cannot give the server a resolv.conf of its own: $@" unless defined $st;
plan skip_all => "no silent name server at $net.77 (a lookup ended after "
  . sprintf('%.1f', time - $t0) . ' s)'
  if time - $t0 < 2.5;

my $redis = CacheBridgeTest::Redis->new(name => 'resolve');
my $port = $redis->port;

# the node, started inside the namespace
my $node = PostgreSQL::Test::Cluster->new('resolve');
$node->init;
$node->append_conf('postgresql.conf', join("\n",
	"shared_preload_libraries = 'cachebridge'",
	"cachebridge.redis_url = 'redis://$name:$port/0'",
	"cachebridge.connect_timeout = 500",
	"cachebridge.command_timeout = 500",
	"cachebridge.delivery_timeout = 2000") . "\n");
$st = CacheBridgeTest::run_with_resolv_conf($conf, 'pg_ctl', '-w', '-D', $node->data_dir,
	'-l', $node->logfile, 'start');
die "pg_ctl start failed: " . ($@ || $st) unless defined $st && $st == 0;
$node->_update_pid(1);
$node->safe_psql('postgres', 'CREATE EXTENSION cachebridge');

# a cache-aside call: an ERROR at connect_timeout that names the host
my $r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('k')");
like($r->{stderr}, qr/Host name "\Q$name\E" not resolved within cachebridge\.connect_timeout \(500 ms\)/,
	'a lookup that does not end is given up at connect_timeout');
cmp_ok($r->{elapsed}, '<', 0.5 + $slack, 'the call returns within connect_timeout');

# a commit, whose delivery runs with interrupts held
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, note text);
	SELECT cachebridge.attach('item', 'item:{id}');
});
$r = CacheBridgeTest::run_sql($node, "INSERT INTO item VALUES (1, 'slow dns')");
is($r->{rc}, 0, 'a commit whose delivery meets the silent resolver succeeds');
cmp_ok($r->{elapsed}, '<', 0.5 + $slack, 'and returns within connect_timeout');
like($r->{stderr}, qr/not resolved within cachebridge\.connect_timeout/,
	'with a WARNING that says why');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox'), '1',
	'the effects wait in the outbox');

# a long connect_timeout: the lookup still serves query cancel
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_until(qr/start/, "\\echo start\nSET cachebridge.connect_timeout = '20s';\nSELECT cachebridge.get('k');\n");
	sleep(0.5);
	my $t = time;
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$s->query('SELECT 1');
	like($s->{stderr}, qr/canceling statement due to user request/,
		'a query cancel ends the lookup');
	cmp_ok(time - $t, '<', $slack, 'at once');
	$s->quit;
}

# the same backends reach Redis by address, the lookups left behind
# notwithstanding
CacheBridgeTest::set_redis_url($node, $redis->url);
ok(defined CacheBridgeTest::wait_outbox_empty($node, 30),
	'with an address instead, the worker delivers the outbox');
is($redis->cli('GET', 'item:1'), '{"id":1,"note":"slow dns"}', 'and Redis holds the row');

$node->stop;
done_testing();
