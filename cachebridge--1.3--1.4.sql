/* cachebridge--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.4'" to load this file. \quit

-- 1.4: Redis Cluster, partitions that keep no stale keys, faster backfill.
-- Every object is schema-qualified, as in cachebridge--1.0.sql; each
-- section below says which change it belongs to.

-- ==== partitions: DETACH, ATTACH and DROP of a partition (issue 12) ====
-- PostgreSQL fires no row trigger when a partition leaves or joins its
-- partitioned table, so DETACH PARTITION (and dropping the partition, or
-- the detached table later) left the keys of its rows, and ATTACH
-- PARTITION left whatever was cached for the rows it brings.  This event
-- trigger applies a DETACH and a DROP TABLE of a partition as a DELETE of
-- its rows, an ATTACH as an INSERT, through the partitioned table's cache
-- triggers (src/partition.c says why, and why publish triggers are not
-- fired), and drops the TRUNCATE copies a detached partition no longer
-- needs.  It runs as the role whose statement moved the rows.
CREATE FUNCTION cachebridge.partition_rows_moved()
RETURNS pg_catalog.event_trigger
AS 'MODULE_PATHNAME', 'cachebridge_partition_rows_moved'
LANGUAGE C;
COMMENT ON FUNCTION cachebridge.partition_rows_moved() IS
'Event trigger function: applies DETACH PARTITION and DROP TABLE of a partition as a DELETE of its rows, ATTACH PARTITION as an INSERT';
REVOKE ALL ON FUNCTION cachebridge.partition_rows_moved() FROM PUBLIC;

CREATE EVENT TRIGGER cachebridge_partition_rows_moved ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION cachebridge.partition_rows_moved();
CREATE EVENT TRIGGER cachebridge_partition_dropped ON ddl_command_start
    WHEN TAG IN ('DROP TABLE')
    EXECUTE FUNCTION cachebridge.partition_rows_moved();

-- attach() on a partitioned table with partitions two levels down failed:
-- the copy made on a middle partition copied itself further down (its
-- CREATE TRIGGER fires the event trigger again), and the outer loop then
-- made the same copy a second time ("trigger ... already exists").
CREATE OR REPLACE FUNCTION cachebridge.partition_truncate_triggers()
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
        -- (each cachebridge TRUNCATE trigger made on an ancestor -- not a
        -- copy -- gets a copy named after it: attach() may have made
        -- several, one per attachment)
        FOR t IN
            SELECT DISTINCT ON (part.relid, tg.tgname)
                   part.relid AS part, tg.oid AS tgoid,
                   tg.tgname OPERATOR(pg_catalog.||) '_partition' AS copy
            FROM pg_catalog.pg_partition_tree(rel) part
            JOIN pg_catalog.pg_class pc ON pc.oid OPERATOR(pg_catalog.=) part.relid
            CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(part.relid)
                 WITH ORDINALITY AS anc(relid, n)
            JOIN pg_catalog.pg_trigger tg ON tg.tgrelid OPERATOR(pg_catalog.=) anc.relid
            JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) tg.tgfoid
            WHERE anc.relid OPERATOR(pg_catalog.<>) part.relid
              AND pc.relkind IN ('r', 'p')
              AND (tg.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 32) OPERATOR(pg_catalog.<>) 0
              AND tg.tgname NOT LIKE '%\_partition'
              AND p.pronamespace OPERATOR(pg_catalog.=) 'cachebridge'::pg_catalog.regnamespace
              AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger own
                              WHERE own.tgrelid OPERATOR(pg_catalog.=) part.relid
                                AND own.tgname OPERATOR(pg_catalog.=)
                                    (tg.tgname OPERATOR(pg_catalog.||) '_partition'))
            ORDER BY part.relid, tg.tgname, anc.n
        LOOP
            -- the CREATE TRIGGER of a copy fires this function again, which
            -- copies to the partitions under that one: a copy this loop
            -- planned may exist by now
            CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_trigger own
                                  WHERE own.tgrelid OPERATOR(pg_catalog.=) t.part
                                    AND own.tgname OPERATOR(pg_catalog.=) t.copy);
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                'FOR EACH STATEMENT %s', t.copy, t.part::pg_catalog.regclass,
                pg_catalog.substring(pg_catalog.pg_get_triggerdef(t.tgoid),
                                     'EXECUTE FUNCTION .*$'));
        END LOOP;
    END LOOP;
END
$$;
-- ==== end of partitions: DETACH, ATTACH and DROP ====

-- ==== monitoring: pg_monitor reads cachebridge.attachments (issue 16) ====
-- Monitoring roles (pg_monitor, and pg_read_all_stats that it is a member
-- of) read what is attached to every table, as they read cachebridge.stats,
-- without the right to read cached data (cachebridge.get stays
-- cachebridge_reader's).  The view is as in 1.3, with one more way to see
-- a row; trigger_arguments() only splits a trigger's arguments.
CREATE OR REPLACE VIEW cachebridge.attachments AS
WITH t AS (
    SELECT tg.tgrelid, tg.tgname, tg.tgfoid, tg.tgtype, tg.tgenabled,
           tg.tgnargs, tg.tgargs, p.proname,
           (tg.tgtype OPERATOR(pg_catalog.&) 1::pg_catalog.int2) OPERATOR(pg_catalog.<>) 0::pg_catalog.int2 AS for_row
      FROM pg_catalog.pg_trigger tg
      JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) tg.tgfoid
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tg.tgrelid
     WHERE p.pronamespace OPERATOR(pg_catalog.=) 'cachebridge'::pg_catalog.regnamespace
       AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['write_through', 'invalidate', 'publish']::pg_catalog.name[])
       AND tg.tgparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
       -- the copies of a TRUNCATE trigger on partitions (see the
       -- partitions section) belong to their ancestor's attachment
       AND NOT (c.relispartition AND tg.tgname OPERATOR(pg_catalog.~~) '%\_partition')
       AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')
            OR pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
            -- monitoring roles see every attachment (pg_monitor is a
            -- member of pg_read_all_stats), as they see every table's
            -- statistics
            OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE'))
)
SELECT r.tgrelid::pg_catalog.regclass AS "table",
       r.tgname AS trigger,
       r.proname AS function,
       a.templates,
       a.options,
       pg_catalog.array_remove(ARRAY[
           CASE WHEN (r.tgtype OPERATOR(pg_catalog.&) 4::pg_catalog.int2) OPERATOR(pg_catalog.<>) 0::pg_catalog.int2 THEN 'INSERT' END,
           CASE WHEN (r.tgtype OPERATOR(pg_catalog.&) 16::pg_catalog.int2) OPERATOR(pg_catalog.<>) 0::pg_catalog.int2 THEN 'UPDATE' END,
           CASE WHEN (r.tgtype OPERATOR(pg_catalog.&) 8::pg_catalog.int2) OPERATOR(pg_catalog.<>) 0::pg_catalog.int2 THEN 'DELETE' END],
           NULL) AS events,
       CASE r.tgenabled WHEN 'O' THEN 'origin' WHEN 'A' THEN 'always'
                        WHEN 'R' THEN 'replica' ELSE 'disabled' END AS enabled,
       tr.tgname AS truncate_trigger,
       CASE tr.tgenabled WHEN 'O' THEN 'origin' WHEN 'A' THEN 'always'
                         WHEN 'R' THEN 'replica' WHEN 'D' THEN 'disabled' END AS truncate_enabled
  FROM t r
  CROSS JOIN LATERAL cachebridge.trigger_arguments(r.tgnargs, r.tgargs) a
  LEFT JOIN LATERAL (
      SELECT x.tgname, x.tgenabled FROM t x
       WHERE NOT x.for_row
         AND x.tgrelid OPERATOR(pg_catalog.=) r.tgrelid
         AND x.tgfoid OPERATOR(pg_catalog.=) r.tgfoid
         AND x.tgargs OPERATOR(pg_catalog.=) r.tgargs
       ORDER BY x.tgname LIMIT 1) tr ON true
 WHERE r.for_row
UNION ALL
SELECT x.tgrelid::pg_catalog.regclass, NULL, x.proname, a.templates, a.options,
       ARRAY[]::pg_catalog.text[], NULL, x.tgname,
       CASE x.tgenabled WHEN 'O' THEN 'origin' WHEN 'A' THEN 'always'
                        WHEN 'R' THEN 'replica' ELSE 'disabled' END
  FROM t x
  CROSS JOIN LATERAL cachebridge.trigger_arguments(x.tgnargs, x.tgargs) a
 WHERE NOT x.for_row
   AND NOT EXISTS (SELECT FROM t r
                    WHERE r.for_row
                      AND r.tgrelid OPERATOR(pg_catalog.=) x.tgrelid
                      AND r.tgfoid OPERATOR(pg_catalog.=) x.tgfoid
                      AND r.tgargs OPERATOR(pg_catalog.=) x.tgargs);
COMMENT ON VIEW cachebridge.attachments IS
'The cachebridge triggers of tables the caller owns or holds a privilege on (of every table, for pg_monitor and pg_read_all_stats): templates, options, events, enabled state, and the TRUNCATE trigger that covers each row trigger';
GRANT SELECT ON cachebridge.attachments TO pg_monitor, pg_read_all_stats;
GRANT EXECUTE ON FUNCTION cachebridge.trigger_arguments(pg_catalog.int2, pg_catalog.bytea)
    TO pg_monitor, pg_read_all_stats;
-- ==== end of monitoring ====

-- ==== Redis Cluster (issue 15) ====
-- The nodes of the Redis Cluster as the calling session knows them: its
-- slot map (refreshed first when stale) and the round trips that failed on
-- each node.  Read-only, but it talks to Redis: not for PUBLIC.
CREATE FUNCTION cachebridge.cluster_nodes(
    OUT node pg_catalog.text,
    OUT role pg_catalog.text,
    OUT slots pg_catalog.text,
    OUT connected pg_catalog.bool,
    OUT errors pg_catalog.int8,
    OUT last_error pg_catalog.text,
    OUT last_error_at pg_catalog.timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'cluster_nodes'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION cachebridge.cluster_nodes() IS
  'Nodes of the Redis Cluster as this session knows them: master slot ranges, open connection, failed round trips and the last error; no row on a single Redis';
REVOKE ALL ON FUNCTION cachebridge.cluster_nodes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.cluster_nodes() TO cachebridge_reader, pg_monitor;
