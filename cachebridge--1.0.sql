/* cachebridge--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION cachebridge" to load this file. \quit

-- Every object is schema-qualified, so this script does not depend on the
-- search_path of the session that runs CREATE EXTENSION.

-- ==== Roles ====
-- Functions that write to Redis are not executable by PUBLIC.  They are
-- granted to cachebridge_writer; reading cached values (which may hold
-- data of tables a role cannot read) is granted to cachebridge_reader.
-- The roles are cluster-wide: created here when missing, kept on DROP
-- EXTENSION so that other databases using cachebridge keep working.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cachebridge_reader') THEN
        CREATE ROLE cachebridge_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cachebridge_writer') THEN
        CREATE ROLE cachebridge_writer NOLOGIN IN ROLE cachebridge_reader;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA cachebridge TO PUBLIC;

-- ==== Cache-aside functions ====

CREATE FUNCTION cachebridge.get(key pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'cachebridge_get'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION cachebridge.get(pg_catalog.text) IS
'Cache-aside read: the value cached under key_prefix || key, or NULL on a miss';

CREATE FUNCTION cachebridge.set(key pg_catalog.text, value pg_catalog.text,
                                ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'cachebridge_set'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.set(pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
'Cache-aside fill: store value under key_prefix || key (expiring after ttl seconds when given); false, storing nothing, if a trigger changed the key in a transaction the caller''s snapshot does not see';

CREATE FUNCTION cachebridge.del(VARIADIC keys pg_catalog.text[])
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'cachebridge_del'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.del(pg_catalog.text[]) IS
'Delete keys (each under key_prefix) now; returns how many existed';

CREATE FUNCTION cachebridge.invalidate_pattern(pattern pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'cachebridge_invalidate_pattern'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.invalidate_pattern(pg_catalog.text) IS
'Unlink every key under key_prefix matching a Redis glob pattern, by SCAN in batches; returns how many were removed';

REVOKE ALL ON FUNCTION cachebridge.get(pg_catalog.text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.set(pg_catalog.text, pg_catalog.text, pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.del(pg_catalog.text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.invalidate_pattern(pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.get(pg_catalog.text) TO cachebridge_reader;
GRANT EXECUTE ON FUNCTION cachebridge.set(pg_catalog.text, pg_catalog.text, pg_catalog.int4) TO cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.del(pg_catalog.text[]) TO cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.invalidate_pattern(pg_catalog.text) TO cachebridge_writer;

-- ==== Statistics ====

CREATE FUNCTION cachebridge.stats(
    OUT queued pg_catalog.int8,
    OUT delivered pg_catalog.int8,
    OUT failed pg_catalog.int8,
    OUT retried pg_catalog.int8,
    OUT pending pg_catalog.int8,
    OUT round_trips pg_catalog.int8,
    OUT errors pg_catalog.int8,
    OUT cache_hits pg_catalog.int8,
    OUT cache_misses pg_catalog.int8,
    OUT null_keys pg_catalog.int8,
    OUT degraded pg_catalog.int8,
    OUT last_error pg_catalog.text,
    OUT last_error_at pg_catalog.timestamptz,
    OUT stats_reset pg_catalog.timestamptz,
    OUT cluster_wide pg_catalog.bool)
RETURNS record
AS 'MODULE_PATHNAME', 'cachebridge_stats'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION cachebridge.stats() IS
'Counters of cachebridge: cluster-wide when preloaded, else this session''s';

-- ==== Delivery: outbox, worker, circuit breaker ====

-- One row per committed transaction whose effects Redis has not yet
-- acknowledged (delivery modes durable and async).  Written by the
-- committing transaction, deleted by the worker once delivered; a row whose
-- effects cannot be decoded is kept with dead = true for inspection.
CREATE TABLE cachebridge.outbox (
    id pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    version pg_catalog.pg_lsn NOT NULL,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    neffects pg_catalog.int4 NOT NULL,
    direct pg_catalog.bool NOT NULL,
    attempts pg_catalog.int4 NOT NULL DEFAULT 0,
    dead pg_catalog.bool NOT NULL DEFAULT false,
    last_error pg_catalog.text,
    effects pg_catalog.bytea NOT NULL
);
ALTER TABLE cachebridge.outbox ALTER COLUMN effects SET STORAGE EXTERNAL;
COMMENT ON TABLE cachebridge.outbox IS
'Committed cache effects not yet acknowledged by Redis, one row per transaction';
REVOKE ALL ON cachebridge.outbox FROM PUBLIC;

CREATE FUNCTION cachebridge.wait_delivered(timeout_ms pg_catalog.int4 DEFAULT 10000)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'cachebridge_wait_delivered'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.wait_delivered(pg_catalog.int4) IS
'True once every cache effect committed before the call is applied in Redis; false after timeout_ms';
GRANT EXECUTE ON FUNCTION cachebridge.wait_delivered(pg_catalog.int4) TO PUBLIC;

CREATE FUNCTION cachebridge.delivery_status(
    OUT breaker pg_catalog.text,
    OUT breaker_opened_at pg_catalog.timestamptz,
    OUT worker_last_success pg_catalog.timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'cachebridge_delivery_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION cachebridge.delivery_status() IS
'State of the circuit breaker in front of Redis, and the worker''s last delivery';
REVOKE ALL ON FUNCTION cachebridge.delivery_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.delivery_status() TO cachebridge_reader;

CREATE VIEW cachebridge.stats AS
SELECT s.*, d.breaker, d.breaker_opened_at, d.worker_last_success,
       o.outbox_depth, o.outbox_dead, o.oldest_undelivered_age
FROM cachebridge.stats() AS s,
     cachebridge.delivery_status() AS d,
     (SELECT pg_catalog.count(*) FILTER (WHERE NOT dead) AS outbox_depth,
             pg_catalog.count(*) FILTER (WHERE dead) AS outbox_dead,
             pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
                 pg_catalog.min(created_at) FILTER (WHERE NOT dead) AS oldest_undelivered_age
      FROM cachebridge.outbox) AS o;
COMMENT ON VIEW cachebridge.stats IS
'What cachebridge queued, delivered, retried and failed, the last error, the breaker and this database''s outbox';

CREATE FUNCTION cachebridge.stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'cachebridge_stats_reset'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.stats_reset() IS
'Set every cachebridge counter to zero';

REVOKE ALL ON FUNCTION cachebridge.stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.stats_reset() FROM PUBLIC;
REVOKE ALL ON cachebridge.stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.stats() TO cachebridge_reader;
GRANT SELECT ON cachebridge.stats TO cachebridge_reader;

-- ==== Triggers ====

CREATE FUNCTION cachebridge.write_through()
RETURNS trigger
AS 'MODULE_PATHNAME', 'cachebridge_write_through'
LANGUAGE C;
COMMENT ON FUNCTION cachebridge.write_through() IS
'Row trigger: after commit, SET the row''s key (args: key template, then ttl=, columns=, format=json|hash); DEL it when the row is deleted or its key changes';

CREATE FUNCTION cachebridge.invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'cachebridge_invalidate'
LANGUAGE C;
COMMENT ON FUNCTION cachebridge.invalidate() IS
'Row trigger: after commit, DEL the keys of the old and new row for every key template given as argument';

CREATE FUNCTION cachebridge.validate_trigger(trigger_oid pg_catalog.oid,
                                             tbl pg_catalog.oid,
                                             mode pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'cachebridge_validate_trigger'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION cachebridge.validate_trigger(pg_catalog.oid, pg_catalog.oid, pg_catalog.text) IS
'Check a cachebridge trigger''s arguments against its table (run when such a trigger is created)';

-- Checks the arguments of every cachebridge trigger when it is created, so
-- that a typo in a column name fails CREATE TRIGGER rather than a write.
CREATE FUNCTION cachebridge.check_new_triggers()
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
          AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['write_through', 'invalidate'])
    LOOP
        PERFORM cachebridge.validate_trigger(t.oid, t.tgrelid, t.proname);
    END LOOP;
END
$$;
COMMENT ON FUNCTION cachebridge.check_new_triggers() IS
'Event trigger function: validates cachebridge triggers at CREATE TRIGGER';

CREATE EVENT TRIGGER cachebridge_check_triggers ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER')
    EXECUTE FUNCTION cachebridge.check_new_triggers();

CREATE FUNCTION cachebridge.attach(tbl pg_catalog.regclass,
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
                  HINT = 'Use write_through or invalidate.';
    END IF;
    IF mode NOT IN ('write_through', 'invalidate') THEN
        RAISE EXCEPTION 'unknown cachebridge mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use write_through or invalidate.';
    END IF;
    IF key IS NULL THEN
        RAISE EXCEPTION 'key template must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF ttl IS NOT NULL AND mode = 'invalidate' THEN
        RAISE EXCEPTION 'a TTL is not accepted in mode invalidate'
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
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER cachebridge_truncate AFTER TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.%I(%s)', tbl, mode, args);
END
$$;
COMMENT ON FUNCTION cachebridge.attach(pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text[]) IS
'Create the cachebridge row trigger (cachebridge_row) and TRUNCATE trigger (cachebridge_truncate) on a table';

CREATE FUNCTION cachebridge.detach(tbl pg_catalog.regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger
                   WHERE tgrelid = tbl
                     AND tgname IN ('cachebridge_row', 'cachebridge_truncate')) THEN
        RAISE EXCEPTION 'table "%" has no triggers made by cachebridge.attach()', tbl
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS cachebridge_row ON %s', tbl);
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS cachebridge_truncate ON %s', tbl);
END
$$;
COMMENT ON FUNCTION cachebridge.detach(pg_catalog.regclass) IS
'Drop the triggers cachebridge.attach() made on a table';

REVOKE ALL ON FUNCTION cachebridge.write_through() FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.invalidate() FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.validate_trigger(pg_catalog.oid, pg_catalog.oid, pg_catalog.text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.check_new_triggers() FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.attach(pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.detach(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.write_through() TO cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.invalidate() TO cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.validate_trigger(pg_catalog.oid, pg_catalog.oid, pg_catalog.text) TO cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.attach(pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text[]) TO cachebridge_writer;
GRANT EXECUTE ON FUNCTION cachebridge.detach(pg_catalog.regclass) TO cachebridge_writer;

-- ==== Sharding ====
-- Rings live in two tables.  The functions below validate changes, but the
-- tables may also be changed directly (INSERT/UPDATE/DELETE/TRUNCATE): a
-- statement trigger on each queues a cache invalidation, so every session
-- rebuilds its compiled rings once the change commits, and never sees a
-- rolled-back one.  Both tables are dumped by pg_dump.

CREATE TABLE cachebridge.ring (
    name pg_catalog.text PRIMARY KEY
        CONSTRAINT ring_name_not_empty CHECK (name OPERATOR(pg_catalog.<>) ''),
    algorithm pg_catalog.text NOT NULL DEFAULT 'ketama'
        CONSTRAINT ring_algorithm_known
        CHECK (algorithm OPERATOR(pg_catalog.=) ANY (ARRAY['ketama', 'jump', 'modulo', 'range'])),
    key_hash pg_catalog.text NOT NULL DEFAULT 'md5'
        CONSTRAINT ring_key_hash_known
        CHECK (key_hash OPERATOR(pg_catalog.=) ANY (ARRAY['md5', 'fnv1a_64']))
);
COMMENT ON TABLE cachebridge.ring IS
'Hash rings: how shard_for maps keys of each ring to its nodes';

CREATE SEQUENCE cachebridge.ring_node_ord_seq;

CREATE TABLE cachebridge.ring_node (
    ring pg_catalog.text NOT NULL
        REFERENCES cachebridge.ring (name) ON UPDATE CASCADE ON DELETE CASCADE,
    node pg_catalog.text NOT NULL
        CONSTRAINT ring_node_name_not_empty CHECK (node OPERATOR(pg_catalog.<>) ''),
    weight pg_catalog.int4 NOT NULL DEFAULT 1
        CONSTRAINT ring_node_weight_positive CHECK (weight OPERATOR(pg_catalog.>=) 1),
    range_lo pg_catalog.int8,
    range_hi pg_catalog.int8,
    ord pg_catalog.int8 NOT NULL
        DEFAULT pg_catalog.nextval('cachebridge.ring_node_ord_seq'::pg_catalog.regclass),
    PRIMARY KEY (ring, node),
    CONSTRAINT ring_node_range_valid
        CHECK ((range_lo IS NULL) OPERATOR(pg_catalog.=) (range_hi IS NULL)
               AND range_lo OPERATOR(pg_catalog.<=) range_hi)
);
ALTER SEQUENCE cachebridge.ring_node_ord_seq OWNED BY cachebridge.ring_node.ord;
COMMENT ON TABLE cachebridge.ring_node IS
'Nodes of each ring, in ring order (ord); range rings give each node an inclusive key range';

SELECT pg_catalog.pg_extension_config_dump('cachebridge.ring', '');
SELECT pg_catalog.pg_extension_config_dump('cachebridge.ring_node', '');
SELECT pg_catalog.pg_extension_config_dump('cachebridge.ring_node_ord_seq', '');

GRANT SELECT ON cachebridge.ring, cachebridge.ring_node TO PUBLIC;

CREATE FUNCTION cachebridge.ring_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'ring_changed'
LANGUAGE C;
COMMENT ON FUNCTION cachebridge.ring_changed() IS
'Statement trigger on the ring tables: makes every session rebuild its rings after the change commits';

CREATE TRIGGER ring_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cachebridge.ring
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.ring_changed();
CREATE TRIGGER ring_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cachebridge.ring_node
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.ring_changed();

CREATE FUNCTION cachebridge.ring_create(ring pg_catalog.text,
                                        algorithm pg_catalog.text DEFAULT 'ketama',
                                        key_hash pg_catalog.text DEFAULT 'md5')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF ring IS NULL OR ring = '' THEN
        RAISE EXCEPTION 'ring name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF algorithm IS NULL OR algorithm <> ALL (ARRAY['ketama', 'jump', 'modulo', 'range']) THEN
        RAISE EXCEPTION 'unknown ring algorithm "%"', algorithm
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Valid algorithms are "ketama", "jump", "modulo" and "range".';
    END IF;
    IF key_hash IS NULL OR key_hash <> ALL (ARRAY['md5', 'fnv1a_64']) THEN
        RAISE EXCEPTION 'unknown ring key hash "%"', key_hash
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Valid key hashes are "md5" and "fnv1a_64".';
    END IF;
    IF algorithm = 'range' AND key_hash <> 'md5' THEN
        RAISE EXCEPTION 'range ring "%" cannot use key hash "%"', ring, key_hash
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Range rings place integer keys by value, without hashing.';
    END IF;
    INSERT INTO cachebridge.ring AS r (name, algorithm, key_hash)
        VALUES (ring, algorithm, key_hash)
        ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ring "%" already exists', ring
            USING ERRCODE = 'duplicate_object';
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.ring_create(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'Create an empty ring using algorithm ketama, jump, modulo or range, and key hash md5 or fnv1a_64';

-- Shared by ring_add_node and ring_add_range: the ring (created with
-- algorithm when missing), checked to use a fitting algorithm.
CREATE FUNCTION cachebridge.ring_prepare_add(ring pg_catalog.text, node pg_catalog.text,
                                             weight pg_catalog.int4,
                                             for_range pg_catalog.bool)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ring_algorithm text;
BEGIN
    IF ring IS NULL OR ring = '' THEN
        RAISE EXCEPTION 'ring name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF node IS NULL OR node = '' THEN
        RAISE EXCEPTION 'node name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF weight IS NULL OR weight < 1 THEN
        RAISE EXCEPTION 'invalid weight % for node "%"', coalesce(weight::text, 'NULL'), node
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A node''s weight must be at least 1.';
    END IF;

    INSERT INTO cachebridge.ring (name, algorithm)
        VALUES (ring, CASE WHEN for_range THEN 'range' ELSE 'ketama' END)
        ON CONFLICT (name) DO NOTHING;
    -- lock the ring, so that concurrent changes to it queue up
    SELECT r.algorithm INTO ring_algorithm
        FROM cachebridge.ring r WHERE r.name = ring FOR UPDATE;

    IF for_range AND ring_algorithm <> 'range' THEN
        RAISE EXCEPTION 'ring "%" does not use the range algorithm', ring
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('Ring "%s" uses the %s algorithm.', ring, ring_algorithm),
                  HINT = 'Add nodes to it with cachebridge.ring_add_node().';
    ELSIF NOT for_range AND ring_algorithm = 'range' THEN
        RAISE EXCEPTION 'ring "%" uses the range algorithm', ring
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Add nodes to it with cachebridge.ring_add_range().';
    END IF;
    IF EXISTS (SELECT FROM cachebridge.ring_node n WHERE n.ring = ring_prepare_add.ring
                                                     AND n.node = ring_prepare_add.node) THEN
        RAISE EXCEPTION 'node "%" is already on ring "%"', node, ring
            USING ERRCODE = 'duplicate_object';
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.ring_prepare_add(pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.bool) IS
'Internal: checks shared by ring_add_node and ring_add_range';

CREATE FUNCTION cachebridge.ring_add_node(ring pg_catalog.text, node pg_catalog.text,
                                          weight pg_catalog.int4 DEFAULT 1)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cachebridge.ring_prepare_add(ring, node, weight, false);
    INSERT INTO cachebridge.ring_node (ring, node, weight) VALUES (ring, node, weight);
END
$$;
COMMENT ON FUNCTION cachebridge.ring_add_node(pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
'Add a node of the given weight at the end of a ring; an unknown ring is created with the ketama algorithm';

CREATE FUNCTION cachebridge.ring_add_range(ring pg_catalog.text, node pg_catalog.text,
                                           range_lo pg_catalog.int8, range_hi pg_catalog.int8)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other text;
BEGIN
    PERFORM cachebridge.ring_prepare_add(ring, node, 1, true);
    IF range_lo IS NULL OR range_hi IS NULL OR range_lo > range_hi THEN
        RAISE EXCEPTION 'invalid key range [%, %] for node "%"',
                        coalesce(range_lo::text, 'NULL'), coalesce(range_hi::text, 'NULL'), node
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A range needs both bounds, the lower one not above the upper one.';
    END IF;
    SELECT n.node INTO other FROM cachebridge.ring_node n
        WHERE n.ring = ring_add_range.ring
          AND n.range_lo <= ring_add_range.range_hi
          AND n.range_hi >= ring_add_range.range_lo
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'key range [%, %] of node "%" overlaps the range of node "%" on ring "%"',
                        range_lo, range_hi, node, other, ring
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO cachebridge.ring_node (ring, node, range_lo, range_hi)
        VALUES (ring, node, range_lo, range_hi);
END
$$;
COMMENT ON FUNCTION cachebridge.ring_add_range(pg_catalog.text, pg_catalog.text, pg_catalog.int8, pg_catalog.int8) IS
'Add a node owning the integer keys range_lo..range_hi (inclusive) to a range ring; an unknown ring is created with the range algorithm';

CREATE FUNCTION cachebridge.ring_remove_node(ring pg_catalog.text, node pg_catalog.text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM FROM cachebridge.ring r WHERE r.name = ring FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ring "%" does not exist', ring
            USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM cachebridge.ring_node n
        WHERE n.ring = ring_remove_node.ring AND n.node = ring_remove_node.node;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node "%" is not on ring "%"', node, ring
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.ring_remove_node(pg_catalog.text, pg_catalog.text) IS
'Remove a node from a ring; the ring stays, possibly empty';

CREATE FUNCTION cachebridge.ring_drop(ring pg_catalog.text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM cachebridge.ring r WHERE r.name = ring;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ring "%" does not exist', ring
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION cachebridge.ring_drop(pg_catalog.text) IS
'Drop a ring and all its nodes';

-- Changing rings is for superusers and the owner of the ring tables (the
-- functions run as their caller, who needs the table privileges anyway).
REVOKE ALL ON FUNCTION cachebridge.ring_create(pg_catalog.text, pg_catalog.text, pg_catalog.text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.ring_prepare_add(pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.bool) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.ring_add_node(pg_catalog.text, pg_catalog.text, pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.ring_add_range(pg_catalog.text, pg_catalog.text, pg_catalog.int8, pg_catalog.int8) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.ring_remove_node(pg_catalog.text, pg_catalog.text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.ring_drop(pg_catalog.text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cachebridge.ring_changed() FROM PUBLIC;

CREATE FUNCTION cachebridge.shard_for(key pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shard_for'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION cachebridge.shard_for(pg_catalog.text) IS
'Node of key on ring "default" (ketama-compatible unless the ring says otherwise)';

CREATE FUNCTION cachebridge.shard_for(key pg_catalog.text, ring pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shard_for'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION cachebridge.shard_for(pg_catalog.text, pg_catalog.text) IS
'Node of key on the named ring';

CREATE FUNCTION cachebridge.ring_balance(ring pg_catalog.text DEFAULT 'default',
                                         OUT node pg_catalog.text,
                                         OUT weight pg_catalog.int4,
                                         OUT slots pg_catalog.int8,
                                         OUT share pg_catalog.float8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ring_balance'
LANGUAGE C STRICT STABLE PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION cachebridge.ring_balance(pg_catalog.text) IS
'Each node of a ring with its weight, slots (ketama points, buckets, or range size) and share of the key space';

CREATE FUNCTION cachebridge.shard_moves(ring pg_catalog.text, keys pg_catalog.text[],
                                        add_node pg_catalog.text DEFAULT NULL,
                                        add_weight pg_catalog.int4 DEFAULT 1,
                                        remove_node pg_catalog.text DEFAULT NULL,
                                        OUT key pg_catalog.text,
                                        OUT from_node pg_catalog.text,
                                        OUT to_node pg_catalog.text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'shard_moves'
LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION cachebridge.shard_moves(pg_catalog.text, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.text) IS
'Keys that would change node if add_node were added to the ring and/or remove_node removed, with their old and new node';

CREATE FUNCTION cachebridge.key_slot(key pg_catalog.text)
RETURNS pg_catalog.int4
AS 'MODULE_PATHNAME', 'key_slot'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cachebridge.key_slot(pg_catalog.text) IS
'Redis Cluster hash slot of key: CRC16/XMODEM mod 16384, hashing only a non-empty {hash tag} when there is one';
