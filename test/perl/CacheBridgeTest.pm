# test/perl/CacheBridgeTest.pm -- helpers shared by the TAP tests in test/t.
#
#   my $redis = CacheBridgeTest::Redis->new(conf => ['requirepass s3cret']);
#   my $node  = CacheBridgeTest::new_node('main', redis => $redis);
#   CacheBridgeTest::set_redis_url($node, $redis->url(password => 's3cret'));
#   my $r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('k')");
#   my @keys = $redis->scan_keys('user:*');
#   my $b = CacheBridgeTest::run_pgbench($node, script => $sql, clients => 4,
#       transactions => 1000);
#   my $s = CacheBridgeTest::stats($node);      # $s->{breaker}, $s->{outbox_depth}
#   my @diff = CacheBridgeTest::cache_diff($node, $redis, 'item:*',
#       "SELECT 'item:' || id, row_to_json(item)::text FROM item");
#   my $h = $redis->freeze(1.5);    # DEBUG SLEEP; $h->finish waits for its end
#
# Everything runs as the current (unprivileged) user, on 127.0.0.1 and unix
# sockets in directories under $PostgreSQL::Test::Utils::tmp_check; every
# redis-server started here is stopped when its object goes away or the
# test ends.

package CacheBridgeTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use POSIX ();
use Digest::MD5 qw(md5_hex);
use File::Temp ();
use IPC::Run ();
use JSON::PP ();
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

