# test/t/101_cluster_reshard.pl -- resharding a Redis Cluster under
# concurrent writers (issue 15).
#
# While pgbench updates rows of a write_through table and of an invalidate
# table, redis-cli --cluster reshard moves 600 slots from one master to
# another, then 300 of the second's to the third.  Keys of a slot
# in motion are answered with ASK (cachebridge follows it with ASKING),
# MOVED once a slot has moved (the map is refreshed), and TRYAGAIN when a
# script's key and marker are split by the migration (the effect stays in
# the outbox and the worker delivers it).  At the end the cache must hold
# exactly the committed rows: 0 stale, 0 lost, 0 phantom, and every key on
# the master that now owns its slot.  Last, a slot moved behind a session
# that still has the old map: its change of many slots, sent as one call
# per master, is refused by the master that lost the slot and sent again
# per slot.

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $cl = CacheBridgeTest::RedisCluster->new;
my $node = CacheBridgeTest::new_node(
	'reshard',
	redis_url => $cl->url,
	conf => [
		'cachebridge.connect_timeout = 500',
		'cachebridge.command_timeout = 1000',
	]);

$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	INSERT INTO item SELECT g, 0 FROM generate_series(1, 2000) AS g;
	CREATE TABLE ord (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('ord', 'order:{id}', 'invalidate');
	INSERT INTO ord SELECT g, 0 FROM generate_series(1, 500) AS g;
});
my $item_sql = q{SELECT 'item:' || id, row_to_json(item)::text FROM item};

# Compares the item keys of the cluster with the table; every key must be
# on the master owning its slot.
sub item_diff
{
	my %want = map { split(/\|/, $_, 2) }
	  grep { $_ ne '' } split(/\n/, $node->safe_psql('postgres', $item_sql));

	return $cl->diff('item:*', \%want);
}

is(join("\n", item_diff()), '', '2000 rows cached over three masters before the reshard');

# cached copies of the invalidate table's rows, which every update removes
$node->safe_psql('postgres',
	"SELECT count(cachebridge.set('order:' || g, 'cached')) FROM generate_series(1, 500) AS g");

my $dir = CacheBridgeTest::scratch_dir('reshard');
open(my $fh, '>', "$dir/w.sql") or die;
print $fh <<'EOF';
\set id random(1, 2000)
\set o random(1, 500)
BEGIN;
UPDATE item SET n = n + 1 WHERE id = :id;
UPDATE item SET n = n + 1 WHERE id = :id % 1000 + 1;
UPDATE ord SET n = n + 1 WHERE id = :o;
COMMIT;
EOF
close($fh);

# reshard(from, to, slots): moves slots between two masters with redis-cli
sub reshard
{
	my ($from, $to, $slots) = @_;
	my ($out, $err) = ('', '');

	# redis-cli refuses to reshard until every node agrees on the slots,
	# which takes a moment after the previous reshard: wait for that
	my $deadline = time + 30;
	while (time < $deadline)
	{
		my ($check, $cerr) = ('', '');
		IPC::Run::run([ 'redis-cli', '--cluster', 'check', '127.0.0.1:' . $from->port ],
			'<', \undef, '>', \$check, '2>', \$cerr, IPC::Run::timeout(30));
		last if $check =~ /All nodes agree about slots configuration/
		  && $check !~ /open slots|\[WARNING\]|\[ERR\]/;
		sleep(0.2);
	}
	IPC::Run::run(
		[
			'redis-cli', '--cluster', 'reshard', '127.0.0.1:' . $from->port,
			'--cluster-from', $from->cli('CLUSTER', 'MYID'),
			'--cluster-to', $to->cli('CLUSTER', 'MYID'),
			'--cluster-slots', $slots, '--cluster-yes',
			'--cluster-pipeline', '10'
		],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(180));
	return 1 if $out =~ /Moving slot/;
	diag("redis-cli --cluster reshard:\n$out$err");
	return 0;
}

my @m = $cl->masters;

# writers for as long as the reshard lasts: pgbench runs of 2 s, one after
# the other, until the flag file appears
my $flag = "$dir/done";
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[
		'bash', '-c',
		'while [ ! -e "$1" ]; do pgbench -n -h "$2" -p "$3" -c 2 -j 2 -T 2 -f "$4" postgres || exit 1; done',
		'writers', $flag, $node->host, $node->port, "$dir/w.sql"
	],
	'<', \undef, '>', \$out, '2>', \$err);
