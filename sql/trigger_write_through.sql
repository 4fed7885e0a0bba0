--
-- cachebridge.write_through(): after commit, INSERT and UPDATE SET the row's
-- key, DELETE deletes it, and an UPDATE that changes the key deletes the old
-- key.  Values are row_to_json(NEW)::text (format=json, the default), or one
-- hash field per column (format=hash).
--
-- Redis is inspected with redis-cli on the harness' server ($CB_REDIS_PORT).
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE wt_users (
    id int PRIMARY KEY,
    name text,
    score numeric,
    active boolean,
    tags text[],
    born date,
    extra jsonb
);
CREATE TRIGGER wt_users_cache AFTER INSERT OR UPDATE OR DELETE ON wt_users
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('user:{id}');

-- the value is exactly row_to_json(NEW)::text, whatever the column types:
-- quotes, backslashes, control characters, non-ASCII, arrays, NULLs
INSERT INTO wt_users VALUES
    (1, 'Ann "the" \ one', 1.50, true, '{a,"b c"}', '2000-02-29', '{"k": [1, 2]}'),
    (2, E'tab\there' || chr(10) || 'ünïcødé ✓', -0.001, false, '{}', NULL, 'null'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL);
\! redis-cli -p $CB_REDIS_PORT --raw get user:1
SELECT id, cachebridge.get('user:' || id) = row_to_json(u)::text AS same_as_row_to_json
FROM wt_users u ORDER BY id;
-- no TTL was asked for
\! redis-cli -p $CB_REDIS_PORT ttl user:1

-- UPDATE keeping the key: the key gets the new row
UPDATE wt_users SET score = score * 2, tags = tags || '{d}'::text[] WHERE id = 1;
SELECT cachebridge.get('user:1') = row_to_json(u)::text AS updated
FROM wt_users u WHERE id = 1;

-- UPDATE changing the key: the old key is deleted, the new one written
UPDATE wt_users SET id = 10 WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT exists user:1
SELECT cachebridge.get('user:10') = row_to_json(u)::text AS moved
FROM wt_users u WHERE id = 10;

-- DELETE deletes the key; other keys stay
DELETE FROM wt_users WHERE id = 10;
\! redis-cli -p $CB_REDIS_PORT exists user:10
\! redis-cli -p $CB_REDIS_PORT --scan | grep -v '#cbv$' | sort
-- the deleted key's version marker stays, for cachebridge.tombstone_ttl
-- seconds, so that no late older write can bring the key back
SHOW cachebridge.tombstone_ttl;
\! redis-cli -p $CB_REDIS_PORT ttl 'user:10#cbv' | awk '{ print ($1 > 290 && $1 <= 300) ? "ttl ok" : "ttl wrong: " $1 }'

--
-- columns=: the JSON object restricted to the listed columns, in list order
--
CREATE TABLE wt_accounts (id int PRIMARY KEY, login text, password_hash text, plan text);
CREATE TRIGGER wt_accounts_cache AFTER INSERT OR UPDATE OR DELETE ON wt_accounts
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('acct:{id}', 'columns=plan, id,login');
INSERT INTO wt_accounts VALUES (7, 'ann', 'secret-hash', 'pro'), (8, 'bob', 'other-hash', NULL);
\! redis-cli -p $CB_REDIS_PORT --raw get acct:7
SELECT id, cachebridge.get('acct:' || id) =
       (SELECT row_to_json(r)::text FROM (SELECT a.plan, a.id, a.login) r) AS same_as_projection
FROM wt_accounts a ORDER BY id;
-- the password hash never reaches Redis
\! redis-cli -p $CB_REDIS_PORT --raw mget acct:7 acct:8 | grep -c hash

--
-- format=hash: one field per column, text output of each value; a NULL
-- column is an absent field; ttl= expires the hash
--
CREATE TABLE wt_sessions (id int PRIMARY KEY, owner text, hits int, note text);
CREATE TRIGGER wt_sessions_cache AFTER INSERT OR UPDATE OR DELETE ON wt_sessions
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('sess:{id}', 'format=hash', 'ttl=600');
INSERT INTO wt_sessions VALUES (1, 'ann', 3, NULL), (2, 'bob', NULL, 'two words');
\! redis-cli -p $CB_REDIS_PORT type sess:1
\! redis-cli -p $CB_REDIS_PORT hgetall sess:1
\! redis-cli -p $CB_REDIS_PORT hgetall sess:2
\! redis-cli -p $CB_REDIS_PORT ttl sess:1 | awk '{ print ($1 > 590 && $1 <= 600) ? "ttl ok" : "ttl wrong: " $1 }'
-- an UPDATE replaces the whole hash: a column that became NULL loses its field
UPDATE wt_sessions SET hits = NULL, note = 'n' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT hgetall sess:1
\! redis-cli -p $CB_REDIS_PORT ttl sess:1 | awk '{ print ($1 > 590 && $1 <= 600) ? "ttl ok" : "ttl wrong: " $1 }'
DELETE FROM wt_sessions WHERE id = 2;
\! redis-cli -p $CB_REDIS_PORT exists sess:2
-- format=hash with columns=: only those fields
CREATE TRIGGER wt_sessions_owner AFTER INSERT OR UPDATE OR DELETE ON wt_sessions
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('sess_owner:{id}', 'format=hash', 'columns=owner');
INSERT INTO wt_sessions VALUES (3, 'cy', 1, 'x');
\! redis-cli -p $CB_REDIS_PORT hgetall sess_owner:3
-- format=json is the default, and may be given
CREATE TRIGGER wt_sessions_json AFTER INSERT ON wt_sessions
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('sess_json:{id}', 'format=json');
INSERT INTO wt_sessions VALUES (4, 'dee', 2, NULL);
\! redis-cli -p $CB_REDIS_PORT --raw get sess_json:4

