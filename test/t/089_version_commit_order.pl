# test/t/089_version_commit_order.pl -- versions follow commit order, also
# for keys no row lock orders, and for prepared transactions (DESIGN.md,
# Versions; src/version.c).
#
# A version is the WAL insert position at PRE_COMMIT (or PRE_PREPARE), not
# the commit record's.  For a key of a unique column two writers are
# ordered by the row lock or the unique check.  For a key of a non-unique
# column (last_order:{user_id}, user_orders:{user_id}) they are not: two
# transactions could take their versions in one order and commit in the
# other, and the one that committed last was refused as older.  A prepared
# transaction's effects carry the version of its PREPARE, so a writer of
# the same key committing before COMMIT PREPARED won, and the prepared
# DEL was refused after a fill had cached the state in between: stale for
# good.  Such keys are now locked from before the version is taken until
# the transaction ends (a transaction with more than 32 of them takes one
# database-wide lock); the cases below are built so that without the
# locks the older state wins, and a key of a unique column takes none.
#
# To hold a transaction between PRE_COMMIT (version taken) and its commit
# record, another session locks cachebridge.outbox in SHARE mode: the
# durable transaction's outbox insert, which comes after its version,
# waits for it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'order');
my $node = CacheBridgeTest::new_node(
	'order',
	redis => $redis,
	conf => [ 'max_prepared_transactions = 5', 'track_commit_timestamp = on' ]);

$node->safe_psql('postgres', q{
	CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, note text NOT NULL);
	CREATE TRIGGER last_order AFTER INSERT OR UPDATE OR DELETE ON orders
	  FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('last_order:{user_id}');
	CREATE TRIGGER user_orders AFTER INSERT OR UPDATE OR DELETE ON orders
	  FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('order:{id}', 'user_orders:{user_id}');
	INSERT INTO orders VALUES (1, 7, 'a0'), (2, 7, 'b0');
});

# Sends $sql to a background session without waiting for it to finish;
# $tag is echoed once it has.
sub send_async
{
	my ($session, $sql, $tag) = @_;

	$session->{stdin} .= "$sql\n\\echo $tag\n";
	$session->{run}->pump_nb();
	return;
}

# Waits for the echo of $tag in a background session.
sub wait_async
{
	my ($session, $tag) = @_;

	$session->query_until(qr/$tag/, '');
	return;
}

# True once backend $pid waits for a lock of type $type.
sub waits_for
{
	my ($pid, $type) = @_;

	return $node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $pid AND NOT granted AND locktype = '$type')");
}

# True if backend $pid is still in a statement after $secs seconds.
sub still_busy
{
	my ($pid, $secs) = @_;

	sleep($secs);
	return $node->safe_psql('postgres',
		"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $pid") eq 't';
}

# ---------------------------------------------------------------------
# Two writers of one non-unique key: the first takes its version, then
# waits; the second must not take a version and commit in between.
# ---------------------------------------------------------------------
{
	my $l = $node->background_psql('postgres');
	my $t1 = $node->background_psql('postgres');
	my $t2 = $node->background_psql('postgres');
	my $t1pid = $t1->query_safe('SELECT pg_backend_pid()');
	my $t2pid = $t2->query_safe('SELECT pg_backend_pid()');

	$l->query_safe('BEGIN');
	$l->query_safe('LOCK TABLE cachebridge.outbox IN SHARE MODE');

	$t1->query_safe("SET cachebridge.delivery = 'durable'");
	$t1->query_safe('BEGIN');
	$t1->query_safe("UPDATE orders SET note = 'a1' WHERE id = 1");
	send_async($t1, 'COMMIT;', 't1done');
	ok(waits_for($t1pid, 'relation'),
		'T1 took its version and waits to write its outbox row');

	$t2->query_safe("SET cachebridge.delivery = 'sync'");
	$t2->query_safe('BEGIN');
	$t2->query_safe("UPDATE orders SET note = 'b1' WHERE id = 2");
	send_async($t2, 'COMMIT;', 't2done');
	ok(still_busy($t2pid, 1),
		'T2, writing the same non-unique key, waits for T1 at commit');

	$l->query_safe('COMMIT');
	wait_async($t1, 't1done');
	wait_async($t2, 't2done');
	$_->quit for ($l, $t1, $t2);

	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'both are delivered');
	my $last = $node->safe_psql('postgres',
		'SELECT row_to_json(orders)::text FROM orders WHERE user_id = 7 '
		  . 'ORDER BY pg_xact_commit_timestamp(xmin) DESC LIMIT 1');
	is($redis->cli('GET', 'last_order:7'), $last,
		'the key holds the row of the transaction that committed last');
}