sleep(1);
ok(reshard($m[0], $m[1], 600), 'redis-cli moved 600 slots from the first master to the second');
ok(reshard($m[1], $m[2], 300), 'and 300 from the second to the third');
open(my $done_fh, '>', $flag) or die;
close($done_fh);
$bench->finish;
my $done = 0;
$done += $_ for $out =~ /actually processed: (\d+)/g;
my @failed = grep { $_ > 0 } $out =~ /number of failed transactions: (\d+)/g;
ok($done > 0, "writers committed $done transactions during the reshard") or diag($out . $err);
is(scalar(@failed), 0, 'no writer transaction failed');
is($bench->full_result(0) >> 8, 0, 'every pgbench run succeeded') or diag($err);

# the writers' sessions kept their slot maps across the moves: the masters
# must have redirected some of their commands (and the end state below
# shows they were followed)
my %redirects = (MOVED => 0, ASK => 0);
for my $n ($cl->masters)
{
	my $info = $n->cli('INFO', 'errorstats');
	$redirects{$1} += $2 while $info =~ /errorstat_(MOVED|ASK):count=(\d+)/g;
}
ok($redirects{MOVED} + $redirects{ASK} > 0,
	"the masters answered MOVED $redirects{MOVED} and ASK $redirects{ASK} times during the reshard");

$cl->wait_ok;
ok(defined CacheBridgeTest::wait_outbox_empty($node, 90),
	'the outbox drains after the reshard');
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
	't', 'wait_delivered is true');
is(join("\n", item_diff()), '',
	'after the reshard: 0 stale, 0 lost, 0 phantom, each key on its new master');

my @updated = split(/\n/, $node->safe_psql('postgres',
		'SELECT id FROM ord WHERE n > 0 ORDER BY id'));
my @left = grep { defined $cl->get("order:$_") } @updated;
ok(@updated > 0, scalar(@updated) . ' invalidate rows were updated');
is(scalar(@left), 0, 'none of them is still cached');

# after the reshard new writes go to the new owners at once
$node->safe_psql('postgres', 'UPDATE item SET n = -1 WHERE id <= 100');
is(join("\n", item_diff()), '', 'a later update lands on the new owners');

# A session whose slot map went stale sends a change of many slots as one
# call per master (CB_SCRIPT_WRITE_NODE); the master that lost a slot
# refuses it ("non local key"), and the session sends it again per slot,
# following the MOVED: nothing is lost, every key lands on its new owner.
my $session = $node->background_psql('postgres', on_error_stop => 0);
$session->query_safe('UPDATE item SET n = n + 1');		# the map is loaded
# move the slot of item:1 (with its keys) to another master, by hand, as
# the cluster specification describes a migration
my $slot = $cl->keyslot('item:1');
my $from = $cl->master_of('item:1');
my ($to) = grep { $_->port != $from->port } $cl->masters;
my ($from_id, $to_id) = map { $_->cli('CLUSTER', 'MYID') } $from, $to;
$to->cli('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id);
$from->cli('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id);
while (my @k = grep { $_ ne '' } split(/\n/, $from->cli('CLUSTER', 'GETKEYSINSLOT', $slot, 100)))
{
	$from->cli('MIGRATE', '127.0.0.1', $to->port, '', 0, 5000, 'KEYS', @k);
}
$_->cli('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id) for $cl->masters;
$cl->wait_ok;
is($cl->master_of('item:1')->port, $to->port, "slot $slot moved behind the session's back");
$_->cli('CONFIG', 'RESETSTAT') for $cl->masters;
my $res = CacheBridgeTest::bg_query($session, 'UPDATE item SET n = n + 1000');
is($res->{stderr}, '', 'the stale session updates every row without an error');
my ($nonlocal, $moved_n) = (0, 0);
for my $n ($cl->masters)
{
	my $info = $n->cli('INFO', 'errorstats');
	$nonlocal += $1 while $info =~ /errorstat_ERR:count=(\d+)/g;
	$moved_n += $1 while $info =~ /errorstat_MOVED:count=(\d+)/g;
}
ok($nonlocal > 0 && $moved_n > 0,
	"a master refused the stale call ($nonlocal ERR) and the per-slot calls were moved ($moved_n MOVED)");
$session->quit;
ok(defined CacheBridgeTest::wait_outbox_empty($node, 30), 'the outbox drains');
is(join("\n", item_diff()), '', 'after the stale call: 0 stale, 0 lost, 0 phantom');

done_testing;
