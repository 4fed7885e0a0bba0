--
-- Every error of the cachebridge triggers: how they must be defined, their
-- arguments (checked at CREATE TRIGGER by the event trigger
-- cachebridge_check_triggers, or when a trigger first fires), and key
-- templates.  Each message names the trigger and the table; the SQLSTATE is
-- shown after the first error of each kind.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE te (id int PRIMARY KEY, name text, email text);

--
-- How the trigger is defined: AFTER ... FOR EACH ROW.  PostgreSQL accepts
-- any definition; CREATE TRIGGER is refused (more in trigger_ddl_checks),
-- and a trigger made where event triggers do not fire (here:
-- session_replication_role = replica) refuses to run: the statement fails.
--
CREATE TRIGGER te_before BEFORE INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}');
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
CREATE TRIGGER te_before BEFORE INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}');
RESET session_replication_role;
INSERT INTO te VALUES (1, 'a', 'a@x');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER te_before ON te;
CREATE TRIGGER te_stmt AFTER INSERT ON te
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.invalidate('te:{id}');
SET session_replication_role = replica;
CREATE TRIGGER te_stmt AFTER INSERT ON te
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.invalidate('te:{id}');
RESET session_replication_role;
INSERT INTO te VALUES (1, 'a', 'a@x');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER te_stmt ON te;
-- the failed statements changed nothing and sent nothing
SELECT count(*) FROM te;
\! redis-cli -p $CB_REDIS_PORT dbsize

--
-- The functions cannot be called outside a trigger.  PostgreSQL itself
-- lets a C function returning "trigger" be called from SELECT; the
-- function's own check refuses.
--
SELECT cachebridge.write_through();
\echo :LAST_ERROR_SQLSTATE
SELECT cachebridge.invalidate();

--
-- An unknown column is refused at CREATE TRIGGER, with its name
--
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{nope}');
\echo :LAST_ERROR_SQLSTATE
-- in any template of invalidate, not just the first
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('te:{id}', 'te_mail:{mail}');
-- column names are case sensitive, as written in the catalog
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{ID}');
-- none of the refused triggers exists
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'te'::regclass;

--
-- Options
--
-- unknown option
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'expire=5');
\echo :LAST_ERROR_SQLSTATE
-- bad ttl: zero, negative, not a number, empty, fractional, too large
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'ttl=0');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'ttl=-5');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'ttl=soon');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'ttl=');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'ttl=1.5');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'ttl=2147483648');
-- bad format
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'format=xml');
-- columns= naming an unknown column, or nothing
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'columns=id,phone');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'columns=');
-- write_through takes one template: a second one (or an option in upper
-- case, which is not an option) is refused
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'te2:{id}');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}', 'TTL=5');
-- invalidate takes no option, known or not
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('te:{id}', 'ttl=5');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('te:{id}', 'format=hash');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('te:{id}', 'expire=5');
-- no template at all
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through();
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('ttl=5');

--
-- Malformed templates
--
-- a "{" never closed
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id');
\echo :LAST_ERROR_SQLSTATE
-- a "{" inside a column reference
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{i{d}');
-- a lone "}", at the end or alone
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{id}}');
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:id}');
-- "{{" is a literal brace, so the "}" after "{{id" is a lone one
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{{id}');
-- "{}" names no column
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('te:{}');
-- empty template
CREATE TRIGGER te_bad AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'te'::regclass;

--
-- A trigger made while the event trigger did not run (here: in replica
-- mode, where ordinary event triggers do not fire) is checked when it
-- first fires
--
SET session_replication_role = replica;
CREATE TRIGGER te_unchecked AFTER INSERT ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{nope}');
RESET session_replication_role;
INSERT INTO te VALUES (1, 'a', 'a@x');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER te_unchecked ON te;

--
-- A column renamed after the trigger exists is refused at ALTER TABLE (more
-- in trigger_ddl_checks).  Renamed where event triggers do not fire, the
-- next write fails with the unknown-column error (the parsed template was
-- dropped with the table's cached definition), and works again once the
-- name is back
--
CREATE TRIGGER te_cache AFTER INSERT OR UPDATE OR DELETE ON te
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('te:{email}', 'columns=id,name');
INSERT INTO te VALUES (1, 'a', 'a@x');
\! redis-cli -p $CB_REDIS_PORT --raw get te:a@x
ALTER TABLE te RENAME COLUMN email TO mail;
SET session_replication_role = replica;
ALTER TABLE te RENAME COLUMN email TO mail;
RESET session_replication_role;
INSERT INTO te VALUES (2, 'b', 'b@x');
UPDATE te SET name = 'A' WHERE id = 1;
DELETE FROM te WHERE id = 1;
-- a renamed columns= column fails the same way
SET session_replication_role = replica;
ALTER TABLE te RENAME COLUMN mail TO email;
ALTER TABLE te RENAME COLUMN name TO full_name;
RESET session_replication_role;
UPDATE te SET full_name = 'A' WHERE id = 1;
SET session_replication_role = replica;
ALTER TABLE te RENAME COLUMN full_name TO name;
RESET session_replication_role;
UPDATE te SET name = 'A' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT --raw get te:a@x
-- a dropped key column, likewise
SET session_replication_role = replica;
ALTER TABLE te DROP COLUMN email;
RESET session_replication_role;
INSERT INTO te VALUES (3, 'c');
-- nothing of the failed statements reached Redis
\! redis-cli -p $CB_REDIS_PORT --scan | grep -v '#cbv$' | sort

DROP TABLE te;
