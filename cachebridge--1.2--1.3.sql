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

-- ==== Versions that hold across every history ====

-- The generation of this database's versions (src/version.c): a version is
-- "V" || generation || timeline || WAL position, so that it grows across a
-- promotion and point-in-time recovery (the timeline grows) and across a
-- dump restored into another cluster or pg_upgrade (the first writer in a
-- cluster whose system identifier differs from the recorded one adds one to
-- the generation).  One row, written at first use, never by hand; a
-- configuration table, so that pg_dump carries its row.
CREATE TABLE cachebridge.epoch (
    only_row pg_catalog.bool PRIMARY KEY DEFAULT true CHECK (only_row),
    generation pg_catalog.int4 NOT NULL CHECK (generation OPERATOR(pg_catalog.>) 0),
    system_identifier pg_catalog.int8 NOT NULL
);
COMMENT ON TABLE cachebridge.epoch IS
'Generation of cachebridge versions and the system identifier of the cluster that recorded it';
REVOKE ALL ON cachebridge.epoch FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('cachebridge.epoch', '');

-- ==== Seeing and changing what is attached; mistakes caught at DDL time ====

-- A trigger's arguments split as the trigger functions read them (C, so
-- that one function, CbIsOption, decides what is an option).
CREATE FUNCTION cachebridge.trigger_arguments(tgnargs pg_catalog.int2,
                                              tgargs pg_catalog.bytea,
                                              OUT templates pg_catalog.text[],
                                              OUT options pg_catalog.text[])
RETURNS record
AS 'MODULE_PATHNAME', 'cachebridge_trigger_arguments'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cachebridge.trigger_arguments(pg_catalog.int2, pg_catalog.bytea) IS
'The templates and the name=value options of a cachebridge trigger, from pg_trigger.tgnargs and tgargs';

-- Every cachebridge trigger of the database a caller may see: one row per
-- row trigger, with the TRUNCATE trigger of the same function and
-- arguments that covers it (attach() makes the pair), and one row per
-- TRUNCATE trigger that covers no row trigger.  A row is shown to roles
-- that own the table or hold a privilege on it, as information_schema
-- shows triggers; clones of a partitioned table's trigger are shown once,
-- on the partitioned table.  The view binds every name when it is made,
-- so no search_path of its reader plays a part.
CREATE VIEW cachebridge.attachments AS
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
            OR pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'))
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
'The cachebridge triggers of tables the caller owns or holds a privilege on: templates, options, events, enabled state, and the TRUNCATE trigger that covers each row trigger';

REVOKE ALL ON cachebridge.attachments FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.trigger_arguments(pg_catalog.int2, pg_catalog.bytea) FROM PUBLIC;
GRANT SELECT ON cachebridge.attachments TO cachebridge_reader, cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.trigger_arguments(pg_catalog.int2, pg_catalog.bytea)
    TO cachebridge_reader, cachebridge_writer;