# run_pgbench($node, script => $text, clients => N, transactions => N,
#             timeout => seconds, vars => { name => value }, args => [...]):
# runs pgbench (without vacuum) with the custom script $text against the
# node's "postgres" database, killed after timeout seconds (default
# $PostgreSQL::Test::Utils::timeout_default).  Returns { rc, stdout,
# stderr, elapsed, processed, failed, retried }, the last three parsed from
# pgbench's report (undef when it printed none).
sub run_pgbench
{
	my ($node, %opts) = @_;
	my $dir = scratch_dir('pgbench');
	my $file = "$dir/script.sql";
	my ($stdout, $stderr) = ('', '');
	my %vars = %{ $opts{vars} // {} };

	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh $opts{script};
	close($fh);

	my @cmd = (
		'pgbench', '-n',
		'-h', $node->host,
		'-p', $node->port,
		'-c', $opts{clients} // 1,
		'-j', $opts{clients} // 1,
		# a run of so many transactions each, or (seconds) for so long
		($opts{seconds} ? ('-T', $opts{seconds}) : ('-t', $opts{transactions} // 1)),
		(map { ('-D', "$_=$vars{$_}") } sort keys %vars),
		@{ $opts{args} // [] },
		'-f', $file, 'postgres');
	my $t0 = Time::HiRes::time();
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$stdout, '2>', \$stderr,
		IPC::Run::timeout(
			$opts{timeout} // $PostgreSQL::Test::Utils::timeout_default));
	my $rc;
	if (eval { $h->finish; 1 })
	{
		$rc = $h->full_result(0) >> 8;
	}
	else
	{
		$h->kill_kill;
		$stderr .= "\npgbench did not finish: $@";
		$rc = -1;
	}

	my %res = (
		rc => $rc,
		stdout => $stdout,
		stderr => $stderr,
		elapsed => Time::HiRes::time() - $t0);
	($res{processed}) =
	  $stdout =~ /number of transactions actually processed: (\d+)/;
	($res{failed}) = $stdout =~ /number of failed transactions: (\d+)/;
	($res{retried}) = $stdout =~ /number of transactions retried: (\d+)/;
	return \%res;
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

# stats($node): the row of cachebridge.stats as a hash reference.
sub stats
{
	my ($node) = @_;
	my $json = $node->safe_psql('postgres',
		'SELECT row_to_json(s) FROM cachebridge.stats AS s');

	return JSON::PP::decode_json($json);
}

# worker_pids($node): the pids of the running cachebridge workers (not the
# launcher), in ascending order.
sub worker_pids
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity "
		  . "WHERE backend_type = 'cachebridge worker' ORDER BY pid");

	return grep { $_ ne '' } split(/\n/, $out);
}

# wait_outbox_empty($node, $timeout_s): polls until cachebridge.outbox has
# no row left that is not dead; returns the seconds waited, or undef if
# that did not happen within $timeout_s.
sub wait_outbox_empty
{
	my ($node, $timeout_s) = @_;
	my $t0 = Time::HiRes::time();

	while (Time::HiRes::time() - $t0 < $timeout_s)
	{
		return Time::HiRes::time() - $t0
		  if $node->safe_psql('postgres',
			'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead') eq '0';
		Time::HiRes::sleep(0.05);
	}
	return undef;
}

# cache_diff($node, $redis, $pattern, $sql): compares the keys of Redis
# matching the glob $pattern (version markers "*#cbv" left out) with the
# (key, value) rows $sql returns; returns a list of differences, empty
# when Redis holds exactly those keys with exactly those values.
sub cache_diff
{
	my ($node, $redis, $pattern, $sql) = @_;
	my %want = map { split(/\|/, $_, 2) }
	  grep { $_ ne '' } split(/\n/, $node->safe_psql('postgres', $sql));
	my @keys = grep { !/#cbv$/ } $redis->scan_keys($pattern);
	my %have;
	my @diff;

	@have{@keys} = $redis->mget(@keys);
	for my $k (sort keys %want)
	{
		if (!defined $have{$k})
		{
			push @diff, "missing $k";
		}
		elsif ($have{$k} ne $want{$k})
		{
			push @diff, "$k is $have{$k}, expected $want{$k}";
		}
	}
	push @diff, map { "unexpected $_" } grep { !exists $want{$_} } @keys;
	return @diff;
}

# make_certs(): a directory with a throwaway CA and certificates, made by
# test/make_certs.sh (which lists them).
sub make_certs
{
	my $dir = scratch_dir('certs');

	system('bash', "$ENV{TESTDIR}/make_certs.sh", $dir) == 0
	  or die "test/make_certs.sh failed";
	return $dir;
}

# run_with_resolv_conf($file, @cmd): runs @cmd (as the current user) with
# $file in place of /etc/resolv.conf, in a user and mount namespace of its
# own, and returns its exit status as system() does -- or undef (with the
# reason in $@) where unprivileged user namespaces cannot do that.  What
# @cmd starts in the background (a postmaster) keeps that view.  Linux
# x86_64 only: unshare(2) and mount(2) are called by number.
sub run_with_resolv_conf
{
	my ($file, @cmd) = @_;
	my ($uid, $gid) = ($<, $( + 0);

	if ($^O ne 'linux' || `uname -m` !~ /^x86_64/)
	{
		$@ = 'not Linux on x86_64';
		return undef;
	}
	pipe(my $rd, my $wr) or die "pipe: $!";
	my $pid = fork() // die "fork: $!";
	if ($pid == 0)
	{
		close($rd);
		my ($none, $root, $target, $source) = ('none', '/', '/etc/resolv.conf', $file);
		my $fail = sub { print $wr "$_[0]: $!"; close($wr); POSIX::_exit(125); };
		syscall(272, 0x10000000 | 0x00020000) == 0
		  or $fail->('unshare(CLONE_NEWUSER | CLONE_NEWNS)');
		for ([ 'setgroups', 'deny' ], [ 'uid_map', "$uid $uid 1" ], [ 'gid_map', "$gid $gid 1" ])
		{
			open(my $fh, '>', "/proc/self/$_->[0]") or $fail->("open $_->[0]");
			print $fh $_->[1];
			close($fh) or $fail->("write $_->[0]");
		}
		# MS_REC | MS_PRIVATE, then MS_BIND
		syscall(165, $none, $root, 0, 0x4000 | 0x40000, 0) == 0
		  or $fail->('mount --make-rprivate /');
		syscall(165, $source, $target, 0, 4096, 0) == 0
		  or $fail->('mount --bind resolv.conf');
		close($wr);
		exec(@cmd) or POSIX::_exit(126);
	}
	close($wr);
	my $why = do { local $/; <$rd> } // '';
	close($rd);
	waitpid($pid, 0);
	my $status = $?;
	if ($why ne '')
	{
		$@ = $why;
		return undef;
	}
	return $status;
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

# new(conf => [redis.conf lines], password => $pw, name => $tag,
#     tls => $certdir, tls_ca => $file): starts a redis-server on a free
# 127.0.0.1 port and dir/redis.sock.  password adds "requirepass" and is
# what cli() authenticates with.  tls (a directory made by
# CacheBridgeTest::make_certs) also opens a TLS port, tls_port(), with
# server.crt and the CAs of tls_ca (by default ca.crt), not asking for
# client certificates (CONFIG SET tls-auth-clients yes does).
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
	if (my $c = $opts{tls})
	{
		$self->{certs} = $c;
		$self->{tls_port} = PostgreSQL::Test::Cluster::get_free_port();
		push @{ $self->{conf} },
		  "tls-port $self->{tls_port}",
		  "tls-cert-file $c/server.crt",
		  "tls-key-file $c/server.key",
		  "tls-ca-cert-file " . ($opts{tls_ca} // "$c/ca.crt"),
		  "tls-auth-clients no";
	}
	$self->_write_conf;
	push @running, $self;
	weaken($running[-1]);
	$self->start;
	return $self;
}

sub port   { return $_[0]->{port}; }
sub tls_port { return $_[0]->{tls_port}; }
sub socket { return "$_[0]->{dir}/redis.sock"; }
sub dir    { return $_[0]->{dir}; }

# url(db => N, user => U, password => P, unix => 1 | tls => 1, host => H):
# a cachebridge.redis_url for this server (rediss://H, by default
# 127.0.0.1, on the TLS port with tls).
sub url
{
	my ($self, %o) = @_;
	my $cred = '';

	$cred = ($o{user} // '') . ':' . $o{password} . '@'
	  if defined $o{password};
	return "unix://$cred" . $self->socket . (defined $o{db} ? "?db=$o{db}" : '')
	  if $o{unix};
	return "rediss://$cred" . ($o{host} // '127.0.0.1') . ":$self->{tls_port}/"
	  . ($o{db} // 0)
	  if $o{tls};
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

# cli_tls(@args): as cli(), over the TLS port (the CA of the certificates
# of new(tls => ...)), as a TLS client sees the server.
sub cli_tls
{
	my ($self, @args) = @_;

	return $self->cli('--tls', '--cacert', "$self->{certs}/ca.crt",
		'-p', $self->{tls_port}, @args);
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

# scan_keys($pattern): every key matching the glob $pattern, found with
# SCAN (redis-cli --scan), sorted; their number in scalar context.
sub scan_keys
{
	my ($self, $pattern) = @_;
	my $out = $self->cli('--scan', '--pattern', $pattern);
	my @keys = sort grep { $_ ne '' } split(/\n/, $out);

	return @keys;
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

# mget(@keys): the values of @keys (undef for a missing key), fetched with
# MGET in batches.
sub mget
{
	my ($self, @keys) = @_;
	my @values;

	while (my @batch = splice(@keys, 0, 500))
	{
		my @out = split(/\n/, $self->cli('MGET', @batch), -1);

		push @out, '' while @out < @batch;
		push @values, map { $_ eq '' ? undef : $_ } @out;
	}
	return @values;
}

# freeze($seconds): DEBUG SLEEP $seconds in the background -- unlike under
# CLIENT PAUSE, Redis reads nothing at all meanwhile, so what clients send
# waits in the kernel and is executed afterwards even if the client has
# closed its connection by then.  Needs "enable-debug-command yes" in the
# server's conf.  Returns an IPC::Run handle; ->finish on it returns when
# the sleep is over.
sub freeze
{
	my ($self, $seconds) = @_;
	my $out = '';
	my $h = IPC::Run::start(
		[ 'redis-cli', '-h', '127.0.0.1', '-p', $self->{port},
			'DEBUG', 'SLEEP', $seconds ],
		'<', \undef, '>', \$out, '2>', \$out);

	# DEBUG SLEEP has begun once PING stops being answered at once
	for (1 .. 25)
	{
		my $ping = IPC::Run::start(
			[ 'redis-cli', '-h', '127.0.0.1', '-p', $self->{port}, 'PING' ],
			'<', \undef, '>', \my $pong, '2>', \my $err);
		Time::HiRes::sleep(0.2);
		if ($ping->pumpable)
		{
			$ping->kill_kill;
			return $h;
		}
		$ping->finish;
	}
	die "DEBUG SLEEP did not take effect: $out";
}

sub DESTROY
{
	my ($self) = @_;

	$self->stop if $self->{pid};
	return;
}


# A Redis Cluster of the test's own: three masters with a replica each.
#
#   my $cl = CacheBridgeTest::RedisCluster->new;
#   CacheBridgeTest::set_redis_url($node, $cl->url);   # two seeds
#   my $m = $cl->master_of('user:1');     # the CacheBridgeTest::Redis
#   my $v = $cl->get('user:1');           # redis-cli -c
#   my @d = $cl->diff('user:*', { 'user:1' => 'v' });   # every master
#
# Every node is a CacheBridgeTest::Redis with "cluster-enabled yes", so it
# is stopped like any other server when the test ends, even on failure.
package CacheBridgeTest::RedisCluster;

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Time::HiRes ();

# new(masters => 3, replicas => 1, conf => [lines], tls => $certdir,
# tls_ca => $file): starts the nodes, joins them with redis-cli --cluster
# create and waits until every node says cluster_state:ok and knows every
# other.  With tls (see CacheBridgeTest::Redis::new) each node also has a
# TLS port, and the nodes talk TLS among themselves (tls-cluster,
# tls-replication): the cluster is made over the TLS ports, and announces
# them to TLS clients; the plain ports stay open for the helpers here.
sub new
{
	my ($class, %opts) = @_;
	my $masters = $opts{masters} // 3;
	my $replicas = $opts{replicas} // 1;
	my $self = bless { nodes => [], tls => $opts{tls} }, $class;
	my @tls = $opts{tls} ? ('tls-cluster yes', 'tls-replication yes') : ();

	for my $i (1 .. $masters * (1 + $replicas))
	{
		# the cluster bus gets a free port of its own (by default it is the
		# port + 10000, which another test's server may hold)
		my $bus = PostgreSQL::Test::Cluster::get_free_port();

		push @{ $self->{nodes} }, CacheBridgeTest::Redis->new(
			name => "cluster$i",
			tls => $opts{tls},
			tls_ca => $opts{tls_ca},
			conf => [
				@tls,
				'cluster-enabled yes',
				"cluster-port $bus",
				'cluster-config-file nodes.conf',
				'cluster-node-timeout 2000',
				'enable-debug-command yes',
				@{ $opts{conf} // [] }
			]);
	}
	my ($out, $err) = ('', '');
	my @tls_cli = $opts{tls} ? ('--tls', '--cacert', "$opts{tls}/ca.crt") : ();
	IPC::Run::run(
		[
			'redis-cli', @tls_cli, '--cluster', 'create',
			(map { '127.0.0.1:' . ($opts{tls} ? $_->tls_port : $_->port) }
				  @{ $self->{nodes} }),
			'--cluster-replicas', $replicas, '--cluster-yes'
		],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	die "redis-cli --cluster create failed:\n$out$err"
	  unless $out =~ /All 16384 slots covered/;
	$self->wait_ok;
	return $self;
}

sub nodes { return @{ $_[0]->{nodes} }; }

# wait_ok(): returns once every running node reports cluster_state:ok and
# agrees on who the masters are; dies after the default timeout.
sub wait_ok
{
	my ($self) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;

	while (time < $deadline)
	{
		my @up = grep { $_->{pid} } $self->nodes;
		my %views;
		my $ok = 1;

		for my $n (@up)
		{
			if ($n->cli('CLUSTER', 'INFO') !~ /cluster_state:ok/)
			{
				$ok = 0;
				last;
			}
			$views{ join(',', map { $_->port } $self->masters_seen_by($n)) } = 1;
		}
		return if $ok && keys(%views) == 1;
		Time::HiRes::sleep(0.2);
	}
	die "the Redis Cluster did not reach cluster_state:ok on every node";
}

# masters_seen_by($node): the running masters owning slots, as $node's
# CLUSTER NODES lists them, in port order.
sub masters_seen_by
{
	my ($self, $node) = @_;
	my %by_port = map { $_->port => $_ } $self->nodes;
	my @m;

	for my $line (split /\n/, $node->cli('CLUSTER', 'NODES'))
	{
		my @f = split / /, $line;
		next unless $f[2] =~ /master/ && $f[2] !~ /fail/ && @f > 8;
		my ($port) = $f[1] =~ /:(\d+)@/;
		push @m, $by_port{$port} if $by_port{$port};
	}
	return sort { $a->port <=> $b->port } @m;
}

# masters(): the masters owning slots now, as the first running node sees them.
sub masters
{
	my ($self) = @_;
	my ($first) = grep { $_->{pid} } $self->nodes;

	return $self->masters_seen_by($first);
}

# replica_of($master): a running replica of $master (which, with
# tls-replication, it reaches on the TLS port).
sub replica_of
{
	my ($self, $master) = @_;

	for my $n (grep { $_->{pid} && $_ != $master } $self->nodes)
	{
		my $info = $n->cli('INFO', 'replication');
		return $n
		  if $info =~ /role:slave/ && $info =~ /master_port:(\d+)/
		  && ($1 == $master->port || $1 == ($master->tls_port // -1));
	}
	return undef;
}

# url(%o): a cachebridge.redis_url naming two seed nodes (the first two
# started), with the credentials and database of CacheBridgeTest::Redis::url
# (tls => 1: rediss:// on their TLS ports).
sub url
{
	my ($self, %o) = @_;
	my @n = $self->nodes;
	my ($p0, $p1) =
	  $o{tls} ? ($n[0]->tls_port, $n[1]->tls_port) : ($n[0]->port, $n[1]->port);
	(my $url = $n[0]->url(%o)) =~ s{127\.0\.0\.1:$p0/}{127.0.0.1:$p0,127.0.0.1:$p1/};

	return $url;
}

# keyslot($key): CLUSTER KEYSLOT as the cluster computes it.
sub keyslot
{
	my ($self, $key) = @_;
	my ($first) = grep { $_->{pid} } $self->nodes;

	return $first->cli('CLUSTER', 'KEYSLOT', $key);
}

# master_of($key): the master that owns $key's slot now.
sub master_of
{
	my ($self, $key) = @_;
	my $slot = $self->keyslot($key);
	my ($first) = grep { $_->{pid} } $self->nodes;
	my %by_port = map { $_->port => $_ } $self->nodes;

	for my $line (split /\n/, $first->cli('CLUSTER', 'NODES'))
	{
		my @f = split / /, $line;
		next unless $f[2] =~ /master/ && $f[2] !~ /fail/;
		for my $range (@f[ 8 .. $#f ])
		{
			next if $range =~ /^\[/;	# a slot being migrated
			my ($lo, $hi) = split /-/, $range;
			$hi //= $lo;
			my ($port) = $f[1] =~ /:(\d+)@/;
			return $by_port{$port} if $slot >= $lo && $slot <= $hi;
		}
	}
	return undef;
}

# cli_c(@args): redis-cli -c (follows redirections) from the first
# running node.
sub cli_c
{
	my ($self, @args) = @_;
	my ($first) = grep { $_->{pid} } $self->nodes;

	return $first->cli('-c', @args);
}

# get($key): the value of $key (undef when missing), read where the
# cluster says it is.
sub get
{
	my ($self, $key) = @_;
	my $out = $self->cli_c('GET', $key);

	return $out eq '' ? undef : $out;
}

# scan_keys($pattern): every key matching $pattern on every master, sorted.
sub scan_keys
{
	my ($self, $pattern) = @_;

	return sort map { $_->scan_keys($pattern) } $self->masters;
}

# batch($node, @commands): runs each command (an array reference of words
# without spaces) on $node in one redis-cli process and returns its replies,
# one per command, each on one line (a missing value is '').
sub batch
{
	my ($self, $node, @commands) = @_;
	my $in = join('', map { join(' ', @$_) . "\n" } @commands);
	my ($out, $err) = ('', '');

	return () unless @commands;
	IPC::Run::run([ 'redis-cli', '-h', '127.0.0.1', '-p', $node->port ],
		'<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	my @lines = split(/\n/, $out, -1);
	pop @lines if @lines && $lines[-1] eq '';
	die "redis-cli answered " . scalar(@lines) . " lines to " . scalar(@commands) . " commands"
	  unless @lines == @commands;
	return @lines;
}

# slot_owners(): the port of the master of each slot (an array reference
# indexed by slot), from one CLUSTER NODES.
sub slot_owners
{
	my ($self) = @_;
	my ($first) = grep { $_->{pid} } $self->nodes;
	my @owner;

	for my $line (split /\n/, $first->cli('CLUSTER', 'NODES'))
	{
		my @f = split / /, $line;
		next unless $f[2] =~ /master/ && $f[2] !~ /fail/;
		my ($port) = $f[1] =~ /:(\d+)@/;
		for my $range (grep { !/^\[/ } @f[ 8 .. $#f ])
		{
			my ($lo, $hi) = split /-/, $range;
			$owner[$_] = $port for $lo .. ($hi // $lo);
		}
	}
	return \@owner;
}

# dump($pattern): every key matching $pattern on every master, markers
# included, as { key => { value, port (where it is), slot, owner (the port
# of its slot's master) } }; values of strings only ('' for other types).
sub dump
{
	my ($self, $pattern) = @_;
	my $owners = $self->slot_owners;
	my %keys;

	for my $m ($self->masters)
	{
		my @k = $m->scan_keys($pattern);
		my @v = $self->batch($m, map { [ 'GET', $_ ] } @k);
		my @s = $self->batch($m, map { [ 'CLUSTER', 'KEYSLOT', $_ ] } @k);
		for my $i (0 .. $#k)
		{
			$keys{ $k[$i] } = {
				value => $v[$i] =~ /WRONGTYPE/ ? '' : $v[$i],
				port => $m->port,
				slot => $s[$i],
				owner => $owners->[ $s[$i] ] // -1,
			};
		}
	}
	return \%keys;
}

# diff($pattern, \%want): the differences between the keys matching
# $pattern (markers left out) and %want (key => value): missing, wrong
# value, unexpected, or held by a master that does not own its slot.
sub diff
{
	my ($self, $pattern, $want) = @_;
	my $have = $self->dump($pattern);
	my @diff;

	delete $have->{$_} for grep { /#cbv$/ } keys %$have;
	for my $k (sort keys %$want)
	{
		my $h = $have->{$k};
		push @diff, !defined $h ? "missing $k"
		  : $h->{value} ne $want->{$k} ? "$k is $h->{value}, expected $want->{$k}"
		  : ();
	}
	for my $k (sort keys %$have)
	{
		push @diff, "unexpected $k" unless exists $want->{$k};
		push @diff, "$k is on $have->{$k}{port}, its slot on $have->{$k}{owner}"
		  if $have->{$k}{port} != $have->{$k}{owner};
	}
	return @diff;
}

# mget(@keys): the values of @keys, each read on the master owning it.
sub mget
{
	my ($self, @keys) = @_;

	return map { $self->get($_) } @keys;
}

# failover($master): CLUSTER FAILOVER on a replica of $master; returns the
# replica, once it is a master and the cluster is ok again.
sub failover
{
	my ($self, $master) = @_;
	my $replica = $self->replica_of($master) or die "no replica of " . $master->port;

	$replica->cli('CLUSTER', 'FAILOVER');
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		last if $replica->cli('INFO', 'replication') =~ /role:master/;
		Time::HiRes::sleep(0.1);
	}
	$self->wait_ok;
	return $replica;
}

END
{
	my $rc = $?;

	$_->stop for grep { defined $_ } @running;
	$? = $rc;
}

1;
