# test/t/070_security_elevation.pl -- no role gains rights through code
# that cachebridge runs with more rights than its caller (issue 11, part 1).
#
# mallory is an ordinary role (LOGIN, NOSUPERUSER, a cachebridge writer)
# who owns the database "tenant".  She plants a schema "evil" whose
# operators (=, <, <=, -, *, + ... on int8, int4, timestamptz, interval,
# text, name), aggregates (max, count, min, sum) and type-named functions
# (the function-call form of a cast) shadow pg_catalog's when "evil" comes
# first on search_path.  Each of them logs that it ran and tries ALTER ROLE
# mallory SUPERUSER, which succeeds only if it runs as a superuser.  Then
# every path that runs as another role or in a background worker is driven
# with "evil" first on search_path -- set by the caller, by ALTER ROLE ...
# SET and by ALTER DATABASE ... SET -- and after each the test asserts that
# mallory is still no superuser, that no hostile object ran, and that the
# legitimate effect happened.
#
# Also: cachebridge.validate_trigger() checks privileges before it locks a
# table, and DROP DATABASE stops a database's worker only for a role that
# may drop the database, and lets it come back when the drop fails.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'elevation');
my $node = CacheBridgeTest::new_node(
	'elevation',
	redis => $redis,
	conf => [
		'cachebridge.connect_timeout = 300', 'cachebridge.command_timeout = 300',
	]);

$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN NOSUPERUSER IN ROLE cachebridge_writer;
	-- the delivery mode is a superuser setting; she may choose hers
	GRANT SET ON PARAMETER cachebridge.delivery TO mallory;
	CREATE ROLE bob LOGIN NOSUPERUSER;
	CREATE DATABASE tenant OWNER mallory;
	CREATE TABLE secret (id int);
});
$node->safe_psql('tenant', 'CREATE EXTENSION cachebridge');

# Runs $sql as mallory in database $db; dies on an error.
sub as_mallory
{
	my ($db, $sql) = @_;

	return $node->safe_psql($db, $sql, extra_params => [ '-U', 'mallory' ]);
}

# Runs $sql as the superuser in "tenant", immune to the hostile objects.
sub tenant_sql
{
	my ($sql) = @_;

	return $node->safe_psql('tenant', "SET search_path = pg_catalog;\n$sql");
}

# ---------------------------------------------------------------------
# The hostile schema.
# ---------------------------------------------------------------------
my @operators = (
	# name, left, right, result
	[ '=', 'int8', 'int8', 'bool' ],
	[ '=', 'int8', 'int4', 'bool' ],
	[ '=', 'int4', 'int4', 'bool' ],
	[ '=', 'text', 'text', 'bool' ],
	[ '=', 'name', 'name', 'bool' ],
	[ '=', 'oid', 'oid', 'bool' ],
	[ '=', 'timestamptz', 'timestamptz', 'bool' ],
	[ '<>', 'text', 'text', 'bool' ],
	[ '<', 'int8', 'int8', 'bool' ],
	[ '<', 'int4', 'int4', 'bool' ],
	[ '<', 'timestamptz', 'timestamptz', 'bool' ],
	[ '<=', 'int8', 'int8', 'bool' ],
	[ '<=', 'int4', 'int4', 'bool' ],
	[ '>', 'int8', 'int8', 'bool' ],
	[ '>=', 'int8', 'int8', 'bool' ],
	[ '+', 'int4', 'int4', 'int4' ],
	[ '+', 'int8', 'int8', 'int8' ],
	[ '-', 'int8', 'int8', 'int8' ],
	[ '-', 'timestamptz', 'interval', 'timestamptz' ],
	[ '-', 'timestamptz', 'timestamptz', 'interval' ],
	[ '*', 'int4', 'interval', 'interval' ],
	[ '*', 'float8', 'interval', 'interval' ],
	[ '||', 'text', 'text', 'text' ],);

