--
-- cachebridge.attach(tbl, key, mode, ttl, options...) creates, in one call,
-- the row trigger "cachebridge_<mode>" and the statement trigger
-- "cachebridge_<mode>_truncate"; cachebridge.detach(tbl) drops both (see
-- attachments for several on one table).  TRUNCATE
-- removes, after commit, every key the template can produce (SCAN +
-- UNLINK of its pattern), and leaves the keys of other templates alone.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE att_items (id int PRIMARY KEY, name text);
SELECT cachebridge.attach('att_items', 'item:{id}', 'write_through', 3600);
SELECT tgname, pg_get_triggerdef(oid) AS definition
FROM pg_trigger WHERE tgrelid = 'att_items'::regclass ORDER BY tgname;

-- the row trigger works like a hand-made one
INSERT INTO att_items SELECT i, 'item ' || i FROM generate_series(1, 1500) i;
SELECT count(*) FILTER (WHERE cachebridge.get('item:' || id) = row_to_json(i)::text) AS cached
FROM att_items i;
\! redis-cli -p $CB_REDIS_PORT ttl item:1 | awk '{ print ($1 > 3590 && $1 <= 3600) ? "ttl ok" : "ttl wrong: " $1 }'

-- keys TRUNCATE must not touch (other templates, other prefixes of the
-- same text), set by another application
\! redis-cli -p $CB_REDIS_PORT mset itemized:1 other items:1 other other:item:1 other
-- and a key of the template that no row has: it goes too
\! redis-cli -p $CB_REDIS_PORT set item:999999 orphan
\! redis-cli -p $CB_REDIS_PORT --scan | grep -cv '#cbv$'

-- a rolled-back TRUNCATE removes nothing
BEGIN;
TRUNCATE att_items;
ROLLBACK;
\! redis-cli -p $CB_REDIS_PORT --scan | grep -cv '#cbv$'

-- nothing is removed before COMMIT ...
BEGIN;
TRUNCATE att_items;
\! redis-cli -p $CB_REDIS_PORT --scan | grep -cv '#cbv$'
COMMIT;
-- ... and every key of the template after it, in batches (1,501 keys)
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'item:*' | grep -cv '#cbv$'
\! redis-cli -p $CB_REDIS_PORT --scan | grep -v '#cbv$' | sort
-- the keys stay removed: once everything committed is delivered (what the
-- worker delivers again included), no older write has brought one back
SELECT cachebridge.wait_delivered(10000) AS delivered;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'item:*' | grep -cv '#cbv$'
-- nor does a change the worker delivers after the TRUNCATE, though it
-- committed before it: here a prepared transaction, committed just before
-- the TRUNCATE (its effects wait in cachebridge.outbox for the worker,
-- whose last look at the outbox was before COMMIT PREPARED)
INSERT INTO att_items VALUES (1, 'before prepare');
BEGIN;
UPDATE att_items SET name = 'prepared' WHERE id = 1;
PREPARE TRANSACTION 'cb_att_prepared';
SELECT pg_sleep(0.3);
COMMIT PREPARED 'cb_att_prepared';
TRUNCATE att_items;
SELECT cachebridge.wait_delivered(10000) AS delivered;
SELECT count(*) AS rows FROM att_items;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'item:*' | grep -v '#cbv$' | sort

-- rows inserted after TRUNCATE in the same transaction are cached; those
-- inserted before it are not
BEGIN;
INSERT INTO att_items VALUES (1, 'before truncate');
TRUNCATE att_items;
INSERT INTO att_items VALUES (2, 'after truncate');
COMMIT;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'item:*' | grep -v '#cbv$' | sort
SELECT cachebridge.get('item:2') = row_to_json(i)::text AS after_truncate_cached
FROM att_items i WHERE id = 2;

-- TRUNCATE with a key prefix (the table owner's): only the keys under the
-- prefix go (glob characters in the prefix are literal), not those of
-- other prefixes or of none
SELECT current_user AS att_owner \gset
CREATE ROLE cb_att_shop;
ALTER ROLE cb_att_shop SET cachebridge.key_prefix = 'shop[1]*';
ALTER TABLE att_items OWNER TO cb_att_shop;
INSERT INTO att_items VALUES (3, 'prefixed');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'shop*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT set 'shop11item:3' 'not under the prefix' > /dev/null
TRUNCATE att_items;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'shop*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT exists item:2
ALTER TABLE att_items OWNER TO :"att_owner";
DROP ROLE cb_att_shop;

--
-- detach drops both triggers; writes are then not cached any more
--
SELECT cachebridge.detach('att_items');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'att_items'::regclass;
INSERT INTO att_items VALUES (4, 'not cached');
\! redis-cli -p $CB_REDIS_PORT exists item:4

--
-- invalidate mode: rows and TRUNCATE delete keys
--
SELECT cachebridge.attach('att_items', 'item:{id}', 'invalidate');
SELECT pg_get_triggerdef(oid) AS definition
FROM pg_trigger WHERE tgrelid = 'att_items'::regclass AND tgname LIKE 'cachebridge_%' AND tgname NOT LIKE '%_truncate';
\! redis-cli -p $CB_REDIS_PORT set item:4 stale
UPDATE att_items SET name = 'changed' WHERE id = 4;
\! redis-cli -p $CB_REDIS_PORT exists item:4
\! redis-cli -p $CB_REDIS_PORT mset item:4 stale item:5 stale
TRUNCATE att_items;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'item:*' | grep -cv '#cbv$'
SELECT cachebridge.detach('att_items');
-- options after the TTL are passed on to the trigger
SELECT cachebridge.attach('att_items', 'item:{id}', 'write_through', 60, 'format=hash', 'columns=name');
SELECT pg_get_triggerdef(oid) AS definition
FROM pg_trigger WHERE tgrelid = 'att_items'::regclass AND tgname LIKE 'cachebridge_%' AND tgname NOT LIKE '%_truncate';
INSERT INTO att_items VALUES (6, 'six');
\! redis-cli -p $CB_REDIS_PORT hgetall item:6
SELECT cachebridge.detach('att_items');

--
-- Errors
--
-- unknown mode
SELECT cachebridge.attach('att_items', 'item:{id}', 'write_back');
SELECT cachebridge.attach('att_items', 'item:{id}', NULL::text);
-- a TTL in invalidate mode, or not positive
SELECT cachebridge.attach('att_items', 'item:{id}', 'invalidate', 60);
SELECT cachebridge.attach('att_items', 'item:{id}', 'write_through', 0);
SELECT cachebridge.attach('att_items', 'item:{id}', 'write_through', -1);
-- no template
SELECT cachebridge.attach('att_items', NULL);
-- the template and options are checked like CREATE TRIGGER's
SELECT cachebridge.attach('att_items', 'item:{nope}');
SELECT cachebridge.attach('att_items', 'item:{id}', 'write_through', NULL, 'format=xml');
-- none of these left a trigger behind
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'att_items'::regclass;
-- twice on the same table
SELECT cachebridge.attach('att_items', 'item:{id}');
SELECT cachebridge.attach('att_items', 'item2:{id}');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'att_items'::regclass;
-- detach on a table without the triggers
SELECT cachebridge.detach('att_items');
SELECT cachebridge.detach('att_items');
-- not a table
SELECT cachebridge.attach('no_such_table', 'item:{id}');

DROP TABLE att_items;