--
-- ttl= on a JSON value: every write sets the expiry again
--
CREATE TABLE wt_prices (sku text PRIMARY KEY, cents int);
CREATE TRIGGER wt_prices_cache AFTER INSERT OR UPDATE OR DELETE ON wt_prices
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('price:{sku}', 'ttl=300');
INSERT INTO wt_prices VALUES ('A-1', 100);
\! redis-cli -p $CB_REDIS_PORT ttl price:A-1 | awk '{ print ($1 > 290 && $1 <= 300) ? "ttl ok" : "ttl wrong: " $1 }'
\! redis-cli -p $CB_REDIS_PORT expire price:A-1 5 > /dev/null
UPDATE wt_prices SET cents = 120;
\! redis-cli -p $CB_REDIS_PORT ttl price:A-1 | awk '{ print ($1 > 290 && $1 <= 300) ? "ttl ok" : "ttl wrong: " $1 }'
\! redis-cli -p $CB_REDIS_PORT --raw get price:A-1

--
-- A NULL key column: no key at all (never "nick:"), and the row is counted
-- in cachebridge.stats.null_keys
--
CREATE TABLE wt_nicks (id int PRIMARY KEY, nick text);
CREATE TRIGGER wt_nicks_cache AFTER INSERT OR UPDATE OR DELETE ON wt_nicks
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('nick:{nick}');
SELECT null_keys AS null_keys_before FROM cachebridge.stats \gset
INSERT INTO wt_nicks VALUES (1, NULL), (2, 'bee');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'nick:*' | grep -v '#cbv$' | sort
SELECT null_keys - :null_keys_before AS null_keys FROM cachebridge.stats;
-- NULL -> value: the new key is written
UPDATE wt_nicks SET nick = 'ay' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT --raw get nick:ay
-- value -> NULL: the old key is deleted, none is written
UPDATE wt_nicks SET nick = NULL WHERE id = 2;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'nick:*' | grep -v '#cbv$' | sort
-- each of the two UPDATEs had one row version with a NULL key
SELECT null_keys - :null_keys_before AS null_keys FROM cachebridge.stats;

--
-- Key templates: {{ and }} are literal braces, so a Redis Cluster hash tag
-- can be part of the key: '{{user:{id}}}:profile' gives '{user:42}:profile',
-- in the same slot as every other key tagged {user:42}
--
CREATE TABLE wt_profiles (user_id int PRIMARY KEY, bio text);
CREATE TRIGGER wt_profiles_cache AFTER INSERT OR UPDATE OR DELETE ON wt_profiles
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('{{user:{user_id}}}:profile');
INSERT INTO wt_profiles VALUES (42, 'hello');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*profile*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT --raw get '{user:42}:profile'
SELECT cachebridge.key_slot('{user:42}:profile') = cachebridge.key_slot('user:42') AS same_slot;
-- several columns, and literal text between and around them
CREATE TABLE wt_members (org text, member int, role text);
CREATE TRIGGER wt_members_cache AFTER INSERT OR UPDATE OR DELETE ON wt_members
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('org/{org}/m/{member}{{{role}}}');
INSERT INTO wt_members VALUES ('acme', 5, 'admin');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'org/*' | grep -v '#cbv$' | sort

--
-- the cachebridge.key_prefix configured for the table's owner is put before
-- every key the trigger writes or deletes; a session reading the cache
-- uses the same prefix as its own
--
SELECT current_user AS wt_owner \gset
CREATE ROLE cb_wt_app1;
ALTER ROLE cb_wt_app1 SET cachebridge.key_prefix = 'app1:';
ALTER TABLE wt_users OWNER TO cb_wt_app1;
INSERT INTO wt_users VALUES (5, 'prefixed', 0, true, NULL, NULL, NULL);
\! redis-cli -p $CB_REDIS_PORT exists user:5
\! redis-cli -p $CB_REDIS_PORT --raw get app1:user:5
SET cachebridge.key_prefix = 'app1:';
SELECT cachebridge.get('user:5') = row_to_json(u)::text AS read_back_with_prefix
FROM wt_users u WHERE id = 5;
RESET cachebridge.key_prefix;
UPDATE wt_users SET id = 6 WHERE id = 5;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'app1:*' | grep -v '#cbv$' | sort
DELETE FROM wt_users WHERE id = 6;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'app1:*' | grep -cv '#cbv$'
ALTER TABLE wt_users OWNER TO :"wt_owner";

DROP TABLE wt_users, wt_accounts, wt_sessions, wt_prices, wt_nicks, wt_profiles, wt_members;
DROP ROLE cb_wt_app1;
