# test/t/086_redis_secrets.pl -- no configuration path puts the Redis
# password in a message or in the server log.
#
# 1. A malformed cachebridge.redis_url is refused with a reason that quotes
#    no part of it: a password with an unencoded "/" (the parser then takes
#    part of it for a port or a database number), an "@" after the path,
#    and other malformed URLs holding a secret, set with ALTER SYSTEM, SET
#    and in postgresql.conf.  The statement that carried the URL is left
#    out of the log too (cachebridge preloaded).
# 2. cachebridge.redis_password_file: the password's home outside the URL.
#    Against a redis-server with requirepass (and an ACL user): cache-aside
#    calls, trigger delivery by the backend and by the worker, a file with
#    group or world access refused with the file named, a missing or empty
#    file refused, the file winning over a password in the URL, and a
#    rotated password (Redis and file) picked up on reconnection -- with
#    cachebridge preloaded and without.
# At the end, neither server log holds any of the secrets.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my @secrets;

# Runs $sql in a new session; returns its output, followed by what it
# printed on stderr, if anything.
sub session
{
	my ($node, $sql) = @_;
	my $res = CacheBridgeTest::run_sql($node, $sql);
	my $out = $res->{stdout} // '';

	$out .= "\n" . $res->{stderr} if ($res->{stderr} // '') ne '';
	return $out;
}

# True if $text holds none of the secrets.
sub no_secret
{
	my ($text) = @_;

	return !grep { index($text, $_) >= 0 } @secrets;
}

# Writes $content to $path with mode $mode (replacing the file at once, as
# a rotation would).
sub write_file
{
	my ($path, $content, $mode) = @_;

	open(my $fh, '>', "$path.tmp") or die "could not write $path.tmp: $!";
	print $fh $content;
	close($fh);
	chmod($mode, "$path.tmp") or die "chmod $path.tmp: $!";
	rename("$path.tmp", $path) or die "rename $path.tmp: $!";
	return;
}

# Sets a superuser-only setting with ALTER SYSTEM and reloads, waiting until
# a new session sees it.
sub set_and_reload
{
	my ($node, $name, $value) = @_;

	$node->safe_psql('postgres',
		"ALTER SYSTEM SET $name = '$value';\nSELECT pg_reload_conf();");
	$node->poll_query_until('postgres',
		"SELECT current_setting('$name') = '$value'")
	  or die "$name was not reloaded";
	return;
}

# ---------------------------------------------------------------------
# 1. Malformed URLs: the reason never quotes the URL.
# ---------------------------------------------------------------------
my $plain = CacheBridgeTest::Redis->new(name => 'plain');
my $node = CacheBridgeTest::new_node(
	'secrets',
	redis => $plain,
	conf => ['log_statement = none']);

my @malformed = (
	# [ URL, the reason it must give ]
	[ 'redis://default:6379/UrlSecret1@h', qr/has an "\@" after a "\/": encode "\/"/ ],
	[ 'redis://user:UrlSecret2a/UrlSecret2b@127.0.0.1:6379', qr/has an "\@" after a "\/"/ ],
	[ 'redis://:UrlSecret3a/UrlSecret3b@127.0.0.1', qr/has an "\@" after a "\/"/ ],
	[ 'unix://:UrlSecret4a/UrlSecret4b@/tmp/redis.sock', qr/has an "\@" after a "\/"/ ],
	[ 'redis://UrlSecret5:UrlSecret5port', qr/The port is not an integer/ ],
	[ 'redis://:pw@127.0.0.1:6379/UrlSecret6', qr/The database number after the host/ ],
	[ 'redis://UrlSecret7@127.0.0.1', qr/Credentials must be written/ ],
	[ 'redis://:UrlSecret8%zz@127.0.0.1', qr/malformed %-escape/ ],
);
push @secrets, qw(UrlSecret1 UrlSecret2a UrlSecret2b UrlSecret3a UrlSecret3b
  UrlSecret4a UrlSecret4b UrlSecret5 UrlSecret6 UrlSecret7 UrlSecret8);

for my $case (@malformed)
{
	my ($url, $reason) = @$case;
	my $out = session($node,
		"ALTER SYSTEM SET cachebridge.redis_url = '$url'");

	like($out, qr/ERROR:  invalid value for parameter "cachebridge.redis_url"\nDETAIL:  .*$reason/,
		"ALTER SYSTEM refuses $url with the reason");
	ok(no_secret($out), "and the message quotes none of $url");
}

my $out = session($node,
	"SET cachebridge.redis_url = 'redis://:UrlSecret9@127.0.0.1'");
like($out, qr/cannot be changed now/, 'SET of the URL is refused');
ok(no_secret($out), 'without echoing it');
push @secrets, 'UrlSecret9';

# a malformed URL in postgresql.conf, reloaded, is refused by every process
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf',
	"cachebridge.redis_url = 'redis://u:UrlSecret10/x@127.0.0.1'\n");
