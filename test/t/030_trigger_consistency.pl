# test/t/030_trigger_consistency.pl -- randomized consistency of the
# cachebridge triggers under concurrency.
#
# pgbench runs several clients against a small table, each transaction a
# random mix of INSERT (upserts), UPDATE (also of the key column, and of
# ranges of rows), DELETE, savepoints rolled back or released, PL/pgSQL
# exception blocks, and whole transactions rolled back; deadlocks between
# clients are retried by pgbench.  Afterwards Redis must match the table:
#   - write_through: every row's key holds exactly row_to_json of the row,
#     and no key exists for a row that does not;
#   - invalidate: the cache is first filled for every row with
#     cachebridge.set; afterwards every key still present holds the current
#     row_to_json of an existing row.
# Real PostgreSQL and a real redis-server of the test's own.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes ();

use CacheBridgeTest;

my $clients = 4;
my $transactions = 2000;    # per client
my $nkeys = 200;            # ids in play: small, so that clients collide

my $redis = CacheBridgeTest::Redis->new(name => 'consistency');
my $node = CacheBridgeTest::new_node(
	'consistency',
	redis => $redis,
	conf => [
		# deadlocks between clients are expected; find them fast
		'deadlock_timeout = 20ms',
		'max_connections = 30',
		'log_statement = none',
	]);

# Functions used by the pgbench script, for any table (id, v, note).
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION cb_move(tbl regclass, a int, b int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- change the key column; a key already taken leaves the row alone
    EXECUTE format('UPDATE %s SET id = $2, note = ''moved'' WHERE id = $1', tbl) USING a, b;
EXCEPTION WHEN unique_violation THEN
    NULL;
END
$$;
CREATE FUNCTION cb_churn(tbl regclass, a int, b int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %s SET v = v + 1, note = ''churned'' WHERE id = $1', tbl) USING a;
    BEGIN
        -- changes made here are rolled back with the block
        EXECUTE format('UPDATE %s SET v = -1, note = ''exception block'' WHERE id = $1', tbl) USING b;
        EXECUTE format('DELETE FROM %s WHERE id = $1', tbl) USING a;
        EXECUTE format('INSERT INTO %s VALUES ($1 + 100000, 0, ''exception block'')', tbl) USING b;
        RAISE EXCEPTION 'roll the block back';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
END
$$;
});

# One random transaction on table :tbl; pgbench substitutes :tbl, :nkeys,
# :a, ... textually, in literals too.  With :fill = 1, some transactions
# fill the cache (for invalidate, whose keys would otherwise all be gone).
my $script = <<'EOS';
\set op random(1, 100)
\set a random(1, :nkeys)
\set b random(1, :nkeys)
\set v random(1, 1000000)
\set fate random(1, 100)
BEGIN;
\if :op <= 15
INSERT INTO :tbl VALUES (:a, :v, 'inserted') ON CONFLICT (id) DO UPDATE SET v = excluded.v, note = 'upserted';
\elif :op <= 30
UPDATE :tbl SET v = :v, note = 'updated' WHERE id = :a;
\elif :op <= 38
SELECT cb_move(':tbl', :a, :b);
\elif :op <= 46
DELETE FROM :tbl WHERE id = :a;
\elif :op <= 53
UPDATE :tbl SET v = v + 1, note = 'range' WHERE id BETWEEN :a AND :a + 10;
\elif :op <= 60
UPDATE :tbl SET v = v + 1, note = 'again' WHERE id = :a;
UPDATE :tbl SET v = v + 1, note = 'and again' WHERE id = :a;
DELETE FROM :tbl WHERE id = :a;
INSERT INTO :tbl VALUES (:a, :v, 'reinserted') ON CONFLICT (id) DO NOTHING;
\elif :op <= 70
SAVEPOINT s1;
UPDATE :tbl SET v = :v, note = 'savepoint rolled back' WHERE id = :a;
DELETE FROM :tbl WHERE id = :b;
SELECT cb_move(':tbl', :a, :b);
ROLLBACK TO SAVEPOINT s1;
UPDATE :tbl SET note = 'after rollback to' WHERE id = :b;
\elif :op <= 80
SAVEPOINT s1;
INSERT INTO :tbl VALUES (:a, :v, 'savepoint released') ON CONFLICT (id) DO UPDATE SET note = 'savepoint released';
SAVEPOINT s2;
DELETE FROM :tbl WHERE id = :b;
ROLLBACK TO SAVEPOINT s2;
SAVEPOINT s3;
UPDATE :tbl SET v = v + 1 WHERE id = :b;
RELEASE SAVEPOINT s3;
RELEASE SAVEPOINT s1;
\elif :op <= 88
SELECT cb_churn(':tbl', :a, :b);
\elif :fill
-- cache-aside fill, as an application would do on a miss, in the
-- statement that reads the row (a transaction that has locked or changed
-- rows may not fill): a writer that commits between the read and the SET
-- is not in the statement's snapshot, so its marker refuses the fill, or
-- its delivery, coming later, overwrites it
SELECT cachebridge.set(':tbl:' || id, row_to_json(t)::text) FROM :tbl t WHERE id = :a;
\endif
\if :fate <= 10
ROLLBACK;
\else
COMMIT;
\endif
EOS

