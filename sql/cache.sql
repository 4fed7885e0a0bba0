--
-- Cache-aside functions: get, set, del, invalidate_pattern
--
-- The test harness points cachebridge.redis_url at its own redis-server and
-- exports its port as CB_REDIS_PORT, so Redis can be inspected with redis-cli.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

-- a miss is NULL, a set value comes back
SELECT cachebridge.get('greeting') IS NULL AS miss;
SELECT cachebridge.set('greeting', 'hello');
SELECT cachebridge.get('greeting');

-- set overwrites
SELECT cachebridge.set('greeting', 'hello again');
SELECT cachebridge.get('greeting');

-- binary-safe keys and values: spaces, newlines, quotes, %, non-ASCII
\set weird_key '\'key with spaces\' || chr(10) || \'and "quotes" %s %n\''
\set weird_value '\'value\' || chr(13) || chr(10) || \'\'\'%d ünïcødé ✓ \' || chr(128512)'
SELECT cachebridge.set(:weird_key, :weird_value);
SELECT cachebridge.get(:weird_key) = :weird_value AS roundtrip,
       octet_length(cachebridge.get(:weird_key)) AS bytes;
\! redis-cli -p $CB_REDIS_PORT --no-raw exists "$(printf 'key with spaces\nand "quotes" %%s %%n')"

-- a TTL sets an expiry in seconds; without one the key persists
SELECT cachebridge.set('ephemeral', 'x', 300);
\! redis-cli -p $CB_REDIS_PORT ttl ephemeral | awk '{ print ($1 > 290 && $1 <= 300) ? "ttl ok" : "ttl wrong: " $1 }'
\! redis-cli -p $CB_REDIS_PORT ttl greeting

-- del: variadic, returns how many keys existed
SELECT cachebridge.del('greeting', 'ephemeral', 'never-set');
SELECT cachebridge.del('greeting');
SELECT cachebridge.del(VARIADIC ARRAY[]::text[]);
SELECT cachebridge.get('greeting') IS NULL AS gone;

-- del of many keys goes out in batches, in one round trip
SELECT count(cachebridge.set('bulk:' || i, i::text)) FROM generate_series(1, 2500) i;
SELECT cachebridge.del(VARIADIC array_agg('bulk:' || i)) FROM generate_series(1, 2600) i;

-- invalidate_pattern: SCAN + UNLINK, returns how many were removed
SELECT count(cachebridge.set('user:' || i, i::text)) FROM generate_series(1, 3000) i;
SELECT cachebridge.set('order:1', 'o');
SELECT cachebridge.invalidate_pattern('user:*');
SELECT cachebridge.invalidate_pattern('user:*');
SELECT cachebridge.get('order:1');
SELECT cachebridge.invalidate_pattern('order:?');

-- a huge value (10 MB) round-trips intact
SELECT cachebridge.set('big', repeat('0123456789', 1024 * 1024));
SELECT length(cachebridge.get('big')), md5(cachebridge.get('big')) = md5(repeat('0123456789', 1024 * 1024)) AS same;
SELECT cachebridge.del('big');

--
-- key_prefix is applied to every key, and is a literal in patterns
--
SET cachebridge.key_prefix = 'app[1]*:';
SELECT cachebridge.set('k', 'prefixed');
\! redis-cli -p $CB_REDIS_PORT get 'app[1]*:k'
SELECT cachebridge.get('k');
\! redis-cli -p $CB_REDIS_PORT set 'app11:k' 'not under the prefix'
SELECT cachebridge.invalidate_pattern('*');
\! redis-cli -p $CB_REDIS_PORT get 'app11:k'
SELECT cachebridge.set('k', 'again');
SELECT cachebridge.del('k');
RESET cachebridge.key_prefix;

--
-- bad input
--
SELECT cachebridge.get(NULL);
SELECT cachebridge.get('');
SELECT cachebridge.set(NULL, 'v');
SELECT cachebridge.set('k', NULL);
SELECT cachebridge.set('', 'v');
SELECT cachebridge.set('k', 'v', 0);
SELECT cachebridge.set('k', 'v', -5);
SELECT cachebridge.del(VARIADIC NULL::text[]);
SELECT cachebridge.del('a', NULL, 'b');
SELECT cachebridge.del('a', '');
SELECT cachebridge.invalidate_pattern('');
SELECT cachebridge.invalidate_pattern(NULL);

-- a Redis error reply is an ERROR with Redis' text in the detail
-- (the server's port varies from run to run, so it is masked)
\! redis-cli -p $CB_REDIS_PORT rpush a-list x
DO $$
DECLARE
    detail text;
BEGIN
    PERFORM cachebridge.get('a-list');
EXCEPTION WHEN external_routine_exception THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'caught: % (detail: %)',
        regexp_replace(SQLERRM, ':[0-9]+"', ':<port>"'), detail;
END
$$;
\! redis-cli -p $CB_REDIS_PORT del a-list

-- the connection survives an error reply
SELECT cachebridge.set('after-error', 'fine');
SELECT cachebridge.get('after-error');
SELECT cachebridge.del('after-error');