push @secrets, 'UrlSecret10';
$node->reload;
ok( $node->wait_for_log(
		qr/invalid value for parameter "cachebridge.redis_url"/, $offset),
	'the reload refused the malformed URL');
is(session($node, "SELECT cachebridge.set('still', 'works')"),
	"t", 'and the old URL stays in use');
$node->append_conf('postgresql.conf',
	"cachebridge.redis_url = '" . $plain->url . "'\n");
$node->reload;

# ---------------------------------------------------------------------
# 2. The password file, cachebridge preloaded.
# ---------------------------------------------------------------------
my $pw1 = 'FilePw-One-7c1e';
my $pw2 = 'FilePw-Two-9d2a';
my $acl_pw = 'FilePw-Acl-3b5f';
my $url_pw = 'UrlPw-Wrong-4e8d';
push @secrets, $pw1, $pw2, $acl_pw, $url_pw;

my $redis = CacheBridgeTest::Redis->new(
	name => 'auth',
	password => $pw1,
	conf => ["user cbuser on >$acl_pw ~* &* +\@all"]);
my $server = '127\.0\.0\.1:' . $redis->port;
my $dir = CacheBridgeTest::scratch_dir('pwfile');
my $file = "$dir/redis.pw";
write_file($file, "$pw1\n", 0600);

set_and_reload($node, 'cachebridge.redis_password_file', $file);
CacheBridgeTest::set_redis_url($node, $redis->url);
$node->safe_psql('postgres', q{
	CREATE TABLE pf_item (id int PRIMARY KEY, v text);
	SELECT cachebridge.attach('pf_item', 'pf:{id}');
});

is(session($node, "SELECT cachebridge.set('pf:k', 'v');\nSELECT cachebridge.get('pf:k')"),
	"t\nv", 'with the password file, set and get work');
$node->safe_psql('postgres', "INSERT INTO pf_item VALUES (1, 'backend')");
is($redis->cli('GET', 'pf:1'), '{"id":1,"v":"backend"}',
	'the committing backend delivered the trigger\'s write');
$node->safe_psql('postgres',
	"SET cachebridge.delivery = async;\nINSERT INTO pf_item VALUES (2, 'worker')");
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
	't', 'the worker delivered an async write');
is($redis->cli('GET', 'pf:2'), '{"id":2,"v":"worker"}',
	'authenticating with the password file');

# the user name of the URL goes with the file's password
write_file($file, "$acl_pw\n", 0600);
CacheBridgeTest::set_redis_url($node, "redis://cbuser:\@127.0.0.1:" . $redis->port . '/0');
is(session($node, "SELECT cachebridge.set('pf:acl', 'cbuser')"), "t",
	'an ACL user of the URL authenticates with the file\'s password');

# the file wins over a password in the URL
write_file($file, "$pw1\n", 0600);
CacheBridgeTest::set_redis_url($node, $redis->url(password => $url_pw));
is(session($node, "SELECT cachebridge.get('pf:k')"), "v",
	'the password file wins over a password in the URL');
CacheBridgeTest::set_redis_url($node, $redis->url);

# a file others may read is refused, naming the file
for my $mode (0640, 0604)
{
	chmod($mode, $file) or die "chmod: $!";
	$out = session($node, "SELECT cachebridge.get('pf:k')");
	like($out,
		qr/ERROR:  could not connect to Redis server "$server"\nDETAIL:  Cannot use cachebridge.redis_password_file "\Q$file\E": it has group or world access; permissions should be u=rw \(0600\) or less\./,
		sprintf('a password file with mode %04o is refused, naming the file', $mode));
	ok(no_secret($out), 'without its content');
}
chmod(0600, $file) or die "chmod: $!";

# an empty or missing file is refused
write_file("$dir/empty.pw", "\n", 0600);
set_and_reload($node, 'cachebridge.redis_password_file', "$dir/empty.pw");
like(session($node, "SELECT cachebridge.get('pf:k')"),
	qr/DETAIL:  Cannot use cachebridge.redis_password_file "\Q$dir\E\/empty.pw": its first line is empty\./,
	'an empty password file is refused');
set_and_reload($node, 'cachebridge.redis_password_file', "$dir/missing.pw");
like(session($node, "SELECT cachebridge.get('pf:k')"),
	qr/DETAIL:  Could not open cachebridge.redis_password_file "\Q$dir\E\/missing.pw": No such file or directory\./,
	'a missing password file is refused');
