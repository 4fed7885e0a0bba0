# test/t/088_version_histories.pl -- versions grow across every history of
# the data (DESIGN.md, Versions; src/version.c).
#
# A version was the WAL position alone, which goes backwards when a standby
# that lost the primary's last transactions is promoted, after a
# point-in-time recovery, and in another cluster a dump was restored into:
# every later write of a key whose marker came from the abandoned history
# was refused as older (counted as delivered, no warning), and stream
# entries were skipped as already appended.  Now the epoch -- a generation
# recorded in cachebridge.epoch, bumped when the system identifier changes,
# and the timeline -- comes before the WAL position.  Each case below makes
# the abandoned history's markers higher in WAL position than anything the
# new history writes for a while (pg_switch_wal jumps 16 MB), then checks
# that the new history's writes, deletes, stream entries and cache-aside
# fills win.
#
# Real primaries, a real streaming standby, a real WAL archive, pg_dump and
# pg_restore into a fresh initdb, one real redis-server for all of them.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'histories');

my $schema = q{
	CREATE EXTENSION cachebridge;
	CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('kv', 'kv:{id}');
	CREATE TABLE src (id int, note text);
	SELECT cachebridge.attach('src', 'ev:s', 'publish');
	INSERT INTO kv SELECT g, 'v0' FROM generate_series(1, 4) AS g;
	INSERT INTO src VALUES (0, 'first');
};

# A primary with cachebridge preloaded, pointed at $redis.
sub make_primary
{
	my ($name, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(%init);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'cachebridge'\n"
		  . "cachebridge.redis_url = '"
		  . $redis->url . "'\n");
	$node->start;
	return $node;
}

# Writes of a history that is about to be abandoned, made to have WAL
# positions above anything the history that replaces it writes soon.
sub write_doomed
{
	my ($node) = @_;

	$node->safe_psql('postgres', 'SELECT pg_switch_wal()') for 1 .. 2;
	$node->safe_psql('postgres', "UPDATE kv SET v = 'doomed' WHERE id = 1");
	$node->safe_psql('postgres', 'DELETE FROM kv WHERE id = 2');
	$node->safe_psql('postgres', "UPDATE kv SET v = 'doomed' WHERE id = 3");
	$node->safe_psql('postgres', "INSERT INTO src VALUES (1, 'doomed')");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'the doomed history is delivered');
	is($redis->cli('GET', 'kv:1'), '{"id":1,"v":"doomed"}',
		'Redis holds the doomed history\'s value');
	return;
}

# The cached value of row $id as $node reads it.
sub row_json
{
	my ($node, $id) = @_;

	return $node->safe_psql('postgres',
		"SELECT row_to_json(kv)::text FROM kv WHERE id = $id");
}

# The checks every new history must pass, on $node, named $what.
sub check_new_history
{
	my ($node, $what) = @_;
	my $xlen = $redis->cli('XLEN', 'ev:s');

	# first, before this history's transaction ids reach the doomed ones:
	# kv:3 keeps the doomed history's marker, naming a transaction id this
	# history has not given out yet; its value is evicted, and a
	# cache-aside fill of the row as this history has it must be taken
	$redis->cli('DEL', 'kv:3');
	is( $node->safe_psql('postgres',
			"SELECT cachebridge.set('kv:3', row_to_json(kv)::text) FROM kv WHERE id = 3"),
		't', "$what: a fill over the doomed history's marker is accepted");
	is($redis->cli('GET', 'kv:3'), '{"id":3,"v":"v0"}',
		"$what: and stores this history's row");

	$node->safe_psql('postgres', "UPDATE kv SET v = '$what' WHERE id = 1");
	$node->safe_psql('postgres', "UPDATE kv SET v = '$what' WHERE id = 2");
	$node->safe_psql('postgres', "INSERT INTO src VALUES (2, '$what')");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', "$what: the new history's writes are delivered");
	is($redis->cli('GET', 'kv:1'), row_json($node, 1),
		"$what: a write of a key the doomed history wrote later wins");
	is($redis->cli('GET', 'kv:2'), row_json($node, 2),
		"$what: a write of a key the doomed history deleted wins");
	is($redis->cli('XLEN', 'ev:s'), $xlen + 1,
		"$what: the new history's stream entry is appended");
	my @last = split /\n/, $redis->cli('XREVRANGE', 'ev:s', '+', '-', 'COUNT', '1');
	ok((grep { /\Q$what\E/ } @last), "$what: the last entry is the new one");

	$node->safe_psql('postgres', "DELETE FROM kv WHERE id = 4");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', "$what: a delete is delivered");
	is($redis->cli('EXISTS', 'kv:4'), '0',
		"$what: a delete of a key is applied");
	return;
}

