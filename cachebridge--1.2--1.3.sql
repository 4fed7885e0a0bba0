/* cachebridge--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.3'" to load this file. \quit

-- 1.3: day-two operations, delivery that holds across every history, TLS
-- and Redis Cluster.  Every object is schema-qualified, as in
-- cachebridge--1.0.sql; each section below says which change it belongs to.