# The cached keys matching $pattern, without the version markers
# (key || '#cbv') that cachebridge keeps next to every key it changes.
sub cached_keys
{
	my ($pattern) = @_;

	return grep { !/#cbv$/ } $redis->scan_keys($pattern);
}

# Creates table $tbl (id, v, note) holding rows 1..$nkeys.
sub create_table
{
	my ($tbl) = @_;

	$node->safe_psql('postgres',
		    "CREATE TABLE $tbl (id int PRIMARY KEY, v int, note text);\n"
		  . "INSERT INTO $tbl SELECT i, i, 'initial' FROM generate_series(1, $nkeys) i;"
	);
	return;
}

# The database's committed and rolled-back transactions so far.
sub xact_counts
{
	my $out = $node->safe_psql('postgres',
		"SELECT pg_stat_force_next_flush();\n"
		  . "SELECT pg_stat_clear_snapshot();\n"
		  . "SELECT xact_commit || ' ' || xact_rollback FROM pg_stat_database WHERE datname = 'postgres';"
	);
	my @lines = split /\n/, $out;
	return split / /, $lines[-1];
}

# Runs the script against $tbl; checks that pgbench ran every transaction
# and that nothing failed to reach Redis.  Returns a summary of the run for
# the names of the tests that follow.
sub run_workload
{
	my ($tbl, $mode, $fill) = @_;
	my ($commit0, $rollback0) = xact_counts();
	my $failed0 = $node->safe_psql('postgres', 'SELECT failed + errors FROM cachebridge.stats');

	my $res = CacheBridgeTest::run_pgbench(
		$node,
		script => $script,
		clients => $clients,
		transactions => $transactions,
		vars => { tbl => $tbl, nkeys => $nkeys, fill => $fill },
		args => ['--max-tries=100'],
		timeout => 600);
	my $total = $clients * $transactions;

	is($res->{rc}, 0, "$mode: pgbench exits with 0")
	  or diag("stdout:\n$res->{stdout}\nstderr:\n$res->{stderr}");
	is($res->{processed}, $total, "$mode: pgbench processed all $total transactions");
	is($res->{failed} // 0, 0, "$mode: no transaction failed for good");
	unlike($res->{stderr}, qr/WARNING|ERROR|FATAL/,
		sprintf("%s: no warning or error in %.1f s of pgbench", $mode, $res->{elapsed}))
	  or diag($res->{stderr});

	# what the worker delivers (retries of what a backend could not) too
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(60000)'),
		't', "$mode: every committed effect delivered");

	my $failed = $node->safe_psql('postgres', 'SELECT failed + errors FROM cachebridge.stats') - $failed0;
	is($failed, 0, "$mode: no effect or pipeline failed to reach Redis");

	my ($commit1, $rollback1) = xact_counts();
	return sprintf('%d transactions, %d retried, ~%d committed, ~%d rolled back',
		$total, $res->{retried} // 0, $commit1 - $commit0, $rollback1 - $rollback0);
}

# ---------------------------------------------------------------------
# write_through: Redis holds exactly the table
# ---------------------------------------------------------------------
create_table('wt');
$node->safe_psql('postgres',
	"CREATE TRIGGER wt_cache AFTER INSERT OR UPDATE OR DELETE ON wt\n"
	  . "FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('wt:{id}');");
$node->safe_psql('postgres', 'UPDATE wt SET note = note');    # fill the cache
is(scalar(cached_keys('wt:*')), $nkeys, "write_through: $nkeys keys to start with");

my $summary = run_workload('wt', 'write_through', 0);

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM wt');
my $stale = $node->safe_psql(
	'postgres', q{
SELECT coalesce(string_agg(id || ': ' || coalesce(cachebridge.get('wt:' || id), '(missing)')
                           || ' instead of ' || row_to_json(w)::text, E'\n' ORDER BY id), '')
FROM wt w
WHERE cachebridge.get('wt:' || id) IS DISTINCT FROM row_to_json(w)::text});
is($stale, '',
	"write_through ($summary): each of the $rows rows has its key, holding row_to_json of the row");

my %ids = map { ("wt:$_" => 1) } split /\n/,
  $node->safe_psql('postgres', 'SELECT id FROM wt');
my @keys = cached_keys('wt:*');
my @orphans = grep { !$ids{$_} } @keys;
is(scalar(@orphans), 0,
	"write_through: none of the " . scalar(@keys) . " keys in Redis is for a missing row")
  or diag("keys without a row: @orphans[0 .. ($#orphans < 19 ? $#orphans : 19)]");

# ---------------------------------------------------------------------
# invalidate: every key left in Redis is current
# ---------------------------------------------------------------------
create_table('inv');
$node->safe_psql('postgres',
	"CREATE TRIGGER inv_cache AFTER INSERT OR UPDATE OR DELETE ON inv\n"
	  . "FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('inv:{id}');");
# fill the cache as an application would, for every row
$node->safe_psql('postgres',
	"SELECT count(cachebridge.set('inv:' || id, row_to_json(i)::text)) FROM inv i");
is(scalar(cached_keys('inv:*')), $nkeys, "invalidate: $nkeys keys cached to start with");

$summary = run_workload('inv', 'invalidate', 1);

$rows = $node->safe_psql('postgres', 'SELECT count(*) FROM inv');
@keys = cached_keys('inv:*');
my $keylist = join(', ', map { "'$_'" } grep { /^inv:\d+$/ } @keys);
my @bad = grep { !/^inv:\d+$/ } @keys;
push @bad, split /\n/, $node->safe_psql(
	'postgres', qq{
SELECT k FROM unnest(ARRAY[$keylist]::text[]) k
WHERE NOT EXISTS (SELECT FROM inv i
                  WHERE 'inv:' || i.id = k AND cachebridge.get(k) = row_to_json(i)::text)
ORDER BY k});
my $current = @keys - @bad;
is(scalar(@bad), 0,
	"invalidate ($summary): all " . scalar(@keys) . " keys left (of $rows rows) hold the current row")
  or diag("stale or orphaned keys: @bad[0 .. ($#bad < 19 ? $#bad : 19)]");
cmp_ok($current, '>', 0, "invalidate: $current keys were cached at the end");
my $invalidated = $node->safe_psql('postgres',
	"SELECT count(*) FROM inv WHERE note <> 'initial'");
cmp_ok($invalidated, '>', 0, "invalidate: $invalidated rows were changed");

# ---------------------------------------------------------------------
# write_through under Redis faults (issue 12): OOM replies (maxmemory with
# noeviction), READONLY replies (Redis made a replica of another, empty,
# Redis for a moment, which also wipes it) and restarts without
# persistence, while pgbench runs.  Afterwards: no key is stale (its value
# is not the row's), no key is a phantom (no row), and no change is lost:
# every row changed after the last moment Redis lost its data has its key.
# (A row untouched since Redis lost everything has none: a cache miss.)
# ---------------------------------------------------------------------
my $master = CacheBridgeTest::Redis->new(name => 'empty_master');
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$node->safe_psql('postgres', q{
CREATE TABLE wf (id int PRIMARY KEY, v int, note text,
                 at timestamptz NOT NULL DEFAULT clock_timestamp());
INSERT INTO wf SELECT i, i, 'initial' FROM generate_series(1, 200) i;
CREATE FUNCTION wf_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.at := clock_timestamp();
    RETURN NEW;
END $$;
CREATE TRIGGER wf_touch BEFORE INSERT OR UPDATE ON wf
    FOR EACH ROW EXECUTE FUNCTION wf_touch();
SELECT cachebridge.attach('wf', 'wf:{id}');
UPDATE wf SET note = note;
});

# one fault, switched on for a moment and off again
my %faults = (
	oom => sub {
		$redis->cli('CONFIG', 'SET', 'maxmemory', '1');
		Time::HiRes::sleep(0.3);
		$redis->cli('CONFIG', 'SET', 'maxmemory', '0');
		return 0;
	},
	readonly => sub {
		$redis->cli('REPLICAOF', '127.0.0.1', $master->port);
		Time::HiRes::sleep(0.3);
		$redis->cli('REPLICAOF', 'NO', 'ONE');
		return 1;
	},
	restart => sub {
		$redis->stop;
		Time::HiRes::sleep(0.5);
		$redis->start;
		return 1;
	},
);

# How often each fault comes, and for how long pgbench runs.  A restart
# (without persistence: the harness's Redis saves nothing) takes about a
# second, so it comes twice, and pgbench runs on for seconds after the
# last one: every phase must cover rows changed after Redis last lost its
# data, and deliveries that failed while it was down (both are checked).
my %cycles = (oom => 4, readonly => 4, restart => 2);
my %seconds = (oom => 4, readonly => 4, restart => 8);

for my $fault (qw(oom readonly restart))
{
	# the faults come from a child process while pgbench runs; it reports
	# when Redis last lost its data
	my $lossfile = $redis->dir . "/lost_$fault";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		Time::HiRes::sleep(0.2);
		for (1 .. $cycles{$fault})
		{
			if ($faults{$fault}->())
			{
				open(my $fh, '>', $lossfile) or die;
				print $fh Time::HiRes::time();
				close($fh);
			}
			Time::HiRes::sleep(0.4);
		}
		POSIX::_exit(0);
	}
	my $retried0 = $node->safe_psql('postgres', 'SELECT retried FROM cachebridge.stats');
	my $res = CacheBridgeTest::run_pgbench(
		$node,
		script => $script,
		clients => $clients,
		# for as long as the faults last (0.2 s + 4 x ~0.8 s, or 2 restarts),
		# and after, however fast this machine runs the transactions: a run
		# that ends before the faults tests nothing
		seconds => $seconds{$fault},
		vars => { tbl => 'wf', nkeys => 200, fill => 0 },
		args => ['--max-tries=100'],
		timeout => 300);
	waitpid($pid, 0);
	# the child restarted Redis: take its new process id
	if ($fault eq 'restart')
	{
		my $p = PostgreSQL::Test::Utils::slurp_file($redis->dir . '/redis.pid');
		chomp $p;
		$redis->{pid} = $p;
	}
	is($res->{rc}, 0, "$fault: pgbench exits with 0")
	  or diag("stdout:\n$res->{stdout}\nstderr:\n$res->{stderr}");
	is($res->{failed} // 0, 0, "$fault: no transaction failed");
	cmp_ok($node->safe_psql('postgres', 'SELECT retried FROM cachebridge.stats') - $retried0,
		'>', 0, "$fault: the worker delivered effects the backends could not");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(60000)'),
		't', "$fault: every committed effect delivered");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cachebridge.outbox WHERE dead'),
		'0', "$fault: no outbox row is dead");

	my $lost_at = -e $lossfile ? PostgreSQL::Test::Utils::slurp_file($lossfile) : 0;
	my $stale = $node->safe_psql('postgres', q{
SELECT count(*) FROM wf w
WHERE cachebridge.get('wf:' || id) IS NOT NULL
  AND cachebridge.get('wf:' || id) <> row_to_json(w)::text});
	my $lost = $node->safe_psql('postgres', qq{
SELECT count(*) FROM wf w
WHERE cachebridge.get('wf:' || id) IS NULL
  AND at > to_timestamp($lost_at)});
	my %ids = map { ("wf:$_" => 1) } split /\n/,
	  $node->safe_psql('postgres', 'SELECT id FROM wf');
	my @phantoms = grep { !$ids{$_} } cached_keys('wf:*');
	my $changed = $node->safe_psql('postgres', qq{
SELECT count(*) FROM wf WHERE at > to_timestamp($lost_at)});
	cmp_ok($lost_at, '>', 0, "$fault: Redis lost its data during the run")
	  if $fault ne 'oom';
	cmp_ok($changed, '>', 0, "$fault: rows were changed after Redis last lost its data");
	is($stale, '0', "$fault: 0 stale keys");
	is($lost, '0', "$fault: 0 lost changes (of $changed rows changed since Redis last lost its data)");
	is(scalar(@phantoms), 0, "$fault: 0 phantom keys")
	  or diag("keys without a row: @phantoms");
	diag(sprintf('%s: %.1f s of pgbench', $fault, $res->{elapsed}));
}
$master->stop;

$node->stop;
done_testing();