-- attach() names its triggers after the mode (cachebridge_write_through
-- and cachebridge_write_through_truncate, ...), or after name=NAME, so
-- that a table can have a cache and a stream, or two caches; enable=
-- always|replica|origin sets both triggers' firing (a logical-replication
-- subscriber needs always or replica for both, or a replicated TRUNCATE
-- leaves the keys).  name= and enable= are attach()'s own options; the
-- others go to the trigger.
CREATE OR REPLACE FUNCTION cachebridge.attach(tbl pg_catalog.regclass,
                                              key pg_catalog.text,
                                              mode pg_catalog.text DEFAULT 'write_through',
                                              ttl pg_catalog.int4 DEFAULT NULL,
                                              VARIADIC options pg_catalog.text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args pg_catalog.text;
    o pg_catalog.text;
    trig pg_catalog.text;
    enable pg_catalog.text;
    trigger_options pg_catalog.text[] := '{}';
    truncate_too pg_catalog.bool;
    t pg_catalog.text;
BEGIN
    IF mode IS NULL THEN
        RAISE EXCEPTION 'cachebridge mode must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use write_through, invalidate or publish.';
    END IF;
    IF mode NOT IN ('write_through', 'invalidate', 'publish') THEN
        RAISE EXCEPTION 'unknown cachebridge mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use write_through, invalidate or publish.';
    END IF;
    IF key IS NULL THEN
        RAISE EXCEPTION 'key template must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF ttl IS NOT NULL AND mode <> 'write_through' THEN
        RAISE EXCEPTION 'a TTL is not accepted in mode %', mode
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ttl IS NOT NULL AND ttl < 1 THEN
        RAISE EXCEPTION 'TTL must be a positive number of seconds, not %', ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOREACH o IN ARRAY COALESCE(options, '{}') LOOP
        IF o IS NULL THEN
            RAISE EXCEPTION 'an option of cachebridge.attach() must not be NULL'
                USING ERRCODE = 'null_value_not_allowed';
        ELSIF o LIKE 'name=%' OR o LIKE 'enable=%' THEN
            IF (o LIKE 'name=%' AND trig IS NOT NULL) OR (o LIKE 'enable=%' AND enable IS NOT NULL) THEN
                RAISE EXCEPTION 'option "%" is given more than once to cachebridge.attach()', pg_catalog.split_part(o, '=', 1)
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Give each option once.';
            END IF;
            IF o LIKE 'name=%' THEN
                trig := pg_catalog.substr(o, 6);
            ELSE
                enable := pg_catalog.substr(o, 8);
            END IF;
        ELSE
            trigger_options := trigger_options || o;
        END IF;
    END LOOP;
    IF enable IS NOT NULL AND enable NOT IN ('origin', 'always', 'replica') THEN
        RAISE EXCEPTION 'invalid value "%" for option "enable" of cachebridge.attach()', enable
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'enable= says when the triggers fire: origin (the default: not for changes applied by logical replication), always, or replica.',
                  HINT = 'On a logical-replication subscriber use enable=always.';
    END IF;
    trig := COALESCE(trig, 'cachebridge_' || mode);
    IF trig = '' OR pg_catalog.octet_length(trig || '_truncate') > 63 THEN
        RAISE EXCEPTION 'invalid trigger name "%" for cachebridge.attach()', trig
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'The TRUNCATE trigger is named after it with "_truncate" appended, and a name has at most 63 bytes.';
    END IF;
    truncate_too := NOT (mode = 'publish'
                         AND pg_catalog.strpos(pg_catalog.replace(key, '{{', ''), '{') > 0);
    FOREACH t IN ARRAY CASE WHEN truncate_too THEN ARRAY[trig, trig || '_truncate'] ELSE ARRAY[trig] END LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger
                    WHERE tgrelid OPERATOR(pg_catalog.=) tbl
                      AND tgname OPERATOR(pg_catalog.=) t) THEN
            RAISE EXCEPTION 'table "%" already has a trigger "%"', tbl, t
                USING ERRCODE = 'duplicate_object',
                      HINT = 'Give this attachment another name with the option name=NAME, or detach the other one first (see cachebridge.attachments).';
        END IF;
    END LOOP;

    args := pg_catalog.quote_literal(key);
    IF ttl IS NOT NULL THEN
        args := args || ', ' || pg_catalog.quote_literal('ttl=' || ttl);
    END IF;
    SELECT args || COALESCE(pg_catalog.string_agg(', ' || pg_catalog.quote_literal(x), ''), '')
      INTO args
      FROM pg_catalog.unnest(trigger_options) AS x;

    EXECUTE pg_catalog.format(
        'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s '
        'FOR EACH ROW EXECUTE FUNCTION cachebridge.%I(%s)', trig, tbl, mode, args);
    IF truncate_too THEN
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I AFTER TRUNCATE ON %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.%I(%s)',
            trig || '_truncate', tbl, mode, args);
    ELSE
        RAISE NOTICE 'TRUNCATE of table % is not published', tbl
            USING DETAIL = pg_catalog.format('The stream name %L takes columns of the row, and a TRUNCATE has no row.', key),
                  HINT = 'Publish TRUNCATE to a fixed stream with a trigger of your own, or forbid TRUNCATE on the table.';
    END IF;
    -- one ALTER TABLE for both, so that they never differ
    IF enable IN ('always', 'replica') THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE %s TRIGGER %I', tbl,
                                  pg_catalog.upper(enable), trig)
             || CASE WHEN truncate_too
                     THEN pg_catalog.format(', ENABLE %s TRIGGER %I', pg_catalog.upper(enable), trig || '_truncate')
                     ELSE '' END;
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.attach(pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text[]) IS
'Create a cachebridge row trigger and its TRUNCATE trigger on a table (named cachebridge_<mode> and cachebridge_<mode>_truncate, or after name=NAME; enable=always for a logical-replication subscriber)';

