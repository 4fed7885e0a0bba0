/* cachebridge--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.3'" to load this file. \quit

-- 1.3: day-two operations, delivery that holds across every history, TLS
-- and Redis Cluster.  Every object is schema-qualified, as in
-- cachebridge--1.0.sql; each section below says which change it belongs to.

-- ==== Backfill: cachebridge.refresh() (issue 16) ====
-- Applies a table's attached effects to the rows it already holds, in
-- batches of heap blocks, each its own transaction (src/refresh.c says why
-- a batch locks its rows FOR SHARE).  Progress is kept per table, so an
-- interrupted refresh resumes where it stopped.
CREATE TABLE cachebridge.refresh_state (
    relid pg_catalog.oid PRIMARY KEY,
    pid pg_catalog.int4 NOT NULL,
    backend_start pg_catalog.timestamptz NOT NULL,
    started_at pg_catalog.timestamptz NOT NULL,
    updated_at pg_catalog.timestamptz NOT NULL,
    finished_at pg_catalog.timestamptz,
    next_block pg_catalog.int8 NOT NULL,
    total_blocks pg_catalog.int8 NOT NULL,
    rows_done pg_catalog.int8 NOT NULL
);
REVOKE ALL ON cachebridge.refresh_state FROM PUBLIC;

CREATE FUNCTION cachebridge.refresh_begin(tbl pg_catalog.regclass, restart pg_catalog.bool, events pg_catalog.bool)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'cachebridge_refresh_begin'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION cachebridge.refresh_begin(pg_catalog.regclass, pg_catalog.bool, pg_catalog.bool) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.refresh_begin(pg_catalog.regclass, pg_catalog.bool, pg_catalog.bool) TO cachebridge_writer;
COMMENT ON FUNCTION cachebridge.refresh_begin(pg_catalog.regclass, pg_catalog.bool, pg_catalog.bool) IS
    'starts or resumes the refresh of one table; returns the heap block to start from (used by cachebridge.refresh)';

CREATE FUNCTION cachebridge.refresh_blocks(tbl pg_catalog.regclass, from_block pg_catalog.int8,
                                           nblocks pg_catalog.int4, events pg_catalog.bool)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'cachebridge_refresh_blocks'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION cachebridge.refresh_blocks(pg_catalog.regclass, pg_catalog.int8, pg_catalog.int4, pg_catalog.bool) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.refresh_blocks(pg_catalog.regclass, pg_catalog.int8, pg_catalog.int4, pg_catalog.bool) TO cachebridge_writer;
COMMENT ON FUNCTION cachebridge.refresh_blocks(pg_catalog.regclass, pg_catalog.int8, pg_catalog.int4, pg_catalog.bool) IS
    'refreshes the rows of nblocks heap blocks of one table; returns the block to go on from, NULL at the end (used by cachebridge.refresh)';

-- The procedure commits after every batch, so it cannot have a SET clause;
-- it names everything with its schema instead.  It runs as its caller.
CREATE PROCEDURE cachebridge.refresh(tbl pg_catalog.regclass,
                                     batch_blocks pg_catalog.int4 DEFAULT 128,
                                     events pg_catalog.bool DEFAULT false,
                                     restart pg_catalog.bool DEFAULT false)
LANGUAGE plpgsql
AS $refresh$
DECLARE
    part pg_catalog.regclass;
    next_block pg_catalog.int8;
BEGIN
    -- the leaves of a partition tree; any other relation is its own leaf
    -- (pg_partition_tree() lists nothing for it), and refresh_begin says
    -- whether it can be refreshed
    FOR part IN
        SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
         WHERE t.isleaf
        UNION ALL
        SELECT tbl WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(tbl))
    LOOP
        next_block := cachebridge.refresh_begin(part, restart, events);
        COMMIT;
        WHILE next_block IS NOT NULL LOOP
            next_block := cachebridge.refresh_blocks(part, next_block, batch_blocks, events);
            COMMIT;
        END LOOP;
    END LOOP;
END
$refresh$;
REVOKE ALL ON PROCEDURE cachebridge.refresh(pg_catalog.regclass, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE cachebridge.refresh(pg_catalog.regclass, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool) TO cachebridge_writer;
COMMENT ON PROCEDURE cachebridge.refresh(pg_catalog.regclass, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool) IS
    'applies the table''s attached cachebridge effects to every existing row, in batches of their own transactions; resumable';

CREATE VIEW cachebridge.refresh_progress AS
SELECT s.relid::pg_catalog.regclass AS "table",
       CASE WHEN s.finished_at IS NOT NULL THEN 'finished'
            WHEN EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(s.pid) a
                          WHERE a.backend_start OPERATOR(pg_catalog.=) s.backend_start)
            THEN 'running'
            ELSE 'interrupted' END AS state,
       s.rows_done,
       s.next_block AS blocks_done,
       s.total_blocks,
       s.started_at,
       s.updated_at,
       s.finished_at,
       CASE WHEN s.updated_at OPERATOR(pg_catalog.>) s.started_at
            THEN (s.rows_done::pg_catalog.float8 OPERATOR(pg_catalog./)
                  pg_catalog.date_part('epoch', s.updated_at OPERATOR(pg_catalog.-) s.started_at))
       END AS rows_per_second
  FROM cachebridge.refresh_state s;
REVOKE ALL ON cachebridge.refresh_progress FROM PUBLIC;
GRANT SELECT ON cachebridge.refresh_progress TO cachebridge_reader, pg_monitor;
COMMENT ON VIEW cachebridge.refresh_progress IS
    'one row per table refreshed by cachebridge.refresh(): how far it got, and whether it runs';

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
