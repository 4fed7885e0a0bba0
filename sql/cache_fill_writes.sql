--
-- cachebridge.set() refuses to fill the cache in a transaction that has
-- changed data: what such a transaction reads may be its own uncommitted
-- change, and a value cached from it would survive a ROLLBACK -- a role
-- could plant rows that never existed in the cache every reader trusts.
-- A transaction has changed data once it has a transaction id (it wrote,
-- or locked rows, in itself or in a subtransaction).
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE fw_users (id int PRIMARY KEY, name text);
INSERT INTO fw_users VALUES (1, 'Ada');
CREATE TRIGGER fw_users_cache AFTER INSERT OR UPDATE OR DELETE ON fw_users
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('fw:{id}');
\! redis-cli -p $CB_REDIS_PORT del fw:1 > /dev/null

-- the attack: change a row, cache what the transaction sees, roll back
BEGIN;
UPDATE fw_users SET name = 'planted' WHERE id = 1;
SELECT cachebridge.set('fw:' || id, row_to_json(u)::text) FROM fw_users u WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT cachebridge.get('fw:1') IS NULL AS nothing_planted;

-- a row that is inserted and never committed cannot be planted either
BEGIN;
INSERT INTO fw_users VALUES (2, 'ghost');
SELECT cachebridge.set('fw:2', '{"id":2,"name":"ghost"}');
ROLLBACK;
SELECT cachebridge.get('fw:2') IS NULL AS no_ghost;

-- nor from a savepoint, released or rolled back (the transaction id stays)
BEGIN;
SAVEPOINT s;
UPDATE fw_users SET name = 'planted' WHERE id = 1;
RELEASE SAVEPOINT s;
SELECT cachebridge.set('fw:1', 'planted');
ROLLBACK;
BEGIN;
SAVEPOINT s;
DELETE FROM fw_users WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
SELECT cachebridge.set('fw:1', 'after rollback to');
ROLLBACK;

-- nor from a PL/pgSQL block that wrote, with the fill in the same function
CREATE FUNCTION fw_write_and_fill() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fw_users SET name = 'planted' WHERE id = 1;
    RETURN cachebridge.set('fw:1', 'planted');
END
$$;
SELECT fw_write_and_fill();
SELECT cachebridge.get('fw:1') IS NULL AS still_nothing;

-- rows locked with FOR UPDATE give the transaction an id too
BEGIN;
SELECT name FROM fw_users WHERE id = 1 FOR UPDATE;
SELECT cachebridge.set('fw:1', 'locked');
ROLLBACK;

-- filling in a transaction that only reads is fine
BEGIN;
SELECT cachebridge.set('fw:' || id, row_to_json(u)::text) FROM fw_users u WHERE id = 1;
SELECT cachebridge.set('fw:plain', 'x');
COMMIT;
SELECT cachebridge.get('fw:1');
BEGIN READ ONLY;
SELECT cachebridge.set('fw:1', row_to_json(u)::text) FROM fw_users u WHERE id = 1;
COMMIT;
-- and a fill made before the transaction writes stays valid: it was read
-- from committed data
BEGIN;
SELECT cachebridge.set('fw:plain', 'before the write');
UPDATE fw_users SET name = 'Ada Lovelace' WHERE id = 1;
COMMIT;
SELECT cachebridge.get('fw:plain'), cachebridge.get('fw:1');

DROP FUNCTION fw_write_and_fill();
DROP TABLE fw_users;
