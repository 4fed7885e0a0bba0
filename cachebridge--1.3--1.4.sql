/* cachebridge--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.4'" to load this file. \quit

-- 1.4: Redis Cluster, partitions that keep no stale keys, faster backfill.
-- Every object is schema-qualified, as in cachebridge--1.0.sql; each
-- section below says which change it belongs to.
