/* cachebridge--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.2'" to load this file. \quit

-- 1.2: security.  Every statement that runs with more rights than its
-- caller is immune to search_path, writers cannot reach tables they cannot
-- read, and triggers write into the namespace of their table's owner.
-- Every object is schema-qualified, as in cachebridge--1.0.sql.

-- ==== The extension's schema is the extension owner's ====
-- CREATE EXTENSION uses a schema "cachebridge" that already exists.  One
-- made by another role lets that role, as its owner, rename it and put
-- objects of its own where cachebridge's worker and commit path work as
-- the extension's owner (a superuser): refuse it.  (src/elevate.c checks
-- the same at run time, for databases still on 1.0 or 1.1.)
DO $schema$
DECLARE
    nsp_owner pg_catalog.name;
BEGIN
    SELECT r.rolname INTO nsp_owner
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE e.extname OPERATOR(pg_catalog.=) 'cachebridge'
       AND (n.nspowner OPERATOR(pg_catalog.<>) e.extowner
            OR n.nspname OPERATOR(pg_catalog.<>) 'cachebridge');
    IF FOUND THEN
        RAISE EXCEPTION 'schema "cachebridge" is owned by role "%", not by the owner of extension "cachebridge"', nsp_owner
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The schema existed before CREATE EXTENSION, or was renamed; its owner could put objects of its own where cachebridge works as the extension''s owner.',
                  HINT = 'Drop that schema (and the extension), then create the extension as a superuser with no schema "cachebridge" there before.';
    END IF;
END
$schema$;

-- ==== Namespaces: refused keys are counted ====

-- A trigger key or stream name that would be a version marker's name is
-- refused and counted in the new column refused_keys; the view is rebuilt
-- on the new function, with the same comments and grants.
DROP VIEW cachebridge.stats;
DROP FUNCTION cachebridge.stats();

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
    OUT refused_keys pg_catalog.int8,
    OUT last_error pg_catalog.text,
    OUT last_error_at pg_catalog.timestamptz,
    OUT stats_reset pg_catalog.timestamptz,
    OUT cluster_wide pg_catalog.bool)
RETURNS record
AS 'MODULE_PATHNAME', 'cachebridge_stats'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION cachebridge.stats() IS
'Counters of cachebridge: cluster-wide when preloaded, else this session''s';

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

REVOKE ALL ON FUNCTION cachebridge.stats() FROM PUBLIC;
REVOKE ALL ON cachebridge.stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachebridge.stats() TO cachebridge_reader;
GRANT SELECT ON cachebridge.stats TO cachebridge_reader;
