/* cachebridge--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.3'" to load this file. \quit

-- 1.3: day-two operations, delivery that holds across every history, TLS
-- and Redis Cluster.  Every object is schema-qualified, as in
-- cachebridge--1.0.sql; each section below says which change it belongs to.

-- ==== Day-two operations: monitoring, cache-aside reads, the schema ====

-- Monitoring roles read the statistics.  pg_read_all_stats (and so
-- pg_monitor, a member of it) may read cachebridge.stats and run what it
-- calls, without becoming cachebridge_reader: that role may also run
-- get(), which reads cached copies of rows from any table.
GRANT EXECUTE ON FUNCTION cachebridge.stats() TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION cachebridge.delivery_status() TO pg_read_all_stats;
GRANT SELECT ON cachebridge.stats TO pg_read_all_stats;

-- Delivery lag, commit to Redis acknowledging, over the last 1024
-- deliveries of each source: the committing backend (direct) and the
-- worker.  The view keeps its columns, comment and grants and gains the
-- lag's at its end (CREATE OR REPLACE VIEW may only add columns there).
CREATE FUNCTION cachebridge.delivery_lag(
    OUT direct_lag_p50_ms pg_catalog.float8,
    OUT direct_lag_p99_ms pg_catalog.float8,
    OUT direct_lag_samples pg_catalog.int4,
    OUT worker_lag_p50_ms pg_catalog.float8,
    OUT worker_lag_p99_ms pg_catalog.float8,
    OUT worker_lag_samples pg_catalog.int4)
RETURNS record
AS 'MODULE_PATHNAME', 'cachebridge_delivery_lag'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION cachebridge.delivery_lag() IS
'Median and 99th percentile of the time from commit to applied in Redis, over the last 1024 deliveries by committing backends and by the worker';
REVOKE ALL ON FUNCTION cachebridge.delivery_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.delivery_lag() TO cachebridge_reader;
GRANT EXECUTE ON FUNCTION cachebridge.delivery_lag() TO pg_read_all_stats;

CREATE OR REPLACE VIEW cachebridge.stats AS
SELECT s.*, d.breaker, d.breaker_opened_at, d.worker_last_success,
       o.outbox_depth, o.outbox_dead, o.oldest_undelivered_age,
       l.direct_lag_p50_ms, l.direct_lag_p99_ms, l.direct_lag_samples,
       l.worker_lag_p50_ms, l.worker_lag_p99_ms, l.worker_lag_samples
FROM cachebridge.stats() AS s,
     cachebridge.delivery_status() AS d,
     (SELECT pg_catalog.count(*) FILTER (WHERE NOT dead) AS outbox_depth,
             pg_catalog.count(*) FILTER (WHERE dead) AS outbox_dead,
             pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
                 pg_catalog.min(created_at) FILTER (WHERE NOT dead) AS oldest_undelivered_age
      FROM cachebridge.outbox) AS o,
     cachebridge.delivery_lag() AS l;
COMMENT ON VIEW cachebridge.stats IS
'What cachebridge queued, delivered, retried and failed, the last error, the breaker, this database''s outbox and the delivery lag';
REVOKE ALL ON cachebridge.stats FROM PUBLIC;
GRANT SELECT ON cachebridge.stats TO cachebridge_reader;
GRANT SELECT ON cachebridge.stats TO pg_read_all_stats;

-- Cache-aside reads of many keys, and of hashes (format=hash).  Like get(),
-- they may read cached copies of any table's rows: cachebridge_reader only.
CREATE FUNCTION cachebridge.mget(keys pg_catalog.text[])
RETURNS TABLE (key pg_catalog.text, value pg_catalog.text)
AS 'MODULE_PATHNAME', 'cachebridge_mget'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE ROWS 10;
COMMENT ON FUNCTION cachebridge.mget(pg_catalog.text[]) IS
'Cache-aside read of many keys in one round trip: one row (key, value) per key, in order, value NULL on a miss';

CREATE FUNCTION cachebridge.get_hash(key pg_catalog.text)
RETURNS pg_catalog.jsonb
AS 'MODULE_PATHNAME', 'cachebridge_get_hash'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.get_hash(pg_catalog.text) IS
'Cache-aside read of a hash (what write_through stores with format=hash) as a jsonb object of its fields, NULL on a miss';

REVOKE ALL ON FUNCTION cachebridge.mget(pg_catalog.text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.get_hash(pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.mget(pg_catalog.text[]) TO cachebridge_reader;
GRANT EXECUTE ON FUNCTION cachebridge.get_hash(pg_catalog.text) TO cachebridge_reader;

-- The schema goes with the extension.  The control file's "schema =
-- cachebridge" makes CREATE EXTENSION create it without making it a
-- member, and it cannot be made one (see src/schema.c): this event
-- trigger notes it at DROP EXTENSION cachebridge, and it is dropped just
-- before commit if the extension is gone and the schema empty.
CREATE FUNCTION cachebridge.drop_extension_start()
RETURNS pg_catalog.event_trigger
AS 'MODULE_PATHNAME', 'cachebridge_drop_extension_start'
LANGUAGE C;
COMMENT ON FUNCTION cachebridge.drop_extension_start() IS
'Event trigger function: at DROP EXTENSION cachebridge, has the schema cachebridge dropped at commit if nothing else is left in it';
REVOKE ALL ON FUNCTION cachebridge.drop_extension_start() FROM PUBLIC;

CREATE EVENT TRIGGER cachebridge_drop_schema ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION cachebridge.drop_extension_start();
