# test/t/090_tls.pl -- TLS to Redis (rediss://).
#
# A real redis-server with a TLS port, certificates made by
# test/make_certs.sh.  Every caller goes over TLS: cache-aside functions,
# trigger delivery at commit, the worker, pattern deletion and publish.
# The server's certificate and name are verified: a wrong CA, a
# certificate for another host name, and a missing client certificate
# where Redis asks for one are refused with the reason, and in durable
# mode what was committed meanwhile waits in the outbox until the
# configuration is fixed and reloaded.  A server that accepts and never
# answers the handshake is given up at connect_timeout.  The Redis
# password and the client key never reach a message or the log.

use strict;
use warnings;

use File::Copy qw(copy);
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $password = 'tls-S3cret-pw';
my $certs = CacheBridgeTest::make_certs();
my $redis = CacheBridgeTest::Redis->new(
	name => 'tls',
	password => $password,
	tls => $certs);
my $tls_port = $redis->tls_port;
my $server = "127.0.0.1:$tls_port";

# The CA bundle the node reads, replaced in place in one test below.
my $bundle = "$certs/bundle.crt";
copy("$certs/ca.crt", $bundle) or die "copy: $!";

my $node = CacheBridgeTest::new_node(
	'tls',
	redis_url => $redis->url(tls => 1, password => $password),
	conf => [
		"cachebridge.tls_ca_file = '$bundle'",
		"cachebridge.connect_timeout = 1000",
		"cachebridge.command_timeout = 2000",
	]);

# ALTER SYSTEM SET name = value (or RESET with undef) and reload; returns
# once a new session sees it.
sub set_setting
{
	my ($name, $value) = @_;

	$node->safe_psql('postgres',
		defined $value
		? "ALTER SYSTEM SET $name = '$value'"
		: "ALTER SYSTEM RESET $name");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	my $want = defined $value ? "'$value'" : "(SELECT boot_val FROM pg_settings WHERE name = '$name')";
	$node->poll_query_until('postgres', "SELECT current_setting('$name') = $want")
	  or die "$name was not reloaded";
	return;
}

# The CLIENT LIST lines of connections named by cachebridge.
sub cachebridge_clients
{
	return grep { /name=cachebridge:/ } split(/\n/, $redis->cli('CLIENT', 'LIST'));
}

# ---------------------------------------------------------------------
# Round trips over TLS, on the TLS port, named in CLIENT LIST
# ---------------------------------------------------------------------
my $r = CacheBridgeTest::run_sql($node,
	"SELECT cachebridge.set('tls:k', 'over tls'); SELECT cachebridge.get('tls:k')");
is($r->{stdout}, "t\nover tls", 'set and get over TLS');
is($redis->cli('GET', 'tls:k'), 'over tls', 'the value is in Redis');

# a value larger than a TLS record and the socket buffers, both ways
$r = CacheBridgeTest::run_sql($node,
	"SELECT cachebridge.set('tls:big', repeat('0123456789', 300000)); "
	  . "SELECT md5(cachebridge.get('tls:big')) = md5(repeat('0123456789', 300000))");
is($r->{stdout}, "t\nt", 'a 3 MB value goes and comes back whole');
is($redis->cli('STRLEN', 'tls:big'), '3000000', 'and Redis holds all of it');

{
	my $s = $node->background_psql('postgres');
	$s->query_safe("SELECT cachebridge.get('tls:k')");
	my @mine = grep { /name=cachebridge:backend:postgres / } cachebridge_clients();
	is(scalar(@mine), 1, 'the backend names its connection cachebridge:backend:postgres');
	like($mine[0] // '', qr/laddr=127\.0\.0\.1:$tls_port /,
		'and it is connected to the TLS port');
	$s->quit;
}

# ---------------------------------------------------------------------
# Trigger delivery at commit, the worker, pattern deletion, publish
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, note text NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	CREATE TABLE event (id int PRIMARY KEY, what text NOT NULL);
	SELECT cachebridge.attach('event', 'events:tls', 'publish');
	INSERT INTO item SELECT g, 'row ' || g FROM generate_series(1, 200) AS g;
	INSERT INTO event VALUES (1, 'hello');
});
my $expected = q{SELECT 'item:' || id, row_to_json(item)::text FROM item ORDER BY id};
is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected)),
	'', 'trigger delivery at commit over TLS');
