# test/t/087_schema_hijack.pl -- no role becomes superuser by owning the
# schema "cachebridge" (found by the adversarial review of issue 11).
#
# CREATE EXTENSION of a non-relocatable extension silently uses a schema of
# the control file's name that already exists.  mallory, owner of database
# "tenant" and nothing more, creates the schema "cachebridge" before a
# superuser installs the extension there.  As the schema's owner she could
# then rename it and make a new "cachebridge" with a table "outbox" of her
# own carrying a trigger: the worker and the commit path, working as the
# extension's owner (a superuser), would write to her table and run her
# trigger.  Version 1.2 refuses such a schema at CREATE EXTENSION and at
# the upgrade; for a database still on 1.1, the C code refuses to touch an
# outbox that is not the extension's own.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'hijack');
my $node = CacheBridgeTest::new_node('hijack', redis => $redis);

$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN NOSUPERUSER IN ROLE cachebridge_writer;
	CREATE DATABASE tenant OWNER mallory;
});

# Runs $sql as mallory in tenant; returns (rc, stdout, stderr).
sub as_mallory
{
	my ($sql) = @_;
	return $node->psql('tenant', $sql, extra_params => [ '-U', 'mallory' ]);
}

sub mallory_is_superuser
{
	return $node->safe_psql('postgres',
		"SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'");
}

# before the extension: the schema is mallory's
as_mallory('CREATE SCHEMA cachebridge');

my ($rc, $out, $err) = $node->psql('tenant', 'CREATE EXTENSION cachebridge');
isnt($rc, 0, 'CREATE EXTENSION refuses a schema "cachebridge" that another role made');
like($err, qr/schema "cachebridge" is owned by role "mallory"/, 'and names its owner');

# a database that installed 1.1 there (before the check existed)
($rc, $out, $err) = $node->psql('tenant', "CREATE EXTENSION cachebridge VERSION '1.1'");
is($rc, 0, 'version 1.1 installs into the hostile schema') or diag($err);

($rc, $out, $err) = as_mallory(q{
	ALTER SCHEMA cachebridge RENAME TO cb_real;
	CREATE SCHEMA cachebridge;
	CREATE TABLE cachebridge.outbox (
		id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
		version pg_lsn NOT NULL,
		created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
		neffects int4 NOT NULL,
		direct bool NOT NULL,
		attempts int4 NOT NULL DEFAULT 0,
		dead bool NOT NULL DEFAULT false,
		last_error text,
		effects bytea NOT NULL);
	CREATE TABLE public.ran (who name, su bool);
	CREATE FUNCTION public.evil() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.ran SELECT current_user, rolsuper
		  FROM pg_catalog.pg_roles WHERE rolname = current_user;
		BEGIN
			EXECUTE 'ALTER ROLE mallory SUPERUSER';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
		RETURN NULL;
	END $$;
	CREATE TRIGGER evil AFTER INSERT OR DELETE OR UPDATE ON cachebridge.outbox
		FOR EACH STATEMENT EXECUTE FUNCTION public.evil();
	CREATE TABLE public.t (id int PRIMARY KEY);
	CREATE TRIGGER t_cache AFTER INSERT OR UPDATE OR DELETE ON public.t
		FOR EACH ROW EXECUTE FUNCTION cb_real.write_through('t:{id}');
});
is($rc, 0, 'mallory renames the schema and plants her outbox') or diag($err);

# the commit path writes the outbox as its owner: refused
($rc, $out, $err) = as_mallory('INSERT INTO public.t VALUES (1)');
isnt($rc, 0, 'a write through the trigger is refused');
like($err, qr/schema of extension "cachebridge" is not a schema "cachebridge" owned by the extension's owner/,
	'with the reason');
# wait_delivered and the worker read it: refused too
($rc, $out, $err) = as_mallory('SELECT cb_real.wait_delivered(1000)');
isnt($rc, 0, 'wait_delivered refuses the planted outbox');
$node->safe_psql('postgres', "SELECT pg_sleep(1)");
is($node->safe_psql('tenant', 'SELECT count(*) FROM public.ran'), '0',
	'mallory\'s trigger never ran');
is(mallory_is_superuser(), 'f', 'mallory is still no superuser');

# the upgrade to 1.2 refuses the renamed schema
($rc, $out, $err) = $node->psql('tenant', 'ALTER EXTENSION cachebridge UPDATE');
isnt($rc, 0, 'ALTER EXTENSION UPDATE refuses the hostile schema');
like($err, qr/owned by role "mallory"/, 'and names its owner');

# the remedy the hint gives works
($rc, $out, $err) = $node->psql('tenant', 'DROP EXTENSION cachebridge CASCADE');
is($rc, 0, 'the extension can be dropped') or diag($err);
is(mallory_is_superuser(), 'f', 'mallory is still no superuser at the end');

$node->stop;
done_testing();
