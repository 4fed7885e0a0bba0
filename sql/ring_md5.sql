--
-- Ketama rings hash with cachebridge's own MD5 (src/md5.c).  Check it
-- against SQL md5() on both of its uses: the continuum points, MD5 of
-- "<node>-<i>", and the key hash, MD5 of the key, for keys of every length
-- from 0 to 300 bytes -- across the 55/56-byte boundary where the padding
-- needs a second block, and around the block sizes 64 and 128 -- and a few
-- longer ones.
--
\set VERBOSITY default

-- Ten nodes of equal weight: 160 points each (40 MD5 digests of 4 words).
SELECT count(cachebridge.ring_add_node('md5check', 'cache-' || i || '.example.net'))
FROM generate_series(1, 10) i;
SELECT count(*) AS nodes, min(slots), max(slots) FROM cachebridge.ring_balance('md5check');

-- A little-endian 32-bit word of an MD5 digest in hex, as ketama reads it.
CREATE FUNCTION pg_temp.md5_word(digest text, word int) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT ('x' || substr(digest, 8 * word + 7, 2) || substr(digest, 8 * word + 5, 2) ||
                   substr(digest, 8 * word + 3, 2) || substr(digest, 8 * word + 1, 2))::bit(32)::bigint
$$;

-- The continuum built from SQL md5(), four points per digest.
CREATE TEMP TABLE ref_point AS
SELECT pg_temp.md5_word(md5(n.node || '-' || h), w) AS value, n.ord, n.node
FROM cachebridge.ring_node n
JOIN cachebridge.ring_balance('md5check') b USING (node),
     generate_series(0, b.slots / 4 - 1) h, generate_series(0, 3) w
WHERE n.ring = 'md5check';
CREATE INDEX ON ref_point (value, ord);

-- The reference lookup: the first point >= the key's hash (the node first
-- in ring order among equal points), wrapping to the first point.
CREATE FUNCTION pg_temp.ketama_ref(key text) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    hash bigint := pg_temp.md5_word(md5(key), 0);
    found text;
BEGIN
    SELECT node INTO found FROM ref_point WHERE value >= hash ORDER BY value, ord LIMIT 1;
    IF found IS NULL THEN
        SELECT node INTO found FROM ref_point ORDER BY value, ord LIMIT 1;
    END IF;
    RETURN found;
END
$$;

-- Ten keys of every length 0..300, fifty of each length at the block
-- boundaries, and keys of 1,000 and 10,000 bytes; some with multibyte
-- characters (md5() and shard_for() both hash the UTF-8 bytes).
CREATE TEMP TABLE md5_key AS
SELECT left(repeat(md5(len || ':' || i), 1 + len / 32), len) AS k
FROM generate_series(0, 300) len, generate_series(1, 10) i
UNION ALL
SELECT left(repeat(md5(len || '/' || i), 1 + len / 32), len)
FROM unnest(ARRAY[55, 56, 63, 64, 65, 119, 120, 127, 128]) len, generate_series(1, 50) i
UNION ALL
SELECT left(repeat(md5(len || '.' || i), 1 + len / 32), len)
FROM unnest(ARRAY[1000, 10000]) len, generate_series(1, 10) i
UNION ALL
SELECT repeat('é', i) || '-€' FROM generate_series(1, 60) i;

SELECT count(*) AS keys,
       count(DISTINCT octet_length(k)) AS lengths,
       count(*) FILTER (WHERE cachebridge.shard_for(k, 'md5check') = pg_temp.ketama_ref(k)) AS agree,
       count(DISTINCT cachebridge.shard_for(k, 'md5check')) AS nodes_used
FROM md5_key;

-- The same keys, ring named by a non-constant argument.
SELECT count(*) FILTER (WHERE cachebridge.shard_for(k, r) = pg_temp.ketama_ref(k)) AS agree
FROM md5_key, (VALUES ('md5check')) v(r);

-- Keys whose hash is past the last point of the continuum wrap to the
-- first point.  On this ring the first and the last point belong to
-- different nodes, so a wrong wrap would show; 7 of these 20,000 keys wrap.
SELECT count(cachebridge.ring_add_node('wrap3', 'shard-' || i)) FROM generate_series(1, 3) i;
CREATE TEMP TABLE wrap_point AS
SELECT pg_temp.md5_word(md5(n.node || '-' || h), w) AS value, n.node
FROM cachebridge.ring_node n, generate_series(0, 39) h, generate_series(0, 3) w
WHERE n.ring = 'wrap3';
SELECT (SELECT node FROM wrap_point ORDER BY value LIMIT 1) AS first_point_node,
       (SELECT node FROM wrap_point ORDER BY value DESC LIMIT 1) AS last_point_node;
SELECT count(*) AS wrapping_keys, array_agg(DISTINCT cachebridge.shard_for(k, 'wrap3')) AS nodes
FROM (SELECT 'wrap:' || i AS k FROM generate_series(1, 20000) i) w
WHERE pg_temp.md5_word(md5(k), 0) > (SELECT max(value) FROM wrap_point);

-- Clean up for the next test file.
DELETE FROM cachebridge.ring;