is($redis->cli('XLEN', 'events:tls'), '1', 'publish over TLS');

$node->safe_psql('postgres', q{
	SET cachebridge.delivery = 'async';
	UPDATE item SET note = 'by the worker' WHERE id <= 20;
});
ok(defined CacheBridgeTest::wait_outbox_empty($node, 30), 'the worker drains the outbox over TLS');
is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected)),
	'', 'and Redis holds what was committed');
my @worker = grep { /name=cachebridge:worker:postgres / } cachebridge_clients();
ok(@worker >= 1, 'the worker names its connection cachebridge:worker:postgres');
like($worker[0] // '', qr/laddr=127\.0\.0\.1:$tls_port /, 'and it is on the TLS port');

# ---------------------------------------------------------------------
# A wrong CA: refused with the reason; durable effects wait in the outbox
# and are delivered once the CA is fixed (in place) and reloaded
# ---------------------------------------------------------------------
set_setting('cachebridge.tls_ca_file', "$certs/other-ca.crt");
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/could not connect to Redis server "\Q$server\E"/,
	'a wrong CA: the server is named');
like($r->{stderr},
	qr/certificate verify failed: (unable to get local issuer certificate|self-signed certificate in certificate chain)/,
	'and the reason is the certificate');

# the bundle file now holds the wrong CA: fixing it needs no setting change
copy("$certs/other-ca.crt", $bundle) or die "copy: $!";
set_setting('cachebridge.tls_ca_file', $bundle);
$r = CacheBridgeTest::run_sql($node,
	"UPDATE item SET note = 'while the CA is wrong' WHERE id BETWEEN 21 AND 60");
is($r->{rc}, 0, 'a durable UPDATE commits while TLS verification fails');
sleep(2);
ok($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead') > 0,
	'its effects stay in the outbox');
is($redis->cli('GET', 'item:21'), '{"id":21,"note":"row 21"}',
	'and Redis still holds the old row');

copy("$certs/ca.crt", $bundle) or die "copy: $!";
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(defined CacheBridgeTest::wait_outbox_empty($node, 30),
	'with the CA file fixed and reloaded, the outbox drains');
is(join("\n", CacheBridgeTest::cache_diff($node, $redis, 'item:*', $expected)),
	'', 'and Redis holds every committed row');

# ---------------------------------------------------------------------
# A certificate for another host name is refused; a host name is checked
# (and sent as SNI), an IP address by its subjectAltName entry
# ---------------------------------------------------------------------
is($redis->cli('CONFIG', 'SET', 'tls-cert-file', "$certs/other.crt",
		'tls-key-file', "$certs/other.key"), 'OK', 'Redis presents other.example');
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/certificate verify failed: IP address mismatch/,
	'a certificate that does not name 127.0.0.1 is refused');
CacheBridgeTest::set_redis_url($node, $redis->url(tls => 1, host => 'localhost', password => $password));
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/could not connect to Redis server "localhost:$tls_port"/,
	'nor one that does not name localhost');
like($r->{stderr}, qr/certificate verify failed: hostname mismatch/,
	'the reason is the host name');
is($redis->cli('CONFIG', 'SET', 'tls-cert-file', "$certs/server.crt",
		'tls-key-file', "$certs/server.key"), 'OK', 'Redis presents localhost again');
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
is($r->{stdout}, 'over tls', 'rediss://localhost: a host name resolved, verified, sent as SNI');

# ---------------------------------------------------------------------
# Mutual TLS: a client certificate where Redis asks for one
# ---------------------------------------------------------------------
is($redis->cli('CONFIG', 'SET', 'tls-auth-clients', 'yes'), 'OK', 'Redis asks for client certificates');
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/could not connect to Redis server "localhost:$tls_port"/,
	'without a client certificate the connection is refused');
like($r->{stderr}, qr/The server asked for a client certificate and cachebridge\.tls_cert_file is not set/,
	'and the reason says a certificate is asked for');

set_setting('cachebridge.tls_cert_file', "$certs/client.crt");
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/tls_cert_file and cachebridge\.tls_key_file must be set together/,
	'a certificate without its key is refused');

