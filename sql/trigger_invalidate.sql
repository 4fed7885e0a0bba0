--
-- cachebridge.invalidate(): after commit, INSERT, UPDATE and DELETE delete
-- the keys of every template given, rendered for the old row and for the
-- new one.  It writes nothing; the application refills the cache (here with
-- cachebridge.set) on its next miss.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE inv_orders (id int PRIMARY KEY, user_id int, status text, note text);
CREATE TRIGGER inv_orders_cache AFTER INSERT OR UPDATE OR DELETE ON inv_orders
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate(
        'order:{id}', 'user_orders:{user_id}', 'orders_by_status:{status}');

-- fills the cache as an application would: every key the templates can
-- produce for users 1..3, orders 1..4 and two statuses
CREATE FUNCTION inv_fill() RETURNS void LANGUAGE sql AS $$
    SELECT cachebridge.set(k, 'cached')
    FROM (SELECT 'order:' || i FROM generate_series(1, 4) i
          UNION ALL SELECT 'user_orders:' || i FROM generate_series(1, 3) i
          UNION ALL SELECT 'orders_by_status:' || s FROM unnest(ARRAY['new', 'paid']) s) AS keys(k);
$$;
-- lists the keys that are left
CREATE FUNCTION inv_left() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(k, ' ' ORDER BY k)
    FROM (SELECT 'order:' || i FROM generate_series(1, 4) i
          UNION ALL SELECT 'user_orders:' || i FROM generate_series(1, 3) i
          UNION ALL SELECT 'orders_by_status:' || s FROM unnest(ARRAY['new', 'paid']) s) AS keys(k)
    WHERE cachebridge.get(k) IS NOT NULL;
$$;

SELECT inv_fill();
SELECT inv_left() AS all_cached;

-- INSERT: the new row's key of every template
INSERT INTO inv_orders VALUES (1, 1, 'new', NULL);
SELECT inv_left() AS left_after_insert;
-- nothing is written: no value for the new row appears
\! redis-cli -p $CB_REDIS_PORT exists order:1 user_orders:1 orders_by_status:new

-- UPDATE: the old and the new row's keys (user 1 -> 2, new -> paid)
SELECT inv_fill();
UPDATE inv_orders SET user_id = 2, status = 'paid' WHERE id = 1;
SELECT inv_left() AS left_after_update;

-- UPDATE of a column in no template: the row's keys all the same
SELECT inv_fill();
INSERT INTO inv_orders VALUES (2, 3, 'new', NULL);
SELECT inv_fill();
UPDATE inv_orders SET note = 'gift' WHERE id = 2;
SELECT inv_left() AS left_after_noop_update;

-- DELETE: the old row's keys
SELECT inv_fill();
DELETE FROM inv_orders WHERE id = 1;
SELECT inv_left() AS left_after_delete;

-- one statement changing several rows: the union of their keys
SELECT inv_fill();
INSERT INTO inv_orders VALUES (3, 1, 'new', NULL), (4, 1, 'new', NULL);
SELECT inv_fill();
UPDATE inv_orders SET status = 'paid' WHERE user_id IN (1, 3);
SELECT inv_left() AS left_after_multirow_update;

-- a template whose column is NULL is skipped for that row (and counted);
-- the other templates still apply
SELECT null_keys AS null_keys_before FROM cachebridge.stats \gset
SELECT inv_fill();
UPDATE inv_orders SET status = NULL WHERE id = 4;
SELECT inv_left() AS left_after_null_status;
SELECT null_keys - :null_keys_before AS null_keys FROM cachebridge.stats;

-- keys under the cachebridge.key_prefix of the table's owner (the session
-- filling and reading the cache uses the same one)
SELECT current_user AS inv_owner \gset
CREATE ROLE cb_inv_tenant7;
ALTER ROLE cb_inv_tenant7 SET cachebridge.key_prefix = 'tenant7:';
ALTER TABLE inv_orders OWNER TO cb_inv_tenant7;
SET cachebridge.key_prefix = 'tenant7:';
SELECT inv_fill();
\! redis-cli -p $CB_REDIS_PORT exists tenant7:order:3
DELETE FROM inv_orders WHERE id = 3;
SELECT inv_left() AS left_after_prefixed_delete;
\! redis-cli -p $CB_REDIS_PORT exists tenant7:order:3
RESET cachebridge.key_prefix;
ALTER TABLE inv_orders OWNER TO :"inv_owner";
-- the keys without the prefix were not touched by that DELETE
SELECT inv_left() AS left_without_prefix;

DROP TABLE inv_orders;
DROP ROLE cb_inv_tenant7;
DROP FUNCTION inv_fill(), inv_left();
