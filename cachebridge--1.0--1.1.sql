/* cachebridge--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.1'" to load this file. \quit

-- 1.1: change events.  cachebridge.publish() appends committed row changes
-- to Redis streams; write_through() and invalidate() take notify=CHANNEL.
-- Every object is schema-qualified, as in cachebridge--1.0.sql.

CREATE FUNCTION cachebridge.publish()
RETURNS trigger
AS 'MODULE_PATHNAME', 'cachebridge_publish'
LANGUAGE C;
COMMENT ON FUNCTION cachebridge.publish() IS
'Row trigger: after commit, append one entry per changed row (op, table, row, old, lsn, xid, committed_at) to a Redis stream (args: stream name template, then maxlen=, old=true)';

COMMENT ON FUNCTION cachebridge.write_through() IS
'Row trigger: after commit, SET the row''s key (args: key template, then ttl=, columns=, format=json|hash, notify=channel); DEL it when the row is deleted or its key changes';
COMMENT ON FUNCTION cachebridge.invalidate() IS
'Row trigger: after commit, DEL the keys of the old and new row for every key template given as argument (option notify=channel)';

CREATE OR REPLACE FUNCTION cachebridge.check_new_triggers()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.oid, tg.tgrelid, p.proname
        FROM pg_catalog.pg_event_trigger_ddl_commands() c
        JOIN pg_catalog.pg_trigger tg ON tg.oid = c.objid
        JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
        WHERE c.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
          AND p.pronamespace = 'cachebridge'::pg_catalog.regnamespace
          AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['write_through', 'invalidate', 'publish'])
    LOOP
        PERFORM cachebridge.validate_trigger(t.oid, t.tgrelid, t.proname);
    END LOOP;
END
$$;

-- attach() learns mode publish: the key is the stream name template.  A
-- TRUNCATE can only be published to a stream whose name has no column.
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

    args := pg_catalog.quote_literal(key);
    IF ttl IS NOT NULL THEN
        args := args || ', ' || pg_catalog.quote_literal('ttl=' || ttl);
    END IF;
    SELECT args || COALESCE(pg_catalog.string_agg(', ' || pg_catalog.quote_literal(o), ''), '')
      INTO args
      FROM pg_catalog.unnest(COALESCE(options, '{}')) AS o;

    EXECUTE pg_catalog.format(
        'CREATE TRIGGER cachebridge_row AFTER INSERT OR UPDATE OR DELETE ON %s '
        'FOR EACH ROW EXECUTE FUNCTION cachebridge.%I(%s)', tbl, mode, args);
    IF mode = 'publish'
       AND pg_catalog.strpos(pg_catalog.replace(key, '{{', ''), '{') > 0 THEN
        RAISE NOTICE 'TRUNCATE of table % is not published', tbl
            USING DETAIL = pg_catalog.format('The stream name %L takes columns of the row, and a TRUNCATE has no row.', key),
                  HINT = 'Publish TRUNCATE to a fixed stream with a trigger of your own, or forbid TRUNCATE on the table.';
        RETURN;
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER cachebridge_truncate AFTER TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.%I(%s)', tbl, mode, args);
END
$$;

REVOKE ALL ON FUNCTION cachebridge.publish() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.publish() TO cachebridge_writer;
