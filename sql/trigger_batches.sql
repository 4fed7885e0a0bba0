--
-- Batched versioned writes (issue 13): a transaction's writes and deletions
-- reach Redis as calls of one write script, each holding up to 500 keys and
-- about 256 kB of values, instead of one script call per key.  Every key
-- still gets what a call of its own would give it -- its value or its
-- deletion, its version marker, the TTL of both, a tombstone that expires
-- after cachebridge.tombstone_ttl -- a newer marker still refuses an older
-- write, and a key whose marker Redis holds as another type is rejected
-- alone while the rest of its call is applied.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c).  The script calls Redis ran are read
-- from INFO commandstats, reset before each statement.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE bt (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('bt', 'bt:{id}', 'write_through', 600);
-- rows whose key holds exactly row_to_json of the row
CREATE FUNCTION bt_cached() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM bt WHERE cachebridge.get('bt:' || id) = row_to_json(bt)::text;
$$;

-- 1200 rows inserted in one statement: three calls of 500, 500 and 200 keys
\! redis-cli -p $CB_REDIS_PORT config resetstat
INSERT INTO bt SELECT i, 'v' || i FROM generate_series(1, 1200) i;
\! redis-cli -p $CB_REDIS_PORT info commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*'
SELECT bt_cached() AS cached;
-- each value and its marker expire after the trigger's 600 seconds; the
-- marker is the transaction's version
\! t=$(redis-cli -p $CB_REDIS_PORT ttl bt:700); [ "$t" -gt 590 ] && [ "$t" -le 600 ] && echo value expires
\! t=$(redis-cli -p $CB_REDIS_PORT ttl 'bt:700#cbv'); [ "$t" -gt 590 ] && [ "$t" -le 600 ] && echo marker expires
\! redis-cli -p $CB_REDIS_PORT get 'bt:700#cbv' | grep -c '^V[0-9A-F]\{32\}:[0-9]*$'

-- writes, deletions and key changes of one transaction share calls: 600
-- SETs, 300 DELs, and 10 rows moving to a new key (DEL old, SET new) are
-- 920 effects, in two calls
\! redis-cli -p $CB_REDIS_PORT config resetstat
BEGIN;
UPDATE bt SET v = 'w' || id WHERE id <= 600;
DELETE FROM bt WHERE id > 900;
UPDATE bt SET id = id + 10000 WHERE id BETWEEN 601 AND 610;
COMMIT;
\! redis-cli -p $CB_REDIS_PORT info commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*'
SELECT bt_cached() AS cached, count(*) AS rows FROM bt;
-- the deleted keys are gone, the moved rows' old keys too
SELECT count(*) AS deleted_left FROM generate_series(601, 1200) i
WHERE (i <= 610 OR i > 900) AND cachebridge.get('bt:' || i) IS NOT NULL;
-- a deletion leaves its marker, a tombstone, for tombstone_ttl (300 s)
\! t=$(redis-cli -p $CB_REDIS_PORT ttl 'bt:1000#cbv'); [ "$t" -gt 290 ] && [ "$t" -le 300 ] && echo tombstone expires
\! redis-cli -p $CB_REDIS_PORT exists bt:1000

-- a marker newer than the transaction refuses its key only: bt:5 keeps
-- its value, the other keys of the call are written
\! redis-cli -p $CB_REDIS_PORT set 'bt:5#cbv' 'VFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:1' > /dev/null
UPDATE bt SET v = 'x' WHERE id <= 10;
SELECT id, cachebridge.get('bt:' || id) = row_to_json(bt)::text AS written
FROM bt WHERE id <= 10 ORDER BY id;
\! redis-cli -p $CB_REDIS_PORT get bt:5
\! redis-cli -p $CB_REDIS_PORT del 'bt:5#cbv' > /dev/null

-- a marker of another type (changed behind cachebridge's back) rejects its
-- key alone: the call applies its other 499 keys and answers WRONGTYPE,
-- at the key's place in the call, which a sync session reports as one
-- effect that could not be applied, naming that key (bt:20)
\! redis-cli -p $CB_REDIS_PORT del 'bt:20#cbv' > /dev/null
\! redis-cli -p $CB_REDIS_PORT rpush 'bt:20#cbv' 'not a marker'
SET cachebridge.delivery = sync;
UPDATE bt SET v = 'y' WHERE id <= 500;
RESET cachebridge.delivery;
SELECT count(*) FILTER (WHERE cachebridge.get('bt:' || id) = row_to_json(bt)::text) AS written,
       count(*) FILTER (WHERE cachebridge.get('bt:' || id) <> row_to_json(bt)::text) AS left_alone
FROM bt WHERE id <= 500;
\! redis-cli -p $CB_REDIS_PORT type 'bt:20#cbv'
\! redis-cli -p $CB_REDIS_PORT del 'bt:20#cbv' > /dev/null

-- values of about 256 kB or more go in calls of their own, so that a value
-- Redis refuses (over proto-max-bulk-len) is rejected alone; and a plan of
-- more than 1 MB (these 1.6 MB) is sent as several pipeline steps, all applied
\! redis-cli -p $CB_REDIS_PORT config resetstat
INSERT INTO bt SELECT 20000 + i, repeat(i::text, 200000) FROM generate_series(1, 8) i;
\! redis-cli -p $CB_REDIS_PORT info commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*'
SELECT id, cachebridge.get('bt:' || id) = row_to_json(bt)::text AS written
FROM bt WHERE id > 20000 ORDER BY id;

-- format=hash: each key becomes a hash of the row's columns, in a batch
CREATE TABLE bh (id int PRIMARY KEY, name text, n int);
CREATE TRIGGER bh_cache AFTER INSERT OR UPDATE OR DELETE ON bh
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('bh:{id}', 'format=hash', 'ttl=60');
INSERT INTO bh SELECT i, 'name ' || i, i FROM generate_series(1, 700) i;
\! redis-cli -p $CB_REDIS_PORT hgetall bh:650
\! t=$(redis-cli -p $CB_REDIS_PORT ttl bh:650); [ "$t" -gt 50 ] && [ "$t" -le 60 ] && echo hash expires
UPDATE bh SET name = NULL WHERE id = 650;
\! redis-cli -p $CB_REDIS_PORT hgetall bh:650
DELETE FROM bh WHERE id > 1;
\! redis-cli -p $CB_REDIS_PORT exists bh:650 bh:2
\! redis-cli -p $CB_REDIS_PORT hgetall bh:1

DROP TABLE bt, bh;
