--
-- The triggers on every way rows arrive and every kind of table: COPY,
-- multi-row INSERT, INSERT ... ON CONFLICT, partitioned tables (a row
-- moving partition is a DELETE and an INSERT), TOASTed values (compressed
-- in line, out of line compressed or not), and tables with dropped
-- columns.  In each case the cached value is checked against
-- row_to_json of the row as stored.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

--
-- COPY FROM STDIN and multi-row INSERT
--
CREATE TABLE tt_people (id int PRIMARY KEY, name text, city text);
CREATE TRIGGER tt_people_cache AFTER INSERT OR UPDATE OR DELETE ON tt_people
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('person:{id}');
COPY tt_people FROM STDIN;
1	Ann	Oslo
2	Bob	\N
3	Cy "quoted"	Bergen
\.
\! redis-cli -p $CB_REDIS_PORT --raw get person:2
COPY tt_people FROM STDIN WITH (FORMAT csv);
4,Dee,"Trondheim, NO"
5,Eve,
\.
INSERT INTO tt_people VALUES (6, 'Fay', 'Rome'), (7, 'Gus', 'Nice'), (8, 'Hal', NULL);
SELECT count(*) AS rows,
       count(*) FILTER (WHERE cachebridge.get('person:' || id) = row_to_json(p)::text) AS cached
FROM tt_people p;
-- INSERT ... ON CONFLICT DO UPDATE fires the UPDATE trigger for the
-- existing row, the INSERT trigger for the new one
INSERT INTO tt_people VALUES (1, 'Ann', 'Paris'), (9, 'Ivy', 'Lyon')
    ON CONFLICT (id) DO UPDATE SET city = excluded.city;
SELECT id, cachebridge.get('person:' || id) = row_to_json(p)::text AS cached
FROM tt_people p WHERE id IN (1, 9) ORDER BY id;
-- a COPY that fails half-way sends nothing
\! redis-cli -p $CB_REDIS_PORT flushall > /dev/null
COPY tt_people FROM STDIN;
10	Jo	Bonn
1	duplicate	key
\.
\! redis-cli -p $CB_REDIS_PORT dbsize

