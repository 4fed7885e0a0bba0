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

-- ==== partitions (1.3) ====
-- the upgrade made the event trigger that copies TRUNCATE triggers to
-- partitions, as members of the extension, not runnable by PUBLIC
SELECT e.evtname, e.evtevent, e.evttags, d.deptype AS member,
       has_function_privilege('public', 'cachebridge.partition_truncate_triggers()', 'EXECUTE') AS public_runs
FROM pg_event_trigger e
JOIN pg_depend d ON d.objid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.evtname = 'cachebridge_partition_truncate';
CREATE TABLE up_parted (id int) PARTITION BY RANGE (id);
SELECT cachebridge.attach('up_parted', 'up:{id}');
CREATE TABLE up_part1 PARTITION OF up_parted FOR VALUES FROM (0) TO (10);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'up_part1'::regclass AND NOT tgisinternal ORDER BY 1;

\c :regress_db
DROP DATABASE cb_upgraded;
