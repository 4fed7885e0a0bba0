# test/t/061_cqrs_read_model.pl -- the CQRS example of examples/cqrs, end
# to end: examples/cqrs/schema.sql publishes customers and orders to the
# stream events:shop, and examples/cqrs/consumer.pl keeps the read model
# customer_summary from it.
#
# pgbench runs a random workload on several connections: orders inserted,
# moved between customers (one by one and all of a customer's at once),
# changed, deleted; customers inserted, renamed, deleted (cascading to
# their orders); savepoints rolled back and whole transactions rolled back,
# both of them making "rolled back" rows that must never be seen.  The
# consumer runs meanwhile; it is killed with SIGKILL once mid-way, and a
# crash between applying a batch and acknowledging it is reproduced
# exactly.  At the end the read model must equal the projection computed
# by SQL from the source tables, and replaying the whole stream must
# change nothing.
# Real PostgreSQL and a real redis-server of the test's own.

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my $example = ($ENV{TESTDIR} // 'test') . '/../examples/cqrs';
my $stream = 'events:shop';
my $group = 'read-model';

my $redis = CacheBridgeTest::Redis->new(name => 'cqrs');
my $node = CacheBridgeTest::new_node(
	'cqrs',
	redis => $redis,
	conf => [ 'deadlock_timeout = 20ms', 'max_connections = 30', 'log_statement = none' ]);
my $dir = CacheBridgeTest::scratch_dir('cqrs');

$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-f', "$example/schema.sql" ],
	'examples/cqrs/schema.sql loads');

