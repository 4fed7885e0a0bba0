--
-- DROP EXTENSION cachebridge drops the schema cachebridge too, when
-- nothing else is in it: in a fresh install and in a database upgraded
-- from 1.0 (whose schema is no member of the extension either).  A schema
-- that holds a role's own objects is kept, with a NOTICE.  Runs in
-- databases of its own, since the regression database needs the
-- extension.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE cb_dropped;
\c cb_dropped
SET client_min_messages = warning;

-- a fresh install
CREATE EXTENSION cachebridge;
SELECT count(*) AS schema_before FROM pg_namespace WHERE nspname = 'cachebridge';
DROP EXTENSION cachebridge;
SELECT count(*) AS schema_after FROM pg_namespace WHERE nspname = 'cachebridge';

-- a rollback keeps both; a drop undone by a savepoint keeps both
CREATE EXTENSION cachebridge;
BEGIN;
DROP EXTENSION cachebridge;
ROLLBACK;
BEGIN;
SAVEPOINT s;
DROP EXTENSION cachebridge;
ROLLBACK TO s;
COMMIT;
SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'cachebridge') AS extension,
       (SELECT count(*) FROM pg_namespace WHERE nspname = 'cachebridge') AS schema;

-- dropped and created again in one transaction: the new one keeps it
BEGIN;
DROP EXTENSION cachebridge;
CREATE EXTENSION cachebridge;
COMMIT;
SELECT e.extnamespace = n.oid AS same_schema_in_use
FROM pg_extension e, pg_namespace n
WHERE e.extname = 'cachebridge' AND n.nspname = 'cachebridge';

-- a table of the user's own in the schema is not dropped with it
CREATE TABLE cachebridge.mine (x int);
RESET client_min_messages;
DROP EXTENSION cachebridge;
SELECT count(*) AS schema_kept FROM pg_namespace WHERE nspname = 'cachebridge';
DROP SCHEMA cachebridge CASCADE;

-- a database upgraded from 1.0
SET client_min_messages = warning;
CREATE EXTENSION cachebridge VERSION '1.0';
ALTER EXTENSION cachebridge UPDATE;
DROP EXTENSION cachebridge;
SELECT count(*) AS upgraded_schema_after FROM pg_namespace WHERE nspname = 'cachebridge';

-- DROP SCHEMA still needs CASCADE, which drops the extension with it
CREATE EXTENSION cachebridge;
DROP SCHEMA cachebridge;
DROP SCHEMA cachebridge CASCADE;
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'cachebridge';

\c :regress_db
DROP DATABASE cb_dropped;
