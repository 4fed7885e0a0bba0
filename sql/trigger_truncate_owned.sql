--
-- TRUNCATE (and any pattern deletion) removes only the cached values
-- under its pattern: a stream that shares the pattern, with its marker,
-- and keys of other types are left alone, and the scan goes on past them
-- to every cached key.
--
\! redis-cli -p $CB_REDIS_PORT flushall > /dev/null

CREATE TABLE own_items (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('own_items', 'own:{id}');
-- a stream published under the same pattern (with its hash marker)
CREATE TABLE own_events (id int);
SELECT cachebridge.attach('own_events', 'own:stream', 'publish');
INSERT INTO own_events VALUES (1), (2);
INSERT INTO own_items SELECT g, 'v' || g FROM generate_series(1, 3000) g;
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT rpush own:list a b > /dev/null
\! redis-cli -p $CB_REDIS_PORT sadd own:set a > /dev/null
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'own:*' | grep -cv '#cbv$'

SELECT cachebridge.stats_reset();
TRUNCATE own_items;
SELECT cachebridge.wait_delivered();
-- every cached row is gone; the stream, its marker, the list and the set stay
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'own:*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT xlen own:stream
\! redis-cli -p $CB_REDIS_PORT type own:stream#cbv
SELECT failed, last_error FROM cachebridge.stats;

-- invalidate_pattern behaves the same
INSERT INTO own_items VALUES (1, 'again');
SELECT cachebridge.invalidate_pattern('own:*');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'own:*' | grep -v '#cbv$' | sort

DROP TABLE own_items, own_events;
\! redis-cli -p $CB_REDIS_PORT del own:stream own:stream#cbv own:list own:set > /dev/null
