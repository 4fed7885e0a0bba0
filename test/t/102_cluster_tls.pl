# test/t/102_cluster_tls.pl -- cachebridge against a Redis Cluster over TLS
# (issue 15): three masters with a replica each, every node with a TLS port,
# the nodes talking TLS among themselves (tls-cluster, tls-replication),
# cachebridge.redis_url a rediss:// seed.
#
# Covered: the cluster is detected through the TLS seed and its map names
# the TLS ports (what Redis 7.0 announces to a TLS client, checked with
# redis-cli --tls); one transaction writes on all three masters, each
# connection on the node's TLS port; a slot migrated to another master is
# followed after MOVED; a master learned from the slot map (not a seed)
# whose certificate the configured CA does not vouch for is refused, its
# durable effects kept until it presents one that verifies; a killed
# master's durable effects are kept and delivered to the replica that
# takes over, over TLS; cluster_nodes() shows the nodes.  Last, a cluster
# whose bus is plain TCP (tls-cluster no) announces its plain ports even to
# TLS clients: cachebridge refuses them rather than falling back to plain
# TCP.

use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $certs = CacheBridgeTest::make_certs();

# The nodes trust both CAs among themselves, so that one of them can
# present a certificate of the other CA (below) without the cluster bus
# or replication noticing; cachebridge is given ca.crt only.
my $node_cas = "$certs/both-cas.crt";
{
	open(my $out, '>', $node_cas) or die "$node_cas: $!";
	print $out slurp_file("$certs/ca.crt"), slurp_file("$certs/other-ca.crt");
	close($out);
}

my $cl = CacheBridgeTest::RedisCluster->new(tls => $certs, tls_ca => $node_cas);
my @masters = $cl->masters;
is(scalar @masters, 3, 'the TLS cluster has three masters');
my %tls_port_of = map { $_->port => $_->tls_port } $cl->nodes;

my $node = CacheBridgeTest::new_node(
	'cluster_tls',
	redis_url => $cl->url(tls => 1),
	conf => [
		"cachebridge.tls_ca_file = '$certs/ca.crt'",
		'cachebridge.connect_timeout = 1000',
		'cachebridge.command_timeout = 2000',
	]);
like($cl->url(tls => 1), qr{^rediss://127\.0\.0\.1:\d+,127\.0\.0\.1:\d+/0$},
	'redis_url names two seeds by rediss://');

# The (key, value) rows of a query, as a hash.
sub rows
{
	my ($sql) = @_;

	return { map { split(/\|/, $_, 2) }
		  grep { $_ ne '' } split(/\n/, $node->safe_psql('postgres', $sql)) };
}

# The cachebridge connections of $redis, from its CLIENT LIST.
sub cachebridge_clients
{
	my ($redis) = @_;

	return grep { /name=cachebridge:/ } split(/\n/, $redis->cli('CLIENT', 'LIST'));
}

# An id whose key item:<id> is on $master, from $from on.
sub id_on
{
	my ($master, $from) = @_;

	for my $id ($from .. $from + 500)
	{
		return $id if $cl->master_of("item:$id")->port == $master->port;
	}
	die 'no key on ' . $master->port;
}

# ---------------------------------------------------------------------
# What a TLS client is told: the TLS ports, in CLUSTER SLOTS and MOVED
# ---------------------------------------------------------------------
{
	# the numbers of the reply: slots, and the port of each node listed
	# (once the replicas are listed too: the masters learn of them by gossip)
	my %tls = map { $_ => 1 } values %tls_port_of;
	my ($slots, @numbers);
	my $t0 = time;
	do
	{
		$slots = $masters[0]->cli_tls('CLUSTER', 'SLOTS');
		@numbers = $slots =~ /^(\d+)$/mg;
	  } while (grep({ $tls{$_} || $tls_port_of{$_} } @numbers) < 6
		&& time - $t0 < 10
		&& sleep(0.2));
	is(scalar(grep { $tls{$_} } @numbers), 6,
		'CLUSTER SLOTS over TLS announces the TLS port of every master and replica')
	  or diag($slots);
	is(scalar(grep { $tls_port_of{$_} } @numbers), 0, 'and no plain port');
	my $key = 'item:1';
	my ($other) = grep { $_->port != $cl->master_of($key)->port } @masters;
	my ($moved_to) = $other->cli_tls('GET', $key) =~ /MOVED \d+ 127\.0\.0\.1:(\d+)/;
	is($moved_to, $cl->master_of($key)->tls_port,
		'MOVED to a TLS client names the TLS port of the owner');
}

# ---------------------------------------------------------------------
# Detection through the TLS seed; every connection is TLS
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
});
my $item_sql = q{SELECT 'item:' || id, row_to_json(item)::text FROM item};

is($node->safe_psql('postgres', "SELECT cachebridge.set('tls:k', 'over tls'); SELECT cachebridge.get('tls:k')"),
	"t\nover tls", 'set and get through the TLS seed');
