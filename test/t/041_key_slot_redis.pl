# key_slot() against CLUSTER KEYSLOT of a real cluster-enabled redis-server
# (Debian package redis-server), started on a loopback port in a temporary
# directory and stopped at the end.  Covers hash-tag edge cases, the empty
# key, non-ASCII keys and a few thousand generated keys.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use IPC::Run qw(run);

my $tmp = PostgreSQL::Test::Utils::tempdir;

# Start redis-server --cluster-enabled yes on a free loopback port.
my $port;
for my $p (27000 .. 27500)
{
	my $probe = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p);
	if (!$probe) { $port = $p; last; }
	close($probe);
}
my ($out, $err) = ('', '');
ok( run([ 'redis-server', '--port', $port, '--bind', '127.0.0.1',
			'--cluster-enabled', 'yes', '--cluster-config-file', "$tmp/nodes.conf",
			'--dir', $tmp, '--save', '', '--appendonly', 'no',
			'--daemonize', 'yes', '--pidfile', "$tmp/redis.pid",
			'--logfile', "$tmp/redis.log" ],
		'>', \$out, '2>', \$err),
	'redis-server starts in cluster mode')
  or BAIL_OUT("cannot start redis-server (is redis-server installed?): $err");

# The server's log, for a failure message.
sub redis_log
{
	open(my $fh, '<', "$tmp/redis.log") or return '(no redis.log)';
	local $/;
	return <$fh>;
}

# Connects to the server once it answers PING; undef if it does not.
sub redis_connect
{
	for (1 .. 100)
	{
		my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
		if ($sock)
		{
			binmode($sock);
			print $sock "*1\r\n\$4\r\nPING\r\n";
			my $pong = <$sock>;
			return $sock if defined $pong && $pong eq "+PONG\r\n";
			close($sock);
		}
		select(undef, undef, undef, 0.1);
	}
	return undef;
}

my $redis = redis_connect()
  or BAIL_OUT("redis-server on port $port does not answer PING:\n" . redis_log());

# Stop redis-server whatever happens.
END
{
	if (open(my $fh, '<', "$tmp/redis.pid"))
	{
		my $pid = <$fh>;
		kill 'TERM', $pid if $pid;
	}
}

# CLUSTER KEYSLOT key, sent as binary-safe RESP.
sub cluster_keyslot
{
	my ($key) = @_;
	print $redis "*3\r\n\$7\r\nCLUSTER\r\n\$7\r\nKEYSLOT\r\n\$"
	  . length($key) . "\r\n$key\r\n";
	my $reply = <$redis>;
	defined $reply
	  or die "redis-server on port $port closed the connection:\n" . redis_log();
	$reply =~ /^:(\d+)\r\n$/ or die "unexpected reply to CLUSTER KEYSLOT: $reply";
	return $1;
}

my $node = PostgreSQL::Test::Cluster->new('key_slot');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cachebridge');

# Edge cases, written as SQL so that the keys' bytes come from PostgreSQL.
my @edge = (
	"''", "'{}'", "'foo{}{bar}'", "'{{bar}}'", "'foo{bar}{zap}'",
	"'{user1000}.following'", "'{user1000}.followers'", "'foo{{}}'",
	"'}{'", "'{'", "'}'", "'a{b'", "'{a}'", "'x{}y{z}'",
	"'123456789'", "'foo'",
	"'caf' || chr(233)", "chr(12461) || chr(12540)",
	"'{' || chr(1082) || '}:' || chr(8364)", "chr(128512)",
	"repeat('k', 10000)");

my $sql = 'SELECT encode(convert_to(k, \'UTF8\'), \'hex\'), slot FROM ('
  . join(' UNION ALL ',
	map { "SELECT $_ AS id, $edge[$_] AS k, cachebridge.key_slot($edge[$_]) AS slot" }
	  0 .. $#edge)
  . ') s ORDER BY id';

# Generated keys: ASCII, with hash tags, and multi-byte.
my $gen_sql = q{
SELECT encode(convert_to(k, 'UTF8'), 'hex'), cachebridge.key_slot(k) FROM (
    SELECT 'key:' || i FROM generate_series(1, 2000) i
    UNION ALL SELECT 'order:{' || i % 97 || '}:' || i FROM generate_series(1, 1000) i
    UNION ALL SELECT chr(1040 + i % 64) || '{' || chr(20000 + i) || '}' || i FROM generate_series(1, 1000) i
) s(k)};

for my $case ([ 'edge case', $sql ], [ 'generated key', $gen_sql ])
{
	my ($what, $query) = @$case;
	my @rows = split /\n/, $node->safe_psql('postgres', $query);
	my $bad = 0;
	for my $row (@rows)
	{
		my ($hex, $slot) = split /\|/, $row, -1;
		my $key = pack('H*', $hex);
		my $want = cluster_keyslot($key);
		next if $want == $slot;
		diag("key 0x$hex: key_slot says $slot, CLUSTER KEYSLOT says $want")
		  if $bad++ < 10;
	}
	is($bad, 0, scalar(@rows) . " ${what}s agree with CLUSTER KEYSLOT");
}

$node->stop;
done_testing();
