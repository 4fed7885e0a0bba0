# test/t/100_cluster.pl -- cachebridge against a real Redis Cluster
# (issue 15): three masters with a replica each, started by
# CacheBridgeTest::RedisCluster on loopback ports and stopped at the end.
#
# Every SQL function and every trigger mode runs with key templates that
# have no {hash tag}, so their keys (and markers) spread over the masters;
# each key must be where the cluster says its slot is, with key_slot()
# agreeing with CLUSTER KEYSLOT.  Then: one transaction touching all three
# masters; pattern deletion over every master, and the floor it leaves
# refusing an older fill; durable delivery while one
# master is down (nothing acknowledged early, all delivered when it
# returns); a manual failover and a killed master under concurrent
# writers, after which the cache holds exactly the committed rows.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $cl = CacheBridgeTest::RedisCluster->new;
my @masters = $cl->masters;
is(scalar @masters, 3, 'the cluster has three masters');

my $node = CacheBridgeTest::new_node(
	'cluster',
	redis_url => $cl->url,
	conf => [
		'cachebridge.connect_timeout = 500',
		'cachebridge.command_timeout = 1000',
	]);

# The (key, value) rows of a query, as a hash.
sub rows
{
	my ($sql) = @_;

	return { map { split(/\|/, $_, 2) }
		  grep { $_ ne '' } split(/\n/, $node->safe_psql('postgres', $sql)) };
}

# Compares the keys of the cluster matching $pattern (markers left out)
# with the (key, value) rows of $sql, each key on its slot's master;
# returns the differences.
sub cluster_diff
{
	my ($pattern, $sql) = @_;

	return $cl->diff($pattern, rows($sql));
}

# The masters (by port) that hold at least one of @keys, each checked to be
# the master of its key's slot.
sub masters_holding
{
	my (@keys) = @_;
	my %ports;

	for my $k (@keys)
	{
		my $m = $cl->master_of($k);
		$ports{ $m->port } = 1 if $m->cli('EXISTS', $k) eq '1';
	}
	return scalar keys %ports;
}

# ---------------------------------------------------------------------
# Cache-aside functions, keys of many slots in one call
# ---------------------------------------------------------------------
my @keys = map { "user:$_" } 1 .. 30;
my $array = "ARRAY[" . join(',', map { "'$_'" } @keys) . "]";
$node->safe_psql('postgres',
	join('', map { "SELECT cachebridge.set('$_', 'v-$_');\n" } @keys));
is($cl->get('user:7'), 'v-user:7', 'set writes where the cluster routes the key');
is(masters_holding(@keys), 3, 'thirty keys without hash tags land on all three masters');
is($node->safe_psql('postgres', "SELECT cachebridge.get('user:7')"),
	'v-user:7', 'get reads from the owning master');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM cachebridge.mget($array) WHERE value = 'v-' || key"),
	'30', 'mget of thirty keys over three masters returns each value');

# key_slot agrees with the cluster for every key written
my $mismatch = 0;
for my $k (@keys)
{
	$mismatch++
	  if $node->safe_psql('postgres', "SELECT cachebridge.key_slot('$k')") ne
	  $cl->keyslot($k);
}
is($mismatch, 0, 'key_slot() agrees with CLUSTER KEYSLOT for every key written');

is($node->safe_psql('postgres', "SELECT cachebridge.del(VARIADIC $array)"),
	'30', 'del of thirty keys over three masters counts all of them');
is(scalar(grep { defined } $cl->mget(@keys)), 0, 'and every one is gone');

# a hash, for get_hash
$cl->cli_c('HSET', 'profile:9', 'name', 'ann', 'age', '7');
is($node->safe_psql('postgres', "SELECT cachebridge.get_hash('profile:9') ->> 'name'"),
	'ann', 'get_hash reads a hash from its master');

