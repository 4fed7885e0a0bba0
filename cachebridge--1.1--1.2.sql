/* cachebridge--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cachebridge UPDATE TO '1.2'" to load this file. \quit

-- 1.2: security.  Every statement that runs with more rights than its
-- caller is immune to search_path, writers cannot reach tables they cannot
-- read, and triggers write into the namespace of their table's owner.
-- Every object is schema-qualified, as in cachebridge--1.0.sql.