my $evil = q{
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE TABLE evil.log (who name, what text);
GRANT INSERT ON evil.log TO PUBLIC;
CREATE FUNCTION evil.pwn(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evil.log (who, what) VALUES (current_user, what);
    BEGIN
        ALTER ROLE mallory SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
END
$$;
};
my $n = 0;
for my $op (@operators)
{
	my ($name, $l, $r, $res) = @$op;
	$n++;
	$evil .= qq{
CREATE FUNCTION evil.op$n(a $l, b $r) RETURNS $res LANGUAGE plpgsql AS \$\$
BEGIN
    PERFORM evil.pwn('operator $name($l, $r)');
    RETURN a OPERATOR(pg_catalog.$name) b;
END
\$\$;
CREATE OPERATOR evil.$name (LEFTARG = $l, RIGHTARG = $r, FUNCTION = evil.op$n);
};
}
$evil .= q{
CREATE FUNCTION evil.max_step(s int8, v int8) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('aggregate max(int8)');
    RETURN CASE WHEN s IS NULL OR v OPERATOR(pg_catalog.>) s THEN v ELSE s END;
END
$$;
CREATE AGGREGATE evil.max(int8) (SFUNC = evil.max_step, STYPE = int8);
CREATE FUNCTION evil.count_step(s int8) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('aggregate count(*)');
    RETURN s OPERATOR(pg_catalog.+) 1;
END
$$;
CREATE AGGREGATE evil.count(*) (SFUNC = evil.count_step, STYPE = int8, INITCOND = '0');
CREATE FUNCTION evil.min_step(s timestamptz, v timestamptz) RETURNS timestamptz
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('aggregate min(timestamptz)');
    RETURN CASE WHEN s IS NULL OR v OPERATOR(pg_catalog.<) s THEN v ELSE s END;
END
$$;
CREATE AGGREGATE evil.min(timestamptz) (SFUNC = evil.min_step, STYPE = timestamptz);
CREATE FUNCTION evil.sum_step(s int8, v int4) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('aggregate sum(int4)');
    RETURN pg_catalog.coalesce(s, 0) OPERATOR(pg_catalog.+) v;
END
$$;
CREATE AGGREGATE evil.sum(int4) (SFUNC = evil.sum_step, STYPE = int8);
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('function clock_timestamp()');
    RETURN pg_catalog.clock_timestamp();
END
$$;
CREATE FUNCTION evil.current_database() RETURNS name LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('function current_database()');
    RETURN pg_catalog.current_database();
END
$$;
CREATE FUNCTION evil.octet_length(b bytea) RETURNS int4 LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('function octet_length(bytea)');
    RETURN pg_catalog.octet_length(b);
END
$$;
CREATE FUNCTION evil.quote_literal(t text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('function quote_literal(text)');
    RETURN pg_catalog.quote_literal(t);
END
$$;
-- the function-call form of casts: int8(x), float8(x), "interval"(x)
CREATE FUNCTION evil.int8(v int4) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('cast function int8(int4)');
    RETURN v::pg_catalog.int8;
END
$$;
CREATE FUNCTION evil.float8(v int4) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('cast function float8(int4)');
    RETURN v::pg_catalog.float8;
END
$$;
CREATE FUNCTION evil."interval"(v text) RETURNS interval LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('cast function interval(text)');
    RETURN v::pg_catalog.interval;
END
$$;
-- a cast of a type of her own, the only kind an ordinary role may create
CREATE TYPE evil.t AS (v int8);
CREATE FUNCTION evil.t_of(v int8) RETURNS evil.t LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.pwn('cast int8 -> evil.t');
    RETURN ROW(v)::evil.t;
END
$$;
CREATE CAST (int8 AS evil.t) WITH FUNCTION evil.t_of(int8) AS IMPLICIT;

CREATE SCHEMA app;
CREATE TABLE app.item (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('app.item', 'item:{id}');
};
as_mallory('tenant', $evil);

# The hostile objects work: in mallory's own session they run (as her).
is( as_mallory(
		'tenant', q{SET search_path = evil, pg_catalog;
SELECT 1::int8 = 1::int8;
SELECT count(*) FROM evil.log WHERE what OPERATOR(pg_catalog.=) 'operator =(int8, int8)';}
	),
	"t\n1",
	'the hostile operator shadows pg_catalog\'s when evil comes first');
tenant_sql('TRUNCATE evil.log');

my $case = 0;

# Asserts that mallory is no superuser and that no hostile object ran,
# then undoes whatever ran, so the next case starts clean.
sub assert_clean
{
	my ($label) = @_;
	my $super = $node->safe_psql('postgres',
		"SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'");
	my $log = tenant_sql(
		q{SELECT who || ': ' || what || ' (' || count(*) || ' calls)' }
		  . q{FROM evil.log GROUP BY who, what ORDER BY 1});

	is($super, 'f', "$label: mallory is not a superuser");
	is($log, '', "$label: no hostile object ran");
	$node->safe_psql('postgres', 'ALTER ROLE mallory NOSUPERUSER') if $super ne 'f';
	tenant_sql('TRUNCATE evil.log') if $log ne '';
	return;
}

# Polls Redis until $key holds $value; true if it did within $timeout s.
sub wait_key
{
	my ($key, $value, $timeout) = @_;
	my $t0 = time;

	while (time - $t0 < ($timeout // 30))
	{
		return 1 if $redis->cli('GET', $key) eq $value;
		sleep(0.1);
	}
	return 0;
}

# The value write_through caches for app.item row $id with value $v.
sub item_json { return qq({"id":$_[0],"v":"$_[1]"}); }

# The pids of tenant's cachebridge worker (empty: none runs).
sub tenant_worker
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE datname = 'tenant' "
		  . "AND backend_type = 'cachebridge worker'");
}

# Waits until tenant has no worker (it exits when its outbox is idle).
sub wait_no_tenant_worker
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'tenant' "
		  . "AND backend_type = 'cachebridge worker'")
	  or die 'the worker of tenant did not exit';
	return;
}

# ---------------------------------------------------------------------
# wait_delivered() and the outbox insert at commit, under the caller's
# search_path (SET) and a role-level one (ALTER ROLE ... SET).  Redis is
# down, so the outbox holds a row while wait_delivered() looks at it.
# ---------------------------------------------------------------------
{
	$redis->stop;
	as_mallory('tenant', q{SET search_path = evil, pg_catalog;
INSERT INTO app.item VALUES (1, 'one');});
	assert_clean('outbox insert at commit, SET search_path');

	is( as_mallory(
			'tenant', q{SET search_path = evil, pg_catalog;
SELECT cachebridge.wait_delivered(300);}),
		'f',
		'wait_delivered, SET search_path: false while Redis is down');
	assert_clean('wait_delivered, SET search_path');

	as_mallory('tenant', 'ALTER ROLE mallory SET search_path = evil, pg_catalog');
	is(as_mallory('tenant', 'SHOW search_path'),
		'evil, pg_catalog', 'ALTER ROLE ... SET search_path applies to her sessions');
	as_mallory('tenant', q{INSERT INTO app.item VALUES (2, 'two');});
	assert_clean('outbox insert at commit, ALTER ROLE ... SET search_path');
	is(as_mallory('tenant', 'SELECT cachebridge.wait_delivered(300)'),
		'f', 'wait_delivered, ALTER ROLE ... SET: false while Redis is down');
	assert_clean('wait_delivered, ALTER ROLE ... SET search_path');

	$redis->start;
	is(as_mallory('tenant', 'SELECT cachebridge.wait_delivered(30000)'),
		't', 'wait_delivered, ALTER ROLE ... SET: true once Redis is back');
	is($redis->cli('GET', 'item:1'), item_json(1, 'one'), 'item:1 is in Redis');
	is($redis->cli('GET', 'item:2'), item_json(2, 'two'), 'item:2 is in Redis');
	assert_clean('wait_delivered, ALTER ROLE ... SET search_path, delivered');
	as_mallory('tenant', 'ALTER ROLE mallory RESET search_path');
}

# ---------------------------------------------------------------------
# The worker under a database-level search_path set by the database's
# (non-superuser) owner.  A worker started after ALTER DATABASE gets it.
# ---------------------------------------------------------------------
{
	as_mallory('tenant', 'ALTER DATABASE tenant SET search_path = evil, pg_catalog');
	wait_no_tenant_worker();
	is(as_mallory('tenant', 'SHOW search_path'),
		'evil, pg_catalog', 'ALTER DATABASE ... SET search_path applies');

	# durable, Redis up: the backend delivers, the worker deletes the row
	as_mallory('tenant', q{INSERT INTO app.item VALUES (3, 'three');});
	ok( $node->poll_query_until('tenant',
			'SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 FROM cachebridge.outbox'),
		'durable: the worker deleted the acknowledged row');
	is($redis->cli('GET', 'item:3'), item_json(3, 'three'), 'item:3 is in Redis');
	isnt(tenant_worker(), '', 'a worker serves tenant');
	assert_clean('worker deleting acknowledged rows, ALTER DATABASE ... SET');

	# async: only the worker delivers
	as_mallory('tenant', q{SET cachebridge.delivery = async;
INSERT INTO app.item VALUES (4, 'four');});
	ok(wait_key('item:4', item_json(4, 'four')), 'async: the worker delivered item:4');
	assert_clean('worker delivering (async), ALTER DATABASE ... SET');

	# Redis down: the worker fails, marks the row, and retries
	$redis->stop;
	as_mallory('tenant', q{INSERT INTO app.item VALUES (5, 'five');});
	ok( $node->poll_query_until('tenant',
			'SELECT pg_catalog.bool_and(attempts OPERATOR(pg_catalog.>) 0) FROM cachebridge.outbox'),
		'the worker tried the row and marked it');
	$redis->start;
	ok(wait_key('item:5', item_json(5, 'five')), 'outage: the worker delivered item:5');
	assert_clean('worker retrying across an outage, ALTER DATABASE ... SET');

	# a database setting meant for its sessions does not make the worker fail
	as_mallory('tenant', 'ALTER DATABASE tenant SET default_transaction_read_only = on');
	wait_no_tenant_worker();
	as_mallory('tenant', q{SET default_transaction_read_only = off;
SET cachebridge.delivery = async;
INSERT INTO app.item VALUES (8, 'eight');});
	ok(wait_key('item:8', item_json(8, 'eight')), 'read-only database: item:8 delivered')
	  or diag('item:8 is ' . $redis->cli('GET', 'item:8'));
	my $t0 = time;
	my $left;
	do
	{
		$left = tenant_sql('SELECT count(*) FROM cachebridge.outbox');
	} while ($left ne '0' && time - $t0 < 20 && sleep(0.2));
	is($left, '0', 'read-only database: the worker deleted the delivered row');
	as_mallory('tenant', q{SET default_transaction_read_only = off;
ALTER DATABASE tenant RESET default_transaction_read_only;});
	assert_clean('worker under ALTER DATABASE ... SET default_transaction_read_only');
}

# ---------------------------------------------------------------------
# A superuser working in tenant gets its search_path too: every
# cachebridge function and view is immune to it.
# ---------------------------------------------------------------------
{
	my $out = $node->safe_psql('tenant', q{
SHOW search_path;
SELECT cachebridge.ring_add_node('default', 'shard-a');
SELECT cachebridge.ring_add_node('default', 'shard-b', 2);
SELECT cachebridge.ring_create('r', 'jump');
SELECT cachebridge.ring_add_node('r', 'n1');
SELECT cachebridge.ring_add_range('ranges', 'low', 0, 99);
SELECT cachebridge.ring_add_range('ranges', 'high', 100, 199);
SELECT cachebridge.shard_for('k') IS NOT NULL, cachebridge.shard_for('k', 'r'),
       cachebridge.shard_for('150', 'ranges');
SELECT node FROM cachebridge.ring_balance('default') ORDER BY node COLLATE "C";
SELECT key FROM cachebridge.shard_moves('default', ARRAY['a'], add_node => 'shard-c') WHERE false;
SELECT cachebridge.ring_remove_node('default', 'shard-b');
SELECT cachebridge.ring_drop('r');
CREATE TABLE app.other (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('app.other', 'other:{id}', 'write_through', 60, 'columns=id,v');
SELECT cachebridge.detach('app.other');
SELECT cachebridge.attach('app.other', 'other:{id}', 'invalidate');
SELECT cachebridge.detach('app.other');
SELECT cachebridge.attach('app.other', 'events', 'publish');
SELECT cachebridge.detach('app.other');
SELECT 1 FROM cachebridge.stats WHERE outbox_depth IS NOT NULL;
SELECT cachebridge.wait_delivered(5000);
});
	is( $out, join("\n",
			'evil, pg_catalog', '', '', '', '', '', '', 't|n1|high',
			'shard-a', 'shard-b', '', '', '', '', '', '', '', '', '1', 't'),
		'superuser in tenant: ring, attach/detach, stats and wait_delivered work');
	assert_clean('ring functions, attach/detach, stats view as superuser, ALTER DATABASE ... SET');

	# shard_for as mallory
	is(as_mallory('tenant', q{SELECT cachebridge.shard_for('7', 'ranges')}),
		'low', 'shard_for as mallory');
	assert_clean('shard_for as mallory, ALTER DATABASE ... SET');

	# the upgrade scripts, run by a superuser in tenant
	$out = $node->safe_psql('tenant', q{
DROP EXTENSION cachebridge CASCADE;
CREATE EXTENSION cachebridge VERSION '1.0';
ALTER EXTENSION cachebridge UPDATE;
SELECT extversion FROM pg_extension WHERE extname OPERATOR(pg_catalog.=) 'cachebridge';
SELECT cachebridge.attach('app.item', 'item:{id}');
});
	like($out, qr/^1\.\d+$/m, 'CREATE EXTENSION 1.0 and the upgrade scripts ran');
	assert_clean('CREATE EXTENSION and ALTER EXTENSION UPDATE, ALTER DATABASE ... SET');
}

# ---------------------------------------------------------------------
# validate_trigger() on a table the caller may not touch: a permission
# error before the table is opened.  With the table locked by another
# session, the call neither waits for the lock nor queues behind it.
# ---------------------------------------------------------------------
{
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('BEGIN; LOCK TABLE secret IN ACCESS EXCLUSIVE MODE;');
	my ($rc, $stdout, $stderr) = $node->psql('postgres',
		q{SET lock_timeout = '3s';
SELECT cachebridge.validate_trigger(0, 'public.secret'::regclass, 'write_through');},
		extra_params => [ '-U', 'mallory' ]);
	like($stderr, qr/permission denied for table secret/,
		'validate_trigger on a table mallory may not touch: permission denied');
	unlike($stderr, qr/lock timeout/, 'validate_trigger did not wait for the table\'s lock');
	$holder->query_safe('ROLLBACK');
	$holder->quit;
}

# ---------------------------------------------------------------------
# DROP DATABASE: a role that may not drop tenant does not stop its worker;
# a drop by the owner that fails lets the worker come back.  Redis is down
# meanwhile, so the worker has work and stays; nothing in tenant wakes it
# afterwards: the row pending must reach Redis all the same.
# ---------------------------------------------------------------------
{
	$redis->stop;
	as_mallory('tenant', q{INSERT INTO app.item VALUES (6, 'six');});
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 'tenant' "
		  . "AND backend_type = 'cachebridge worker'")
	  or die 'no worker for tenant';
	my $pid = tenant_worker();

	my ($rc, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE tenant',
		extra_params => [ '-U', 'bob' ]);
	like($stderr, qr/must be owner of database tenant/, 'bob may not drop tenant');
	sleep(2);
	is(tenant_worker(), $pid, 'the worker of tenant still runs, the same process');
	$redis->start;
	ok(wait_key('item:6', item_json(6, 'six')), 'the worker delivers after bob\'s failed DROP');

	$redis->stop;
	as_mallory('tenant', q{INSERT INTO app.item VALUES (7, 'seven');});
	my $other = $node->background_psql('tenant', on_error_stop => 0);
	$other->query('SELECT 1');
	($rc, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE tenant',
		extra_params => [ '-U', 'mallory' ]);
	like($stderr, qr/is being accessed by other users/,
		'the owner\'s DROP DATABASE fails while another session is connected');
	$other->quit;
	$redis->start;
	ok(wait_key('item:7', item_json(7, 'seven')),
		'the worker comes back after the owner\'s failed DROP');

	# and a drop that succeeds still succeeds
	($rc, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE tenant',
		extra_params => [ '-U', 'mallory' ]);
	is($rc, 0, 'the owner drops tenant while its worker runs') or diag($stderr);
}

done_testing();
