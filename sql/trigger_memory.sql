--
-- Bounded memory (Delivery guarantee 6): a transaction's pending effects
-- stay under cachebridge.max_pending_memory.  A trigger whose next effect
-- would pass it degrades, for the rest of the transaction, to invalidating
-- the pattern of its templates after commit: logged with a WARNING naming
-- the trigger and the pattern, counted in cachebridge.stats.degraded, and
-- no key is left stale.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE mem_items (id int PRIMARY KEY, v text);
INSERT INTO mem_items SELECT i, 'v' || i FROM generate_series(1, 5000) i;
CREATE TRIGGER mem_items_cache AFTER INSERT OR UPDATE OR DELETE ON mem_items
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('mem:{id}');

-- fills the cache with values that become stale once the rows change, plus
-- keys of another template that must survive
CREATE FUNCTION mem_fill() RETURNS void LANGUAGE sql AS $$
    SELECT count(cachebridge.set('mem:' || i, 'stale')) FROM generate_series(1, 5000) i;
    SELECT count(cachebridge.set('memo:' || i, 'other template')) FROM generate_series(1, 10) i;
$$;

SET cachebridge.max_pending_memory = '64kB';
SELECT mem_fill();
SELECT degraded AS degraded_before FROM cachebridge.stats \gset

-- one transaction changing 5,000 rows in two statements: one WARNING
BEGIN;
UPDATE mem_items SET v = v || '+' WHERE id <= 2500;
UPDATE mem_items SET v = v || '+' WHERE id > 2500;
COMMIT;
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
-- no key of the template is left, so none is stale; the other template's
-- keys are untouched
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'mem:*' | grep -cv '#cbv$'
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'memo:*' | grep -cv '#cbv$'

-- the next transaction is not degraded: a small change is written through
UPDATE mem_items SET v = 'small' WHERE id = 1;
SELECT cachebridge.get('mem:1') = row_to_json(m)::text AS written_through
FROM mem_items m WHERE id = 1;
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;

-- a single statement (no explicit transaction) degrades the same way; so
-- do DELETE and INSERT
SELECT mem_fill();
DELETE FROM mem_items WHERE id % 2 = 0;
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'mem:*' | grep -cv '#cbv$'
SELECT mem_fill();
INSERT INTO mem_items SELECT i, 'again' FROM generate_series(2, 5000, 2) i;
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'mem:*' | grep -cv '#cbv$'
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'memo:*' | grep -cv '#cbv$'

-- a degradation inside a rolled-back savepoint is undone with it (though
-- it was logged and counted): the transaction's other effects are sent one
-- by one, and the keys of the rows it did not change stay
SELECT mem_fill();
BEGIN;
UPDATE mem_items SET v = 'outer' WHERE id <= 3;
SAVEPOINT s;
UPDATE mem_items SET v = 'rolled back';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
SELECT id, CASE cachebridge.get('mem:' || id)
           WHEN row_to_json(m)::text THEN 'written through'
           ELSE cachebridge.get('mem:' || id) END AS cached
FROM mem_items m WHERE id <= 5 ORDER BY id;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'mem:*' | grep -cv '#cbv$'

-- a degradation after one that was rolled back with its savepoint is
-- logged and counted again: it is the one the committed work went through
SELECT mem_fill();
BEGIN;
SAVEPOINT s;
UPDATE mem_items SET v = 'rolled back';
ROLLBACK TO SAVEPOINT s;
UPDATE mem_items SET v = 'degraded again';
COMMIT;
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'mem:*' | grep -cv '#cbv$'

-- invalidate degrades to the patterns of all its templates
CREATE TRIGGER mem_items_inv AFTER INSERT OR UPDATE OR DELETE ON mem_items
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('mem_a:{id}', 'mem_b:{v}:{id}');
DROP TRIGGER mem_items_cache ON mem_items;
SELECT count(cachebridge.set('mem_a:' || i, 'stale')), count(cachebridge.set('mem_b:x:' || i, 'stale'))
FROM generate_series(1, 3000) i;
UPDATE mem_items SET v = 'x';
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'mem_*' | grep -cv '#cbv$'
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'memo:*' | grep -cv '#cbv$'

-- the default limit holds the 5,000-row transaction: no degradation, every
-- key written
RESET cachebridge.max_pending_memory;
DROP TRIGGER mem_items_inv ON mem_items;
CREATE TRIGGER mem_items_cache AFTER INSERT OR UPDATE OR DELETE ON mem_items
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('mem:{id}');
UPDATE mem_items SET v = 'full';
SELECT degraded - :degraded_before AS degraded FROM cachebridge.stats;
SELECT count(*) FILTER (WHERE cachebridge.get('mem:' || id) = row_to_json(m)::text) AS written_through
FROM mem_items m;

DROP TABLE mem_items;
DROP FUNCTION mem_fill();
