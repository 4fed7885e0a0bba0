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

-- 1.3: the view of what is attached, attach() names its triggers after the
-- mode, detach by name, and the checks at CREATE TRIGGER and ALTER TABLE
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_reads,
       has_table_privilege('cachebridge_reader', c.oid, 'SELECT') AS reader_reads,
       pg_depend.deptype AS member
FROM pg_class c
JOIN pg_depend ON pg_depend.objid = c.oid AND pg_depend.refclassid = 'pg_extension'::regclass
WHERE c.relnamespace = 'cachebridge'::regnamespace AND c.relname = 'attachments';
SELECT evtname, evtevent, evttags, evtenabled FROM pg_event_trigger ORDER BY 1;
SELECT cachebridge.attach('up', 'up:{id}');
SELECT "table", trigger, function, templates, truncate_trigger FROM cachebridge.attachments ORDER BY 2;
ALTER TABLE up RENAME COLUMN id TO up_id;
CREATE TRIGGER bad BEFORE INSERT ON up
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('up:{id}');
SELECT cachebridge.detach('up');
SELECT cachebridge.detach('up', 'cachebridge_write_through');
SELECT cachebridge.detach('up');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'up'::regclass;

-- triggers attach() made in 1.2 (cachebridge_row, cachebridge_truncate) are
-- listed as one attachment after the update, hold their columns, and
-- detach(table) still drops both
\c :regress_db
CREATE DATABASE cb_upgraded_12;
\c cb_upgraded_12
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.2';
RESET client_min_messages;
CREATE TABLE up12 (id int, v text);
SELECT cachebridge.attach('up12', 'up12:{id}', 'write_through', 60);
ALTER EXTENSION cachebridge UPDATE;
SELECT "table", trigger, templates, options, truncate_trigger FROM cachebridge.attachments;
ALTER TABLE up12 DROP COLUMN id;
SELECT cachebridge.detach('up12');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'up12'::regclass;
\c :regress_db
DROP DATABASE cb_upgraded_12;

\c :regress_db
DROP DATABASE cb_upgraded;
