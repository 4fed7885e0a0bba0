# Cross-check shard_for against real ketama clients from Debian packages.
#
# libmemcached (libmemcached-dev) with weighted ketama builds the continuum
# twemproxy builds; uhashring (python3-uhashring) builds the same ring for
# equal weights wherever the float32 point formula gives 40 hashes a node.
# Every ring below maps thousands of keys (ASCII, hash-tagged, non-ASCII,
# empty, long) and must agree key for key.  A missing client is a failure.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Spec;
use IPC::Run qw(run);

my $clients = File::Spec->rel2abs('test/clients');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $python = '/usr/bin/python3';    # Debian's, where python3-uhashring lives

# Build the libmemcached client.
my ($out, $err) = ('', '');
my $libmemcached = "$tmp/ketama_libmemcached";
ok( run([ 'cc', '-O2', '-o', $libmemcached,
			"$clients/ketama_libmemcached.c", '-lmemcached' ],
		'>', \$out, '2>', \$err),
	'libmemcached test client builds')
  or BAIL_OUT("cannot build the libmemcached client (is libmemcached-dev installed?): $err");
ok(run([ $python, '-c', 'import uhashring' ], '>', \$out, '2>', \$err),
	'python3-uhashring is installed')
  or BAIL_OUT("uhashring is missing: $err");

my $node = PostgreSQL::Test::Cluster->new('ring_clients');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->start;

# cachebridge's MD5 (one-block fast path, first-word shortcut) against
# OpenSSL's on every length 0..300, before any ring is compared.
my $md5_check = "$tmp/md5_check";
# Debian's server headers (postgresql-server-dev-15): a private copy of the
# installation (CB_PRIVATE_PG) has none, so not the running server's pg_config.
my ($server_inc) = `/usr/lib/postgresql/15/bin/pg_config --includedir-server`;
chomp $server_inc;
ok( run([ 'cc', '-O2', "-I$server_inc", '-Isrc', '-o', $md5_check,
			'test/clients/md5_check.c', 'src/md5.c', '-lcrypto' ],
		'>', \$out, '2>', \$err),
	'MD5 check client builds')
  or diag($err);
ok(run([$md5_check], '>', \$out, '2>', \$err), 'MD5 check client runs')
  or diag($err);
like($out, qr/^checks 1806000 mismatches 0$/m,
	'CbMd5, CbMd5First32 and CbMd5First64 agree with OpenSSL MD5()');
$node->safe_psql('postgres', 'CREATE EXTENSION cachebridge');

# Keys: ASCII, hash-tagged, Cyrillic with a euro sign, empty, long.
$node->safe_psql(
	'postgres', q{
CREATE TABLE keys AS
SELECT row_number() OVER () AS id, k FROM (
    SELECT 'key:' || i FROM generate_series(1, 3000) i
    UNION ALL SELECT 'user:{' || i || '}:profile' FROM generate_series(1, 1000) i
    UNION ALL SELECT chr(1082) || chr(1083) || chr(1102) || chr(1095) || ':' || i || chr(8364)
              FROM generate_series(1, 1000) i
    UNION ALL SELECT ''
    UNION ALL SELECT repeat('long', 100) || i FROM generate_series(1, 10) i
) s(k);
});
my $nkeys = $node->safe_psql('postgres', 'SELECT count(*) FROM keys');

# Rings (nodes are added in the order given).
$node->safe_psql(
	'postgres', q{
SELECT cachebridge.ring_add_node('eq3', n) FROM unnest(ARRAY['shard-a', 'shard-b', 'shard-c']) n;
SELECT cachebridge.ring_add_node('eq10', format('cache-%s.example.net:6379', i)) FROM generate_series(1, 10) i;
SELECT cachebridge.ring_add_node('eq25', format('redis-%s', i)) FROM generate_series(1, 25) i;
SELECT cachebridge.ring_add_node('weighted', 'w' || w, w) FROM unnest(ARRAY[1, 2, 3, 5, 8, 13]) w;
SELECT cachebridge.ring_add_node('one', 'only');
SELECT cachebridge.ring_create('fnv', 'ketama', 'fnv1a_64');
SELECT cachebridge.ring_add_node('fnv', 'f' || o, w) FROM unnest(ARRAY[3, 1, 4, 1, 5]) WITH ORDINALITY AS u(w, o);
SELECT cachebridge.ring_add_node('w100', format('cache%s.example.net', i), 1 + i % 3) FROM generate_series(1, 100) i;
SELECT cachebridge.ring_add_node('big', format('node%s', i)) FROM generate_series(1, 100) i;
});

# Write the keys to a file, one a line (bytes as stored, UTF-8).
sub write_file_raw
{
	my ($path, $content) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $content;
	close($fh);
}
my $keys = $node->safe_psql('postgres', 'SELECT k FROM keys ORDER BY id');
write_file_raw("$tmp/keys", "$keys\n");

# Nodes of a ring in ring order, as [name, weight] pairs.
sub ring_nodes
{
	my ($ring) = @_;
	my $rows = $node->safe_psql('postgres',
		"SELECT node || '=' || weight FROM cachebridge.ring_node WHERE ring = '$ring' ORDER BY ord"
	);
	return split /\n/, $rows;
}

