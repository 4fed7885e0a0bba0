/* cachebridge--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.4'" to load this file. \quit

-- 1.4: Redis Cluster, partitions that keep no stale keys, faster backfill.
-- Every object is schema-qualified, as in cachebridge--1.0.sql; each
-- section below says which change it belongs to.

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