set_and_reload($node, 'cachebridge.redis_password_file', $file);

# rotation: a new password in Redis and in the file; connections made
# afterwards (a killed one too, in the same session, and the worker's) use it
my $s = $node->background_psql('postgres');
is($s->query_safe("SELECT cachebridge.get('pf:k')"), 'v',
	'a long-lived session is connected');
$redis->cli('CONFIG', 'SET', 'requirepass', $pw2);
$redis->{password} = $pw2;
write_file($file, "$pw2\n", 0600);
is(session($node, "SELECT cachebridge.get('pf:k')"), "v",
	'after rotation, a new session authenticates with the new password');
$redis->cli('CLIENT', 'KILL', 'TYPE', 'normal');
is($s->query_safe("SELECT cachebridge.set('pf:rotated', 'yes')"), 't',
	'a session whose connection was killed reconnects with the new password');
$s->quit;
$node->safe_psql('postgres',
	"SET cachebridge.delivery = async;\nINSERT INTO pf_item VALUES (3, 'rotated')");
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(20000)'),
	't', 'the worker reconnects with the new password too');
is($redis->cli('GET', 'pf:3'), '{"id":3,"v":"rotated"}', 'and delivers');

$node->stop;
my $log = slurp_file($node->logfile);
like($log, qr/invalid value for parameter "cachebridge.redis_url"/,
	'the refusals were logged');
ok(no_secret($log), 'the server log (preloaded) holds no secret');

# ---------------------------------------------------------------------
# 3. The password file, cachebridge not preloaded: each backend loads it;
#    the postmaster logs every changed setting with its value.
# ---------------------------------------------------------------------
my $bare = PostgreSQL::Test::Cluster->new('not_preloaded');
$bare->init;
$bare->append_conf('postgresql.conf',
	"cachebridge.redis_url = 'redis://127.0.0.1:" . $redis->port . "/0'\n"
	  . "cachebridge.redis_password_file = '$file'\n");
$bare->start;
$bare->safe_psql('postgres', q{
	CREATE EXTENSION cachebridge;
	CREATE TABLE pf_item (id int PRIMARY KEY, v text);
	SELECT cachebridge.attach('pf_item', 'bare:{id}');
});
is(session($bare, "SELECT cachebridge.set('bare:k', 'v');\nSELECT cachebridge.get('bare:k')"),
	"t\nv", 'not preloaded: set and get with the password file');
$bare->safe_psql('postgres', "INSERT INTO pf_item VALUES (1, 'sync')");
is($redis->cli('GET', 'bare:1'), '{"id":1,"v":"sync"}',
	'not preloaded: the trigger\'s write is delivered');

# another file and an ACL user, reloaded: the postmaster logs the new
# values, none of them a secret
$bare->append_conf('postgresql.conf',
	"cachebridge.redis_password_file = '$dir/next.pw'\n"
	  . "cachebridge.redis_url = 'redis://cbuser:\@127.0.0.1:" . $redis->port . "/0'\n");
write_file("$dir/next.pw", "$acl_pw\n", 0600);
$bare->reload;
ok($bare->wait_for_log(qr/parameter "cachebridge.redis_password_file" changed to/),
	'not preloaded: the postmaster logged the new file name');
$bare->poll_query_until('postgres',
	"SELECT current_setting('cachebridge.redis_password_file') = '$dir/next.pw'")
  or die 'not reloaded';
is(session($bare, "SELECT cachebridge.get('bare:k')"), "v",
	'not preloaded: the new file and user are used');

$bare->stop;
$log = slurp_file($bare->logfile);
ok(no_secret($log), 'the server log (not preloaded) holds no secret');

# ---------------------------------------------------------------------
# 4. A password in the URL without preloading: until a session loads
#    cachebridge the setting is PostgreSQL's placeholder, which every role
#    can SHOW (a limit of PostgreSQL, documented); loading says so.
# ---------------------------------------------------------------------
my $open = PostgreSQL::Test::Cluster->new('url_password');
$open->init;
$open->append_conf('postgresql.conf',
	"cachebridge.redis_url = 'redis://:UrlSecretOpen\@127.0.0.1:" . $plain->port . "/0'\n");
$open->start;
my ($rc, $out, $err) = $open->psql('postgres', 'CREATE EXTENSION cachebridge');
like($err, qr/WARNING:  cachebridge.redis_url holds a password that every role could read/,
	'not preloaded: loading cachebridge warns of a password in the URL');
like($err, qr/HINT:  Put the password in cachebridge.redis_password_file/,
	'and says where to put it');
unlike($err, qr/UrlSecretOpen/, 'without showing it');
$open->stop;

$redis->stop;
$plain->stop;
done_testing();
