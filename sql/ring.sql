--
-- Sharding: rings, shard_for(), the planning helpers and their errors.
-- The ketama answers below are cross-checked against libmemcached and
-- uhashring by test/t/040_ring_clients.pl.
--
\set VERBOSITY default

-- A key on an empty database: the default ring does not exist yet.
SELECT cachebridge.shard_for('user:1');

-- Adding a node to an unknown ring creates it (ketama, md5 key hash).
SELECT cachebridge.ring_add_node('default', 'shard-a');
SELECT cachebridge.ring_add_node('default', 'shard-b', 2);
SELECT * FROM cachebridge.ring ORDER BY name;
SELECT ring, node, weight, range_lo, range_hi FROM cachebridge.ring_node ORDER BY ord;

-- shard_for(key) uses ring "default"; shard_for(key, ring) names the ring.
SELECT k, cachebridge.shard_for(k) AS node, cachebridge.shard_for(k, 'default') AS same
FROM unnest(ARRAY['user:1', 'user:2', 'user:3', '', 'clé-€']) k;

-- Weight 2 gets about twice the key space (twemproxy's point formula:
-- 104 and 212 points).
SELECT node, weight, slots, round(share::numeric, 3) AS share
FROM cachebridge.ring_balance();
SELECT shard, count(*) FROM (
    SELECT cachebridge.shard_for('k' || i) AS shard FROM generate_series(1, 10000) i
) s GROUP BY shard ORDER BY shard;

-- Input validation of ring_add_node / ring_remove_node / ring_create.
SELECT cachebridge.ring_add_node('', 'x');
SELECT cachebridge.ring_add_node('default', '');
SELECT cachebridge.ring_add_node('default', NULL);
SELECT cachebridge.ring_add_node('default', 'shard-c', 0);
SELECT cachebridge.ring_add_node('default', 'shard-a');
SELECT cachebridge.ring_remove_node('nosuchring', 'shard-a');
SELECT cachebridge.ring_remove_node('default', 'shard-z');
SELECT cachebridge.ring_create('r', 'rendezvous');
SELECT cachebridge.ring_create('r', 'ketama', 'crc32');
SELECT cachebridge.ring_create('default');
SELECT cachebridge.shard_for('k', 'nosuchring');

-- An empty ring is an error, a ring of one node maps everything to it.
SELECT cachebridge.ring_create('empty');
SELECT cachebridge.shard_for('k', 'empty');
SELECT cachebridge.ring_add_node('solo', 'only-node', 7);
SELECT count(*) AS keys, count(*) FILTER (WHERE cachebridge.shard_for('k' || i, 'solo') = 'only-node') AS on_it
FROM generate_series(1, 1000) i;

-- Properties on 10,000 keys of a ring of three equal nodes.
SELECT cachebridge.ring_add_node('prop', n) FROM unnest(ARRAY['a', 'b', 'c']) n;
CREATE TEMP TABLE prop_keys AS SELECT 'key:' || i AS k FROM generate_series(1, 10000) i;

-- Removing a node moves exactly that node's keys, and nothing else.
SELECT (SELECT count(*) FROM prop_keys WHERE cachebridge.shard_for(k, 'prop') = 'b') AS keys_on_b,
       count(*) AS moved,
       count(*) FILTER (WHERE from_node <> 'b') AS moved_from_others
FROM cachebridge.shard_moves('prop', ARRAY(SELECT k FROM prop_keys), remove_node => 'b');

-- Adding a fourth node moves about 1/4 of the keys, all to the new node.
SELECT count(*) AS moved,
       count(*) FILTER (WHERE to_node <> 'd') AS moved_elsewhere,
       count(*) BETWEEN 1500 AND 3500 AS about_a_quarter
FROM cachebridge.shard_moves('prop', ARRAY(SELECT k FROM prop_keys), add_node => 'd');

-- shard_moves agrees with really adding the node.
CREATE TEMP TABLE prop_before AS SELECT k, cachebridge.shard_for(k, 'prop') AS node FROM prop_keys;
SELECT cachebridge.ring_add_node('prop', 'd');
SELECT count(*) AS changed,
       count(*) = (SELECT count(*) FROM cachebridge.shard_moves('prop', ARRAY(SELECT k FROM prop_keys), remove_node => 'd')) AS as_planned
FROM prop_before b WHERE cachebridge.shard_for(b.k, 'prop') <> b.node;

