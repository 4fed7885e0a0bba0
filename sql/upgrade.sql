--
-- ALTER EXTENSION cachebridge UPDATE from 1.0 through 1.1 and 1.2 to 1.3:
-- publish() appears, new triggers are checked at CREATE TRIGGER, attach()
-- knows the mode, the upgraded database publishes, and 1.2's statistics
-- (refused_keys) keep their privileges.  (A fresh CREATE EXTENSION runs the
-- same scripts, so this is also what every new install gets.)
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE cb_upgraded;

\c cb_upgraded
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.0';
SELECT count(*) AS publish_in_1_0 FROM pg_proc WHERE proname = 'publish'
  AND pronamespace = 'cachebridge'::regnamespace;
ALTER EXTENSION cachebridge UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'cachebridge';
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('cachebridge_writer', p.oid, 'EXECUTE') AS writer,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       pg_depend.deptype AS member
FROM pg_proc p
JOIN pg_depend ON pg_depend.objid = p.oid AND pg_depend.refclassid = 'pg_extension'::regclass
WHERE p.pronamespace = 'cachebridge'::regnamespace AND p.proname = 'publish';
RESET client_min_messages;

-- the event trigger now checks publish triggers
CREATE TABLE up (id int);
CREATE TRIGGER bad AFTER INSERT ON up
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:{nosuch}');
-- attach knows mode publish
SELECT cachebridge.attach('up', 'ev:upgraded', 'publish');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'up'::regclass ORDER BY 1;

-- and the upgraded database publishes
\! redis-cli -p $CB_REDIS_PORT del ev:upgraded > /dev/null
INSERT INTO up VALUES (1);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT xlen ev:upgraded

-- 1.2 rebuilt the statistics with refused_keys, keeping their grants
SELECT refused_keys >= 0 AS refused_keys_counted FROM cachebridge.stats;
SELECT has_table_privilege('cachebridge_reader', 'cachebridge.stats', 'SELECT') AS reader_reads_stats,
       has_table_privilege('public', 'cachebridge.stats', 'SELECT') AS public_reads_stats,
       has_function_privilege('public', 'cachebridge.stats()', 'EXECUTE') AS public_runs_stats;

-- 1.3 (day-two operations): mget, get_hash and delivery_lag, for the
-- reader only; monitoring roles read the statistics, which gained the lag
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('cachebridge_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('pg_read_all_stats', p.oid, 'EXECUTE') AS stats_role
FROM pg_proc p
WHERE p.pronamespace = 'cachebridge'::regnamespace
  AND p.proname IN ('mget', 'get_hash', 'delivery_lag', 'stats', 'delivery_status')
ORDER BY 1;
SELECT has_table_privilege('pg_monitor', 'cachebridge.stats', 'SELECT') AS monitor_reads_stats,
       has_table_privilege('cachebridge_reader', 'cachebridge.stats', 'SELECT') AS reader_still_reads,
       has_table_privilege('public', 'cachebridge.stats', 'SELECT') AS public_reads_stats;
SELECT direct_lag_samples >= 0 AS lag_columns FROM cachebridge.stats;
-- and the upgraded database drops its schema with the extension
SELECT evtname, evtevent, evttags FROM pg_event_trigger
WHERE evtname = 'cachebridge_drop_schema';
\c :regress_db
DROP DATABASE cb_upgraded;
CREATE DATABASE cb_upgraded;
\c cb_upgraded
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.2';
ALTER EXTENSION cachebridge UPDATE;
DROP EXTENSION cachebridge;
SELECT count(*) AS schema_left_after_drop FROM pg_namespace WHERE nspname = 'cachebridge';
RESET client_min_messages;

\c :regress_db
DROP DATABASE cb_upgraded;