# Run a client on a key file; returns its output lines.
sub client_nodes
{
	my ($cmd, $keyfile) = @_;
	my ($stdout, $stderr) = ('', '');
	run($cmd, '<', $keyfile, '>', \$stdout, '2>', \$stderr)
	  or die "client @$cmd[0..1] failed: $stderr";
	return split /\n/, $stdout, -1;
}

# Compare shard_for with a client's answers; returns the mismatch count.
sub mismatches
{
	my ($ring, $table, $client) = @_;
	my @pg = split /\n/,
	  $node->safe_psql('postgres',
		"SELECT cachebridge.shard_for(k, '$ring') FROM $table ORDER BY id");
	my $bad = 0;
	for my $i (0 .. $#pg)
	{
		next if defined $client->[$i] && $client->[$i] eq $pg[$i];
		diag("ring $ring, key #$i: shard_for says $pg[$i], client says "
			  . ($client->[$i] // 'nothing'))
		  if $bad++ < 5;
	}
	return $bad;
}

sub libmemcached_for
{
	my ($ring, $hash, $keyfile) = @_;
	my @nodes = ring_nodes($ring);
	return [ client_nodes([ $libmemcached, $hash, @nodes ], $keyfile) ];
}

sub uhashring_for
{
	my ($ring) = @_;
	my @names = map { (split /=/)[0] } ring_nodes($ring);
	return [ client_nodes([ $python, "$clients/ketama_uhashring.py", @names ], "$tmp/keys") ];
}

for my $ring (qw(eq3 eq10 eq25 weighted one w100))
{
	is(mismatches($ring, 'keys', libmemcached_for($ring, 'md5', "$tmp/keys")),
		0, "ring $ring agrees with libmemcached weighted ketama on $nkeys keys");
}
is(mismatches('fnv', 'keys', libmemcached_for('fnv', 'fnv1a_64', "$tmp/keys")),
	0, "fnv1a_64 ring agrees with libmemcached (MEMCACHED_HASH_FNV1A_64) on $nkeys keys");

for my $ring (qw(eq3 eq10))
{
	is(mismatches($ring, 'keys', uhashring_for($ring)),
		0, "ring $ring agrees with uhashring (hash_fn=ketama) on $nkeys keys");
}

# Rounding edge: for 25 equal nodes the float32 formula gives 39 hashes
# (156 points) a node, as twemproxy and libmemcached compute; uhashring's
# integer formula gives 40, so it places some keys differently.
is( $node->safe_psql('postgres',
		"SELECT min(slots) || ' ' || max(slots) FROM cachebridge.ring_balance('eq25')"),
	'156 156',
	'25 equal nodes get 156 points each (float32 formula)');
cmp_ok(mismatches('eq25', 'keys', uhashring_for('eq25')),
	'>', 0, 'uhashring differs at that edge (expected, see ring_compile.c)');

# Equal points: replace the last node of ring "big" (100 equal nodes, the
# most libmemcached takes) by one whose points include a point of another
# node.  Keys in the arc of a shared point go to the node earlier in ring
# order, as in libmemcached (which sorts its continuum stably).
sub run_ties
{
	my ($mode, $input) = @_;
	my ($stdout, $stderr) = ('', '');
	write_file_raw("$tmp/points", "$input\n");
	run([ $python, "$clients/ketama_tie_keys.py", @$mode ],
		'<', "$tmp/points", '>', \$stdout, '2>', \$stderr)
	  or diag("ketama_tie_keys.py @$mode: $stderr");
	return $stdout;
}
my $points_sql =
  "SELECT node || E'\\t' || slots FROM cachebridge.ring_balance('big')";
$node->safe_psql('postgres', "SELECT cachebridge.ring_remove_node('big', 'node100')");
my $collider =
  run_ties([ 'collide', 'collider' ], $node->safe_psql('postgres', $points_sql));
chomp $collider;
isnt($collider, '', "node $collider shares a point with ring big");
$node->safe_psql('postgres', "SELECT cachebridge.ring_add_node('big', '$collider')");
is(mismatches('big', 'keys', libmemcached_for('big', 'md5', "$tmp/keys")),
	0, "ring big agrees with libmemcached weighted ketama on $nkeys keys");
my @ties = map { [ split /\t/ ] } split /\n/,
  run_ties(['keys'], $node->safe_psql('postgres', $points_sql));
ok(@ties > 0, 'found keys landing on the shared point');
write_file_raw("$tmp/tie_keys", join('', map { "$_->[0]\n" } @ties));
$node->safe_psql('postgres',
	'CREATE TABLE tie_keys (id int, k text, expected text);'
	  . join('',
		map { "INSERT INTO tie_keys VALUES ($_, '$ties[$_][0]', '$ties[$_][1]');" }
		  0 .. $#ties));
is(mismatches('big', 'tie_keys', libmemcached_for('big', 'md5', "$tmp/tie_keys")),
	0, scalar(@ties) . ' keys on shared points agree with libmemcached');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM tie_keys WHERE cachebridge.shard_for(k, 'big') <> expected"),
	'0',
	'keys on shared points go to the node earlier in ring order');

$node->stop;
done_testing();
