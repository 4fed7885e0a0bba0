# test/t/083_worker_steps_aside.pl -- the worker neither blocks database
# commands nor stays for prepared transactions; nothing is dropped with
# the extension.
#
# CREATE DATABASE ... TEMPLATE and ALTER DATABASE ... RENAME, like DROP
# DATABASE, need a database without other sessions: the database's worker,
# busy retrying its outbox while Redis is down, must step aside and come
# back afterwards.  A worker must exit when its outbox is idle even if the
# database has prepared transactions (with seven such databases no worker
# slot was left), and COMMIT PREPARED must still get the prepared
# transaction's effects delivered.  DROP EXTENSION with undelivered outbox
# rows is refused with their number.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'aside');
my $node = CacheBridgeTest::new_node(
	'aside',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300',
		'cachebridge.command_timeout = 300',
		'max_prepared_transactions = 5',
	]);

# The pids of the workers connected to database $db.
sub workers_of
{
	my ($db) = @_;

	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ' ') FROM pg_stat_activity "
		  . "WHERE backend_type = 'cachebridge worker' AND datname = '$db'");
}

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION cachebridge;
	CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
	SELECT cachebridge.attach('item', 'item:{id}');
});

# Redis down: the worker of src keeps retrying its row
$redis->stop;
$node->safe_psql('src', 'INSERT INTO item VALUES (1, 1)');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'cachebridge worker' AND datname = 'src'"),
	'the worker of src runs, retrying');

my ($rc, $out, $err) = $node->psql('postgres', 'CREATE DATABASE copy TEMPLATE src');
is($rc, 0, 'CREATE DATABASE ... TEMPLATE src succeeds while src has a worker')
  or diag($err);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'cachebridge worker' AND datname = 'src'"),
	'the worker of src came back');

($rc, $out, $err) = $node->psql('postgres', 'ALTER DATABASE src RENAME TO src2');
is($rc, 0, 'ALTER DATABASE src RENAME succeeds while src has a worker') or diag($err);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'cachebridge worker' AND datname = 'src2'"),
	'the worker came back to the renamed database');

$redis->start;
is($node->safe_psql('src2', 'SELECT cachebridge.wait_delivered(20000)'), 't',
	'the outbox of the renamed database is delivered');
is($redis->cli('GET', 'item:1'), '{"id":1,"n":1}', 'item:1 is in Redis');
$node->safe_psql('postgres', 'DROP DATABASE copy');

# a prepared transaction without cachebridge effects does not keep the worker
$node->safe_psql('src2', q{
	BEGIN;
	CREATE TABLE unrelated (x int);
	PREPARE TRANSACTION 'unrelated';
});
$node->safe_psql('src2', 'INSERT INTO item VALUES (2, 1)');
is($redis->cli('GET', 'item:2'), '{"id":2,"n":1}', 'item:2 is in Redis');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'cachebridge worker' AND datname = 'src2'"),
	'the idle worker exits although src2 has a prepared transaction');

# one with effects: delivered at COMMIT PREPARED, with no worker waiting for it
$node->safe_psql('src2', q{
	BEGIN;
	INSERT INTO item VALUES (3, 1);
	PREPARE TRANSACTION 'with_effects';
});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'cachebridge worker' AND datname = 'src2'"),
	'the worker exits while the transaction is prepared');
is($redis->cli('EXISTS', 'item:3'), '0', 'nothing of the prepared transaction is in Redis');
my $t0 = time();
$node->safe_psql('src2', "COMMIT PREPARED 'with_effects'");
my $seen;
while (time() - $t0 < 10)
{
	$seen = time() - $t0, last if $redis->cli('EXISTS', 'item:3') eq '1';
	sleep(0.05);
}
ok(defined $seen, 'COMMIT PREPARED: the effects are delivered');
cmp_ok($seen // 99, '<', 3, 'COMMIT PREPARED: promptly, by a worker it woke');
$node->safe_psql('src2', "ROLLBACK PREPARED 'unrelated'");

# DROP EXTENSION with undelivered rows
$redis->stop;
$node->safe_psql('src2', 'INSERT INTO item VALUES (4, 1)');
($rc, $out, $err) = $node->psql('src2', 'DROP EXTENSION cachebridge CASCADE');
isnt($rc, 0, 'DROP EXTENSION is refused while the outbox holds a row');
like($err, qr/cannot drop extension cachebridge while its outbox holds 1 undelivered transaction/,
	'the error gives their number');
like($err, qr/HINT:.*wait_delivered/, 'and says what to do');
$redis->start;
is($node->safe_psql('src2', 'SELECT cachebridge.wait_delivered(20000)'), 't',
	'the row is delivered');
($rc, $out, $err) = $node->psql('src2', 'DROP EXTENSION cachebridge CASCADE');
is($rc, 0, 'DROP EXTENSION then succeeds') or diag($err);

done_testing();
