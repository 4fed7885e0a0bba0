--
-- Keys only where they belong.
--
-- 1. Names ending in '#cbv' are version markers (see src/scripts.c): no key
--    a trigger renders from row data, no stream name and no cache-aside key
--    may be one, or a user could overwrite, delete or retype another key's
--    marker.  A trigger refuses such a key (WARNING, counted in
--    cachebridge.stats.refused_keys); get/set/del raise an ERROR.
-- 2. A trigger writes under the key prefix configured for its table's
--    owner (ALTER ROLE/DATABASE SET), whatever session fires it.
-- 3. Settings that change what other sessions get are superuser-only.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall > /dev/null
SELECT current_database() AS regress_db, current_user AS regress_user \gset
SELECT refused_keys AS refused_before FROM cachebridge.stats \gset

--
-- 1a. write_through: a user named 'alice#cbv' would overwrite Alice's
-- marker, after which every write of Alice's profile is refused as older.
--
CREATE TABLE ns_profiles (username text PRIMARY KEY, bio text);
CREATE TRIGGER ns_profiles_cache AFTER INSERT OR UPDATE OR DELETE ON ns_profiles
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('profile:{username}');
INSERT INTO ns_profiles VALUES ('alice', 'first');
\! redis-cli -p $CB_REDIS_PORT type 'profile:alice#cbv'
\set alice_marker `redis-cli -p $CB_REDIS_PORT get 'profile:alice#cbv'`
-- the sign-up is stored, but its key is refused: Alice's marker stays, and
-- her next write lands
INSERT INTO ns_profiles VALUES ('alice#cbv', 'mallory');
\set alice_marker_after `redis-cli -p $CB_REDIS_PORT get 'profile:alice#cbv'`
SELECT :'alice_marker' = :'alice_marker_after' AS alice_marker_untouched;
\! redis-cli -p $CB_REDIS_PORT exists 'profile:alice#cbv#cbv'
UPDATE ns_profiles SET bio = 'second' WHERE username = 'alice';
\! redis-cli -p $CB_REDIS_PORT --raw get profile:alice
\set alice_marker `redis-cli -p $CB_REDIS_PORT get 'profile:alice#cbv'`
-- an UPDATE onto the reserved name deletes the old key only
INSERT INTO ns_profiles VALUES ('bob', 'bob');
UPDATE ns_profiles SET username = 'bob#cbv' WHERE username = 'bob';
\! redis-cli -p $CB_REDIS_PORT exists profile:bob
-- and an UPDATE away from it does not delete the old (reserved) key
UPDATE ns_profiles SET username = 'carol' WHERE username = 'alice#cbv';
\! redis-cli -p $CB_REDIS_PORT --raw get profile:carol
\set alice_marker_after `redis-cli -p $CB_REDIS_PORT get 'profile:alice#cbv'`
SELECT :'alice_marker' = :'alice_marker_after' AS alice_marker_untouched;

--
-- 1b. invalidate: deleting the row 'alice#cbv' would delete Alice's marker.
--
CREATE TABLE ns_sessions (username text);
CREATE TRIGGER ns_sessions_cache AFTER INSERT OR UPDATE OR DELETE ON ns_sessions
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('profile:{username}');
INSERT INTO ns_sessions VALUES ('alice#cbv');
DELETE FROM ns_sessions;
\! redis-cli -p $CB_REDIS_PORT type 'profile:alice#cbv'
\set alice_marker_after `redis-cli -p $CB_REDIS_PORT get 'profile:alice#cbv'`
SELECT :'alice_marker' = :'alice_marker_after' AS alice_marker_untouched;

--
-- 1c. publish: a tenant 'acme#cbv' would make acme's stream marker (a hash)
-- a stream, and every later entry of acme would fail.
--
CREATE TABLE ns_events (tenant text, n int);
CREATE TRIGGER ns_events_publish AFTER INSERT OR UPDATE OR DELETE ON ns_events
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('events:{tenant}');
INSERT INTO ns_events VALUES ('acme#cbv', 1);
INSERT INTO ns_events VALUES ('acme', 2);
INSERT INTO ns_events VALUES ('acme', 3);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT type 'events:acme#cbv'
\! redis-cli -p $CB_REDIS_PORT xlen events:acme

-- every refusal was counted: one per refused key or stream name
SELECT refused_keys - :refused_before AS refused_keys FROM cachebridge.stats;

--
-- 1d. cache-aside calls refuse marker names, prefix included; pattern
-- deletion never matches a marker
--
SELECT cachebridge.get('profile:alice#cbv');
SELECT cachebridge.set('profile:alice#cbv', 'x');
SELECT cachebridge.del('profile:bob', 'profile:alice#cbv');
SET cachebridge.key_prefix = 'profile:alice#cb';
SELECT cachebridge.set('v', 'x');
RESET cachebridge.key_prefix;
SELECT cachebridge.invalidate_pattern('profile:alice#*');
\set alice_marker_after `redis-cli -p $CB_REDIS_PORT get 'profile:alice#cbv'`
SELECT :'alice_marker' = :'alice_marker_after' AS alice_marker_untouched;
-- but an ordinary key that merely contains '#cbv' is fine
SELECT cachebridge.set('x#cbv:1', 'ok');
SELECT cachebridge.get('x#cbv:1');
SELECT cachebridge.del('x#cbv:1');

