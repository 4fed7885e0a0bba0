# test/t/103_one_key_script.pl -- a commit that changes one key is applied
# by the one-key write script (scripts.c, CB_SCRIPT_WRITE_ONE), and that
# script leaves Redis exactly as the batch script does.
#
# Every change is made twice: on a table whose transactions change that one
# row (one key: the one-key script) and on a twin whose transactions also
# change a filler row (two keys: the batch script).  The keys of both must
# then agree in type, value, expiry and the shape of their markers, for
# each kind of effect: a JSON value with and without a TTL (below
# tombstone_ttl, so that the marker outlives the value, and above it), a
# hash with and without one, a deletion (its tombstone), and invalidate.
# Then the adversarial markers: one newer than the change (the change is
# skipped) and one of the wrong type, a list or a hash (the change is
# rejected with WRONGTYPE naming its key, and the next one is applied).
# INFO commandstats shows which script ran: one-key commits run no MGET,
# EXISTS or TIME.  Last, calls MONITOR saw are sent again by hand, for the
# replies (1 applied, 0 skipped) and for a version equal to the marker's
# (a retry, a replay), which must apply again.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'onekey');
my $node = CacheBridgeTest::new_node(
	'onekey',
	redis => $redis,
	conf => [ 'cachebridge.delivery = sync', 'cachebridge.tombstone_ttl = 300' ]);

# kind => [ mode, ttl, options ]
my %kinds = (
	j => [ 'write_through', 'NULL', '' ],
	jt => [ 'write_through', '60', '' ],
	jl => [ 'write_through', '600', '' ],
	h => [ 'write_through', 'NULL', q{, 'format=hash'} ],
	ht => [ 'write_through', '60', q{, 'format=hash'} ],
	i => [ 'invalidate', 'NULL', '' ],
);

for my $k (sort keys %kinds)
{
	my ($mode, $ttl, $opt) = @{ $kinds{$k} };
	for my $side ('one', 'two')
	{
		$node->safe_psql('postgres', qq{
			CREATE TABLE ${side}_$k (id int PRIMARY KEY, v text, w int);
			SELECT cachebridge.attach('${side}_$k', '${side}_$k:{id}', '$mode', $ttl$opt);
			INSERT INTO ${side}_$k VALUES (999, 'filler', 0);
		});
	}
}

# Runs the statement on one_KIND as its transaction's only change, and on
# two_KIND beside a change of the filler row.
sub both
{
	my ($k, $sql) = @_;
	(my $one = $sql) =~ s/\bT\b/one_$k/g;
	(my $two = $sql) =~ s/\bT\b/two_$k/g;
	my $r1 = CacheBridgeTest::run_sql($node, $one);
	my $r2 = CacheBridgeTest::run_sql($node,
		"BEGIN;\n$two;\nUPDATE two_$k SET w = w + 1 WHERE id = 999;\nCOMMIT;\n");
	return ($r1, $r2);
}

# What a key is, in words that do not depend on when it was written: its
# type, value and expiry (to the nearest 10 s), and its marker's type,
# shape and expiry.
sub describe
{
	my ($key) = @_;
	my $type = $redis->cli('TYPE', $key);
	my $value =
	    $type eq 'string' ? $redis->cli('GET', $key)
	  : $type eq 'hash' ? join(',', sort split(/\n/, $redis->cli('HGETALL', $key)))
	  : '';
	my $ttl = sub {
		my $p = $redis->cli('PTTL', $_[0]);
		return $p < 0 ? $p : 10 * int(($p + 5000) / 10000);
	};
	my $marker = "$key#cbv";
	my $mtype = $redis->cli('TYPE', $marker);
	my $mvalue = $mtype eq 'string' ? $redis->cli('GET', $marker) : '';
	$mvalue =~ s/^V[0-9A-F]{32}:\d+$/<version>/;
	(my $name = $key) =~ s/^(one|two)_//;
	return sprintf('%s: %s %s ttl %s; marker %s %s ttl %s',
		$name, $type, $value, $ttl->($key), $mtype, $mvalue, $ttl->($marker));
}

