# test/t/001_redis_failures.pl -- how the Redis connection layer and the
# cache-aside functions (cachebridge.get/set/del/invalidate_pattern) fail.
#
# Against real servers only: a redis-server of the test's own, ports where
# nothing listens, a listening socket whose backlog is full (connects hang
# in SYN), a socket that accepts and stays silent, and Redis under CLIENT
# PAUSE.  Every failure must be an ERROR that names the server and never
# the password, must come within the configured timeout, and must leave
# the session able to use Redis again as soon as Redis is back.

use strict;
use warnings;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Socket;
use Test::More;
use Time::HiRes qw(time);

use CacheBridgeTest;

# Time allowed on top of a configured timeout: psql start-up, a busy machine.
my $slack = 2.5;

my $redis = CacheBridgeTest::Redis->new(name => 'main');
my $node = CacheBridgeTest::new_node('main', redis => $redis);

my @secrets;    # every password used, none may leak

# Checks that a run_sql/bg_query result took at least $min and less than
# $max seconds.
sub elapsed_between
{
	my ($res, $min, $max, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	ok($res->{elapsed} >= $min && $res->{elapsed} < $max,
		sprintf("%s: %.3f s, expected between %.1f and %.1f s",
			$name, $res->{elapsed}, $min, $max));
}

# Checks that a result is an ERROR matching $re, without any password.
sub fails_like
{
	my ($res, $re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	like($res->{stderr}, $re, "$name: error");
	ok(!grep({ index($res->{stderr}, $_) >= 0 } @secrets),
		"$name: no password in the error");
}

# Checks that a result has no error and the output $want.
sub gives
{
	my ($res, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	is($res->{stderr}, '', "$name: no error");
	is($res->{stdout}, $want, "$name: result");
}

my @calls = (
	[ get => "SELECT cachebridge.get('k')" ],
	[ set => "SELECT cachebridge.set('k', 'v', 60)" ],
	[ del => "SELECT cachebridge.del('k', 'k2')" ],
	[ invalidate_pattern => "SELECT cachebridge.invalidate_pattern('k*')" ]);

# ---------------------------------------------------------------------
# Nothing listens on the port: refused at once, whatever connect_timeout.
# ---------------------------------------------------------------------
{
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $pw = 'Dead-pw-4711';

	push @secrets, $pw;
	CacheBridgeTest::set_redis_url($node, "redis://:$pw\@127.0.0.1:$port/0");
	for my $c (@calls)
	{
		my ($fn, $sql) = @$c;
		my $res = CacheBridgeTest::run_sql($node, $sql,
			'cachebridge.connect_timeout' => 500);

		isnt($res->{rc}, 0, "nothing listening: $fn fails");
		fails_like($res,
			qr/ERROR:  could not connect to Redis server "127\.0\.0\.1:$port"\n(.*\n)?DETAIL:  Connection refused/,
			"nothing listening: $fn");
		elapsed_between($res, 0, 0.5 + $slack, "nothing listening: $fn");
	}
}

# ---------------------------------------------------------------------
# The server accepts nothing: its backlog is full, so our SYN goes
# unanswered and only connect_timeout ends the wait.
# ---------------------------------------------------------------------
{
	socket(my $listener, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
	bind($listener, sockaddr_in(0, inet_aton('127.0.0.1'))) or die "bind: $!";
	listen($listener, 0) or die "listen: $!";
	my ($port) = sockaddr_in(getsockname($listener));
	my @fillers = map {
		IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $port,
			Proto => 'tcp',
			Blocking => 0)
	} 1 .. 4;

	CacheBridgeTest::set_redis_url($node, "redis://127.0.0.1:$port/0");
	for my $c (@calls[ 0, 1 ])
	{
		my ($fn, $sql) = @$c;
		my $res = CacheBridgeTest::run_sql($node, $sql,
			'cachebridge.connect_timeout' => 700);

		fails_like($res,
			qr/ERROR:  could not connect to Redis server "127\.0\.0\.1:$port"\n(.*\n)?DETAIL:  No connection within cachebridge\.connect_timeout \(700 ms\)/,
			"backlog full: $fn");
		elapsed_between($res, 0.7, 0.7 + $slack, "backlog full: $fn");
	}

	# a cancel ends the wait for the connection, too
	my $res = CacheBridgeTest::run_sql($node, $calls[0][1],
		'cachebridge.connect_timeout' => 60000,
		statement_timeout => 300);
	like($res->{stderr},
		qr/ERROR:  canceling statement due to statement timeout/,
		'backlog full: statement_timeout cancels the connect');
	elapsed_between($res, 0.3, 0.3 + $slack,
		'backlog full: statement_timeout');

	close($_) for grep { defined } @fillers;
	close($listener);
}

# ---------------------------------------------------------------------
# The server accepts the connection (the kernel does it: nobody calls
# accept) but never answers: command_timeout ends the wait.
# ---------------------------------------------------------------------
{
	socket(my $listener, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
	bind($listener, sockaddr_in(0, inet_aton('127.0.0.1'))) or die "bind: $!";
	listen($listener, 64) or die "listen: $!";
	my ($port) = sockaddr_in(getsockname($listener));

	CacheBridgeTest::set_redis_url($node, "redis://127.0.0.1:$port/0");
	for my $c (@calls)
	{
		my ($fn, $sql) = @$c;
		my $res = CacheBridgeTest::run_sql($node, $sql,
			'cachebridge.connect_timeout' => 500,
			'cachebridge.command_timeout' => 600);

		fails_like($res,
			qr/ERROR:  timed out waiting for Redis server "127\.0\.0\.1:$port"\n(.*\n)?DETAIL:  No answer within cachebridge\.command_timeout \(600 ms\)/,
			"silent server: $fn");
		elapsed_between($res, 0.6, 0.6 + $slack, "silent server: $fn");
	}

	# with a database to SELECT the handshake is what times out
	CacheBridgeTest::set_redis_url($node, "redis://127.0.0.1:$port/2");
	my $res = CacheBridgeTest::run_sql($node, $calls[0][1],
		'cachebridge.command_timeout' => 600);
	fails_like($res,
		qr/ERROR:  timed out waiting for Redis server "127\.0\.0\.1:$port"\n(.*\n)?DETAIL:  No answer within cachebridge\.command_timeout \(600 ms\)/,
		"silent server, SELECT in the handshake");
	elapsed_between($res, 0.6, 0.6 + $slack,
		"silent server, SELECT in the handshake");
	close($listener);
}

# ---------------------------------------------------------------------
# Real Redis under CLIENT PAUSE: same, command_timeout ends the wait.
# ---------------------------------------------------------------------
CacheBridgeTest::set_redis_url($node, $redis->url);
{
	$redis->pause_ms(2500);
	my $res = CacheBridgeTest::run_sql($node, $calls[0][1],
		'cachebridge.command_timeout' => 500);
	fails_like($res,
		qr/ERROR:  timed out waiting for Redis server "127\.0\.0\.1:${\ $redis->port}"/,
		"paused Redis: get");
	elapsed_between($res, 0.5, 0.5 + $slack, "paused Redis: get");
	$redis->cli('PING');    # returns when the pause is over
}

# ---------------------------------------------------------------------
# Query cancel and statement_timeout while Redis is paused and
# command_timeout is long: the statement ends at once, and the next call
# in the session gets a fresh connection -- not the late reply meant for
# the cancelled command.
# ---------------------------------------------------------------------
my $session = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $session->query_safe('SELECT pg_backend_pid()');
{
	my $res = CacheBridgeTest::bg_query($session,
		"SET cachebridge.command_timeout = 60000;\n"
		  . "SELECT cachebridge.set('cancel:a', 'old'), cachebridge.set('cancel:b', 'new');\n"
		  . "SELECT cachebridge.get('cancel:a')");
	gives($res, "t|t\nold", 'cancel: session connected');

	$redis->pause_ms(6000);
	my $t0 = time;
	$res = CacheBridgeTest::bg_query($session,
		"SET statement_timeout = 300;\nSELECT cachebridge.get('cancel:a');\nRESET statement_timeout");
	like($res->{stderr},
		qr/ERROR:  canceling statement due to statement timeout/,
		'statement_timeout cancels a call waiting for a paused Redis');
	elapsed_between($res, 0.3, 0.3 + $slack, 'statement_timeout');

	# the same with pg_cancel_backend() from another session
	$session->{stderr} = '';
	$session->{stdin} .= "SELECT cachebridge.get('cancel:a');\n\\echo 'cancel done'\n\\warn 'cancel done'\n";
	$session->{run}->pump_nb;
	ok( $node->poll_query_until('postgres',
			"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $pid"),
		'query cancel: the call waits on Redis');
	my $t1 = time;
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	pump_until($session->{run}, $session->{timeout}, \$session->{stderr},
		qr/cancel done/);
	my $cancel_s = time - $t1;
	like($session->{stderr}, qr/ERROR:  canceling statement due to user request/,
		'query cancel ends a call waiting for a paused Redis');
	ok($cancel_s < $slack, sprintf('query cancel: %.3f s', $cancel_s));
	# the \echo reaches stdout on its own, maybe after the \warn on stderr:
	# wait for it, so that it is not taken for the next query's output
	pump_until($session->{run}, $session->{timeout}, \$session->{stdout},
		qr/cancel done/);
	$session->{stdout} = '';
	ok(time - $t0 < 5, 'both cancels came before the pause ended');

	$redis->cli('PING');    # the pause is over, the late replies are sent
	$res = CacheBridgeTest::bg_query($session,
		"SELECT cachebridge.get('cancel:b')");
	gives($res, 'new', 'after a cancel the session gets its own reply');
}

# ---------------------------------------------------------------------
# Redis restarts: the session's next call reconnects by itself.
# ---------------------------------------------------------------------
{
	my $res = CacheBridgeTest::bg_query($session,
		"SELECT cachebridge.set('restart:k', 'before')");
	is($res->{stderr}, '', 'restart: set before');

	$redis->stop;
	$redis->start;
	$res = CacheBridgeTest::bg_query($session,
		"SELECT cachebridge.get('restart:k') IS NULL");
	gives($res, 't', 'restart: first call on the old connection reconnects');
	$res = CacheBridgeTest::bg_query($session,
		"SELECT cachebridge.set('restart:k', 'after');\nSELECT cachebridge.get('restart:k')");
	gives($res, "t\nafter", 'restart: set and get after the restart');
}

# ---------------------------------------------------------------------
# Redis down, then back: calls fail while it is down and work again once
# it is back, in the same session.
# ---------------------------------------------------------------------
{
	$redis->stop;
	my $res = CacheBridgeTest::bg_query($session,
		"SET cachebridge.connect_timeout = 500;\nSELECT cachebridge.set('down:k', 'x')");
	fails_like($res,
		qr/ERROR:  could not connect to Redis server "127\.0\.0\.1:${\ $redis->port}"/,
		'down: set fails');
	elapsed_between($res, 0, 0.5 + $slack, 'down: set');
	$res = CacheBridgeTest::bg_query($session, "SELECT cachebridge.get('down:k')");
	fails_like($res, qr/ERROR:  could not connect to Redis server/,
		'down: get fails');

	$redis->start;
	$res = CacheBridgeTest::bg_query($session,
		"SELECT cachebridge.set('down:k', 'back');\nSELECT cachebridge.get('down:k');\nSELECT cachebridge.del('down:k')");
	gives($res, "t\nback\n1", 'back: set, get and del work in the same session');
}
$session->quit;

# ---------------------------------------------------------------------
# Authentication: requirepass and a Redis 6 ACL user.
# ---------------------------------------------------------------------
{
	my $pw = 'R1ght-pw-8c1e';
	my $wrong = 'Wr0ng-pw-77aa';
	my $alice_pw = 'Al1ce-pw-5f3b';
	push @secrets, $pw, $wrong, $alice_pw;

	my $auth = CacheBridgeTest::Redis->new(
		name => 'auth',
		password => $pw,
		conf => [
			"user alice on >$alice_pw ~* &* +\@all",
			"user reader on >$alice_pw ~* &* +\@read +ping"
		]);
	my $server = '127\.0\.0\.1:' . $auth->port;

	CacheBridgeTest::set_redis_url($node, $auth->url);
	my $res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('k')");
	fails_like($res,
		qr/ERROR:  Redis server "$server" rejected GET\n(.*\n)?DETAIL:  NOAUTH/,
		'no password: get');
	$res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.del('k')");
	fails_like($res, qr/ERROR: .*\n(.*\n)?DETAIL:  NOAUTH/, 'no password: del');

	$node->safe_psql('postgres', 'SELECT cachebridge.stats_reset()');
	CacheBridgeTest::set_redis_url($node, $auth->url(password => $wrong));
	$res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('k')");
	fails_like($res,
		qr/ERROR:  could not connect to Redis server "$server"\n(.*\n)?DETAIL:  (WRONGPASS|.*invalid password)/,
		'wrong password: get');

	my $stats = $node->safe_psql('postgres',
		"SELECT errors >= 1, last_error, last_error_at IS NOT NULL FROM cachebridge.stats");
	my ($errors_ok, $last_error, $at) = split /\|/, $stats;
	is($errors_ok, 't', 'stats: the failure is counted');
	like($last_error, qr/^$server: WRONGPASS/, 'stats: last_error names the server');
	ok(!grep({ index($stats, $_) >= 0 } @secrets), 'stats: no password');
	is($at, 't', 'stats: last_error_at is set');

	CacheBridgeTest::set_redis_url($node, $auth->url(password => $pw));
	$res = CacheBridgeTest::run_sql($node,
		"SELECT cachebridge.set('auth:k', 'v');\nSELECT cachebridge.get('auth:k')");
	gives($res, "t\nv", 'right password: set and get');

	CacheBridgeTest::set_redis_url($node,
		$auth->url(user => 'alice', password => $alice_pw));
	$res = CacheBridgeTest::run_sql($node,
		"SELECT cachebridge.set('acl:k', 'alice');\nSELECT cachebridge.get('acl:k')");
	gives($res, "t\nalice", 'ACL user: set and get');
	is($auth->cli('GET', 'acl:k'), 'alice', 'ACL user: the value is in Redis');

	CacheBridgeTest::set_redis_url($node,
		$auth->url(user => 'mallory', password => $alice_pw));
	$res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('acl:k')");
	fails_like($res,
		qr/ERROR:  could not connect to Redis server "$server"\n(.*\n)?DETAIL:  WRONGPASS/,
		'unknown ACL user');

	# a user that may only read: writes are refused with Redis' own text
	CacheBridgeTest::set_redis_url($node,
		$auth->url(user => 'reader', password => $alice_pw));
	$res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('acl:k')");
	gives($res, 'alice', 'read-only ACL user: get');
	for my $c (
		[ set => "SELECT cachebridge.set('acl:k', 'v')" ],
		[ del => "SELECT cachebridge.del('acl:k')" ],
		[ invalidate_pattern => "SELECT cachebridge.invalidate_pattern('acl:*')" ])
	{
		my ($fn, $sql) = @$c;
		$res = CacheBridgeTest::run_sql($node, $sql);
		fails_like($res, qr/ERROR: .*\n(.*\n)?DETAIL:  NOPERM/,
			"read-only ACL user: $fn");
	}
	is($auth->cli('GET', 'acl:k'), 'alice', 'read-only ACL user: nothing deleted');

	# the ACL user README.md gives, word for word, runs everything: the
	# scripts' own commands (TIME, MSET, PEXPIREAT...) are checked as they run
	open(my $fh, '<', "$ENV{TESTDIR}/../README.md") or die "README.md: $!";
	my ($acl) = grep { /^`ACL SETUSER cachebridge / } <$fh>;
	close($fh);
	ok(defined $acl, 'README gives an ACL user');
	$acl =~ s/^`|`.*\n?$//g;
	my @words = split(/ /, $acl);
	s/^>secret$/>$alice_pw/ for @words;
	is($auth->cli(@words), 'OK', 'the README ACL user is created');
	CacheBridgeTest::set_redis_url($node,
		$auth->url(user => 'cachebridge', password => $alice_pw));
	# the table's owner gives its triggers the namespace app1: (README, Namespaces)
	$node->safe_psql('postgres', q{
		CREATE ROLE acl_owner;
		ALTER ROLE acl_owner SET cachebridge.key_prefix = 'app1:';
		CREATE TABLE acl_t (id int PRIMARY KEY, v text);
		SELECT cachebridge.attach('acl_t', 'acl:{id}', 'write_through');
		ALTER TABLE acl_t OWNER TO acl_owner;
	});
	$res = CacheBridgeTest::run_sql($node, q{
		INSERT INTO acl_t VALUES (1, 'a'), (2, 'b');
		UPDATE acl_t SET v = 'c' WHERE id = 2;
		DELETE FROM acl_t WHERE id = 1;
		SELECT cachebridge.del('acl:9');
		SELECT cachebridge.set('acl:3', 'filled', 60);
		SELECT cachebridge.get('acl:3');
		SELECT cachebridge.invalidate_pattern('acl:3*');
	}, 'cachebridge.key_prefix' => 'app1:', 'cachebridge.delivery' => 'sync');
	gives($res, "0\nt\nfilled\n1", 'README ACL user: trigger writes, del, set, get, invalidate_pattern');
	is($auth->cli('GET', 'app1:acl:2'), '{"id":2,"v":"c"}', 'README ACL user: the trigger wrote the row');
	is($auth->cli('EXISTS', 'app1:acl:1'), '0', 'README ACL user: and deleted the other');
	$node->safe_psql('postgres', 'DROP TABLE acl_t; DROP ROLE acl_owner');
	$auth->stop;
}

# ---------------------------------------------------------------------
# Database number and unix socket.
# ---------------------------------------------------------------------
{
	CacheBridgeTest::set_redis_url($node, $redis->url(db => 3));
	my $res = CacheBridgeTest::run_sql($node,
		"SELECT cachebridge.set('db:k', 'in3')");
	is($res->{stderr}, '', '/3: set');
	is($redis->cli('-n', 3, 'GET', 'db:k'), 'in3', '/3: the key is in database 3');
	is($redis->cli('-n', 0, 'EXISTS', 'db:k'), '0', '/3: not in database 0');

	CacheBridgeTest::set_redis_url($node, $redis->url(db => 99));
	$res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('db:k')");
	fails_like($res,
		qr/ERROR:  could not connect to Redis server "127\.0\.0\.1:${\ $redis->port}"\n(.*\n)?DETAIL:  ERR DB index is out of range/,
		'/99: out of range');

	CacheBridgeTest::set_redis_url($node, $redis->url(unix => 1, db => 5));
	$res = CacheBridgeTest::run_sql($node,
		"SELECT cachebridge.set('sock:k', 'in5');\nSELECT cachebridge.get('sock:k')");
	gives($res, "t\nin5", 'unix socket: set and get');
	is($redis->cli('-n', 5, 'GET', 'sock:k'), 'in5', 'unix socket: the key is in database 5');

	my $nosock = $redis->dir . '/nothing.sock';
	CacheBridgeTest::set_redis_url($node, "unix://$nosock");
	$res = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('sock:k')");
	fails_like($res,
		qr/ERROR:  could not connect to Redis server "\Q$nosock\E"/,
		'unix socket: the error names the socket');
}

# ---------------------------------------------------------------------
# No password anywhere in the server log: cachebridge's own messages never
# carry it, and its log hook rewrites PostgreSQL's "parameter ... changed
# to ..." reload line for cachebridge.redis_url to name only the server.
# ---------------------------------------------------------------------
{
	my @lines = split /\n/, slurp_file($node->logfile);
	my @leaks = grep {
		my $l = $_;
		grep({ index($l, $_) >= 0 } @secrets)
	} @lines;

	ok(scalar(grep { /could not connect to Redis server/ } @lines) > 0,
		'server log: the failures were logged');
	ok(scalar(grep { /parameter "cachebridge\.redis_url" changed \(now 127\.0\.0\.1:\d+\)/ } @lines) > 0,
		'server log: reloads of redis_url are logged with the server only');
	is(scalar(@leaks), 0, 'server log: no password in any line')
	  or diag(join("\n", @leaks));
}

$node->stop;
done_testing();
