--
-- ALTER EXTENSION cachebridge UPDATE from 1.0 through 1.1 and 1.2 to 1.3 and 1.4:
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

-- 1.3 versions hold across histories (src/version.c): the generation is
-- kept in cachebridge.epoch, a configuration table that pg_dump carries,
-- recorded by the first writer with this cluster's system identifier
SELECT 'cachebridge.epoch'::regclass = ANY (extconfig) AS epoch_is_dumped
FROM pg_extension WHERE extname = 'cachebridge';
SELECT has_table_privilege('public', 'cachebridge.epoch', 'SELECT') AS public_reads_epoch;
SELECT generation,
       system_identifier = (SELECT system_identifier FROM pg_control_system()) AS this_cluster
FROM cachebridge.epoch;
-- a marker 1.2 wrote ("<16 hex>:<xid>") is older than every 1.3 version,
-- even at the highest WAL position: the upgraded database's writes apply
CREATE TABLE up_kv (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('up_kv', 'upkv:{id}');
\! redis-cli -p $CB_REDIS_PORT set 'upkv:1#cbv' 'FFFFFFFFFFFFFFFF:1' > /dev/null
\! redis-cli -p $CB_REDIS_PORT set 'upkv:2' 'stale' > /dev/null
\! redis-cli -p $CB_REDIS_PORT set 'upkv:2#cbv' 'FFFFFFFFFFFFFFFF:1' > /dev/null
INSERT INTO up_kv VALUES (1, 'after upgrade');
BEGIN;
INSERT INTO up_kv VALUES (2, 'doomed');
DELETE FROM up_kv WHERE id = 2;
COMMIT;
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT get upkv:1
\! redis-cli -p $CB_REDIS_PORT exists upkv:2
\! redis-cli -p $CB_REDIS_PORT get 'upkv:1#cbv' | grep -c '^V0000000100000001[0-9A-F]\{16\}:[0-9]*$'
SELECT generation,
       system_identifier = (SELECT system_identifier FROM pg_control_system()) AS this_cluster
FROM cachebridge.epoch;
-- a fill over a 1.2 marker naming a transaction the snapshot does not see
-- is refused (it may be a backend's still running the 1.2 library) ...
\! redis-cli -p $CB_REDIS_PORT set 'upkv:7#cbv' 'FFFFFFFFFFFFFFFF:999999999999' > /dev/null
SELECT cachebridge.set('upkv:7', 'stale fill');
-- ... while over a 1.3 marker of an older epoch that names a transaction id
-- this history has not given out yet (a history this one replaced) it wins
\! redis-cli -p $CB_REDIS_PORT set 'upkv:8#cbv' 'V0000000000000001FFFFFFFFFFFFFFFF:999999999999' > /dev/null
SELECT cachebridge.set('upkv:8', 'newest history');
\! redis-cli -p $CB_REDIS_PORT get upkv:8
-- outbox rows 1.2 wrote call 1.2's scripts by SHA1 (apply, delete, delete
-- of found keys, xadd): they are still loaded, so such a row is applied ...
\! redis-cli -p $CB_REDIS_PORT script exists 20bbd070fc3eec14a3fda0f6bfb6899e5f2e4a4a 4458aa55d25e54aec5f7847fd9e289f5787d6fcc 084213b34a1fd09f9326b1936902a894ada08ba2 a6923471cb0eb27625b30478df5d9decf4cec06e
\! redis-cli -p $CB_REDIS_PORT evalsha 20bbd070fc3eec14a3fda0f6bfb6899e5f2e4a4a 2 upkv:9 'upkv:9#cbv' S 0000000012345678:5 0 300 '1.2 value'
\! redis-cli -p $CB_REDIS_PORT get upkv:9
-- ... but never over what 1.3 wrote
\! redis-cli -p $CB_REDIS_PORT evalsha 20bbd070fc3eec14a3fda0f6bfb6899e5f2e4a4a 2 upkv:1 'upkv:1#cbv' S FFFFFFFFFFFFFFFF:5 0 300 '1.2 value'
\! redis-cli -p $CB_REDIS_PORT get upkv:1

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
\c cb_upgraded
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

-- the 1.3 library serves a database still at 1.2 (no cachebridge.epoch
-- yet): its writes get generation 0, below the 1 its first writer records
-- after the update
CREATE DATABASE cb_at_1_2;
\c cb_at_1_2
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.2';
RESET client_min_messages;
CREATE TABLE kv12 (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('kv12', 'kv12:{id}');
INSERT INTO kv12 VALUES (1, 'at 1.2');
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT get kv12:1
\! redis-cli -p $CB_REDIS_PORT get 'kv12:1#cbv' | grep -c '^V0000000000000001[0-9A-F]\{16\}:[0-9]*$'
SET client_min_messages = warning;
ALTER EXTENSION cachebridge UPDATE;
RESET client_min_messages;
UPDATE kv12 SET v = 'at 1.3' WHERE id = 1;
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT get kv12:1
\! redis-cli -p $CB_REDIS_PORT get 'kv12:1#cbv' | grep -c '^V0000000100000001[0-9A-F]\{16\}:[0-9]*$'
SELECT generation FROM cachebridge.epoch;
\c :regress_db
DROP DATABASE cb_at_1_2;

-- ==== partitions: DETACH, ATTACH and DROP (1.4) ====
-- a database updated from 1.3 gets the event triggers, as members of the
-- extension, their function not runnable by PUBLIC, and an attach() on a
-- table with partitions two levels down no longer fails
CREATE DATABASE cb_from_1_3;
\c cb_from_1_3
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.3';
CREATE TABLE up_pd (id int, region text) PARTITION BY LIST (region);
CREATE TABLE up_pd_eu PARTITION OF up_pd FOR VALUES IN ('eu') PARTITION BY RANGE (id);
CREATE TABLE up_pd_eu_low PARTITION OF up_pd_eu FOR VALUES FROM (0) TO (100);
SELECT cachebridge.attach('up_pd', 'up_pd:{id}') AS attach_at_1_3;
ALTER EXTENSION cachebridge UPDATE;
RESET client_min_messages;
SELECT e.evtname, e.evtevent, e.evttags, d.deptype AS member
FROM pg_event_trigger e
JOIN pg_depend d ON d.objid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.evtname IN ('cachebridge_partition_rows_moved', 'cachebridge_partition_dropped')
ORDER BY 1;
SELECT has_function_privilege('public', 'cachebridge.partition_rows_moved()', 'EXECUTE') AS public_runs;
SELECT cachebridge.attach('up_pd', 'up_pd:{id}') AS attach_at_1_4;
INSERT INTO up_pd VALUES (1, 'eu');
\! redis-cli -p $CB_REDIS_PORT exists up_pd:1
ALTER TABLE up_pd DETACH PARTITION up_pd_eu;
\! redis-cli -p $CB_REDIS_PORT exists up_pd:1
\c :regress_db
DROP DATABASE cb_from_1_3;

-- ==== Redis Cluster (issue 15) ====
-- 1.4 adds cachebridge.cluster_nodes(): the slot map as the session knows
-- it, for cachebridge_reader and pg_monitor, not PUBLIC.  On a single Redis
-- it has no row (test/t/100_cluster.pl covers a cluster).
SELECT p.proname,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('cachebridge_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS monitor
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'cachebridge'::regnamespace AND p.proname = 'cluster_nodes';
SELECT count(*) AS nodes FROM cachebridge.cluster_nodes();

-- 1.4 (issue 13): writes and deletions go out in batched calls of a new
-- write script.  Outbox rows the 1.3 library left undelivered call 1.3's
-- per-key apply and its delete script by SHA1: both stay loaded, so such a
-- row -- built here byte for byte as 1.3 encoded it: the magic, a pipeline
-- step, and its EVALSHA commands -- is delivered by the worker after the
-- update, and its older version still refuses to overwrite a newer write
CREATE DATABASE cb_rows_13;
\c cb_rows_13
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.3';
ALTER EXTENSION cachebridge UPDATE;
RESET client_min_messages;
-- RESP encoding of one command, and a uint32 as the blob stores it (the
-- machine's byte order: little-endian here)
CREATE FUNCTION pg_temp.resp(VARIADIC args text[]) RETURNS bytea LANGUAGE sql AS $$
    SELECT convert_to('*' || cardinality(args) || E'\r\n' ||
                      string_agg('$' || octet_length(a) || E'\r\n' || a || E'\r\n', '' ORDER BY n),
                      'UTF8')
    FROM unnest(args) WITH ORDINALITY AS u(a, n);
$$;
CREATE FUNCTION pg_temp.le32(n int) RETURNS bytea LANGUAGE sql AS $$
    SELECT set_byte(set_byte(set_byte(set_byte('\x00000000'::bytea,
           0, n & 255), 1, (n >> 8) & 255), 2, (n >> 16) & 255), 3, (n >> 24) & 255);
$$;
\! redis-cli -p $CB_REDIS_PORT mset row13:1 stale row13:2 stale row13:3 'newer' 'row13:3#cbv' 'VFFFFFFFFFFFFFFFF0000000000000000:7' > /dev/null
WITH cmds AS (
    SELECT pg_temp.resp('EVALSHA', '8cc53c6db32247d8ba6dc5e7e992bf232286e4a7', '2',
                        'row13:1', 'row13:1#cbv', 'S', 'V00000001000000010000000001000000:5',
                        '0', '300', 'written by a 1.3 row') ||
           pg_temp.resp('EVALSHA', '0f099093309c8487e35f7b1c4fc436d3afc20f1e', '2',
                        'row13:2', 'row13:2#cbv', 'V00000001000000010000000001000000:5', '300') ||
           pg_temp.resp('EVALSHA', '8cc53c6db32247d8ba6dc5e7e992bf232286e4a7', '2',
                        'row13:3', 'row13:3#cbv', 'S', 'V00000001000000010000000001000000:5',
                        '0', '300', 'older, refused') AS c
)
INSERT INTO cachebridge.outbox (version, neffects, direct, effects)
SELECT '0/1000000', 3, false,
       convert_to('CBX2P', 'UTF8') || pg_temp.le32(3) || pg_temp.le32(3) ||
       pg_temp.le32(octet_length(c)) || c
FROM cmds;
-- and a row of stream entries as 1.3 encoded it (1.4's xadd script takes one
-- more argument; 1.3's, the same text as 1.2's, stays loaded)
WITH cmds AS (
    SELECT pg_temp.resp('EVALSHA', 'a6923471cb0eb27625b30478df5d9decf4cec06e', '2',
                        'ev13', 'ev13#cbv', 'source13', 'V00000001000000010000000001000000:00000000',
                        '0', '1', 'op', 'INSERT') AS c
)
INSERT INTO cachebridge.outbox (version, neffects, direct, effects)
SELECT '0/1000001', 1, false,
       convert_to('CBX2E', 'UTF8') || pg_temp.le32(1) || pg_temp.le32(1) ||
       pg_temp.le32(octet_length(c)) || c
FROM cmds;
SELECT cachebridge.wait_delivered(20000) AS delivered;
SELECT count(*) AS rows_left FROM cachebridge.outbox;
\! redis-cli -p $CB_REDIS_PORT get row13:1
\! redis-cli -p $CB_REDIS_PORT exists row13:2
\! redis-cli -p $CB_REDIS_PORT get 'row13:2#cbv'
\! redis-cli -p $CB_REDIS_PORT get row13:3
\! redis-cli -p $CB_REDIS_PORT xlen ev13
\! redis-cli -p $CB_REDIS_PORT hget 'ev13#cbv' source13
\c :regress_db
DROP DATABASE cb_rows_13;