# ---------------------------------------------------------------------
# A prepared transaction and a writer of the same key before its COMMIT
# PREPARED, with a cache-aside fill in between.
# ---------------------------------------------------------------------
{
	my $agg = q{SELECT string_agg(note, ',' ORDER BY id) FROM orders WHERE user_id = 7};
	my $fill = "SELECT cachebridge.set('user_orders:7', ($agg))";

	$node->safe_psql('postgres', $fill);
	$node->safe_psql('postgres', q{
SET cachebridge.delivery = 'durable';
BEGIN;
UPDATE orders SET note = 'a2' WHERE id = 1;
PREPARE TRANSACTION 'p';
});

	my $b = $node->background_psql('postgres');
	my $bpid = $b->query_safe('SELECT pg_backend_pid()');
	send_async($b, "UPDATE orders SET note = 'b2' WHERE id = 2;", 'bdone');
	ok(still_busy($bpid, 1),
		'a writer of a key of the prepared transaction waits for COMMIT PREPARED');

	# a fill now caches what is committed: neither change
	$node->safe_psql('postgres', $fill);
	$node->safe_psql('postgres', "COMMIT PREPARED 'p'");
	wait_async($b, 'bdone');
	$b->quit;
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'the prepared transaction and the writer are delivered');
	my $cached = $redis->cli('GET', 'user_orders:7');
	ok($cached eq '' || $cached eq $node->safe_psql('postgres', $agg),
		'the aggregate key is deleted or current, never the state before COMMIT PREPARED')
	  or diag("cached: $cached");
	is($node->safe_psql('postgres', $fill), 't',
		'a fill after both is accepted');
	is($redis->cli('GET', 'user_orders:7'), 'a2,b2', 'and caches the current state');
}

# ---------------------------------------------------------------------
# A key of a unique column takes no lock: its writers are ordered by the
# row lock.  (The same durable transaction as above, held before its
# outbox insert, leaves no advisory lock behind.)
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres', q{
	CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
	SELECT cachebridge.attach('kv', 'kv:{id}');
	INSERT INTO kv VALUES (1, 'x');
});
	my $l = $node->background_psql('postgres');
	my $t = $node->background_psql('postgres');
	my $tpid = $t->query_safe('SELECT pg_backend_pid()');

	$l->query_safe('BEGIN');
	$l->query_safe('LOCK TABLE cachebridge.outbox IN SHARE MODE');
	$t->query_safe("SET cachebridge.delivery = 'durable'");
	$t->query_safe('BEGIN');
	$t->query_safe("UPDATE kv SET v = 'y' WHERE id = 1");
	send_async($t, 'COMMIT;', 'tdone');
	ok(waits_for($tpid, 'relation'), 'the writer of a unique key is at commit');
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_locks WHERE pid = $tpid AND locktype = 'advisory'"),
		'0', 'and holds no ordering lock');
	$l->query_safe('COMMIT');
	wait_async($t, 'tdone');
	$_->quit for ($l, $t);
}

# ---------------------------------------------------------------------
# A transaction with more than 32 such keys takes one database-wide lock
# instead of a lock per key: a writer of any other such key waits for it.
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres', q{
	INSERT INTO orders SELECT g, g, 'bulk0' FROM generate_series(100, 139) AS g;
	INSERT INTO orders VALUES (999, 999, 'other0');
});
	my $l = $node->background_psql('postgres');
	my $t1 = $node->background_psql('postgres');
	my $t2 = $node->background_psql('postgres');
	my $t1pid = $t1->query_safe('SELECT pg_backend_pid()');
	my $t2pid = $t2->query_safe('SELECT pg_backend_pid()');

	$l->query_safe('BEGIN');
	$l->query_safe('LOCK TABLE cachebridge.outbox IN SHARE MODE');
	$t1->query_safe("SET cachebridge.delivery = 'durable'");
	$t1->query_safe('BEGIN');
	$t1->query_safe("UPDATE orders SET note = 'bulk1' WHERE id BETWEEN 100 AND 139");
	send_async($t1, 'COMMIT;', 't1done');
	ok(waits_for($t1pid, 'relation'), 'the bulk transaction took its version');
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_locks WHERE pid = $t1pid AND locktype = 'advisory' AND granted"),
		'1', 'it holds one ordering lock for its 80 keys');

	$t2->query_safe("SET cachebridge.delivery = 'sync'");
	send_async($t2, "UPDATE orders SET note = 'other2' WHERE id = 999;", 't2done');
	ok(still_busy($t2pid, 1), 'a writer of another such key waits for it');
	$l->query_safe('COMMIT');
	wait_async($t1, 't1done');
	wait_async($t2, 't2done');
	$_->quit for ($l, $t1, $t2);
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered()'),
		't', 'both are delivered');
	is($redis->cli('GET', 'last_order:139'), '{"id":139,"user_id":139,"note":"bulk1"}',
		'the bulk transaction\'s keys are applied');
	is($redis->cli('GET', 'last_order:999'), '{"id":999,"user_id":999,"note":"other2"}',
		'and the other writer\'s');
}

$node->stop;
$redis->stop;
done_testing();