--
-- Partitioned tables: the trigger is made on the parent and cloned to
-- every partition, including one attached later whose columns are in
-- another physical order
--
CREATE TABLE tt_orders (region text NOT NULL, id int NOT NULL, total numeric,
                        PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE tt_orders_eu PARTITION OF tt_orders FOR VALUES IN ('eu');
CREATE TABLE tt_orders_us PARTITION OF tt_orders FOR VALUES IN ('us');
CREATE TRIGGER tt_orders_cache AFTER INSERT OR UPDATE OR DELETE ON tt_orders
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('order:{region}:{id}');
CREATE TABLE tt_orders_asia (total numeric, id int NOT NULL, region text NOT NULL);
ALTER TABLE tt_orders ATTACH PARTITION tt_orders_asia FOR VALUES IN ('asia');
SELECT tgrelid::regclass AS on_table FROM pg_trigger WHERE tgname = 'tt_orders_cache' ORDER BY 1;
INSERT INTO tt_orders VALUES ('eu', 1, 10), ('us', 2, 20), ('asia', 3, 30);
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'order:*' | grep -v '#cbv$' | sort
-- the same JSON object as the row read through the parent (compared as
-- jsonb: in a partition whose columns are in another physical order,
-- row_to_json(NEW) follows the partition's order)
SELECT region, id, cachebridge.get('order:' || region || ':' || id)::jsonb = to_jsonb(o) AS cached
FROM tt_orders o ORDER BY id;
-- byte for byte where the partition's columns are in the parent's order
SELECT region, id, cachebridge.get('order:' || region || ':' || id) = row_to_json(o)::text AS same_text
FROM tt_orders o WHERE region <> 'asia' ORDER BY id;
-- an UPDATE of the partition key moves the row to another partition: the
-- old key is deleted, the new one written
UPDATE tt_orders SET region = 'us', total = 11 WHERE region = 'eu' AND id = 1;
UPDATE tt_orders SET region = 'eu' WHERE region = 'asia' AND id = 3;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'order:*' | grep -v '#cbv$' | sort
SELECT tableoid::regclass AS partition, region, id,
       cachebridge.get('order:' || region || ':' || id) = row_to_json(o)::text AS cached
FROM tt_orders o ORDER BY id;
-- a key without the partition key: the move deletes and writes the same
-- key, in that order, so the key ends with the new row
CREATE TABLE tt_tickets (id int NOT NULL, state text NOT NULL, title text,
                         PRIMARY KEY (id, state)) PARTITION BY LIST (state);
CREATE TABLE tt_tickets_open PARTITION OF tt_tickets FOR VALUES IN ('open');
CREATE TABLE tt_tickets_closed PARTITION OF tt_tickets FOR VALUES IN ('closed');
CREATE TRIGGER tt_tickets_cache AFTER INSERT OR UPDATE OR DELETE ON tt_tickets
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('ticket:{id}');
INSERT INTO tt_tickets VALUES (1, 'open', 'broken');
UPDATE tt_tickets SET state = 'closed', title = 'fixed' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT --raw get ticket:1
-- and the same in one transaction changing the row back and forth
BEGIN;
UPDATE tt_tickets SET state = 'open', title = 'reopened' WHERE id = 1;
UPDATE tt_tickets SET state = 'closed', title = 'closed again' WHERE id = 1;
COMMIT;
\! redis-cli -p $CB_REDIS_PORT --raw get ticket:1
DELETE FROM tt_tickets;
\! redis-cli -p $CB_REDIS_PORT exists ticket:1

--
-- TOASTed values: 100 kB texts, compressed in line, compressed out of line
-- (in the TOAST table), and out of line uncompressed (STORAGE EXTERNAL)
--
CREATE TABLE tt_docs (id int PRIMARY KEY, inline_compressed text,
                      toasted_compressed text, toasted_plain text);
ALTER TABLE tt_docs ALTER COLUMN toasted_plain SET STORAGE EXTERNAL;
CREATE TRIGGER tt_docs_cache AFTER INSERT OR UPDATE OR DELETE ON tt_docs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('doc:{id}');
CREATE TRIGGER tt_docs_hash AFTER INSERT OR UPDATE OR DELETE ON tt_docs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('doc_hash:{id}', 'format=hash');
CREATE TRIGGER tt_docs_part AFTER INSERT OR UPDATE OR DELETE ON tt_docs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('doc_part:{id}', 'columns=toasted_plain,id');
INSERT INTO tt_docs
SELECT 1, repeat('compress me ', 8534),
       (SELECT string_agg(md5(i::text) || md5(i::text), '') FROM generate_series(1, 1600) i),
       (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 3200) i);
-- how each value is stored: compression method, and bytes on disk
SELECT pg_column_compression(inline_compressed) AS c1, pg_column_size(inline_compressed) < 2000 AS c1_inline,
       pg_column_compression(toasted_compressed) AS c2, pg_column_size(toasted_compressed) > 2000 AS c2_toasted,
       pg_column_compression(toasted_plain) AS c3, pg_column_size(toasted_plain) AS c3_bytes,
       pg_relation_size(reltoastrelid) > 0 AS toast_table_used
FROM tt_docs, pg_class WHERE pg_class.oid = 'tt_docs'::regclass;
SELECT octet_length(cachebridge.get('doc:1')) AS json_bytes,
       md5(cachebridge.get('doc:1')) = md5(row_to_json(d)::text) AS json_same,
       md5(cachebridge.get('doc_part:1')) =
           md5((SELECT row_to_json(r)::text FROM (SELECT d.toasted_plain, d.id) r)) AS columns_same
FROM tt_docs d;
-- (redis-cli --raw ends the value with a newline, which is not hashed)
\set hashed_md5 `redis-cli -p $CB_REDIS_PORT --raw hget doc_hash:1 toasted_compressed | tr -d '\n' | md5sum | cut -c1-32`
SELECT md5(toasted_compressed) = :'hashed_md5' AS hash_field_same FROM tt_docs;
\! redis-cli -p $CB_REDIS_PORT hstrlen doc_hash:1 inline_compressed
-- an UPDATE of another column keeps the unchanged TOASTed values (not
-- fetched again by the executor) and caches them all the same
UPDATE tt_docs SET inline_compressed = 'short now';
SELECT md5(cachebridge.get('doc:1')) = md5(row_to_json(d)::text) AS json_same FROM tt_docs d;
-- a key change of a TOASTed row
UPDATE tt_docs SET id = 2;
SELECT cachebridge.get('doc:1') IS NULL AS old_gone,
       md5(cachebridge.get('doc:2')) = md5(row_to_json(d)::text) AS json_same FROM tt_docs d;

--
-- Dropped columns: never in the value, before or after the trigger exists
--
CREATE TABLE tt_legacy (id int PRIMARY KEY, old_flag bool, name text, old_note text, born int);
ALTER TABLE tt_legacy DROP COLUMN old_flag;
CREATE TRIGGER tt_legacy_cache AFTER INSERT OR UPDATE OR DELETE ON tt_legacy
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('legacy:{id}');
CREATE TRIGGER tt_legacy_hash AFTER INSERT OR UPDATE OR DELETE ON tt_legacy
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('legacy_hash:{id}', 'format=hash');
INSERT INTO tt_legacy VALUES (1, 'one', 'note', 2001);
\! redis-cli -p $CB_REDIS_PORT --raw get legacy:1
ALTER TABLE tt_legacy DROP COLUMN old_note;
INSERT INTO tt_legacy VALUES (2, 'two', 2002);
UPDATE tt_legacy SET name = 'uno' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT --raw get legacy:1
\! redis-cli -p $CB_REDIS_PORT hgetall legacy_hash:2
-- a column added later is in the value of every row written after it (a
-- row not written since keeps its cached value, without the column)
ALTER TABLE tt_legacy ADD COLUMN email text;
UPDATE tt_legacy SET email = 'two@x' WHERE id = 2;
SELECT id, cachebridge.get('legacy:' || id) = row_to_json(l)::text AS cached
FROM tt_legacy l ORDER BY id;
\! redis-cli -p $CB_REDIS_PORT --raw get legacy:2
UPDATE tt_legacy SET name = 'one' WHERE id = 1;
\! redis-cli -p $CB_REDIS_PORT --raw get legacy:1

DROP TABLE tt_people, tt_orders, tt_tickets, tt_docs, tt_legacy;
