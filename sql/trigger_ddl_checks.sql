--
-- Mistakes caught at DDL time.  The event trigger cachebridge_check_triggers
-- refuses, at CREATE TRIGGER, a cachebridge trigger that is BEFORE or
-- INSTEAD OF, FOR EACH STATEMENT for INSERT/UPDATE/DELETE, on a view, or
-- has duplicate, conflicting or padded options; cachebridge_check_table_changes
-- refuses, at ALTER TABLE, renaming or dropping a column a trigger's
-- templates or columns= name, and changing the type of a key's column --
-- each error names the trigger.  Triggers made before 1.3 (or with the
-- event triggers disabled) get the same errors when they first fire.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE dc (id int PRIMARY KEY, name text, at timestamptz, note text);

--
-- How the trigger is defined
--
CREATE TRIGGER dc_bad BEFORE INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER dc_bad BEFORE UPDATE ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('dc:{id}');
CREATE TRIGGER dc_bad BEFORE DELETE ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:dc');
CREATE TRIGGER dc_bad BEFORE TRUNCATE ON dc
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.write_through('dc:{id}');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.write_through('dc:{id}');
CREATE TRIGGER dc_bad AFTER UPDATE OR TRUNCATE ON dc
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.invalidate('dc:{id}');
CREATE TRIGGER dc_bad AFTER DELETE ON dc
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.publish('ev:dc');
-- on a view: INSTEAD OF rows, and AFTER statements
CREATE VIEW dc_view AS SELECT * FROM dc;
CREATE TRIGGER dc_bad INSTEAD OF INSERT ON dc_view
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER dc_bad AFTER INSERT ON dc_view
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.invalidate('dc:{id}');
DROP VIEW dc_view;
-- none was created; the right definitions are accepted
SELECT count(*) AS refused_left FROM pg_trigger WHERE tgname = 'dc_bad';
CREATE TRIGGER dc_ok AFTER TRUNCATE ON dc
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.write_through('dc:{id}');
DROP TRIGGER dc_ok ON dc;

--
-- Duplicate, conflicting and padded options
--
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'ttl=5', 'ttl=10');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'ttl=5', 'ttl=5');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'format=json', 'format=hash');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=id', 'columns=name');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'notify=a', 'notify=b');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:dc', 'maxlen=1', 'maxlen=2');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:dc', 'old=true', 'old=false');
-- a column twice in columns=, however it is spelled
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=id,id');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=id,name,"id"');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=ID, id');
-- white space around a value, and signs
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'ttl= 5');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'ttl=5 ');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'ttl=+5');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'format= hash');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('dc:{id}', 'notify=chan ');
CREATE TRIGGER dc_bad AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:dc', 'maxlen=	7');
-- attach's TTL and a ttl= option are the same option given twice
SELECT cachebridge.attach('dc', 'dc:{id}', 'write_through', 60, 'ttl=30');
SELECT count(*) AS refused_left FROM pg_trigger WHERE tgrelid = 'dc'::regclass;
-- a list with spaces after the commas is still one option, accepted
CREATE TRIGGER dc_ok AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=id, name', 'ttl=5');
DROP TRIGGER dc_ok ON dc;

--
-- Triggers made before 1.3 (here: with the event trigger disabled) fail
-- at their first firing with the same errors, and write nothing
--
ALTER EVENT TRIGGER cachebridge_check_triggers DISABLE;
CREATE TRIGGER dc_old AFTER INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'ttl=5', 'ttl=10');
CREATE TRIGGER dc_old_stmt AFTER INSERT ON dc
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.invalidate('dc:{id}');
ALTER EVENT TRIGGER cachebridge_check_triggers ENABLE;
INSERT INTO dc VALUES (1, 'one');
DROP TRIGGER dc_old ON dc;
INSERT INTO dc VALUES (1, 'one');
DROP TRIGGER dc_old_stmt ON dc;
ALTER EVENT TRIGGER cachebridge_check_triggers DISABLE;
CREATE TRIGGER dc_old BEFORE INSERT ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=id,id');
ALTER EVENT TRIGGER cachebridge_check_triggers ENABLE;
INSERT INTO dc VALUES (1, 'one');
DROP TRIGGER dc_old ON dc;
SELECT count(*) AS rows FROM dc;
\! redis-cli -p $CB_REDIS_PORT dbsize

