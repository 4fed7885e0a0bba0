# test/perl/CacheBridgeTest.pm -- helpers shared by the TAP tests in test/t.
#
#   my $redis = CacheBridgeTest::Redis->new(conf => ['requirepass s3cret']);
#   my $node  = CacheBridgeTest::new_node('main', redis => $redis);
#   CacheBridgeTest::set_redis_url($node, $redis->url(password => 's3cret'));
#   my $r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('k')");
#
# Everything runs as the current (unprivileged) user, on 127.0.0.1 and unix
# sockets in directories under $PostgreSQL::Test::Utils::tmp_check; every
# redis-server started here is stopped when its object goes away or the
# test ends.

package CacheBridgeTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use File::Temp ();
use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes ();

# A directory of its own under tmp_check, with a short absolute path (a
# unix socket path must stay under 108 bytes).
sub scratch_dir
{
	my ($tag) = @_;

	return File::Temp::tempdir("${tag}_XXXX",
		DIR => abs_path($PostgreSQL::Test::Utils::tmp_check),
		CLEANUP => 0);
}

# new_node($name, redis => $redis | redis_url => $url, conf => [lines],
#          extension => 1): an initialised and started cluster with
# cachebridge preloaded and, unless extension => 0, created in "postgres".
sub new_node
{
	my ($name, %opts) = @_;
	my $url = $opts{redis_url}
	  // ($opts{redis} ? $opts{redis}->url : 'redis://127.0.0.1:6379/0');
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf',
		join("\n",
			"shared_preload_libraries = 'cachebridge'",
			"cachebridge.redis_url = '$url'",
			@{ $opts{conf} // [] })
		  . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION cachebridge')
	  unless defined $opts{extension} && !$opts{extension};
	return $node;
}

# set_redis_url($node, $url): points the node at another Redis with ALTER
# SYSTEM and a reload, and returns once a new session sees the new value.
# The statement is kept out of the server log (log_statement = all in
# PostgreSQL::Test::Cluster) because the URL may hold a password; the
# wait compares digests for the same reason.
sub set_redis_url
{
	my ($node, $url) = @_;
	(my $quoted = $url) =~ s/'/''/g;
	my $digest = md5_hex($url);

	$node->safe_psql('postgres',
		"SET log_statement = 'none';\n"
		  . "SET log_min_error_statement = 'panic';\n"
		  . "ALTER SYSTEM SET cachebridge.redis_url = '$quoted';\n"
		  . "SELECT pg_reload_conf();\n");
	$node->poll_query_until('postgres',
		"SELECT md5(current_setting('cachebridge.redis_url')) = '$digest'")
	  or die "cachebridge.redis_url was not reloaded";
	return;
}

# run_sql($node, $sql, %gucs): runs $sql in a new session after SET of each
# %gucs pair, and returns { rc, stdout, stderr, elapsed } (elapsed in
# seconds, measured around the whole psql run).
sub run_sql
{
	my ($node, $sql, %gucs) = @_;
	my ($stdout, $stderr);
	my $script = join('', map { "SET $_ = '$gucs{$_}';\n" } sort keys %gucs)
	  . $sql;
	my $t0 = Time::HiRes::time();
	my $rc = $node->psql(
		'postgres', $script,
		stdout => \$stdout,
		stderr => \$stderr,
		on_error_stop => 1);

	return {
		rc => $rc,
		stdout => $stdout,
		stderr => $stderr,
		elapsed => Time::HiRes::time() - $t0
	};
}

# bg_query($session, $sql): runs $sql in a long-lived BackgroundPsql session
# (made with on_error_stop => 0) and returns { stdout, stderr, elapsed }.
sub bg_query
{
	my ($session, $sql) = @_;

	$session->{stderr} = '';
	my $t0 = Time::HiRes::time();
	my $out = $session->query($sql);
	return {
		stdout => $out,
		stderr => $session->{stderr},
		elapsed => Time::HiRes::time() - $t0
	};
}

# A redis-server of the test's own.
package CacheBridgeTest::Redis;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Scalar::Util qw(weaken);
use Time::HiRes ();

# Weak references to every server started, for the END block.
my @running;

# new(conf => [redis.conf lines], password => $pw, name => $tag): starts a
# redis-server on a free 127.0.0.1 port and dir/redis.sock.  password adds
# "requirepass" and is what cli() authenticates with.
sub new
{
	my ($class, %opts) = @_;
	my $self = bless {
		name => $opts{name} // 'redis',
		password => $opts{password},
		conf => [ @{ $opts{conf} // [] } ],
		pid => undef,
	}, $class;

	$self->{dir} = CacheBridgeTest::scratch_dir($self->{name});
	$self->{port} = PostgreSQL::Test::Cluster::get_free_port();
	push @{ $self->{conf} }, "requirepass $self->{password}"
	  if defined $self->{password};
	$self->_write_conf;
	push @running, $self;
	weaken($running[-1]);
	$self->start;
	return $self;
}

sub port   { return $_[0]->{port}; }
sub socket { return "$_[0]->{dir}/redis.sock"; }
sub dir    { return $_[0]->{dir}; }

# url(db => N, user => U, password => P, unix => 1): a cachebridge.redis_url
# for this server.
sub url
{
	my ($self, %o) = @_;
	my $cred = '';

	$cred = ($o{user} // '') . ':' . $o{password} . '@'
	  if defined $o{password};
	return "unix://$cred" . $self->socket . (defined $o{db} ? "?db=$o{db}" : '')
	  if $o{unix};
	return "redis://${cred}127.0.0.1:$self->{port}/" . ($o{db} // 0);
}

sub _write_conf
{
	my ($self) = @_;
	my $d = $self->{dir};

	open(my $fh, '>', "$d/redis.conf") or die "could not write $d/redis.conf: $!";
	print $fh join("\n",
		"port $self->{port}",
		"bind 127.0.0.1",
		"unixsocket $d/redis.sock",
		"unixsocketperm 700",
		"daemonize yes",
		"pidfile $d/redis.pid",
		"logfile $d/redis.log",
		"dir $d",
		"save \"\"",
		"appendonly no",
		@{ $self->{conf} }),
	  "\n";
	close($fh);
	return;
}

# cli(@args): runs redis-cli against this server (authenticated when it has
# a password) and returns its output without the trailing newline.
sub cli
{
	my ($self, @args) = @_;
	my @auth =
	  defined $self->{password}
	  ? ('-a', $self->{password}, '--no-auth-warning')
	  : ();
	my ($out, $err) = ('', '');

	IPC::Run::run([ 'redis-cli', '-h', '127.0.0.1', '-p', $self->{port},
			@auth, @args ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	chomp $out;
	return $out;
}

# start(): starts (or restarts) the server on the same port and socket.
sub start
{
	my ($self) = @_;
	my $d = $self->{dir};

	die "redis-server already running" if $self->{pid};
	unlink "$d/redis.pid";
	system('redis-server', "$d/redis.conf") == 0
	  or die "redis-server did not start; see $d/redis.log";
	for (1 .. 100)
	{
		if (-s "$d/redis.pid" && $self->cli('PING') eq 'PONG')
		{
			$self->{pid} = slurp_file("$d/redis.pid");
			chomp $self->{pid};
			return;
		}
		Time::HiRes::sleep(0.1);
	}
	die "redis-server on port $self->{port} does not answer; see $d/redis.log";
}

# stop(): stops the server and waits until it is gone.
sub stop
{
	my ($self) = @_;
	my $pid = $self->{pid};

	return unless $pid;
	$self->{pid} = undef;
	kill 'TERM', $pid;
	for (1 .. 100)
	{
		return unless kill 0, $pid;
		Time::HiRes::sleep(0.1);
	}
	kill 'KILL', $pid;
	return;
}

# pause_ms($ms): CLIENT PAUSE $ms ALL -- the server keeps accepting
# connections but answers nothing (not even CLIENT UNPAUSE) until then.
sub pause_ms
{
	my ($self, $ms) = @_;
	my $reply = $self->cli('CLIENT', 'PAUSE', $ms, 'ALL');

	die "CLIENT PAUSE failed: $reply" unless $reply eq 'OK';
	return;
}

sub DESTROY
{
	my ($self) = @_;

	$self->stop if $self->{pid};
	return;
}

END
{
	my $rc = $?;

	$_->stop for grep { defined $_ } @running;
	$? = $rc;
}

1;