# The Redis commands run since the last reset: { command => calls }.
sub commands
{
	my %calls;
	for (split(/\n/, $redis->cli('INFO', 'commandstats')))
	{
		$calls{$1} = $2 if /^cmdstat_([a-z|]+):calls=(\d+)/;
	}
	return \%calls;
}

# ---------------------------------------------------------------------
# The effects of every kind, through both scripts.
# ---------------------------------------------------------------------
my %expected = (
	j => [
		'j:1: string {"id":1,"v":"a2","w":1} ttl -1; marker string <version> ttl -1',
		'j:2: none  ttl -2; marker string <version> ttl 300'
	],
	jt => [
		'jt:1: string {"id":1,"v":"a2","w":1} ttl 60; marker string <version> ttl 300',
		'jt:2: none  ttl -2; marker string <version> ttl 300'
	],
	jl => [
		'jl:1: string {"id":1,"v":"a2","w":1} ttl 600; marker string <version> ttl 600',
		'jl:2: none  ttl -2; marker string <version> ttl 300'
	],
	h => [
		'h:1: hash 1,1,a2,id,v,w ttl -1; marker string <version> ttl -1',
		'h:2: none  ttl -2; marker string <version> ttl 300'
	],
	ht => [
		'ht:1: hash 1,1,a2,id,v,w ttl 60; marker string <version> ttl 300',
		'ht:2: none  ttl -2; marker string <version> ttl 300'
	],
	i => [
		'i:1: none  ttl -2; marker string <version> ttl 300',
		'i:2: none  ttl -2; marker string <version> ttl 300'
	],
);

$redis->cli('CONFIG', 'RESETSTAT');
for my $k (sort keys %kinds)
{
	# a stale value under every invalidated key
	$redis->cli('SET', "${_}_$k:1", 'stale') for ('one', 'two');
	both($k, q{INSERT INTO T VALUES (1, 'a', 0)});
	both($k, q{INSERT INTO T VALUES (2, 'b', 0)});
	both($k, q{UPDATE T SET v = 'a2', w = 1 WHERE id = 1});
	both($k, q{DELETE FROM T WHERE id = 2});
	for my $id (1, 2)
	{
		my $one = describe("one_$k:$id");
		is($one, describe("two_$k:$id"), "$k:$id: the one-key script leaves what the batch script leaves");
		is($one, $expected{$k}[ $id - 1 ], "$k:$id: as it should be");
	}
}
my $calls = commands();
# 4 statements per kind, on one table each (the filler rows' keys are
# changed in the twins' transactions): 24 one-key calls, 24 batch calls
is($calls->{evalsha}, 48, 'every commit was one script call');
is($calls->{mget}, 24, 'MGET ran in the batch calls only');
is($calls->{time}, 24, 'TIME ran in the batch calls only');

# the single-row commits alone: no MGET, EXISTS or TIME at all
$redis->cli('CONFIG', 'RESETSTAT');
$node->safe_psql('postgres', q{UPDATE one_j SET w = w + 1 WHERE id = 1});
$node->safe_psql('postgres', q{UPDATE one_ht SET w = w + 1 WHERE id = 1});
$node->safe_psql('postgres', q{DELETE FROM one_i WHERE id = 1});
$node->safe_psql('postgres', q{INSERT INTO one_j VALUES (7, 'seven', 0)});
$calls = commands();
is($calls->{evalsha}, 4, 'four one-row commits are four script calls');
is(join(',', grep { $calls->{$_} } qw(mget exists time pexpireat)), '',
	'and run no MGET, EXISTS (not even for a key without a marker), TIME or PEXPIREAT');