is($cl->get('tls:k'), 'over tls', 'the value is on the master of its slot');
is($node->safe_psql('postgres',
		"SELECT string_agg(node, ',' ORDER BY node) FROM cachebridge.cluster_nodes() WHERE role = 'master'"),
	join(',', sort map { '127.0.0.1:' . $_->tls_port } @masters),
	'cluster_nodes() lists the three masters at their TLS ports');

# one transaction touching all three masters
{
	my @ids = map { id_on($_, 1) } @masters;
	$node->safe_psql('postgres',
		'INSERT INTO item SELECT g, 0 FROM generate_series(1, 100) AS g');
	$node->safe_psql('postgres',
		'BEGIN; UPDATE item SET n = 1 WHERE id IN (' . join(',', @ids) . '); COMMIT;');
	is(join(',', map { $cl->get("item:$_") } @ids),
		join(',', map { qq({"id":$_,"n":1}) } @ids),
		'one transaction wrote a key on each of the three masters');
	is(join("\n", $cl->diff('item:*', rows($item_sql))), '',
		'the cache matches the table, each key on its master');
	# a session that stays, writing on every master
	my $session = $node->background_psql('postgres', on_error_stop => 0);
	$session->query_safe('UPDATE item SET n = 1 WHERE id IN (' . join(',', @ids) . ')');
	my ($on_tls, $plain) = (0, 0);
	for my $m (@masters)
	{
		my ($p, $tp) = ($m->port, $m->tls_port);
		$on_tls++ if grep { /laddr=127\.0\.0\.1:$tp / } cachebridge_clients($m);
		$plain += grep { /laddr=127\.0\.0\.1:$p / } cachebridge_clients($m);
	}
	$session->quit;
	is($on_tls, 3, 'a session is connected to every master on its TLS port');
	is($plain, 0, 'and cachebridge to none on its plain port');
}