-- detach(tbl, name) drops the attachment whose row or TRUNCATE trigger is
-- called name, with its partner; detach(tbl) the table's only one.  Both
-- find the pairs in cachebridge.attachments, the one place that pairs
-- them, so they also drop triggers attach() made before 1.3
-- (cachebridge_row and cachebridge_truncate) and ones made by hand.
-- DROP TRIGGER needs the table's ownership; detach says so before it
-- looks (the view hides the triggers of tables the caller cannot see).
CREATE FUNCTION cachebridge.check_table_owner(tbl pg_catalog.regclass)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class
                    WHERE oid OPERATOR(pg_catalog.=) tbl
                      AND pg_catalog.pg_has_role(relowner, 'USAGE')) THEN
        RAISE EXCEPTION 'must be owner of table "%"', tbl
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Detaching drops the table''s triggers, which only its owner may do.';
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.check_table_owner(pg_catalog.regclass) IS
'Raise an error unless the caller owns the table (for detach)';
REVOKE ALL ON FUNCTION cachebridge.check_table_owner(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.check_table_owner(pg_catalog.regclass) TO cachebridge_writer;

CREATE FUNCTION cachebridge.detach(tbl pg_catalog.regclass, name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    part pg_catalog.regclass;
    found_one pg_catalog.bool := false;
BEGIN
    IF tbl IS NULL OR name IS NULL THEN
        RAISE EXCEPTION 'the table and the name given to cachebridge.detach() must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM cachebridge.check_table_owner(tbl);
    FOR a IN SELECT trigger, truncate_trigger FROM cachebridge.attachments
              WHERE "table" OPERATOR(pg_catalog.=) tbl
                AND (trigger OPERATOR(pg_catalog.=) name OR truncate_trigger OPERATOR(pg_catalog.=) name)
    LOOP
        found_one := true;
        IF a.trigger IS NOT NULL THEN
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', a.trigger, tbl);
        END IF;
        IF a.truncate_trigger IS NOT NULL THEN
            EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s', a.truncate_trigger, tbl);
            -- and its copies on the partitions
            FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
                         WHERE t.relid OPERATOR(pg_catalog.<>) tbl
            LOOP
                EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s',
                                          a.truncate_trigger OPERATOR(pg_catalog.||) '_partition', part);
            END LOOP;
        END IF;
    END LOOP;
    IF NOT found_one THEN
        RAISE EXCEPTION 'table "%" has no cachebridge trigger "%"', tbl, name
            USING ERRCODE = 'undefined_object',
                  HINT = COALESCE('Its cachebridge triggers: ' ||
                                  (SELECT pg_catalog.string_agg(COALESCE(trigger, truncate_trigger), ', '
                                                                  ORDER BY COALESCE(trigger, truncate_trigger))
                                     FROM cachebridge.attachments WHERE "table" OPERATOR(pg_catalog.=) tbl) || '.',
                                  'It has none.');
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.detach(pg_catalog.regclass, pg_catalog.text) IS
'Drop a cachebridge trigger of a table, named by its row or TRUNCATE trigger, with the TRUNCATE or row trigger that goes with it';

CREATE OR REPLACE FUNCTION cachebridge.detach(tbl pg_catalog.regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    names pg_catalog.text[];
BEGIN
    PERFORM cachebridge.check_table_owner(tbl);
    SELECT pg_catalog.array_agg(COALESCE(trigger, truncate_trigger)
                                ORDER BY COALESCE(trigger, truncate_trigger)) INTO names
      FROM cachebridge.attachments WHERE "table" OPERATOR(pg_catalog.=) tbl;
    IF names IS NULL THEN
        RAISE EXCEPTION 'table "%" has no triggers made by cachebridge.attach()', tbl
            USING ERRCODE = 'undefined_object';
    END IF;
    IF pg_catalog.cardinality(names) > 1 THEN
        RAISE EXCEPTION 'table "%" has % cachebridge triggers', tbl, pg_catalog.cardinality(names)
            USING ERRCODE = 'ambiguous_parameter',
                  DETAIL = 'They are ' || pg_catalog.array_to_string(names, ', ') || '.',
                  HINT = pg_catalog.format('Say which with cachebridge.detach(%L, %L).', tbl, names[1]);
    END IF;
    PERFORM cachebridge.detach(tbl, names[1]);
END
$$;
COMMENT ON FUNCTION cachebridge.detach(pg_catalog.regclass) IS
'Drop the cachebridge triggers of a table that has one attachment (a row trigger and its TRUNCATE trigger)';

REVOKE ALL ON FUNCTION cachebridge.detach(pg_catalog.regclass, pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.detach(pg_catalog.regclass, pg_catalog.text) TO cachebridge_writer;

-- At ALTER TABLE: a column a cachebridge trigger uses cannot be renamed,
-- dropped, or (in a key) change type; enabling one trigger of a row and
-- TRUNCATE pair differently from the other is warned about (src/trigger.c).
-- Every role that alters a table runs the check, so it is executable by
-- PUBLIC: only an event trigger can give it a pg_ddl_command, and it only
-- reads the catalogs of the table just altered.
CREATE FUNCTION cachebridge.check_table_change(command pg_catalog.pg_ddl_command)
RETURNS void
AS 'MODULE_PATHNAME', 'cachebridge_check_table_change'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION cachebridge.check_table_change(pg_catalog.pg_ddl_command) IS
'Refuse an ALTER TABLE that renames, drops or retypes a column a cachebridge trigger uses (run by an event trigger)';

CREATE FUNCTION cachebridge.check_altered_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cachebridge.check_table_change(c.command)
       FROM pg_catalog.pg_event_trigger_ddl_commands() c
      WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass;
END
$$;
COMMENT ON FUNCTION cachebridge.check_altered_tables() IS
'Event trigger function: checks ALTER TABLE against the cachebridge triggers of the table';

REVOKE ALL ON FUNCTION cachebridge.check_altered_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.check_table_change(pg_catalog.pg_ddl_command) TO PUBLIC;

CREATE EVENT TRIGGER cachebridge_check_table_changes ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION cachebridge.check_altered_tables();

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

-- ==== partitions: TRUNCATE of one partition ====
-- PostgreSQL does not clone TRUNCATE triggers to partitions, so a TRUNCATE
-- of one partition left its rows' keys in Redis.  Every partition (at any
-- depth) of a table with a cachebridge TRUNCATE trigger gets a copy of it,
-- named after it with "_partition" appended: when the trigger is made (attach()
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
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                'FOR EACH STATEMENT %s', t.copy, t.part::pg_catalog.regclass,
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
