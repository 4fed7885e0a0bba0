--
-- What is attached: the view cachebridge.attachments, attach() of more than
-- one thing to a table (a cache and a stream), detach() of one of them by
-- name, and attach(..., 'enable=always') for logical-replication
-- subscribers, which must cover the TRUNCATE trigger too.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE at_users (id int PRIMARY KEY, name text, email text);

-- a cache and an event stream on one table: each attach names its
-- triggers after its mode
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', 300, 'columns=id,name');
SELECT cachebridge.attach('at_users', 'events:users', 'publish', NULL, 'old=true');
SELECT "table", trigger, function, templates, options, events, enabled,
       truncate_trigger, truncate_enabled
FROM cachebridge.attachments ORDER BY 1::text, 2;
-- both work
INSERT INTO at_users VALUES (1, 'Ada', 'ada@example.com');
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw get user:1
\! redis-cli -p $CB_REDIS_PORT xlen events:users

-- a second cache of the same mode needs a name of its own
SELECT cachebridge.attach('at_users', 'user_by_mail:{email}');
\echo :LAST_ERROR_SQLSTATE
SELECT cachebridge.attach('at_users', 'user_by_mail:{email}', 'write_through', NULL, 'name=by_mail');
SELECT trigger, templates, truncate_trigger FROM cachebridge.attachments
WHERE "table" = 'at_users'::regclass ORDER BY 1;
UPDATE at_users SET email = 'ada@example.org' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT --raw get user_by_mail:ada@example.org

-- detach() of a table with several attachments says which ones it has ...
SELECT cachebridge.detach('at_users');
\echo :LAST_ERROR_SQLSTATE
-- ... and detach(table, name) drops one, by its row or TRUNCATE trigger,
-- with its partner
SELECT cachebridge.detach('at_users', 'by_mail');
SELECT cachebridge.detach('at_users', 'cachebridge_publish_truncate');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'at_users'::regclass ORDER BY 1;
SELECT cachebridge.detach('at_users', 'nosuch');
\echo :LAST_ERROR_SQLSTATE
-- with one attachment left, detach(table) drops it
SELECT cachebridge.detach('at_users');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'at_users'::regclass;
SELECT cachebridge.detach('at_users');

-- attach's own options: name= and enable= are checked, and not passed on
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, 'enable=sometimes');
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, 'name=a', 'name=b');
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, 'name=');
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, 'name=' || repeat('x', 55));
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, NULL::text);
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'at_users'::regclass;
-- a trigger name that needs quoting
SELECT cachebridge.attach('at_users', 'user:{id}', 'invalidate', NULL, 'name=Cache "A"');
SELECT trigger, truncate_trigger, options FROM cachebridge.attachments
WHERE "table" = 'at_users'::regclass;
SELECT cachebridge.detach('at_users', 'Cache "A"');

--
-- Triggers attach() made before 1.3 (cachebridge_row, cachebridge_truncate),
-- and triggers made by hand, are listed and detached too
--
CREATE TRIGGER cachebridge_row AFTER INSERT OR UPDATE OR DELETE ON at_users
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('user:{id}', 'ttl=60');
CREATE TRIGGER cachebridge_truncate AFTER TRUNCATE ON at_users
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.write_through('user:{id}', 'ttl=60');
-- a hand-made row trigger without a TRUNCATE trigger, and a TRUNCATE
-- trigger covering no row trigger
CREATE TRIGGER mail_gone AFTER DELETE ON at_users
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('mail:{email}', 'notify=gone');
CREATE TRIGGER wipe_all AFTER TRUNCATE ON at_users
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.invalidate('session:{{all}}:*x', 'notify=gone');
-- a trigger of another function is not listed
CREATE FUNCTION at_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER not_ours AFTER INSERT ON at_users FOR EACH ROW EXECUTE FUNCTION at_noop();
SELECT trigger, function, templates, options, events, enabled, truncate_trigger, truncate_enabled
FROM cachebridge.attachments WHERE "table" = 'at_users'::regclass ORDER BY 1;
SELECT cachebridge.detach('at_users', 'cachebridge_row');
SELECT cachebridge.detach('at_users', 'wipe_all');
SELECT cachebridge.detach('at_users', 'mail_gone');
SELECT cachebridge.detach('at_users', 'not_ours');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'at_users'::regclass ORDER BY 1;
DROP TRIGGER not_ours ON at_users;

--
-- A partitioned table's trigger is listed once, on the partitioned table
-- (not once per partition)
--
CREATE TABLE at_parted (id int, region text) PARTITION BY LIST (region);
CREATE TABLE at_parted_eu PARTITION OF at_parted FOR VALUES IN ('eu');
CREATE TABLE at_parted_us PARTITION OF at_parted FOR VALUES IN ('us');
SELECT cachebridge.attach('at_parted', 'p:{region}:{id}', 'invalidate');
SELECT "table", trigger, truncate_trigger FROM cachebridge.attachments
WHERE "table"::text LIKE 'at_parted%';
SELECT cachebridge.detach('at_parted');
SELECT count(*) FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'at_parted%';
DROP TABLE at_parted;

