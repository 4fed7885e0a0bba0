/* cachebridge--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.3'" to load this file. \quit

-- 1.3: day-two operations, delivery that holds across every history, TLS
-- and Redis Cluster.  Every object is schema-qualified, as in
-- cachebridge--1.0.sql; each section below says which change it belongs to.

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
