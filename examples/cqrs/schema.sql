--
-- examples/cqrs/schema.sql -- a small CQRS example for cachebridge.publish().
--
-- The write side is two ordinary tables, customers and orders.  Every
-- committed change of a row is appended, after commit and in commit order,
-- to ONE Redis stream, events:shop (old=true adds the old row to UPDATE
-- entries).  The read side is customer_summary, one row per customer with
-- figures about its orders, kept by a consumer (consumer.pl) that reads the
-- stream through a consumer group and applies each entry with
-- apply_shop_event().
--
-- Delivery is at least once: an entry can come again if the consumer died
-- between applying it and acknowledging it.  apply_shop_event() therefore
-- records the id of the last entry applied, in the transaction that applies
-- it, and skips any entry not newer than that.  This needs the entries in
-- stream order, so run one consumer per read model.
--
-- Load it into a database where cachebridge runs:
--   psql -d shop -f examples/cqrs/schema.sql
--

CREATE EXTENSION IF NOT EXISTS cachebridge;

-- The write side.
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers ON DELETE CASCADE,
    amount numeric(12,2) NOT NULL,
    status text NOT NULL DEFAULT 'open'
);

-- One stream for both tables, so that their changes stay in commit order
-- with respect to each other.  attach() also publishes TRUNCATE.
SELECT cachebridge.attach('customers', 'events:shop', 'publish', NULL, 'old=true');
SELECT cachebridge.attach('orders', 'events:shop', 'publish', NULL, 'old=true');

-- The read side: what the consumer maintains.
CREATE TABLE customer_summary (
    customer_id int PRIMARY KEY,
    name text NOT NULL,
    order_count int NOT NULL DEFAULT 0,
    total_amount numeric(14,2) NOT NULL DEFAULT 0,
    open_orders int NOT NULL DEFAULT 0
);

-- The id of the last stream entry applied to customer_summary.
CREATE TABLE customer_summary_position (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_entry text NOT NULL DEFAULT '0-0'
);
INSERT INTO customer_summary_position DEFAULT VALUES;

-- A stream entry id "<milliseconds>-<sequence>" as a comparable array.
CREATE FUNCTION stream_entry_id(id text) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT
RETURN ARRAY[split_part(id, '-', 1)::bigint, split_part(id, '-', 2)::bigint];

-- Adds an order's figures (sign 1) to its customer's summary, or takes them
-- off (sign -1).
CREATE FUNCTION customer_summary_add(o jsonb, sign int) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    UPDATE customer_summary
       SET order_count = order_count + sign,
           total_amount = total_amount + sign * (o->>'amount')::numeric,
           open_orders = open_orders + CASE WHEN o->>'status' = 'open' THEN sign ELSE 0 END
     WHERE customer_id = (o->>'customer_id')::int;
END;

-- Applies one stream entry to customer_summary; false if it was applied
-- before (a redelivery) and is skipped.  row_json is the entry's field
-- "row" (for a DELETE, the deleted row), old_json its field "old" (the row
-- before an UPDATE).
CREATE FUNCTION apply_shop_event(entry_id text, op text, tbl text, row_json jsonb, old_json jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    last text;
BEGIN
    -- the row lock also keeps two consumers from interleaving
    SELECT last_entry INTO last FROM customer_summary_position FOR UPDATE;
    IF stream_entry_id(entry_id) <= stream_entry_id(last) THEN
        RETURN false;
    END IF;
    UPDATE customer_summary_position SET last_entry = entry_id;

    IF op = 'UPDATE' AND old_json IS NULL THEN
        RAISE EXCEPTION 'entry % has no old row', entry_id
            USING HINT = 'Publish with the option old=true.';
    END IF;

    IF to_regclass(tbl) = 'customers'::regclass THEN
        CASE op
        WHEN 'INSERT' THEN
            INSERT INTO customer_summary (customer_id, name)
            VALUES ((row_json->>'id')::int, row_json->>'name');
        WHEN 'UPDATE' THEN
            UPDATE customer_summary SET customer_id = (row_json->>'id')::int, name = row_json->>'name'
             WHERE customer_id = (old_json->>'id')::int;
        WHEN 'DELETE' THEN
            DELETE FROM customer_summary WHERE customer_id = (row_json->>'id')::int;
        WHEN 'TRUNCATE' THEN
            DELETE FROM customer_summary;
        END CASE;
    ELSIF to_regclass(tbl) = 'orders'::regclass THEN
        CASE op
        WHEN 'INSERT' THEN
            PERFORM customer_summary_add(row_json, 1);
        WHEN 'UPDATE' THEN
            PERFORM customer_summary_add(old_json, -1);
            PERFORM customer_summary_add(row_json, 1);
        WHEN 'DELETE' THEN
            PERFORM customer_summary_add(row_json, -1);
        WHEN 'TRUNCATE' THEN
            UPDATE customer_summary SET order_count = 0, total_amount = 0, open_orders = 0;
        END CASE;
    END IF;
    RETURN true;
END
$$;