# ---------------------------------------------------------------------
# A slot migrated to another master, its key with it: MOVED over TLS
# ---------------------------------------------------------------------
{
	my $session = $node->background_psql('postgres', on_error_stop => 0);
	$session->query_safe('SELECT count(*) FROM item');
	$session->query_safe("UPDATE item SET n = 2 WHERE id = 1");

	my $from = $cl->master_of('item:1');
	my ($to) = grep { $_->port != $from->port } @masters;
	my $slot = $cl->keyslot('item:1');
	my $to_id = $to->cli('CLUSTER', 'MYID');
	my $from_id = $from->cli('CLUSTER', 'MYID');
	$to->cli('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id);
	$from->cli('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id);
	my @in_slot = split(/\n/, $from->cli('CLUSTER', 'GETKEYSINSLOT', $slot, 100));
	ok(scalar(@in_slot) >= 2, 'the slot of item:1 holds the key and its marker');
	# MIGRATE between nodes of a TLS cluster goes over TLS, to the TLS port
	is($from->cli('MIGRATE', '127.0.0.1', $to->tls_port, '', 0, 5000, 'KEYS', @in_slot),
		'OK', 'MIGRATE moves them over TLS');
	$_->cli('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id)
	  for ($to, $from, grep { $_ != $to && $_ != $from } @masters);
	my $t0 = time;
	sleep(0.1) while $cl->master_of('item:1')->port != $to->port && time - $t0 < 10;
	is($cl->master_of('item:1')->port, $to->port, 'the slot has moved');

	my $moved0 = ($from->cli('INFO', 'errorstats') =~ /errorstat_MOVED:count=(\d+)/)[0] // 0;
	$session->query_safe('UPDATE item SET n = 3 WHERE id = 1');
	my $moved = ($from->cli('INFO', 'errorstats') =~ /errorstat_MOVED:count=(\d+)/)[0] // 0;
	cmp_ok($moved, '>', $moved0, 'the session, its map stale, was answered MOVED');
	is($to->cli('GET', 'item:1'), '{"id":1,"n":3}', 'and its write reached the new master');
	like($session->query_safe(
			"SELECT slots FROM cachebridge.cluster_nodes() WHERE node = '127.0.0.1:" . $to->tls_port . "'"),
		qr/\b$slot\b/, "the session's map gives slot $slot to the new master, at its TLS port");
	$session->quit;
	is(join("\n", $cl->diff('item:*', rows($item_sql))), '',
		'the cache matches the table after the migration');
}

# ---------------------------------------------------------------------
# A master learned from the slot map, not a seed, is verified too: one
# whose certificate another CA signed is refused, and what it owes is kept
# ---------------------------------------------------------------------
{
	my %seed = map { $_->port => 1 } ($cl->nodes)[ 0, 1 ];
	my ($stranger) = grep { !$seed{ $_->port } } @masters;
	ok(defined $stranger, 'a master that is not a seed');
	my $id = id_on($stranger, 2);
	my $before = $cl->get("item:$id");
	is($stranger->cli('CONFIG', 'SET', 'tls-cert-file', "$certs/stranger.crt",
			'tls-key-file', "$certs/stranger.key"), 'OK',
		'it now presents a certificate of another CA');
	# new connections only: the worker's and every session's are closed
	$stranger->cli('CLIENT', 'KILL', 'TYPE', 'normal');

	# one session: cluster_nodes() shows what its own commit met
	my $r = CacheBridgeTest::run_sql($node, qq{
		UPDATE item SET n = 4 WHERE id IN (2, 3, $id);
		SELECT node || ' ' || last_error FROM cachebridge.cluster_nodes() WHERE errors > 0});
	is($r->{rc}, 0, 'a durable UPDATE commits');
	my $errors = $r->{stdout};
	like($errors, qr/^127\.0\.0\.1:@{[ $stranger->tls_port ]} .*certificate verify failed/,
		'the learned master is refused: its certificate does not verify');
	unlike($errors, qr/\n/, 'and only it');
	ok($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead') > 0,
		'its effects stay in the outbox');
	is($cl->get("item:$id"), $before, 'and it still holds the old row');
	my $tp = $stranger->tls_port;
	is(scalar(grep { /laddr=127\.0\.0\.1:$tp / } cachebridge_clients($stranger)), 0,
		'no cachebridge connection to it got past the handshake');

	is($stranger->cli('CONFIG', 'SET', 'tls-cert-file', "$certs/server.crt",
			'tls-key-file', "$certs/server.key"), 'OK',
		'it presents its own certificate again');
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 30), 'the outbox drains');
	is(join("\n", $cl->diff('item:*', rows($item_sql))), '',
		'and the cache matches the table');
}

# ---------------------------------------------------------------------
# A killed master: durable effects kept, delivered to the replica that
# takes over (a node cachebridge learns of then), over TLS
# ---------------------------------------------------------------------
{
	my $victim = $cl->master_of('item:10');
	my $replica = $cl->replica_of($victim);
	ok(defined $replica, 'the master of item:10 has a replica');
	my @ids = grep { $cl->master_of("item:$_")->port == $victim->port } 2 .. 100;
	$victim->stop;

	my $r = CacheBridgeTest::run_sql($node,
		'UPDATE item SET n = 6 WHERE id IN (' . join(',', @ids) . ')');
	is($r->{rc}, 0, 'a durable UPDATE commits while the master is down');
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(500)'), 'f',
		'it is not delivered while the master is down');

	my $t0 = time;
	sleep(0.1)
	  while $replica->cli('INFO', 'replication') !~ /role:master/ && time - $t0 < 30;
	$cl->wait_ok;
	is($cl->master_of('item:10')->port, $replica->port, 'the replica took over');
	ok(defined CacheBridgeTest::wait_outbox_empty($node, 60), 'the outbox drains');
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'), 't',
		'wait_delivered is true');
	is(join("\n", $cl->diff('item:*', rows($item_sql))), '',
		'every effect is on the new master: 0 stale, 0 lost, 0 phantom');
	my $tp = $replica->tls_port;
	ok(scalar(grep { /laddr=127\.0\.0\.1:$tp / } cachebridge_clients($replica)) >= 1,
		'cachebridge reached the promoted replica on its TLS port');
	like($node->safe_psql('postgres',
			"SELECT role || ' ' || slots FROM cachebridge.cluster_nodes() WHERE node = '127.0.0.1:$tp'"),
		qr/^master \d/, 'cluster_nodes() shows it as a master with slots');
}

# ---------------------------------------------------------------------
# Nodes that keep their bus in plain TCP (tls-cluster no) tell a TLS
# client their plain ports: cachebridge's TLS handshake there fails, with
# the node named, and it never falls back to plain TCP
# ---------------------------------------------------------------------
{
	my $plainbus = CacheBridgeTest::Redis->new(
		name => 'plainbus',
		tls => $certs,
		conf => [
			'cluster-enabled yes',
			'cluster-port ' . PostgreSQL::Test::Cluster::get_free_port(),
			'cluster-config-file nodes.conf',
		]);
	$plainbus->cli('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
	my $t0 = time;
	sleep(0.1)
	  while $plainbus->cli('CLUSTER', 'INFO') !~ /cluster_state:ok/ && time - $t0 < 10;
	my ($port) = $plainbus->cli_tls('CLUSTER', 'SLOTS') =~ /^(\d+)\n[0-9a-f]{40}$/m;
	is($port, $plainbus->port,
		'with tls-cluster no, CLUSTER SLOTS tells a TLS client the plain port');
	CacheBridgeTest::set_redis_url($node, $plainbus->url(tls => 1));
	my $r = CacheBridgeTest::run_sql($node, "SELECT cachebridge.set('k', 'v')");
	like($r->{stderr},
		qr/could not connect to Redis server "127\.0\.0\.1:@{[ $plainbus->port ]}".*\n.*TLS/,
		'cachebridge refuses to talk to the plain port announced, naming it');
	is($plainbus->cli('EXISTS', 'k'), '0', 'nothing was written over plain TCP');
}

done_testing;