-- shard_moves validates its arguments like the ring functions do.
SELECT * FROM cachebridge.shard_moves('prop', ARRAY['k']);
SELECT * FROM cachebridge.shard_moves('prop', ARRAY['k'], add_node => 'a');
SELECT * FROM cachebridge.shard_moves('prop', ARRAY['k'], add_node => 'e', add_weight => 0);
SELECT * FROM cachebridge.shard_moves('prop', ARRAY['k'], remove_node => 'zz');

-- Changes are transactional: a rolled-back change is never seen, and the
-- session's own uncommitted change is seen at its next command.
BEGIN;
SELECT cachebridge.ring_remove_node('solo', 'only-node');
SELECT cachebridge.ring_add_node('solo', 'other-node');
SELECT cachebridge.shard_for('k', 'solo');
ROLLBACK;
SELECT cachebridge.shard_for('k', 'solo');

-- Direct DML on the ring tables is supported and picked up at once.
INSERT INTO cachebridge.ring_node (ring, node) VALUES ('solo', 'direct-node');
SELECT count(DISTINCT cachebridge.shard_for('k' || i, 'solo')) AS nodes_used FROM generate_series(1, 1000) i;
-- (twemproxy's formula rounds a node down to 0 points when its share of
-- the total weight is tiny: such a node gets no keys, as in twemproxy)
UPDATE cachebridge.ring_node SET weight = 1000 WHERE ring = 'solo' AND node = 'direct-node';
SELECT node, weight, slots FROM cachebridge.ring_balance('solo');
DELETE FROM cachebridge.ring_node WHERE ring = 'solo' AND node = 'only-node';
SELECT cachebridge.shard_for('k', 'solo');
-- the tables' constraints still apply
INSERT INTO cachebridge.ring_node (ring, node, weight) VALUES ('solo', 'bad', 0);
INSERT INTO cachebridge.ring_node (ring, node) VALUES ('solo', '');
INSERT INTO cachebridge.ring_node (ring, node) VALUES ('nosuchring', 'n');
UPDATE cachebridge.ring SET algorithm = 'rendezvous' WHERE name = 'solo';