--
-- 2. A trigger's namespace is its table owner's.  Two tenants, cb_ns_app2
-- and cb_ns_w, each with a key prefix of its own.  cb_ns_w owns a parent
-- table; cb_ns_app2's table references it ON UPDATE CASCADE and caches its
-- rows.  When cb_ns_w renames a parent row, the cascade changes
-- cb_ns_app2's rows in cb_ns_w's session: their keys must still land under
-- 'app2:', never under cb_ns_w's 'w:'.
--
CREATE ROLE cb_ns_app2 LOGIN;
CREATE ROLE cb_ns_w LOGIN;
ALTER ROLE cb_ns_app2 SET cachebridge.key_prefix = 'app2:';
ALTER ROLE cb_ns_w SET cachebridge.key_prefix = 'w:';
GRANT CREATE ON SCHEMA public TO cb_ns_app2, cb_ns_w;

\c - cb_ns_w
SHOW cachebridge.key_prefix;
CREATE TABLE ns_parent (name text PRIMARY KEY);
INSERT INTO ns_parent VALUES ('p1');
GRANT REFERENCES ON ns_parent TO cb_ns_app2;

\c - cb_ns_app2
CREATE TABLE ns_child (id int PRIMARY KEY,
    parent text REFERENCES ns_parent ON UPDATE CASCADE);
GRANT SELECT ON ns_child TO cb_ns_w;

\c - :regress_user
CREATE TRIGGER ns_child_cache AFTER INSERT OR UPDATE OR DELETE ON ns_child
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('child:{id}');
SELECT cachebridge.attach('ns_parent', 'parent:{name}');
-- the superuser's own SET key_prefix moves only its cache-aside calls
SET cachebridge.key_prefix = 'elsewhere:';
INSERT INTO ns_child VALUES (1, 'p1');
SELECT cachebridge.set('aside', 'mine');
RESET cachebridge.key_prefix;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*child*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT exists elsewhere:aside

-- cb_ns_w renames its parent row; the cascade rewrites cb_ns_app2's row
\c - cb_ns_w
SHOW cachebridge.key_prefix;
UPDATE ns_parent SET name = 'p2' WHERE name = 'p1';
SELECT * FROM ns_child;
\c - :regress_user
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*child*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT --raw get app2:child:1
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*parent*' | grep -v '#cbv$' | sort

-- TRUNCATE removes the keys of the owner's namespace, not the session's
CREATE TRIGGER ns_child_truncate AFTER TRUNCATE ON ns_child
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.write_through('child:{id}');
\! redis-cli -p $CB_REDIS_PORT set 'child:1' 'no namespace' > /dev/null
SET cachebridge.key_prefix = 'child:';
TRUNCATE ns_child;
RESET cachebridge.key_prefix;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*child*' | grep -v '#cbv$' | sort

-- a new owner brings its namespace (ALTER TABLE OWNER invalidates the cache)
ALTER TABLE ns_child OWNER TO cb_ns_w;
INSERT INTO ns_child VALUES (2, 'p2');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*child*' | grep -v '#cbv$' | sort

-- an owner without a prefix of its own gets the database's, and a setting
-- for the owner in this database comes first
CREATE ROLE cb_ns_plain;
CREATE TABLE ns_plain (id int);
ALTER TABLE ns_plain OWNER TO cb_ns_plain;
SELECT cachebridge.attach('ns_plain', 'plain:{id}');
ALTER DATABASE :"regress_db" SET cachebridge.key_prefix = 'db:';
\c - :regress_user
INSERT INTO ns_plain VALUES (1);
ALTER ROLE cb_ns_plain IN DATABASE :"regress_db" SET cachebridge.key_prefix = 'plain-here:';
ALTER ROLE cb_ns_plain SET cachebridge.key_prefix = 'plain-everywhere:';
\c - :regress_user
INSERT INTO ns_plain VALUES (2);
ALTER DATABASE :"regress_db" RESET cachebridge.key_prefix;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*plain:*' | grep -v '#cbv$' | sort

-- with no setting for the owner or the database, the server-wide value
-- applies: ALTER SYSTEM once reloaded (not before), even in a session whose
-- own value is SET (and came from the database's setting at login)
CREATE TABLE ns_server (id int);
SELECT cachebridge.attach('ns_server', 'server:{id}');
SET cachebridge.key_prefix = 'mine:';
ALTER SYSTEM SET cachebridge.key_prefix = 'sys:';
INSERT INTO ns_server VALUES (1);
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SHOW cachebridge.key_prefix;
INSERT INTO ns_server VALUES (2);
RESET cachebridge.key_prefix;
ALTER SYSTEM RESET cachebridge.key_prefix;
SELECT pg_reload_conf();
SELECT pg_sleep(1);
-- (a session whose own value does not come from the file sees the removal
-- when it reconnects)
\c - :regress_user
INSERT INTO ns_server VALUES (3);
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*server:*' | grep -v '#cbv$' | sort

--
-- 3. Settings that would change what other sessions get are superuser-only:
-- a tiny timeout opens the breaker every session shares, and sync delivery
-- loses the effects Redis misses for every reader of the cache.
--
\c - cb_ns_w
SET cachebridge.command_timeout = 1;
SET cachebridge.connect_timeout = 1;
SET cachebridge.delivery = sync;
SET cachebridge.key_prefix = 'app2:';
SELECT set_config('cachebridge.command_timeout', '1', true);
-- nor can it make its triggers degrade into removing every row's key
SET cachebridge.max_pending_memory = 64;
\c - :regress_user

DROP TABLE ns_child, ns_parent, ns_plain, ns_server, ns_profiles, ns_sessions, ns_events;
REVOKE CREATE ON SCHEMA public FROM cb_ns_app2, cb_ns_w;
DROP ROLE cb_ns_app2, cb_ns_w, cb_ns_plain;
