--
-- Monitoring: pg_monitor and pg_read_all_stats read cachebridge.stats
-- without the right to read cached data; delivery lag per source.
--
\set VERBOSITY default
CREATE ROLE monitor_only LOGIN IN ROLE pg_monitor;
CREATE ROLE stats_only LOGIN IN ROLE pg_read_all_stats;
CREATE ROLE nobody_special LOGIN;

SET ROLE monitor_only;
SELECT cluster_wide, queued >= 0 AS counted FROM cachebridge.stats;
-- but the cache stays closed to it
SELECT cachebridge.get('user:1');
SELECT * FROM cachebridge.mget(ARRAY['user:1']);
RESET ROLE;
SET ROLE stats_only;
SELECT outbox_depth >= 0 AS outbox_seen FROM cachebridge.stats;
SELECT cachebridge.get('user:1');
RESET ROLE;
-- a role with neither reads nothing
SET ROLE nobody_special;
SELECT * FROM cachebridge.stats;
RESET ROLE;

-- delivery lag: NULL until the first delivery of its source, then the
-- median and 99th percentile in milliseconds over the last 1024
SELECT cachebridge.stats_reset();
SELECT direct_lag_p50_ms, direct_lag_p99_ms, direct_lag_samples,
       worker_lag_p50_ms, worker_lag_samples
FROM cachebridge.stats;
CREATE TABLE lagged (id int PRIMARY KEY, v text);
CREATE TRIGGER lagged_cache AFTER INSERT OR UPDATE OR DELETE ON lagged
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('lag:{id}');
INSERT INTO lagged SELECT i, 'x' FROM generate_series(1, 5) i;
UPDATE lagged SET v = 'y' WHERE id = 1;
UPDATE lagged SET v = 'z' WHERE id = 2;
SELECT direct_lag_samples AS direct_samples,
       direct_lag_p50_ms >= 0 AND direct_lag_p50_ms < 5000 AS p50_plausible,
       direct_lag_p99_ms >= direct_lag_p50_ms AS p99_at_least_p50
FROM cachebridge.stats;
-- an async session leaves delivery to the worker: that is worker lag
SET cachebridge.delivery = async;
UPDATE lagged SET v = 'w' WHERE id = 3;
RESET cachebridge.delivery;
SELECT cachebridge.wait_delivered();
SELECT worker_lag_samples AS worker_samples, direct_lag_samples AS direct_samples,
       worker_lag_p99_ms >= worker_lag_p50_ms AS ordered
FROM cachebridge.stats;
-- the view is rebuilt on 1.3's columns, keeping its grants
SELECT has_table_privilege('public', 'cachebridge.stats', 'SELECT') AS public_reads,
       has_table_privilege('cachebridge_reader', 'cachebridge.stats', 'SELECT') AS reader_reads,
       has_function_privilege('public', 'cachebridge.delivery_lag()', 'EXECUTE') AS public_runs_lag;
DROP TABLE lagged;

-- pg_monitor (and pg_read_all_stats) read cachebridge.attachments, for
-- every table, even one it holds no privilege on, and still cannot read
-- the table or the cache (1.4)
CREATE ROLE att_owner;
CREATE TABLE monitored (id int PRIMARY KEY, secret text);
ALTER TABLE monitored OWNER TO att_owner;
SELECT cachebridge.attach('monitored', 'mon:{id}');
INSERT INTO monitored VALUES (1, 'hunter2');
SET ROLE monitor_only;
SELECT "table", trigger, function, templates, truncate_trigger
FROM cachebridge.attachments WHERE "table" = 'monitored'::regclass;
SELECT * FROM monitored;
SELECT cachebridge.get('mon:1');
RESET ROLE;
SET ROLE stats_only;
SELECT count(*) AS seen_by_read_all_stats FROM cachebridge.attachments
WHERE "table" = 'monitored'::regclass;
RESET ROLE;
-- a role that is neither sees nothing
SET ROLE nobody_special;
SELECT count(*) FROM cachebridge.attachments;
RESET ROLE;
DROP TABLE monitored;
DROP ROLE att_owner;
DROP ROLE monitor_only, stats_only, nobody_special;