--
-- Logical-replication subscribers.  A subscriber applies changes with
-- session_replication_role = replica: only ALWAYS and REPLICA triggers fire.
-- attach(..., 'enable=always') enables both triggers so; a replicated
-- TRUNCATE then removes the keys, where ENABLE ALWAYS on the row trigger
-- alone would leave them.
--
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, 'enable=always');
SELECT trigger, enabled, truncate_trigger, truncate_enabled FROM cachebridge.attachments
WHERE "table" = 'at_users'::regclass;
SET session_replication_role = replica;
INSERT INTO at_users VALUES (2, 'Grace', 'grace@example.com');
\! redis-cli -p $CB_REDIS_PORT exists user:2
TRUNCATE at_users;
\! redis-cli -p $CB_REDIS_PORT exists user:2
RESET session_replication_role;
SELECT cachebridge.detach('at_users');
-- enable=replica fires only for replicated changes
SELECT cachebridge.attach('at_users', 'user:{id}', 'write_through', NULL, 'enable=replica');
SELECT enabled, truncate_enabled FROM cachebridge.attachments WHERE "table" = 'at_users'::regclass;
INSERT INTO at_users VALUES (3, 'Edsger', 'ed@example.com');
\! redis-cli -p $CB_REDIS_PORT exists user:3
SELECT cachebridge.detach('at_users');
-- the default fires for local changes only: a replicated TRUNCATE leaves keys
SELECT cachebridge.attach('at_users', 'user:{id}');
INSERT INTO at_users VALUES (4, 'Barbara', 'barbara@example.com');
SET session_replication_role = replica;
TRUNCATE at_users;
RESET session_replication_role;
\! redis-cli -p $CB_REDIS_PORT exists user:4
-- ENABLE ALWAYS on one trigger of the pair alone is warned about
ALTER TABLE at_users ENABLE ALWAYS TRIGGER cachebridge_write_through;
ALTER TABLE at_users ENABLE ALWAYS TRIGGER cachebridge_write_through_truncate;
SELECT enabled, truncate_enabled FROM cachebridge.attachments WHERE "table" = 'at_users'::regclass;
ALTER TABLE at_users DISABLE TRIGGER cachebridge_write_through_truncate;
ALTER TABLE at_users DISABLE TRIGGER ALL;
SELECT enabled, truncate_enabled FROM cachebridge.attachments WHERE "table" = 'at_users'::regclass;
SELECT cachebridge.detach('at_users');

--
-- Who may read the view: cachebridge_reader and cachebridge_writer, not
-- PUBLIC; and each sees only the tables it owns or holds a privilege on
--
SELECT cachebridge.attach('at_users', 'user:{id}');
CREATE ROLE cb_at_plain;
CREATE ROLE cb_at_reader IN ROLE cachebridge_reader;
CREATE ROLE cb_at_writer IN ROLE cachebridge_writer;
CREATE TABLE at_writers (id int);
ALTER TABLE at_writers OWNER TO cb_at_writer;
SELECT has_table_privilege('public', 'cachebridge.attachments', 'SELECT') AS public_reads,
       has_table_privilege('cachebridge_reader', 'cachebridge.attachments', 'SELECT') AS reader_reads,
       has_table_privilege('cachebridge_writer', 'cachebridge.attachments', 'SELECT') AS writer_reads,
       has_table_privilege('cachebridge_writer', 'cachebridge.attachments', 'INSERT, UPDATE, DELETE') AS writer_writes;
SET ROLE cb_at_plain;
SELECT count(*) FROM cachebridge.attachments;
SET ROLE cb_at_writer;
SELECT cachebridge.attach('at_writers', 'w:{id}');
SELECT "table", trigger FROM cachebridge.attachments ORDER BY 1::text;
-- a writer cannot detach what it does not own
SELECT cachebridge.detach('at_users');
DELETE FROM cachebridge.attachments;
SET ROLE cb_at_reader;
SELECT count(*) FROM cachebridge.attachments;
RESET ROLE;
GRANT SELECT ON at_users TO cb_at_reader;
SET ROLE cb_at_reader;
SELECT "table", trigger FROM cachebridge.attachments ORDER BY 1::text;
RESET ROLE;
SELECT "table", trigger FROM cachebridge.attachments ORDER BY 1::text;

--
-- A hostile search_path while the view is read, and while detach runs:
-- functions and operators planted ahead of pg_catalog are never called,
-- and a temporary table named like a catalog is not read
--
CREATE SCHEMA at_evil;
CREATE FUNCTION at_evil.array_remove(anyarray, anyelement) RETURNS anyarray
    LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'planted array_remove called'; RETURN $1; END $$;
CREATE FUNCTION at_evil.has_table_privilege(oid, text) RETURNS bool
    LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'planted has_table_privilege called'; RETURN true; END $$;
CREATE FUNCTION at_evil.oideq(oid, oid) RETURNS bool
    LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'planted = called'; RETURN true; END $$;
CREATE OPERATOR at_evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = at_evil.oideq);
CREATE FUNCTION at_evil.pg_has_role(oid, text) RETURNS bool
    LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'planted pg_has_role called'; RETURN true; END $$;
CREATE TEMP TABLE pg_trigger (tgrelid oid, tgname name);
SET search_path = pg_temp, at_evil, pg_catalog, public;
SELECT "table", trigger, templates FROM cachebridge.attachments ORDER BY 1::text;
SELECT cachebridge.detach('at_writers');
SELECT cachebridge.detach('at_users');
RESET search_path;
SELECT count(*) FROM cachebridge.attachments;
DROP TABLE pg_temp.pg_trigger;
DROP SCHEMA at_evil CASCADE;

DROP TABLE at_writers;
DROP TABLE at_users;
DROP ROLE cb_at_plain;
DROP ROLE cb_at_reader;
DROP ROLE cb_at_writer;
DROP FUNCTION at_noop();