set_setting('cachebridge.tls_key_file', "$certs/no-such.key");
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr},
	qr/Could not read cachebridge\.tls_key_file "\Q$certs\E\/no-such\.key": No such file or directory/,
	'an unreadable key file is named, with the reason');

copy("$certs/client.key", "$certs/open.key") or die "copy: $!";
chmod 0644, "$certs/open.key";
set_setting('cachebridge.tls_key_file', "$certs/open.key");
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/has group or world access/, 'a key file others can read is refused');

set_setting('cachebridge.tls_key_file', "$certs/client.key");
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
is($r->{stdout}, 'over tls', 'with a client certificate the connection is accepted');
$node->safe_psql('postgres', "UPDATE item SET note = 'mutual' WHERE id = 1");
CacheBridgeTest::wait_outbox_empty($node, 30);
is($redis->cli('GET', 'item:1'), '{"id":1,"note":"mutual"}', 'and trigger delivery works');

# ---------------------------------------------------------------------
# Switching between redis:// and rediss:// by reload
# ---------------------------------------------------------------------
CacheBridgeTest::set_redis_url($node, $redis->url(password => $password));
{
	my $s = $node->background_psql('postgres');
	is($s->query_safe("SELECT cachebridge.get('tls:k')"), 'over tls', 'redis:// after rediss://');
	my $port = $redis->port;
	ok((grep { /laddr=127\.0\.0\.1:$port .*name=cachebridge:backend:postgres / } cachebridge_clients()),
		'on the plain port');
	$s->quit;
}
CacheBridgeTest::set_redis_url($node, $redis->url(tls => 1, password => $password));
{
	my $s = $node->background_psql('postgres');
	is($s->query_safe("SELECT cachebridge.get('tls:k')"), 'over tls', 'and rediss:// again');
	ok((grep { /laddr=127\.0\.0\.1:$tls_port .*name=cachebridge:backend:postgres / } cachebridge_clients()),
		'on the TLS port');
	$s->quit;
}
$node->safe_psql('postgres', 'TRUNCATE item');
is(join(',', grep { !/#cbv$/ } $redis->scan_keys('item:*')), '',
	'pattern deletion (TRUNCATE) over TLS');

# ---------------------------------------------------------------------
# A server that accepts and never answers the handshake: bounded
# ---------------------------------------------------------------------
{
	# the kernel completes connections in the listen queue; nobody reads
	my $silent = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 8, Proto => 'tcp')
	  or die "listen: $!";
	my $port = $silent->sockport;

	CacheBridgeTest::set_redis_url($node, "rediss://127.0.0.1:$port/0");
	$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')",
		'cachebridge.connect_timeout' => '500ms');
	like($r->{stderr},
		qr/TLS handshake not done within cachebridge\.connect_timeout \(500 ms\)/,
		'a silent server: the handshake is given up at connect_timeout');
	cmp_ok($r->{elapsed}, '<', 0.5 + 2.5, 'within the timeout (and slack)');

	# and a commit whose delivery meets it returns, its effects kept
	$r = CacheBridgeTest::run_sql($node,
		"INSERT INTO item VALUES (1000, 'silent')",
		'cachebridge.connect_timeout' => '500ms');
	is($r->{rc}, 0, 'a commit meeting a silent TLS server returns');
	cmp_ok($r->{elapsed}, '<', 0.5 + 2.5, 'bounded by connect_timeout');
	close($silent);
}

# ---------------------------------------------------------------------
# Host names: resolved with a deadline.  A resolver that never answers
# cannot be arranged here (the machine's DNS server answers at once and
# the test has no rights to replace it); a name that does not resolve is
# an error that names it.
# ---------------------------------------------------------------------
CacheBridgeTest::set_redis_url($node, "rediss://no-such-host.invalid:$tls_port/0");
$r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.get('tls:k')");
like($r->{stderr}, qr/Could not resolve host name "no-such-host\.invalid"/,
	'an unknown host name is named in the error');
cmp_ok($r->{elapsed}, '<', 1 + 2.5, 'within connect_timeout');

# ---------------------------------------------------------------------
# No secret anywhere
# ---------------------------------------------------------------------
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$password\E/, 'the Redis password is in no log line');
my ($key_line) = grep { !/^-----/ } split(/\n/, slurp_file("$certs/client.key"));
unlike($log, qr/\Q$key_line\E/, 'nor is the client key');

done_testing();