is($calls->{set} // 0, 2, 'the hash and the tombstone write their markers with SET');
is($calls->{mset} // 0, 2, 'a JSON value and its marker go in one MSET');
is($redis->cli('GET', 'one_j:1'), '{"id":1,"v":"a2","w":2}', 'the JSON value was written');
is($redis->cli('HGET', 'one_ht:1', 'w'), '2', 'the hash was replaced');
my $pttl = $redis->cli('PTTL', 'one_ht:1');
ok($pttl > 50000 && $pttl <= 60000, "the hash expires in its TTL ($pttl ms)");
$pttl = $redis->cli('PTTL', 'one_ht:1#cbv');
ok($pttl > 290000 && $pttl <= 300000, "its marker with the tombstone ttl ($pttl ms)");

# ---------------------------------------------------------------------
# A marker newer than the change: the change is skipped.
# ---------------------------------------------------------------------
for my $side ('one', 'two')
{
	$node->safe_psql('postgres', "INSERT INTO ${side}_j VALUES (5, 'five', 0)");
	$redis->cli('SET', "${side}_j:5#cbv", 'W:newer');
	$redis->cli('SET', "${side}_j:5", 'newer value');
}
my ($r1, $r2) = both('j', q{UPDATE T SET v = 'older' WHERE id = 5});
is($r1->{stderr}, '', 'a change older than the marker is no error');
is($redis->cli('GET', 'one_j:5'), 'newer value', 'and is skipped by the one-key script');
is($redis->cli('GET', 'one_j:5#cbv'), 'W:newer', 'which leaves the marker');
is(describe('one_j:5'), describe('two_j:5'), 'as the batch script does');
($r1, $r2) = both('j', q{DELETE FROM T WHERE id = 5});
is($redis->cli('GET', 'one_j:5'), 'newer value', 'an older deletion is skipped too');
is(describe('one_j:5'), describe('two_j:5'), 'as by the batch script');

# ---------------------------------------------------------------------
# A marker of the wrong type: the change is rejected, naming its key.
# ---------------------------------------------------------------------
for my $side ('one', 'two')
{
	$node->safe_psql('postgres', "INSERT INTO ${side}_j VALUES (6, 'six', 0)");
	$redis->cli('DEL', "${side}_j:6#cbv");
	$redis->cli('RPUSH', "${side}_j:6#cbv", 'not a marker');
}
my $failed = CacheBridgeTest::stats($node)->{failed};
($r1, $r2) = both('j', q{UPDATE T SET v = 'rejected' WHERE id = 6});
my $answer = 'Redis answered "WRONGTYPE Operation against a key holding the wrong kind '
  . 'of value \\(a version marker\\) at key 1" for key';
like($r1->{stderr}, qr/WARNING:  cachebridge could not apply 1 effect.*\nDETAIL:  $answer "one_j:6"/,
	'the one-key script answers WRONGTYPE, and the WARNING names the key');
like($r2->{stderr}, qr/DETAIL:  $answer "two_j:6"/, 'as the batch script does');
is($redis->cli('GET', 'one_j:6'), '{"id":6,"v":"six","w":0}', 'the value is left alone');
is($redis->cli('TYPE', 'one_j:6#cbv'), 'list', 'and so is the marker');
is(describe('one_j:6'), describe('two_j:6'), 'as by the batch script');
is(CacheBridgeTest::stats($node)->{failed}, $failed + 2, 'both are counted failed');
$node->safe_psql('postgres', q{UPDATE one_j SET v = 'next' WHERE id = 1});
is($redis->cli('GET', 'one_j:1'), '{"id":1,"v":"next","w":2}', 'the next change is applied');

# the same for a deletion and a hash, under a marker that is a hash
for my $c ([ 'j', q{DELETE FROM T WHERE id = 8} ], [ 'h', q{UPDATE T SET v = 'x' WHERE id = 8} ])
{
	my ($k, $sql) = @$c;
	for my $side ('one', 'two')
	{
		$node->safe_psql('postgres', "INSERT INTO ${side}_$k VALUES (8, 'eight', 0)");
		$redis->cli('DEL', "${side}_$k:8#cbv");
		$redis->cli('HSET', "${side}_$k:8#cbv", 'f', 'not a marker');
	}
	my $before = describe("one_$k:8");
	($r1, $r2) = both($k, $sql);
	like($r1->{stderr}, qr/DETAIL:  $answer "one_$k:8"/, "$k, $sql: WRONGTYPE names the key");
	like($r2->{stderr}, qr/DETAIL:  $answer "two_$k:8"/, "$k, $sql: as from the batch script");
	is(describe("one_$k:8"), $before, "$k, $sql: nothing changed");
	is(describe("one_$k:8"), describe("two_$k:8"), "$k, $sql: as by the batch script");
}

# ---------------------------------------------------------------------
# The replies, and a version equal to the marker's (a retry, a replay):
# the calls a commit sent, as MONITOR saw them, are sent again by hand.
# ---------------------------------------------------------------------

# The arguments of a line of MONITOR output.
sub monitor_args
{
	my ($line) = @_;
	my @args;
	my %esc = (n => "\n", r => "\r", t => "\t", a => "\a", b => "\b");

	while ($line =~ /"((?:[^"\\]|\\.)*)"/g)
	{
		my $arg = $1;
		$arg =~ s{\\(?:x([0-9a-fA-F]{2})|(.))}{defined $1 ? chr(hex($1)) : ($esc{$2} // $2)}ge;
		push @args, $arg;
	}
	return @args;
}

my $monitor_log = CacheBridgeTest::scratch_dir('monitor') . '/monitor.log';
my $monitor = IPC::Run::start(
	[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'MONITOR' ],
	'<', \undef, '>', $monitor_log, '2>', '/dev/null');
sleep(0.3);
both('j', q{UPDATE T SET v = 'replayed', w = 3 WHERE id = 1});
both('i', q{INSERT INTO T VALUES (9, 'nine', 0)});
both('i', q{DELETE FROM T WHERE id = 9});
sleep(0.3);
$monitor->kill_kill;
my %sent;
for (split(/\n/, slurp_file($monitor_log)))
{
	my @args = monitor_args($_);
	next unless @args > 3 && uc($args[0]) eq 'EVALSHA';
	$sent{"$args[3]:$args[2]"} = \@args;
}
my $one_j = $sent{'one_j:1:2'};
my $two_j = $sent{'two_j:1:4'} // $sent{'two_j:999:4'};
my $one_i = $sent{'one_i:9:2'};
ok($one_j && $two_j && $one_i, 'MONITOR saw the calls');
isnt($one_j->[1], $two_j->[1], 'one key and two keys are calls of different scripts');
my $json = $redis->cli('GET', 'one_j:1');

# an equal version applies again, as the batch script's does
$redis->cli('SET', 'one_j:1', 'tampered');
$redis->cli('SET', 'two_j:1', 'tampered');
is($redis->cli(@$one_j), '1', 'a call at the marker\'s own version applies: reply 1');
is($redis->cli('GET', 'one_j:1'), $json, 'and writes the value again');
is($redis->cli(@$two_j), '2', 'the batch script\'s call at its version: reply 2');
is(describe('one_j:1'), describe('two_j:1'), 'both leave the same');

# a deletion's call again: the tombstone's version is its own
$redis->cli('SET', 'one_i:9', 'refilled');
is($redis->cli(@$one_i), '1', 'a deletion at the tombstone\'s version applies: reply 1');
is($redis->cli('EXISTS', 'one_i:9'), '0', 'and deletes the key again');

# a newer marker: reply 0, nothing written
$redis->cli('SET', 'one_j:1#cbv', 'W:newer');
$redis->cli('SET', 'one_j:1', 'newer value');
is($redis->cli(@$one_j), '0', 'under a newer marker the call answers 0');
is($redis->cli('GET', 'one_j:1'), 'newer value', 'and writes nothing');
is($redis->cli('GET', 'one_j:1#cbv'), 'W:newer', 'not even the marker');

$node->stop;
$redis->stop;
done_testing();