# The epoch part of a key's marker: generation and timeline.
sub marker_epoch
{
	my ($key) = @_;
	my ($gen, $tli) = $redis->cli('GET', "$key#cbv") =~ /^V([0-9A-F]{8})([0-9A-F]{8})[0-9A-F]{16}:\d+$/;

	return defined $gen ? hex($gen) . '/' . hex($tli) : 'none';
}

# ---------------------------------------------------------------------
# Promotion of an async standby that lost the primary's last transactions.
# ---------------------------------------------------------------------
{
	my $primary = make_primary('promo_primary', allows_streaming => 1);
	$primary->safe_psql('postgres', $schema);
	$primary->backup('b');
	my $standby = PostgreSQL::Test::Cluster->new('promo_standby');
	$standby->init_from_backup($primary, 'b', has_streaming => 1);
	$standby->start;
	$primary->wait_for_catchup($standby);
	is(marker_epoch('kv:1'), '1/1', 'the primary writes generation 1, timeline 1');

	# the standby is cut off; the primary commits and delivers, then dies
	$standby->stop;
	write_doomed($primary);
	$primary->stop('immediate');

	$standby->start;
	$standby->promote;
	is(row_json($standby, 1), '{"id":1,"v":"v0"}',
		'the promoted standby lost the doomed transactions');
	check_new_history($standby, 'promoted');
	is(marker_epoch('kv:1'), '1/2', 'the promoted standby writes timeline 2');
	$standby->stop;
}

# ---------------------------------------------------------------------
# Point-in-time recovery to before the doomed transactions.
# ---------------------------------------------------------------------
{
	$redis->cli('FLUSHALL');
	my $node = make_primary('pitr', has_archiving => 1, allows_streaming => 1);
	$node->safe_psql('postgres', $schema);
	$node->backup('b');
	$node->safe_psql('postgres', "SELECT pg_create_restore_point('before')");
	write_doomed($node);
	# the restore point's segment and the doomed ones are archived
	my $last = $node->safe_psql('postgres',
		'SELECT pg_walfile_name(pg_current_wal_lsn())');
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	$node->poll_query_until('postgres',
		"SELECT last_archived_wal >= '$last' FROM pg_stat_archiver")
	  or die 'WAL was not archived';
	$node->stop;

	my $restored = PostgreSQL::Test::Cluster->new('pitr_restored');
	$restored->init_from_backup($node, 'b', has_restoring => 1);
	$restored->append_conf('postgresql.conf',
		"recovery_target_name = 'before'\nrecovery_target_action = 'promote'\n");
	$restored->start;
	$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'point-in-time recovery did not end';
	is(row_json($restored, 1), '{"id":1,"v":"v0"}',
		'the recovered cluster stopped before the doomed transactions');
	check_new_history($restored, 'recovered');
	is(marker_epoch('kv:1'), '1/2', 'the recovered cluster writes timeline 2');
	$restored->stop;
}