-- Key hash fnv1a_64 (twemproxy's "hash: fnv1a_64") for a ketama ring.
SELECT cachebridge.ring_create('fnv', 'ketama', 'fnv1a_64');
SELECT cachebridge.ring_add_node('fnv', n) FROM unnest(ARRAY['a', 'b', 'c']) n;
SELECT k, cachebridge.shard_for(k, 'fnv') AS fnv, cachebridge.shard_for(k, 'prop') AS md5
FROM unnest(ARRAY['user:1', 'user:2', 'héllo']) k;

-- modulo: node number (first four bytes of MD5(key), little-endian) mod N,
-- checked against the same computation in SQL.
SELECT cachebridge.ring_create('mod', 'modulo');
SELECT cachebridge.ring_add_node('mod', n) FROM unnest(ARRAY['m0', 'm1', 'm2']) n;
SELECT count(*) AS keys,
       count(*) FILTER (WHERE cachebridge.shard_for(k, 'mod') = 'm' ||
           (('x' || substr(h, 7, 2) || substr(h, 5, 2) || substr(h, 3, 2) || substr(h, 1, 2))::bit(32)::bigint % 3)) AS agree
FROM (SELECT k, md5(k) AS h FROM prop_keys) s;

-- jump: Lamping & Veach over the nodes in ring order; appending a node
-- moves about 1/(n+1) of the keys, all to it.
SELECT cachebridge.ring_create('jump', 'jump');
SELECT cachebridge.ring_add_node('jump', n) FROM unnest(ARRAY['j0', 'j1', 'j2']) n;
SELECT shard, count(*) FROM (SELECT cachebridge.shard_for(k, 'jump') AS shard FROM prop_keys) s
GROUP BY shard ORDER BY shard;
SELECT count(*) AS moved,
       count(*) FILTER (WHERE to_node <> 'j3') AS moved_elsewhere,
       count(*) BETWEEN 2000 AND 3000 AS about_a_quarter
FROM cachebridge.shard_moves('jump', ARRAY(SELECT k FROM prop_keys), add_node => 'j3');

-- range: integer keys in inclusive ranges; a key outside every range, or
-- not an integer, is an error naming the key.
SELECT cachebridge.ring_add_range('ranges', 'low', 1, 1000);
SELECT cachebridge.ring_add_range('ranges', 'high', 1001, 5000);
SELECT k, cachebridge.shard_for(k, 'ranges') FROM unnest(ARRAY['1', '1000', '1001', '5000', '+42', '0042']) k;
SELECT cachebridge.shard_for('5001', 'ranges');
SELECT cachebridge.shard_for('0', 'ranges');
SELECT cachebridge.shard_for('12abc', 'ranges');
SELECT cachebridge.shard_for(' 12', 'ranges');
SELECT cachebridge.ring_add_range('ranges', 'mid', 900, 1100);
SELECT cachebridge.ring_add_range('ranges', 'bad', 10, 1);
SELECT cachebridge.ring_add_node('ranges', 'hashed');
SELECT cachebridge.ring_add_range('prop', 'x', 1, 2);
SELECT cachebridge.ring_create('r', 'range', 'fnv1a_64');
SELECT node, weight, slots, round(share::numeric, 3) AS share FROM cachebridge.ring_balance('ranges');
SELECT * FROM cachebridge.shard_moves('ranges', ARRAY['5', '2000', 'x'], remove_node => 'low');
SELECT * FROM cachebridge.shard_moves('ranges', ARRAY['5'], add_node => 'x');
-- direct DML that breaks a range ring is reported when the ring is used
UPDATE cachebridge.ring_node SET range_lo = 500 WHERE ring = 'ranges' AND node = 'high';
SELECT cachebridge.shard_for('7', 'ranges');
UPDATE cachebridge.ring_node SET range_lo = NULL, range_hi = NULL WHERE ring = 'ranges' AND node = 'high';
SELECT cachebridge.shard_for('7', 'ranges');

-- Shares add up to 1 on every ring.
SELECT name, round(sum(b.share)::numeric, 6) AS total_share
FROM cachebridge.ring r, LATERAL cachebridge.ring_balance(r.name) b
WHERE r.name <> 'ranges'
GROUP BY name ORDER BY name;

-- With a constant ring, shard_for returns node names it made into text once
-- per call site, and makes them again when the ring changes.  A change
-- between two evaluations of one PL/pgSQL expression in a transaction is
-- seen, even when the rebuilt ring has the same shape as the old one.
SELECT cachebridge.ring_add_node('cached', 'before');
DO $$
DECLARE
    answers text[] := '{}';
BEGIN
    FOR i IN 1 .. 3 LOOP
        answers := answers || cachebridge.shard_for('user:1', 'cached');
        PERFORM cachebridge.ring_remove_node('cached', 'before' || repeat('+', i - 1));
        PERFORM cachebridge.ring_add_node('cached', 'before' || repeat('+', i));
    END LOOP;
    RAISE NOTICE 'answers: %', answers;
END
$$;
-- A change in the middle of a query, which the call site lives through:
-- rows before it keep the old name, rows after it get the new one (with
-- names made only once, the last two rows would show the old name).
CREATE FUNCTION pg_temp.rename_at(i int, at int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF i = at THEN
        PERFORM cachebridge.ring_remove_node('cached', 'before+++');
        PERFORM cachebridge.ring_add_node('cached', 'after');
    END IF;
    RETURN i;
END
$$;
SELECT array_agg(node ORDER BY i) AS nodes
FROM (SELECT i, cachebridge.shard_for('user:' || i, 'cached') AS node, pg_temp.rename_at(i, 2)
      FROM generate_series(1, 4) i) s;
SELECT cachebridge.ring_drop('cached');

-- Dropping a ring drops its nodes.
SELECT cachebridge.ring_drop('jump');
SELECT count(*) FROM cachebridge.ring_node WHERE ring = 'jump';
SELECT cachebridge.ring_drop('jump');

-- Catalog: volatility and parallel safety, privileges, pg_dump of the tables.
SELECT p.oid::regprocedure AS function, p.provolatile, p.proparallel, p.proisstrict,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_run
FROM pg_proc p
WHERE p.pronamespace = 'cachebridge'::regnamespace
  AND (p.proname LIKE 'ring%' OR p.proname IN ('shard_for', 'shard_moves'))
ORDER BY p.oid::regprocedure::text;
SELECT c::regclass AS dumped_config FROM pg_extension e, unnest(e.extconfig) c
WHERE e.extname = 'cachebridge' AND c::regclass::text LIKE 'cachebridge.ring%'
ORDER BY c::regclass::text;

-- Clean up for the next test file.
DELETE FROM cachebridge.ring;
