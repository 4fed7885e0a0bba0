--
-- key_slot(): Redis Cluster hash slots, CRC16/XMODEM mod 16384 with hash
-- tags.  test/t/041_key_slot_redis.pl checks the same cases against
-- CLUSTER KEYSLOT of a real redis-server.
--

-- The CRC16/XMODEM check value: CRC of "123456789" is 0x31C3 = 12739.
SELECT cachebridge.key_slot('123456789');

-- Plain keys hash whole.
SELECT k, cachebridge.key_slot(k) FROM unnest(ARRAY['foo', 'bar', 'user:1000']) k;

-- Hash tags: only the part between the first '{' and the next '}' counts,
-- so these keys share a slot ...
SELECT k, cachebridge.key_slot(k)
FROM unnest(ARRAY['{user1000}.following', '{user1000}.followers', 'user1000']) k;

-- ... and the edge cases: an empty tag hashes the whole key; only the first
-- '{' and the first '}' after it count; braces without a tag hash whole.
SELECT k, cachebridge.key_slot(k),
       cachebridge.key_slot(k) = cachebridge.key_slot(tag) AS same_as
FROM (VALUES ('{}', '{}'),
             ('foo{}{bar}', 'foo{}{bar}'),
             ('{{bar}}', '{bar'),
             ('foo{bar}{zap}', 'bar'),
             ('foo{{}}', '{'),
             ('}{', '}{'),
             ('a{b', 'a{b'),
             ('x{}y{z}', 'x{}y{z}')) v(k, tag);

-- The empty key, non-ASCII keys (hashed as their UTF-8 bytes), long keys.
SELECT cachebridge.key_slot('') AS empty,
       cachebridge.key_slot('café') AS cafe,
       cachebridge.key_slot('{ключ}:€') = cachebridge.key_slot('ключ') AS cyrillic_tag,
       cachebridge.key_slot(repeat('k', 100000)) AS long;

-- Every slot is in 0..16383, and keys spread over the slots.
SELECT min(s), max(s), count(DISTINCT s) > 16000 AS spread
FROM (SELECT cachebridge.key_slot('key:' || i) AS s FROM generate_series(1, 200000) i) x;

-- NULL in, NULL out; the function is immutable and parallel safe.
SELECT cachebridge.key_slot(NULL);
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'cachebridge.key_slot(text)'::regprocedure;