--
-- ALTER TABLE of the columns a trigger uses
--
CREATE TRIGGER dc_cache AFTER INSERT OR UPDATE OR DELETE ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('dc:{id}', 'columns=id,name');
CREATE TRIGGER dc_events AFTER INSERT OR UPDATE OR DELETE ON dc
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:dc:{{x}}:{at}');
-- a column of a key template: rename, drop, type
ALTER TABLE dc RENAME COLUMN id TO dc_id;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE dc DROP COLUMN id;
ALTER TABLE dc DROP COLUMN id CASCADE;
ALTER TABLE dc ALTER COLUMN id TYPE bigint;
-- a column of columns=: rename and drop are refused, a type change is not
-- (the next write replaces the value; no key changes)
ALTER TABLE dc RENAME COLUMN name TO title;
ALTER TABLE dc DROP COLUMN name;
ALTER TABLE dc ALTER COLUMN name TYPE varchar(200);
-- a column of a stream name
ALTER TABLE dc RENAME at TO created_at;
ALTER TABLE dc ALTER COLUMN at TYPE timestamp;
-- one refused subcommand refuses the whole statement
ALTER TABLE dc ADD COLUMN extra int, DROP COLUMN at;
SELECT attname FROM pg_attribute WHERE attrelid = 'dc'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
-- columns no trigger names can change freely
ALTER TABLE dc RENAME COLUMN note TO remark;
ALTER TABLE dc ALTER COLUMN remark TYPE varchar(100);
ALTER TABLE dc ADD COLUMN extra int;
ALTER TABLE dc DROP COLUMN extra;
ALTER TABLE dc DROP COLUMN remark;
-- the triggers still work
INSERT INTO dc VALUES (2, 'two', '2025-01-01 12:00:00+00');
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw get dc:2
\! redis-cli -p $CB_REDIS_PORT xlen 'ev:dc:{x}:2025-01-01 12:00:00+00'
-- once the trigger is gone, the column can change
DROP TRIGGER dc_events ON dc;
ALTER TABLE dc RENAME at TO created_at;

-- quoted column names in columns=
CREATE TABLE dc_quoted ("Id" int, "a,b" text);
CREATE TRIGGER dc_q AFTER INSERT ON dc_quoted
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('q:{Id}', 'columns="Id","a,b"');
ALTER TABLE dc_quoted RENAME "a,b" TO ab;
ALTER TABLE dc_quoted RENAME "Id" TO id;
DROP TABLE dc_quoted;

-- a partitioned table: the trigger on the partitioned table, and a
-- partition's own trigger, both hold their columns
CREATE TABLE dc_parted (id int, region text, v text) PARTITION BY LIST (region);
CREATE TABLE dc_parted_eu PARTITION OF dc_parted FOR VALUES IN ('eu');
CREATE TRIGGER dc_p AFTER INSERT OR UPDATE OR DELETE ON dc_parted
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('p:{id}');
ALTER TABLE dc_parted RENAME COLUMN id TO pid;
ALTER TABLE dc_parted ALTER COLUMN id TYPE bigint;
CREATE TRIGGER dc_p_eu AFTER INSERT OR UPDATE OR DELETE ON dc_parted_eu
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('p:eu:{v}');
ALTER TABLE dc_parted DROP COLUMN v;
ALTER TABLE dc_parted RENAME COLUMN v TO value;
DROP TABLE dc_parted;

-- a table owner with no cachebridge privilege alters its tables as before,
-- and is refused the same way
CREATE ROLE cb_dc_owner;
CREATE TABLE dc_owned (id int, v text);
CREATE TRIGGER dc_o AFTER INSERT ON dc_owned
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('o:{id}');
ALTER TABLE dc_owned OWNER TO cb_dc_owner;
SET ROLE cb_dc_owner;
ALTER TABLE dc_owned ADD COLUMN w int;
ALTER TABLE dc_owned RENAME COLUMN v TO vv;
ALTER TABLE dc_owned RENAME COLUMN id TO oid_;
RESET ROLE;
DROP TABLE dc_owned;
DROP ROLE cb_dc_owner;

DROP TABLE dc;