# ---------------------------------------------------------------------
# A dump restored into a fresh cluster (as pg_upgrade, a new system
# identifier), on the same Redis.
# ---------------------------------------------------------------------
{
	$redis->cli('FLUSHALL');
	my $old = make_primary('dump_old');
	$old->safe_psql('postgres', $schema);
	my $dump = $old->basedir . '/cb.dump';
	$old->command_ok(
		[ 'pg_dump', '-Fc', '-f', $dump, '-d', $old->connstr('postgres') ],
		'pg_dump of the old cluster');
	write_doomed($old);
	for (1 .. 3)
	{
		$old->safe_psql('postgres', 'SELECT pg_switch_wal()');
	}
	$old->stop;

	my $new = make_primary('dump_new');
	$new->command_ok(
		[ 'pg_restore', '-d', $new->connstr('postgres'), $dump ],
		'pg_restore into a fresh cluster');
	is( $new->safe_psql('postgres',
			'SELECT generation FROM cachebridge.epoch'),
		'1', 'the dump carried the generation of the old cluster');
	is( $new->safe_psql('postgres',
			'SELECT system_identifier <> (SELECT system_identifier FROM pg_control_system()) FROM cachebridge.epoch'),
		't', 'recorded with the old cluster\'s system identifier');
	check_new_history($new, 'restored');
	is($new->safe_psql('postgres', 'SELECT generation FROM cachebridge.epoch'),
		'2', 'the first writer of the new cluster bumped the generation');
	is(marker_epoch('kv:1'), '2/1', 'the new cluster writes generation 2');
	$new->stop;
}

# ---------------------------------------------------------------------
# An outbox row replicated before the failover.  The primary cannot
# deliver a transaction (Redis refuses writes for now), the row reaches
# the standby, and the standby is cut off.  The primary then delivers the
# row, the doomed history writes the same keys at higher WAL positions,
# and the primary dies before the row's deletion reaches the standby.  The
# promoted standby's worker replays the row: it belongs to the history
# that continues and must win over the doomed markers (before, its old
# timeline versions were refused and the doomed values stayed cached).
# ---------------------------------------------------------------------
{
	$redis->cli('FLUSHALL');
	my $primary = make_primary('rep_primary', allows_streaming => 1);
	$primary->safe_psql('postgres', $schema);
	$primary->backup('b');
	my $standby = PostgreSQL::Test::Cluster->new('rep_standby');
	$standby->init_from_backup($primary, 'b', has_streaming => 1);
	$standby->start;

	$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
	$redis->cli('CONFIG', 'SET', 'maxmemory', '1');
	$primary->safe_psql('postgres',
		"BEGIN; UPDATE kv SET v = 'kept' WHERE id = 1; DELETE FROM kv WHERE id = 2; COMMIT;");
	is($primary->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox WHERE NOT dead'),
		'1', 'replicated row: Redis refused it, the row stays');
	$primary->wait_for_catchup($standby);
	is($standby->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox'),
		'1', 'replicated row: it reached the standby');
	$standby->stop;

	$redis->cli('CONFIG', 'SET', 'maxmemory', '0');
	is($primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'),
		't', 'replicated row: the primary delivers it once Redis takes writes');
	is($redis->cli('GET', 'kv:1'), '{"id":1,"v":"kept"}',
		'replicated row: Redis holds its value');
	$primary->safe_psql('postgres', 'SELECT pg_switch_wal()') for 1 .. 2;
	$primary->safe_psql('postgres', "UPDATE kv SET v = 'doomed' WHERE id = 1");
	$primary->safe_psql('postgres', "INSERT INTO kv VALUES (2, 'doomed')");
	is($primary->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'),
		't', 'replicated row: the doomed writes are delivered');
	is($redis->cli('GET', 'kv:2'), '{"id":2,"v":"doomed"}',
		'replicated row: Redis holds the doomed history\'s values');
	$primary->stop('immediate');

	my $log_offset = -s $standby->logfile;
	$standby->start;
	$standby->promote;
	is($standby->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'),
		't', 'replicated row: the promoted standby delivers it');
	is($redis->cli('GET', 'kv:1'), row_json($standby, 1),
		'replicated row: its write wins over the doomed write of the key');
	is($redis->cli('EXISTS', 'kv:2'), '0',
		'replicated row: its delete wins over the doomed insert of the key');
	is(marker_epoch('kv:1'), '1/2', 'replicated row: replayed with the new timeline');
	ok($standby->log_contains(
			qr/gave 1 outbox row\(s\) of an older history the versions of this one/,
			$log_offset),
		'replicated row: the worker says it restamped the row');
	check_new_history($standby, 'after the replay');
	$standby->stop;
}

$redis->stop;
done_testing();
