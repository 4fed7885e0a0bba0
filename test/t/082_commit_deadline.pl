# test/t/082_commit_deadline.pl -- delivery after commit has a total
# deadline (DESIGN.md, Delivery guarantee 5).
#
# After commit a backend delivers with interrupts held, so cancel cannot
# stop it.  A Redis that is slow but alive -- here a real redis-server
# behind a proxy that hands its replies back one byte every 1.5 s, less
# than command_timeout, which restarts on every byte -- must not hold
# COMMIT longer than cachebridge.delivery_timeout: what was not delivered
# by then stays in the outbox for the worker (durable), or is a WARNING
# (sync).

use strict;
use warnings;

use IO::Select;
use POSIX ();
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $delivery_timeout = 1500;

# trickle_proxy($to_port): a process listening on a free port that passes
# what clients send to 127.0.0.1:$to_port at once, and what the server
# answers one byte every 1.5 s.  Returns (port, pid).
sub trickle_proxy
{
	my ($to_port) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => $port,
		Listen => 16,
		ReuseAddr => 1) or die "proxy: $!";
	my $pid = fork();

	die "fork: $!" unless defined $pid;
	return ($port, $pid) if $pid;

	# the proxy: stops by itself after 120 s at the latest
	my $sel = IO::Select->new($listen);
	my (%peer, %pending, %is_server);
	my $next_drip = time() + 1.5;
	my $stop = time() + 120;
	while (time() < $stop)
	{
		for my $fh ($sel->can_read(0.1))
		{
			if ($fh == $listen)
			{
				my $client = $listen->accept or next;
				my $server = IO::Socket::INET->new(
					PeerAddr => '127.0.0.1',
					PeerPort => $to_port) or next;
				$peer{$client} = $server;
				$peer{$server} = $client;
				$is_server{$server} = 1;
				$pending{$client} = '';
				$sel->add($client, $server);
				next;
			}
			my $n = sysread($fh, my $buf, 65536);
			if (!$n)
			{
				my $other = $peer{$fh};
				$sel->remove($fh, $other);
				close($fh);
				close($other);
				next;
			}
			if ($is_server{$fh})
			{
				$pending{ $peer{$fh} } .= $buf;
			}
			else
			{
				syswrite($peer{$fh}, $buf);
			}
		}
		if (time() >= $next_drip)
		{
			$next_drip = time() + 1.5;
			for my $client (grep { exists $pending{$_} } $sel->handles)
			{
				next if $pending{$client} eq '';
				syswrite($client, substr($pending{$client}, 0, 1, ''));
			}
		}
	}
	POSIX::_exit(0);			# no END blocks of the test in this process
}

my $redis = CacheBridgeTest::Redis->new(name => 'deadline');
my $node = CacheBridgeTest::new_node(
	'deadline',
	redis => $redis,
	conf => ["cachebridge.delivery_timeout = $delivery_timeout"]);
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
});

my ($proxy_port, $proxy_pid) = trickle_proxy($redis->port);
CacheBridgeTest::set_redis_url($node, "redis://127.0.0.1:$proxy_port/0");

for my $mode ('durable', 'sync')
{
	$node->safe_psql('postgres', 'SELECT cachebridge.stats_reset()');
	# the breaker must be closed, so that the backend tries Redis itself
	$node->poll_query_until('postgres',
		"SELECT breaker = 'closed' FROM cachebridge.stats")
	  or diag('the breaker stays open');
	my $id = $mode eq 'durable' ? 1 : 2;
	my ($out, $err) = ('', '');
	my $t0 = time();
	my $ret = $node->psql(
		'postgres',
		"SET cachebridge.delivery = '$mode'; INSERT INTO item VALUES ($id, 0);",
		stdout => \$out,
		stderr => \$err,
		timeout => 60);
	my $elapsed = time() - $t0;

	is($ret, 0, "$mode: the commit succeeds");
	cmp_ok($elapsed, '<', $delivery_timeout / 1000 + 2,
		"$mode: COMMIT returns within delivery_timeout");
	diag(sprintf('%s: COMMIT took %.2f s', $mode, $elapsed));
	like($err, qr/delivery_timeout \($delivery_timeout ms\) in all/,
		"$mode: the WARNING says the delivery ran out of time");
	if ($mode eq 'durable')
	{
		is($node->safe_psql('postgres',
				'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead'),
			'1', 'durable: the row stays in the outbox');
	}
	else
	{
		like($err, qr/The cached keys may be stale/, 'sync: reported as not delivered');
	}
	# let the breaker close again: the worker reaches "Redis" through the
	# proxy only slowly, so point it straight at Redis for a moment
	CacheBridgeTest::set_redis_url($node, $redis->url);
	kill 'TERM', $proxy_pid;
	waitpid($proxy_pid, 0);
	if ($mode eq 'durable')
	{
		is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
			't', 'durable: the worker delivers it once Redis answers');
		is($redis->cli('GET', 'item:1'), '{"id":1,"n":0}', 'durable: the row is in Redis');
		($proxy_port, $proxy_pid) = trickle_proxy($redis->port);
		CacheBridgeTest::set_redis_url($node, "redis://127.0.0.1:$proxy_port/0");
	}
}

done_testing();
