/* cachebridge--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.3'" to load this file. \quit

-- 1.3: day-two operations, delivery that holds across every history, TLS
-- and Redis Cluster.  Every object is schema-qualified, as in
-- cachebridge--1.0.sql; each section below says which change it belongs to.

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
