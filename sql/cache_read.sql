--
-- Cache-aside reads of many keys (mget) and of hashes (get_hash), and the
-- privileges they need: cachebridge_reader, as for get(); never PUBLIC.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall
SELECT cachebridge.stats_reset();

-- mget: one row per key asked for, in order, NULL on a miss; duplicates too
SELECT cachebridge.set('r:1', 'one'), cachebridge.set('r:2', 'two');
SELECT * FROM cachebridge.mget(ARRAY['r:2', 'r:missing', 'r:1', 'r:2']);
SELECT count(*) FROM cachebridge.mget(ARRAY[]::text[]);
SELECT cachebridge_hits.* FROM (SELECT cache_hits, cache_misses FROM cachebridge.stats) AS cachebridge_hits;

-- one round trip for 3000 keys
SELECT count(cachebridge.set('r:bulk:' || i, i::text)) FROM generate_series(1, 3000) i;
SELECT round_trips AS before FROM cachebridge.stats \gset
SELECT count(*) AS rows, count(value) AS hits,
       bool_and(value = substr(key, 8)) AS values_match
FROM cachebridge.mget(ARRAY(SELECT 'r:bulk:' || i FROM generate_series(1, 3000) i));
SELECT round_trips - :before AS round_trips FROM cachebridge.stats;

-- every key carries the session's prefix, as with get
SET cachebridge.key_prefix = 'tenant1:';
SELECT cachebridge.set('r:1', 'tenant one');
SELECT * FROM cachebridge.mget(ARRAY['r:1', 'r:2']);
RESET cachebridge.key_prefix;
\! redis-cli -p $CB_REDIS_PORT get tenant1:r:1

-- refused like get's: a NULL element, an empty key, a marker's name
SELECT * FROM cachebridge.mget(ARRAY['r:1', NULL]);
SELECT * FROM cachebridge.mget(ARRAY['']);
SELECT * FROM cachebridge.mget(ARRAY['r:1#cbv']);
SELECT * FROM cachebridge.mget(NULL);

-- get_hash reads what write_through stores with format=hash
CREATE TABLE hashed (id int PRIMARY KEY, name text, note text, n int);
CREATE TRIGGER hashed_cache AFTER INSERT OR UPDATE OR DELETE ON hashed
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('h:{id}', 'format=hash');
INSERT INTO hashed VALUES (1, 'Ada "the first"', NULL, 36),
                          (2, E'line\nbreak', 'ünïcødé', NULL);
SELECT cachebridge.get_hash('h:1');
SELECT cachebridge.get_hash('h:2') ->> 'name' = E'line\nbreak' AS newline_kept,
       cachebridge.get_hash('h:2') ->> 'note' AS note;
SELECT cachebridge.get_hash('h:missing') IS NULL AS miss;
DELETE FROM hashed WHERE id = 1;
SELECT cachebridge.get_hash('h:1') IS NULL AS deleted;

-- the wrong reader for a key says which one to use (Redis' WRONGTYPE,
-- with a hint; the server's port is masked)
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN external_routine_exception THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN regexp_replace(SQLERRM, ':[0-9]+"', ':<port>"') || E'\nHINT: ' || hint;
END
$$;
SELECT pg_temp.try($$SELECT cachebridge.get('h:2')$$);
SELECT pg_temp.try($$SELECT * FROM cachebridge.mget(ARRAY['r:1', 'h:2'])$$);
SELECT pg_temp.try($$SELECT cachebridge.get_hash('r:1')$$);
-- and the connection is still usable
SELECT value FROM cachebridge.mget(ARRAY['r:1']);
-- a hash field that is not text of the database encoding
\! redis-cli -p $CB_REDIS_PORT hset h:bin f "$(printf 'a\377b')" > /dev/null
SELECT cachebridge.get_hash('h:bin');

-- privileges: the reader role, not PUBLIC
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('cachebridge_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS monitor,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
WHERE p.pronamespace = 'cachebridge'::regnamespace
  AND p.proname IN ('mget', 'get_hash')
ORDER BY 1;
CREATE ROLE cache_read_nobody;
SET ROLE cache_read_nobody;
SELECT * FROM cachebridge.mget(ARRAY['r:1']);
SELECT cachebridge.get_hash('h:2');
RESET ROLE;
DROP ROLE cache_read_nobody;
DROP TABLE hashed;
