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
RETURNS void
AS 'MODULE_PATHNAME', 'cachebridge_set'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachebridge.set(pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
'Cache-aside fill: store value under key_prefix || key, expiring after ttl seconds when ttl is given';

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

CREATE VIEW cachebridge.stats AS SELECT * FROM cachebridge.stats();
COMMENT ON VIEW cachebridge.stats IS
'What cachebridge queued, delivered, retried and failed, with the last error';

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