# Functions of the workload: changes that may meet a customer deleted
# meanwhile by another client are left undone, in an exception block.
$node->safe_psql('postgres', q{
CREATE FUNCTION w_new_order(o int, c int, amt numeric) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO orders VALUES (o, c, amt, 'open') ON CONFLICT (id) DO NOTHING;
EXCEPTION WHEN foreign_key_violation THEN NULL;
END $$;
CREATE FUNCTION w_move_order(o int, c int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders SET customer_id = c WHERE id = o;
EXCEPTION WHEN foreign_key_violation THEN NULL;
END $$;
CREATE FUNCTION w_move_all(c int, c2 int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders SET customer_id = c2, status = 'moved' WHERE customer_id = c;
EXCEPTION WHEN foreign_key_violation THEN NULL;
END $$;
CREATE FUNCTION w_churn(c int, ghost int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customers SET name = name || '.' WHERE id = c;
    BEGIN
        INSERT INTO customers VALUES (ghost, 'rolled back');
        INSERT INTO orders VALUES (ghost, ghost, 1, 'rolled back');
        DELETE FROM customers WHERE id = c;
        RAISE EXCEPTION 'undo the block';
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
END $$;
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 40) g;
INSERT INTO orders SELECT g, 1 + g % 40, g * 1.25, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END
  FROM generate_series(1, 200) g;
});

# One random transaction.  Rows made by work that is rolled back have ids
# from 1000 and the name or status "rolled back".
my $workload = <<'EOS';
\set op random(1, 100)
\set c random(1, 60)
\set c2 random(1, 60)
\set o random(1, 400)
\set amt random(1, 100000)
\set ghost random(1000, 100000000)
\set fate random(1, 100)
BEGIN;
\if :op <= 20
SELECT w_new_order(:o, :c, :amt / 100.0);
\elif :op <= 35
SELECT w_move_order(:o, :c2);
\elif :op <= 45
UPDATE orders SET amount = :amt / 100.0,
    status = CASE status WHEN 'open' THEN 'paid' ELSE 'open' END WHERE id = :o;
\elif :op <= 52
DELETE FROM orders WHERE id = :o;
\elif :op <= 60
INSERT INTO customers VALUES (:c, 'customer ' || :c) ON CONFLICT (id) DO NOTHING;
\elif :op <= 70
UPDATE customers SET name = 'customer ' || :c || ' renamed ' || :amt WHERE id = :c;
\elif :op <= 74
DELETE FROM customers WHERE id = :c;
\elif :op <= 78
SELECT w_move_all(:c, :c2);
\elif :op <= 86
SAVEPOINT s;
INSERT INTO customers VALUES (:ghost, 'rolled back');
INSERT INTO orders VALUES (:ghost, :ghost, 1, 'rolled back');
UPDATE orders SET customer_id = :ghost, status = 'rolled back' WHERE id = :o;
ROLLBACK TO SAVEPOINT s;
SELECT w_move_order(:o, :c2);
\else
SELECT w_churn(:c, :ghost);
\endif
\if :fate <= 12
INSERT INTO customers VALUES (:ghost + 1, 'rolled back');
INSERT INTO orders VALUES (:ghost + 1, :ghost + 1, 2, 'rolled back');
ROLLBACK;
\else
COMMIT;
\endif
EOS

# The database's rolled-back transactions so far.
sub rollbacks
{
	return (split(/\n/, $node->safe_psql('postgres',
		"SELECT pg_stat_force_next_flush();\n"
		  . "SELECT pg_stat_clear_snapshot();\n"
		  . "SELECT xact_rollback FROM pg_stat_database WHERE datname = 'postgres'")))[-1];
}

sub run_workload
{
	my ($name) = @_;
	my $rollbacks = rollbacks();
	my $res = CacheBridgeTest::run_pgbench(
		$node,
		script => $workload,
		clients => 4,
		transactions => 300,
		args => ['--max-tries=100'],
		timeout => 120);

	is($res->{rc}, 0, "$name: pgbench exits with 0")
	  or diag("stdout:\n$res->{stdout}\nstderr:\n$res->{stderr}");
	is($res->{failed} // 0, 0,
		sprintf('%s: no transaction failed (%d retried)', $name, $res->{retried} // 0));
	$rollbacks = rollbacks() - $rollbacks;
	ok($rollbacks > 50, "$name: $rollbacks transactions rolled back");
	return;
}

# Starts consumer.pl in the background; its output goes to a log file.
my $nconsumers = 0;
sub start_consumer
{
	my (@args) = @_;
	my $log = "$dir/consumer" . ++$nconsumers . '.log';
	# its batch files too, even those a killed consumer leaves
	local $ENV{TMPDIR} = $dir;
	my $h = IPC::Run::start(
		[ 'perl', "$example/consumer.pl", '--redis-port', $redis->port,
			'--dsn', $node->connstr('postgres'), '--stream', $stream,
			'--count', 20, @args ],
		'<', \undef, '>', $log, '2>&1', IPC::Run::timeout(120));
	return { h => $h, log => $log };
}

# Runs consumer.pl until the stream has nothing new for it; returns its
# exit status and output.
sub drain
{
	my (@args) = @_;
	my $c = start_consumer('--once', '--block', 500, @args);
	eval { $c->{h}->finish; 1 } or $c->{h}->kill_kill;
	return ($c->{h}->full_result(0), slurp_file($c->{log}));
}

# Sums "N applied, M skipped" of consumer output lines matching $filter.
sub counted
{
	my ($out, $filter) = @_;
	my ($applied, $skipped) = (0, 0);
	for (grep { /$filter/ } split(/\n/, $out))
	{
		/(\d+) applied, (\d+) skipped/ or next;
		$applied += $1;
		$skipped += $2;
	}
	return ($applied, $skipped);
}

# The rows of the read model that differ from the projection of the
# source tables, both ways.
my $diff_sql = q{
WITH projection AS (
    SELECT c.id, c.name, count(o.id)::int, coalesce(sum(o.amount), 0)::numeric(14,2),
           (count(o.id) FILTER (WHERE o.status = 'open'))::int
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id, c.name)
SELECT string_agg(d::text, E'\n') FROM (
    (TABLE customer_summary EXCEPT TABLE projection)
    UNION ALL
    (TABLE projection EXCEPT TABLE customer_summary)) d};

sub pending { return $redis->cli('XPENDING', $stream, $group) =~ /^(\d+)/ ? $1 : -1; }

# ---------------------------------------------------------------------
# Round 1: the consumer runs with the workload and is killed mid-way; its
# restart first reads what was delivered to it but never acknowledged.
# ---------------------------------------------------------------------
my $c1 = start_consumer('--block', 200);
run_workload('round 1');
$c1->{h}->signal('KILL');
eval { $c1->{h}->finish; 1 } or $c1->{h}->kill_kill;
like(slurp_file($c1->{log}), qr/consumer-1: \d+ entries/,
	'the consumer applied entries before it was killed');
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'), 't',
	'every stream entry of round 1 delivered');
diag(sprintf('consumer killed with %d entries pending, %d in the stream',
		pending(), $redis->cli('XLEN', $stream)));

my ($rc, $out) = drain();
is($rc, 0, 'the restarted consumer drains the stream') or diag($out);
is(pending(), 0, 'nothing left pending after the restart');
is($node->safe_psql('postgres', $diff_sql), '',
	'after round 1 the read model equals the projection of the source tables');

# ---------------------------------------------------------------------
# A crash between applying and acknowledging, exactly: five entries are
# delivered to consumer-1, the first three applied (as a batch it committed
# before dying), none acknowledged.  Then a TRUNCATE of orders in the same
# transaction as 300 new orders (more than one call of the xadd script).
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
BEGIN;
INSERT INTO customers VALUES (61, 'customer 61'), (62, 'customer 62'), (63, 'customer 63');
INSERT INTO orders VALUES (401, 61, 1.00, 'open'), (402, 62, 2.00, 'open'), (403, 63, 3.00, 'paid');
COMMIT;
BEGIN;
TRUNCATE orders;
INSERT INTO orders
  SELECT g, coalesce((SELECT id FROM customers WHERE id = 1 + g % 60), 61 + g % 3), g * 0.5, 'open'
  FROM generate_series(1, 300) g;
COMMIT;
SELECT cachebridge.wait_delivered(30000);
});
my @delivered = grep { /^\d+-\d+$/ } split(/\n/,
	$redis->cli('--raw', 'XREADGROUP', 'GROUP', $group, 'consumer-1', 'COUNT', 5,
		'STREAMS', $stream, '>'));
is(scalar @delivered, 5, 'five entries delivered to consumer-1, not acknowledged');
for my $id (@delivered[0 .. 2])
{
	my (undef, %f) = split(/\n/, $redis->cli('--raw', 'XRANGE', $stream, $id, $id));
	my @args = map { defined($_) ? "'" . ($_ =~ s/'/''/gr) . "'" : 'NULL' }
	  ($id, @f{qw(op table row old)});
	$node->safe_psql('postgres',
		"SELECT apply_shop_event($args[0], $args[1], $args[2], $args[3]::jsonb, $args[4]::jsonb)");
}
is($node->safe_psql('postgres',
		"SELECT apply_shop_event('$delivered[0]', 'INSERT', 'public.customers', "
		  . "'{\"id\": 99, \"name\": \"again\"}', NULL)"),
	'f', 'apply_shop_event skips an entry applied before');

# ---------------------------------------------------------------------
# Round 2: the restarted consumer first reads the five pending entries,
# skipping the three applied, and runs with the workload; the rest is
# drained once every entry is in the stream, after a SIGTERM stopped the
# consumer.
# ---------------------------------------------------------------------
my $c2 = start_consumer('--block', 200);
run_workload('round 2');
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'), 't',
	'every stream entry of round 2 delivered');
$c2->{h}->signal('TERM');
eval { $c2->{h}->finish; 1 } or $c2->{h}->kill_kill;
is($c2->{h}->full_result(0), 0, 'SIGTERM stops the consumer cleanly');
my $out2 = slurp_file($c2->{log});
is(join(' ', counted($out2, qr/\(pending\)/)), '2 3',
	'the restarted consumer applied 2 and skipped 3 of its pending entries');

($rc, $out) = drain();
is($rc, 0, 'the final drain succeeds') or diag($out);
is(pending(), 0, 'every entry acknowledged');
unlike($out2 . $out, qr/psql|ERROR|Redis:/, 'no consumer reported an error')
  or diag($out2 . $out);

# ---------------------------------------------------------------------
# The stream and the read model.
# ---------------------------------------------------------------------
my $xrange = $redis->cli('--raw', 'XRANGE', $stream, '-', '+');
my %field = map { $_ => 1 } qw(op table row old lsn xid committed_at);
my @lines = split(/\n/, $xrange);
my @entries;
while (@lines)
{
	my $id = shift @lines;
	my %e = (id => $id);
	while (@lines && $field{ $lines[0] })
	{
		my ($k, $v) = splice(@lines, 0, 2);
		$e{$k} = $v;
	}
	push @entries, \%e;
}
is(scalar(grep { $_->{id} !~ /^\d+-\d+$/ || !$_->{op} || !$_->{lsn} } @entries), 0,
	sprintf('the stream parses: %d entries', scalar @entries));

# commit order: a transaction's entries contiguous, lsn increasing
my (%seen, $last_lsn, $last, @order_errors);
for my $e (@entries)
{
	next if defined $last && $e->{lsn} eq $last->{lsn};
	my ($hi, $lo) = map { hex } split(m{/}, $e->{lsn});
	my $lsn = $hi * 2**32 + $lo;
	push @order_errors, "$e->{id}: lsn $e->{lsn} seen before" if $seen{ $e->{lsn} }++;
	push @order_errors, "$e->{id}: lsn $e->{lsn} not above $last->{lsn}"
	  if defined $last_lsn && $lsn <= $last_lsn;
	($last, $last_lsn) = ($e, $lsn);
}
is(join("\n", @order_errors), '', sprintf(
		'entries of a transaction are contiguous, transactions in commit order (%d transactions)',
		scalar keys %seen));
my (%xids, %size);
$xids{ $_->{lsn} }{ $_->{xid} } = 1 for @entries;
$size{ $_->{lsn} }++ for @entries;
ok((sort { $b <=> $a } values %size)[0] > 256,
	'one transaction, in contiguous entries, took more than one call of the xadd script');
is(scalar(grep { keys %{ $xids{$_} } != 1 } keys %xids), 0, 'one xid per transaction');

my %ops;
$ops{"$_->{table} $_->{op}"}++ for @entries;
diag(join(', ', map { "$_: $ops{$_}" } sort keys %ops));
ok(($ops{'public.orders UPDATE'} // 0) > 50 && ($ops{'public.customers DELETE'} // 0) > 0
	  && ($ops{'public.orders DELETE'} // 0) > 0 && ($ops{'public.customers UPDATE'} // 0) > 0,
	'the workload inserted, updated and deleted rows of both tables');
is($ops{'public.orders TRUNCATE'}, 1, 'one TRUNCATE entry');
is(scalar(grep { ($_->{row} // '') =~ /rolled back/ || ($_->{old} // '') =~ /rolled back/ }
		@entries), 0, 'no entry comes from work rolled back');
is(scalar(grep { $_->{op} eq 'UPDATE' && !defined $_->{old} } @entries), 0,
	'every UPDATE entry has its old row');

is($node->safe_psql('postgres', $diff_sql), '',
	'the read model equals the projection of the source tables');
my ($customers, $orders, $moved) = split(/\|/, $node->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM customer_summary), (SELECT sum(order_count) FROM customer_summary), "
	  . "(SELECT count(*) FROM orders WHERE status = 'moved')"));
ok($customers > 30 && $orders > 50,
	"the read model is not trivial: $customers customers, $orders orders ($moved moved in bulk)");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM customer_summary WHERE customer_id >= 1000 OR name LIKE '%rolled back%'"),
	'0', 'no row of rolled-back work in the read model');
is($node->safe_psql('postgres', 'SELECT last_entry FROM customer_summary_position'),
	$entries[-1]{id}, 'the read model is at the last entry of the stream');

# ---------------------------------------------------------------------
# Replaying the whole stream (a new group from its start) changes nothing.
# ---------------------------------------------------------------------
my $before = $node->safe_psql('postgres',
	'SELECT md5(string_agg(s::text, \',\' ORDER BY customer_id)) FROM customer_summary s');
($rc, $out) = drain('--group', 'replay', '--consumer', 'replayer', '--count', 500);
is($rc, 0, 'the replay runs') or diag($out);
is(join(' ', counted($out, qr/^replayer/)), '0 ' . scalar(@entries),
	'the replay skips every entry');
is($node->safe_psql('postgres',
		'SELECT md5(string_agg(s::text, \',\' ORDER BY customer_id)) FROM customer_summary s'),
	$before, 'the read model is unchanged by the replay');

$node->stop;
$redis->stop;
done_testing();
