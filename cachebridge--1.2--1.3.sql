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

-- ==== partitions: TRUNCATE of one partition ====
-- PostgreSQL does not clone TRUNCATE triggers to partitions, so a TRUNCATE
-- of one partition left its rows' keys in Redis.  Every partition (at any
-- depth) of a table with a cachebridge TRUNCATE trigger gets a copy of it,
-- named cachebridge_truncate_partition: when the trigger is made (attach()
-- on a partitioned table), and when a partition is made (CREATE TABLE ...
-- PARTITION OF) or attached (ALTER TABLE ... ATTACH PARTITION) later.  The
-- copy invalidates the patterns of the parent's templates, as a TRUNCATE
-- of the parent does.  It runs as the role whose statement made the
-- partition, which owns it (or may create triggers on it).
CREATE FUNCTION cachebridge.partition_truncate_triggers()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel pg_catalog.oid;
    t record;
BEGIN
    FOR rel IN
        SELECT DISTINCT CASE WHEN c.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
                             THEN (SELECT tg.tgrelid FROM pg_catalog.pg_trigger tg
                                   WHERE tg.oid = c.objid)
                             ELSE c.objid END
        FROM pg_catalog.pg_event_trigger_ddl_commands() c
        WHERE c.classid IN ('pg_catalog.pg_class'::pg_catalog.regclass,
                            'pg_catalog.pg_trigger'::pg_catalog.regclass)
    LOOP
        -- each table at or under rel, with each cachebridge TRUNCATE
        -- trigger of a table above it, that has no copy yet
        FOR t IN
            SELECT DISTINCT ON (part.relid) part.relid AS part, tg.oid AS tgoid
            FROM pg_catalog.pg_partition_tree(rel) part
            JOIN pg_catalog.pg_class pc ON pc.oid = part.relid
            CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(part.relid)
                 WITH ORDINALITY AS anc(relid, n)
            JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = anc.relid
            JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
            WHERE anc.relid OPERATOR(pg_catalog.<>) part.relid
              AND pc.relkind IN ('r', 'p')
              AND tg.tgname IN ('cachebridge_truncate', 'cachebridge_truncate_partition')
              AND p.pronamespace = 'cachebridge'::pg_catalog.regnamespace
              AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger own
                              WHERE own.tgrelid = part.relid
                                AND own.tgname = 'cachebridge_truncate_partition')
            ORDER BY part.relid, anc.n
        LOOP
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER cachebridge_truncate_partition AFTER TRUNCATE ON %s '
                'FOR EACH STATEMENT %s', t.part::pg_catalog.regclass,
                pg_catalog.substring(pg_catalog.pg_get_triggerdef(t.tgoid),
                                     'EXECUTE FUNCTION .*$'));
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION cachebridge.partition_truncate_triggers() IS
'Event trigger function: copies cachebridge TRUNCATE triggers to every partition';
REVOKE ALL ON FUNCTION cachebridge.partition_truncate_triggers() FROM PUBLIC;

CREATE EVENT TRIGGER cachebridge_partition_truncate ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TRIGGER')
    EXECUTE FUNCTION cachebridge.partition_truncate_triggers();
-- ==== end of partitions ====
