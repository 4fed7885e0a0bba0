--
-- cachebridge triggers are refused on foreign tables.  A foreign table's
-- rows change on another server, in transactions without a local
-- transaction id, so the version marker of its keys could not tell a
-- cache fill that it read an older row (fill protection, see
-- src/scripts.c): a stale fill would win.  The refusal comes at CREATE
-- TRIGGER (event trigger cachebridge_check_triggers) and, for a trigger
-- made without that check (cloned onto a foreign partition, or created
-- while event triggers were off), when it first fires.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\! redis-cli -p $CB_REDIS_PORT flushall

-- a read-only foreign table over a small file (file_fdw)
CREATE EXTENSION file_fdw;
CREATE SERVER fdw_files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE ft_file (id int, name text)
    SERVER fdw_files OPTIONS (program 'printf "1,Ada\n2,Grace\n"', format 'csv');
SELECT * FROM ft_file ORDER BY id;

CREATE TRIGGER ft_file_cache AFTER INSERT OR UPDATE OR DELETE ON ft_file
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('ft:{id}');
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER ft_file_inv AFTER INSERT OR UPDATE OR DELETE ON ft_file
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('ft:{id}', 'ft_name:{name}');
CREATE TRIGGER ft_file_pub AFTER INSERT OR UPDATE OR DELETE ON ft_file
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ft_events');
SELECT cachebridge.attach('ft_file', 'ft:{id}');
-- no trigger was left behind
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'ft_file'::regclass;

-- a writable foreign table (postgres_fdw, back into this database)
CREATE EXTENSION postgres_fdw;
\getenv pghost PGHOST
\getenv pgport PGPORT
SELECT current_database() AS dbname \gset
CREATE SERVER fdw_loopback FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host :'pghost', port :'pgport', dbname :'dbname');
CREATE USER MAPPING FOR CURRENT_USER SERVER fdw_loopback;
CREATE TABLE ft_remote_rows (id int PRIMARY KEY, name text);
CREATE FOREIGN TABLE ft_remote (id int, name text)
    SERVER fdw_loopback OPTIONS (table_name 'ft_remote_rows');
INSERT INTO ft_remote VALUES (1, 'Ada');
SELECT * FROM ft_remote;

CREATE TRIGGER ft_remote_cache AFTER INSERT OR UPDATE OR DELETE ON ft_remote
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('ftr:{id}');

-- made while event triggers do not fire, the trigger fails when it fires,
-- and the write fails with it
SET session_replication_role = replica;
CREATE TRIGGER ft_remote_cache AFTER INSERT OR UPDATE OR DELETE ON ft_remote
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('ftr:{id}');
RESET session_replication_role;
UPDATE ft_remote SET name = 'Ada Lovelace' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ft_remote;
DROP TRIGGER ft_remote_cache ON ft_remote;

-- a foreign partition gets a clone of its parent's trigger, which the
-- event trigger does not see: it fails when a row is routed there
CREATE TABLE ft_parted (id int, name text) PARTITION BY RANGE (id);
CREATE TABLE ft_parted_local PARTITION OF ft_parted FOR VALUES FROM (0) TO (100);
CREATE TRIGGER ft_parted_cache AFTER INSERT OR UPDATE OR DELETE ON ft_parted
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('ftp:{id}');
CREATE TABLE ft_parted_remote_rows (id int, name text);
CREATE FOREIGN TABLE ft_parted_remote PARTITION OF ft_parted FOR VALUES FROM (100) TO (200)
    SERVER fdw_loopback OPTIONS (table_name 'ft_parted_remote_rows');
INSERT INTO ft_parted VALUES (1, 'local');
INSERT INTO ft_parted VALUES (101, 'remote');
SELECT * FROM ft_parted ORDER BY id;

DROP TABLE ft_parted, ft_parted_remote_rows;
DROP FOREIGN TABLE ft_remote;
DROP TABLE ft_remote_rows;
DROP USER MAPPING FOR CURRENT_USER SERVER fdw_loopback;
DROP SERVER fdw_loopback;
DROP EXTENSION postgres_fdw;
DROP FOREIGN TABLE ft_file;
DROP SERVER fdw_files;
DROP EXTENSION file_fdw;