# ---------------------------------------------------------------------
# Hostile key names: stray braces, an empty tag, a tag, a '}' alone.  Each
# key's marker must land in its key's slot (else the scripts would answer
# CROSSSLOT), and a name holding a cluster marker's tag is refused.
# ---------------------------------------------------------------------
{
	# (a here-document: the names' braces do not pair up)
	$node->safe_psql('postgres', <<'SQL');
		CREATE TABLE odd (id int PRIMARY KEY, k text NOT NULL, v int);
		SELECT cachebridge.attach('odd', 'odd:{k}');
		INSERT INTO odd VALUES (1, 'a{b', 1), (2, 'x{}y', 2), (3, 'a}b', 3),
		  (4, '{tag}z', 4), (5, 'plain', 5), (6, '{', 6), (7, '}{', 7);
		UPDATE odd SET v = v + 10;
		DELETE FROM odd WHERE id = 7;
SQL
	is(join("\n", cluster_diff('odd:*',
		q{SELECT 'odd:' || k, row_to_json(odd)::text FROM odd})), '',
		'keys with stray braces, an empty tag, a tag or a lone brace are written and updated on their masters');
	my $all = $cl->dump('*odd:*');
	my @markers = grep { /#cbv$/ } keys %$all;
	my $misplaced = grep { $all->{$_}{port} != $all->{$_}{owner} } @markers;
	ok(@markers >= 7, scalar(@markers) . ' markers of the odd keys, the deleted one included');
	is($misplaced, 0, 'each on the master of its slot');
	my %slot_of = map { $_ => $all->{$_}{slot} } keys %$all;
	my $apart = 0;
	for my $k (grep { !/#cbv$/ } keys %$all)
	{
		my @own = grep {
			$_ eq "$k#cbv"
			  || /^\Q$k\E\{[0-9A-Za-z]+#cbv\}#cbv$/
			  || /^\{[0-9A-Za-z]+#cbv\}\Q$k\E#cbv$/
		} @markers;
		$apart++ unless @own == 1;
		$apart++ if grep { $slot_of{$_} != $slot_of{$k} } @own;
	}
	is($apart, 0, 'and in the slot of its key');

	my $r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.set('x#cbv}y', 'v')");
	like($r->{stderr}, qr/is reserved for a cachebridge version marker.*\n.*holding "#cbv\}"/,
		'a key holding "#cbv}" is refused as a marker name');
	$r = CacheBridgeTest::run_sql($node,
		"INSERT INTO odd VALUES (8, 'evil{X#cbv}#cbv', 8), (9, 'evil{Y#cbv}', 9)");
	like($r->{stderr}, qr/refused a key reserved for version markers/,
		'a trigger refuses keys that would be cluster marker names');
	is($cl->get('odd:evil{Y#cbv}'), undef, 'and writes nothing under them');
}

# ---------------------------------------------------------------------
# Triggers: write_through, invalidate, publish and notify
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
	CREATE TABLE hitem (id int PRIMARY KEY, name text);
	SELECT cachebridge.attach('hitem', 'hitem:{id}', 'write_through', NULL, 'format=hash');
	CREATE TABLE ord (id int PRIMARY KEY, user_id int);
	SELECT cachebridge.attach('ord', 'order:{id}', 'invalidate');
	CREATE TABLE ev (id int PRIMARY KEY, v int);
	SELECT cachebridge.attach('ev', 'events:ev', 'publish');
});

my $item_sql = q{SELECT 'item:' || id, row_to_json(item)::text FROM item};
$node->safe_psql('postgres',
	'INSERT INTO item SELECT g, 0 FROM generate_series(1, 200) AS g');
is(join("\n", cluster_diff('item:*', $item_sql)), '',
	'write_through: 200 inserted rows are each on their master');
is(masters_holding(map { "item:$_" } 1 .. 200), 3, 'spread over all three masters');

$node->safe_psql('postgres', 'UPDATE item SET n = n + 1 WHERE id % 3 = 0');
$node->safe_psql('postgres', 'DELETE FROM item WHERE id % 7 = 0');
$node->safe_psql('postgres', 'UPDATE item SET id = id + 1000 WHERE id = 1');
is(join("\n", cluster_diff('item:*', $item_sql)), '',
	'write_through: updates, deletes and a key change are applied');

# A change of many keys goes to each master in one call of the write
# script (CB_SCRIPT_WRITE_NODE), not one call per slot: about 170 rows,
# nearly every one of a slot of its own, three calls.
$_->cli('CONFIG', 'RESETSTAT') for @masters;
$node->safe_psql('postgres', 'UPDATE item SET n = n + 10');
my $calls = 0;
for my $m (@masters)
{
	my ($c) = $m->cli('INFO', 'commandstats') =~ /cmdstat_evalsha:calls=(\d+)/;
	$calls += $c // 0;
}
cmp_ok($calls, '<=', 3, "an UPDATE of every row: $calls script calls over the three masters");
is(join("\n", cluster_diff('item:*', $item_sql)), '',
	'and every row is on its master, updated');

# A flushed script cache: the masters answer the node calls NOSCRIPT; the
# calls go again per slot, the scripts are loaded again, and nothing is lost
$_->cli('SCRIPT', 'FLUSH') for @masters;
$node->safe_psql('postgres', 'UPDATE item SET n = n + 1');
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'), 't',
	'after SCRIPT FLUSH on every master, the change is delivered');
is(join("\n", cluster_diff('item:*', $item_sql)), '',
	'and every row is on its master, updated');

$node->safe_psql('postgres',
	"INSERT INTO hitem VALUES (1, 'a'), (2, 'b'), (3, 'c')");
is($cl->cli_c('HGET', 'hitem:2', 'name'), 'b', 'format=hash writes a hash on its master');

$node->safe_psql('postgres',
	join('', map { "SELECT cachebridge.set('order:$_', 'cached');\n" } 1 .. 20));
$node->safe_psql('postgres',
	'INSERT INTO ord SELECT g, g FROM generate_series(1, 20) AS g');
is(scalar(grep { defined } $cl->mget(map { "order:$_" } 1 .. 20)), 0,
	'invalidate deletes twenty cached keys over the masters');
is($node->safe_psql('postgres', "SELECT cachebridge.set('order:3', 'fresh')"), 't',
	'a fill after the invalidation is taken');
is($cl->get('order:3'), 'fresh', 'and written on the key\'s master');

# A fill from a snapshot that does not see a committed invalidation is
# refused: the script reads the key's marker, in the key's slot.
{
	my $reader = $node->background_psql('postgres', on_error_stop => 0);
	$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;');
	$node->safe_psql('postgres', 'UPDATE ord SET user_id = 0 WHERE id = 4');
	is($reader->query_safe("SELECT cachebridge.set('order:4', 'old read')"), 'f',
		'a fill from an older snapshot is refused by the marker of the invalidation');
	$reader->query_safe('COMMIT');
	$reader->quit;
	is($cl->get('order:4'), undef, 'and the key stays deleted');
}

# Every marker is in its key's slot, on its key's master, and begins with
# the key (its namespace), without the templates having a hash tag.
{
	my $bad = 0;
	for my $id (2 .. 6)
	{
		my $key = "item:$id";
		my $master = $cl->master_of($key);
		my @markers = grep { /#cbv$/ } $master->scan_keys("$key\{*");
		$bad++ unless @markers == 1 && $cl->keyslot($markers[0]) == $cl->keyslot($key);
	}
	is($bad, 0, "the markers of item:2..6 are one each, beside their key, in its slot");
}

# A marker of another type rejects its key alone, and the WARNING names
# that key, not the first key of the call: the router splits the write
# script's call per slot, and gives the key a part's answer names its place
# in the whole call (cluster.c).
{
	my $master = $cl->master_of('item:50');
	my ($marker) = grep { /#cbv$/ } $master->scan_keys("item:50\{*");
	$master->cli('DEL', $marker);
	$master->cli('RPUSH', $marker, 'not a marker');
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET cachebridge.delivery = sync; UPDATE item SET n = n + 1 WHERE id BETWEEN 2 AND 100");
	like($err, qr/at key \d+" for key "item:50"\./,
		'a key rejected in a call split per slot is the key the WARNING names');
	$master->cli('DEL', $marker);
	$node->safe_psql('postgres', 'UPDATE item SET n = n WHERE id = 50');
	is(join("\n", cluster_diff('item:*', $item_sql)), '', 'the other keys of the call were applied');
}

$node->safe_psql('postgres', 'INSERT INTO ev VALUES (1, 1), (2, 2)');
is($cl->cli_c('XLEN', 'events:ev'), '2', 'publish appends to the stream on its master');
$node->safe_psql('postgres', 'UPDATE ev SET v = 3');
is($cl->cli_c('XLEN', 'events:ev'), '4', 'and again, exactly once per row change');

# notify=: PUBLISH reaches a subscriber on any node
{
	$node->safe_psql('postgres', q{
		CREATE TABLE nt (id int PRIMARY KEY);
		SELECT cachebridge.attach('nt', 'nt:{id}', 'write_through', NULL, 'notify=chan');
	});
	my $out = '';
	my $sub = IPC::Run::start(
		[ 'redis-cli', '-p', $masters[2]->port, 'SUBSCRIBE', 'chan' ],
		'<', \undef, '>', \$out, '2>', \my $err);
	sleep(0.5);
	$node->safe_psql('postgres', 'INSERT INTO nt VALUES (5)');
	my $t0 = time;
	$sub->pump_nb while $out !~ /nt:5/ && time - $t0 < 5 && sleep(0.05);
	$sub->kill_kill;
	like($out, qr/nt:5/, 'notify= PUBLISHes the key, seen by a subscriber on another master');
}

# notify= after a redirection: the PUBLISH waits for the write it
# announces.  A session's slot map goes stale (an empty slot moves to
# another master behind its back), so its write of a key of that slot is
# answered MOVED by the old master and sent again to the new one; the
# PUBLISH, on its channel's master, must still run after the write
# (before, it ran in the first round, while the write was being
# redirected, and a subscriber re-reading the key found it unchanged).
# MONITOR on both masters gives the time each command ran.
{
	my $chan_master = $cl->master_of('chan2');
	my @others = grep { $_->port != $chan_master->port } @masters;
	my ($from, $to) = @others;
	# a key of a slot of $from holding no key yet
	my ($id) = grep {
		$cl->master_of("nm:$_")->port == $from->port
		  && $from->cli('CLUSTER', 'COUNTKEYSINSLOT', $cl->keyslot("nm:$_")) eq '0'
	} 1 .. 200;
	my $slot = $cl->keyslot("nm:$id");
	$node->safe_psql('postgres', q{
		CREATE TABLE nm (id int PRIMARY KEY);
		SELECT cachebridge.attach('nm', 'nm:{id}', 'write_through', NULL, 'notify=chan2');
	});
	my $session = $node->background_psql('postgres', on_error_stop => 0);
	# the session learns the slot map
	$session->query_safe("SELECT cachebridge.set('nm:warm', 'x')");

	my $to_id = $to->cli('CLUSTER', 'MYID');
	$_->cli('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id) for ($to, $from, $chan_master);
	my $t0 = time;
	sleep(0.1) while $cl->master_of("nm:$id")->port != $to->port && time - $t0 < 10;
	my $moved0 = ($from->cli('INFO', 'errorstats') =~ /errorstat_MOVED:count=(\d+)/)[0] // 0;

	my ($mon_to, $mon_chan) = ('', '');
	my @monitors = map {
		IPC::Run::start([ 'redis-cli', '-p', $_->[0]->port, 'MONITOR' ],
			'<', \undef, '>', $_->[1], '2>', \my $e)
	} ([ $to, \$mon_to ], [ $chan_master, \$mon_chan ]);
	sleep(0.5);
	$session->query_safe("INSERT INTO nm VALUES ($id)");
	$t0 = time;
	while (($mon_chan !~ /"PUBLISH" "chan2"/ || $mon_to !~ /"nm:$id"/) && time - $t0 < 10)
	{
		$_->pump_nb for @monitors;
		sleep(0.05);
	}
	$_->kill_kill for @monitors;
	$session->quit;

	my $moved = ($from->cli('INFO', 'errorstats') =~ /errorstat_MOVED:count=(\d+)/)[0] // 0;
	cmp_ok($moved, '>', $moved0, 'notify= after a reshard: the old master answered MOVED');
	my ($write_at) = $mon_to =~ /^(\d+\.\d+) \[[^\]]*\] "EVALSHA" [^\n]*"nm:$id"/m;
	my ($publish_at) = $mon_chan =~ /^(\d+\.\d+) \[[^\]]*\] "PUBLISH" "chan2"/m;
	ok(defined $write_at && defined $publish_at,
		'notify= after a reshard: the write and the PUBLISH both ran')
	  or diag("on the new master:\n$mon_to\non the channel's master:\n$mon_chan");
	cmp_ok($publish_at // 0, '>', $write_at // 9e9,
		'notify= after a reshard: the PUBLISH ran after the redirected write');
	is($cl->get("nm:$id"), qq({"id":$id}), 'notify= after a reshard: the key is written');
}

# ---------------------------------------------------------------------
# One transaction touching all three masters
# ---------------------------------------------------------------------
{
	# a key of each master's slots
	my %by_port;
	for my $i (2000 .. 2100)
	{
		my $m = $cl->master_of("item:$i");
		$by_port{ $m->port } //= $i;
	}
	is(scalar keys %by_port, 3, 'found ids whose keys are on each master');
	my $ids = join(',', values %by_port);
	my $rt0 = CacheBridgeTest::stats($node)->{round_trips};
	$node->safe_psql('postgres',
		"BEGIN; INSERT INTO item SELECT unnest(ARRAY[$ids]), 42; COMMIT;");
	is(join(',', map { defined $cl->get("item:$_") ? 1 : 0 } values %by_port),
		'1,1,1', 'one transaction wrote a key on each of the three masters');
	is(join("\n", cluster_diff('item:*', $item_sql)), '', 'cache matches the table');
}

# ---------------------------------------------------------------------
# refresh(): a batch's copies, plain commands sent before it commits
# (MSET and UNLINK split per slot by the router, SET ... EX, DEL + HSET),
# land each on its slot's master, and leave no marker
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE rfc (id int PRIMARY KEY, name text);
	INSERT INTO rfc SELECT g, 'n' || g FROM generate_series(1, 2000) AS g;
	CREATE TRIGGER rfc_json AFTER INSERT OR UPDATE OR DELETE ON rfc
	    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfc:{id}');
	CREATE TRIGGER rfc_ttl AFTER INSERT OR UPDATE OR DELETE ON rfc
	    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfct:{id}', 'ttl=600');
	CREATE TRIGGER rfc_hash AFTER INSERT OR UPDATE OR DELETE ON rfc
	    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfch:{id}', 'format=hash');
	CREATE TRIGGER rfc_inv AFTER INSERT OR UPDATE OR DELETE ON rfc
	    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('rfci:{id}');
});
$node->safe_psql('postgres',
	join('', map { "SELECT cachebridge.set('rfci:$_', 'cached');\n" } 1 .. 20));
$node->safe_psql('postgres', "CALL cachebridge.refresh('rfc')");
is(join("\n", cluster_diff('rfc:*', q{SELECT 'rfc:' || id, row_to_json(rfc)::text FROM rfc})),
	'', 'refresh: every row copied, each on its slot\'s master');
is(join("\n", cluster_diff('rfct:*', q{SELECT 'rfct:' || id, row_to_json(rfc)::text FROM rfc})),
	'', 'refresh: with a ttl too');
my $ttl = $cl->cli_c('TTL', 'rfct:1234');
ok($ttl > 500 && $ttl <= 600, "refresh: the ttl is set ($ttl)");
is($cl->cli_c('HGET', 'rfch:1234', 'name'), 'n1234', 'refresh: format=hash on its master');
is(scalar(grep { defined } $cl->mget(map { "rfci:$_" } 1 .. 20)), 0,
	'refresh: invalidate deleted the cached keys over the masters');
is(scalar(grep { /#cbv$/ } $cl->scan_keys('rfc*')), 0, 'refresh: the copies wrote no marker');

# ---------------------------------------------------------------------
# cluster_nodes(): the slot map as the session sees it
# ---------------------------------------------------------------------
{
	my ($nmasters, $covered) = split(/\|/, $node->safe_psql('postgres', q{
		SELECT count(*), sum(upper(r) - lower(r))
		FROM cachebridge.cluster_nodes() AS n,
		  LATERAL (SELECT int4range(split_part(x, '-', 1)::int, split_part(x, '-', 2)::int, '[]') AS r
		           FROM unnest(string_to_array(n.slots, ' ')) AS x) AS ranges
		WHERE n.role = 'master' AND n.slots <> ''
	}));
	my $masters_seen = $node->safe_psql('postgres',
		"SELECT string_agg(node, ',' ORDER BY node) FROM cachebridge.cluster_nodes() WHERE role = 'master'");
	is($masters_seen, join(',', sort map { '127.0.0.1:' . $_->port } @masters),
		'cluster_nodes() lists the three masters');
	is($covered, 16384, 'and their slot ranges cover all 16384 slots');
}

# ---------------------------------------------------------------------
# Pattern deletion over every master
# ---------------------------------------------------------------------
is($node->safe_psql('postgres', "SELECT cachebridge.invalidate_pattern('item:*')"),
	scalar(keys %{ rows($item_sql) }),
	'invalidate_pattern counts the keys of all three masters');
is(scalar(grep { !/#cbv$/ } $cl->scan_keys('item:*')), 0,
	'and no item key is left on any master');

$node->safe_psql('postgres', 'UPDATE item SET n = n + 1');
is(join("\n", cluster_diff('item:*', $item_sql)), '', 'rewritten by an update');
# A fill from a snapshot older than the TRUNCATE, of a key it did not find
# (not cached then), is refused by the floor of "item:", which is in a slot
# of its own: read before the fill (a script reads its own slot only).
my $reader = $node->background_psql('postgres', on_error_stop => 0);
# (its snapshot is taken by a query that locks nothing TRUNCATE waits for)
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;');
$node->safe_psql('postgres', 'TRUNCATE item');
is(scalar(grep { !/#cbv$/ } $cl->scan_keys('item:*')), 0,
	'TRUNCATE removes the keys of every master');
isnt($cl->keyslot('item:#cbv#cbv'), $cl->keyslot('item:777'),
	'the floor of item: is in another slot than item:777');
is($reader->query_safe("SELECT cachebridge.set('item:777', 'old read')"), 'f',
	'a fill from a snapshot older than the TRUNCATE is refused by its floor');
$reader->query_safe('COMMIT');
$reader->quit;
is($cl->get('item:777'), undef, 'and writes nothing');
is($node->safe_psql('postgres',
		"SELECT cachebridge.set('item:777', 'new read'); SELECT cachebridge.del('item:777')"),
	"t\n1", 'a fill from a newer snapshot is taken');

# ---------------------------------------------------------------------
# Durable delivery with one master down
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres',
		'INSERT INTO item SELECT g, 1 FROM generate_series(1, 60) AS g');
	is(join("\n", cluster_diff('item:*', $item_sql)), '', 'sixty rows cached');

	my $down = $cl->master_of('item:1');
	my $replica = $cl->replica_of($down);
	# keep the replica from taking over: this is an outage, not a failover
	$replica->cli('CONFIG', 'SET', 'cluster-replica-no-failover', 'yes');
	$down->stop;

	my $failed_on = $node->safe_psql('postgres', q{
		UPDATE item SET n = 2;
		SELECT node FROM cachebridge.cluster_nodes() WHERE errors > 0 AND last_error IS NOT NULL;
	});
	is($failed_on, '127.0.0.1:' . $down->port,
		'cluster_nodes() of the committing session shows the errors of the master that is down');
	my $pending = $node->safe_psql('postgres',
		'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead');
	ok($pending > 0, "with a master down the commit's effects stay in the outbox ($pending rows)");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(1000)'),
		'f', 'wait_delivered is false while a master is down');

	$down->start;
	$cl->wait_ok;
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 60),
		'the outbox drains once the master is back');
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
		't', 'wait_delivered is true then');
	is(join("\n", cluster_diff('item:*', $item_sql)), '',
		'every effect was delivered, on every master');
	$replica->cli('CONFIG', 'SET', 'cluster-replica-no-failover', 'no');
}

# ---------------------------------------------------------------------
# Failover under writers: CLUSTER FAILOVER, then a killed master
# ---------------------------------------------------------------------
sub run_writers
{
	my ($during) = @_;
	my $dir = CacheBridgeTest::scratch_dir('writers');
	my $script = "$dir/w.sql";
	open(my $fh, '>', $script) or die;
	print $fh "\\set id random(1, 60)\nUPDATE item SET n = n + 1 WHERE id = :id;\n";
	close($fh);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port,
			'-c', 2, '-j', 2, '-T', 6, '-f', $script, 'postgres' ],
		'<', \undef, '>', \$out, '2>', \$err);
	sleep(1.5);
	$during->();
	$h->finish;
	return ($out =~ /actually processed: (\d+)/)[0] // 0;
}

{
	my $old = $cl->master_of('item:2');
	my $done = run_writers(sub { $cl->failover($old) });
	ok($done > 0, "writers committed $done transactions across a CLUSTER FAILOVER");
	isnt($cl->master_of('item:2')->port, $old->port, 'the slot has a new master');
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 60), 'outbox drained');
	is(join("\n", cluster_diff('item:*', $item_sql)), '',
		'after the manual failover: 0 stale, 0 lost, 0 phantom');
}

{
	my $victim = $cl->master_of('item:3');
	my $done = run_writers(sub { $victim->stop; });
	ok($done > 0, "writers committed $done transactions while a master was killed");
	$cl->wait_ok;
	isnt($cl->master_of('item:3')->port, $victim->port, 'a replica took over its slots');
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 60), 'outbox drained');
	is(join("\n", cluster_diff('item:*', $item_sql)), '',
		'after the killed master: 0 stale, 0 lost, 0 phantom');
}

done_testing;
