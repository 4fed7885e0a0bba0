--
-- cachebridge.publish(): after commit, one Redis stream entry per changed
-- row, with the fields op, table, row, old (old=true), lsn, xid and
-- committed_at.  In durable mode (this server's default) the worker sends
-- them, so the test waits with cachebridge.wait_delivered() before looking.
--
-- test/stream_dump.sh prints a stream with lsn, xid and committed_at
-- replaced by stable names (T1, X1, <time>), and an ERROR line if the
-- entries of a transaction are not contiguous or not in commit order.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE pub_orders (
    id int PRIMARY KEY,
    customer int,
    amount numeric(10,2),
    note text
);
CREATE TRIGGER pub_orders_events AFTER INSERT OR UPDATE OR DELETE ON pub_orders
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:orders', 'old=true');

-- one entry per row, contiguous per transaction, transactions in commit order
BEGIN;
INSERT INTO pub_orders VALUES (1, 10, 5.00, 'first'), (2, 20, 7.50, E'quote " and \\ and\nnewline');
-- nothing before commit
\! redis-cli -p $CB_REDIS_PORT exists ev:orders
COMMIT;
UPDATE pub_orders SET amount = 6.00 WHERE id = 1;
SELECT cachebridge.wait_delivered();
-- row is exactly row_to_json of the new row, old of the old row
\set row `redis-cli -p $CB_REDIS_PORT --raw xrevrange ev:orders + - count 1 | sed -n '/^row$/{n;p;q}'`
\set old `redis-cli -p $CB_REDIS_PORT --raw xrevrange ev:orders + - count 1 | sed -n '/^old$/{n;p;q}'`
SELECT :'row' = row_to_json(o)::text AS row_is_row_to_json,
       :'old' = row_to_json(ROW(1, 10, 5.00, 'first')::pub_orders)::text AS old_is_row_to_json
FROM pub_orders o WHERE id = 1;
DELETE FROM pub_orders WHERE id = 2;
SELECT cachebridge.wait_delivered();
\! sh test/stream_dump.sh ev:orders

-- xid is the transaction's, lsn is a WAL position at its commit
BEGIN;
INSERT INTO pub_orders VALUES (3, 10, 1.00, NULL);
SELECT pg_current_xact_id() AS xid, pg_current_wal_insert_lsn() AS before_commit \gset
COMMIT;
SELECT cachebridge.wait_delivered();
\set ev_xid `redis-cli -p $CB_REDIS_PORT --raw xrevrange ev:orders + - count 1 | sed -n '/^xid$/{n;p;q}'`
\set ev_lsn `redis-cli -p $CB_REDIS_PORT --raw xrevrange ev:orders + - count 1 | sed -n '/^lsn$/{n;p;q}'`
SELECT :'ev_xid' = :'xid' AS same_xid,
       :'ev_lsn'::pg_lsn >= :'before_commit'::pg_lsn AS lsn_at_commit,
       :'ev_lsn'::pg_lsn < pg_current_wal_lsn() AS lsn_before_now;

-- a row changed three times gives three entries, in order
\! redis-cli -p $CB_REDIS_PORT del ev:orders > /dev/null
BEGIN;
UPDATE pub_orders SET amount = 2.00 WHERE id = 3;
UPDATE pub_orders SET amount = 3.00 WHERE id = 3;
DELETE FROM pub_orders WHERE id = 3;
COMMIT;
SELECT cachebridge.wait_delivered();
\! sh test/stream_dump.sh ev:orders | grep -E '^(--|op|row|ERROR)'

-- a rolled-back transaction, savepoint or exception block publishes nothing
\! redis-cli -p $CB_REDIS_PORT del ev:orders > /dev/null
BEGIN;
INSERT INTO pub_orders VALUES (100, 1, 1, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO pub_orders VALUES (4, 1, 1, 'kept');
SAVEPOINT s;
INSERT INTO pub_orders VALUES (5, 1, 1, 'savepoint rolled back');
UPDATE pub_orders SET note = 'changed in rolled back savepoint' WHERE id = 4;
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
INSERT INTO pub_orders VALUES (6, 1, 1, 'savepoint released');
RELEASE SAVEPOINT s2;
DO $$
BEGIN
    INSERT INTO pub_orders VALUES (7, 1, 1, 'exception block');
    RAISE EXCEPTION 'undo the block';
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;
COMMIT;
SELECT cachebridge.wait_delivered();
\! sh test/stream_dump.sh ev:orders | grep -E '^(--|op|row|ERROR)'

-- the stream name takes columns; a NULL one means no entry, counted
SELECT cachebridge.stats_reset();
CREATE TABLE pub_tenant (id int PRIMARY KEY, tenant text);
CREATE TRIGGER pub_tenant_events AFTER INSERT OR UPDATE OR DELETE ON pub_tenant
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:tenant:{tenant}');
INSERT INTO pub_tenant VALUES (1, 'a'), (2, 'b'), (3, 'a'), (4, NULL);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'ev:tenant:*' | sort
\! redis-cli -p $CB_REDIS_PORT xlen ev:tenant:a
SELECT null_keys FROM cachebridge.stats;

-- one transaction publishing to 10,000 streams, an entry each (past 32
-- streams one database-wide lock is taken instead of a lock per stream;
-- test/t/060 shows the lock table would not hold them on a small server)
CREATE TABLE pub_many (id int PRIMARY KEY);
CREATE TRIGGER pub_many_events AFTER INSERT ON pub_many
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:many:{id}');
INSERT INTO pub_many SELECT g FROM generate_series(1, 10000) g;
SELECT cachebridge.wait_delivered(60000);
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'ev:many:*' | grep -vc '#cbv$'
\! redis-cli -p $CB_REDIS_PORT --raw xrange ev:many:9999 - + | sed -n '/^row$/{n;p}'

-- TRUNCATE is one entry with op TRUNCATE (attach makes both triggers)
CREATE TABLE pub_attached (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('pub_attached', 'ev:attached', 'publish');
INSERT INTO pub_attached VALUES (1, 'x');
TRUNCATE pub_attached;
SELECT cachebridge.wait_delivered();
\! sh test/stream_dump.sh ev:attached
-- with a column in the stream name, attach cannot publish TRUNCATE, and says so
CREATE TABLE pub_attached2 (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('pub_attached2', 'ev:{v}', 'publish');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'pub_attached2'::regclass ORDER BY 1;

-- a partitioned table's entries name the table the trigger was made on
CREATE TABLE pub_parted (id int, region text) PARTITION BY LIST (region);
CREATE TABLE pub_parted_eu PARTITION OF pub_parted FOR VALUES IN ('eu');
CREATE TABLE pub_parted_us PARTITION OF pub_parted FOR VALUES IN ('us');
CREATE TRIGGER pub_parted_events AFTER INSERT OR UPDATE OR DELETE ON pub_parted
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:parted');
INSERT INTO pub_parted VALUES (1, 'eu');
-- moving partition: DELETE then INSERT
UPDATE pub_parted SET region = 'us' WHERE id = 1;
SELECT cachebridge.wait_delivered();
\! sh test/stream_dump.sh ev:parted | grep -E '^(--|op|table|row|ERROR)'

-- table names are quoted as identifiers
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Odd ""Table""" (id int);
CREATE TRIGGER odd AFTER INSERT ON "Odd Schema"."Odd ""Table"""
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:odd');
INSERT INTO "Odd Schema"."Odd ""Table""" VALUES (1);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw xrange ev:odd - + | sed -n '/^table$/{n;p}'

-- maxlen=N caps the stream, approximately (Redis trims whole nodes)
CREATE TABLE pub_capped (id int);
CREATE TRIGGER pub_capped_events AFTER INSERT ON pub_capped
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:capped', 'maxlen=10');
INSERT INTO pub_capped SELECT g FROM generate_series(1, 1000) g;
SELECT cachebridge.wait_delivered();
\set capped_len `redis-cli -p $CB_REDIS_PORT xlen ev:capped`
SELECT :capped_len BETWEEN 10 AND 250 AS capped;
-- the newest entry is the last row
\! redis-cli -p $CB_REDIS_PORT --raw xrevrange ev:capped + - count 1 | sed -n '/^row$/{n;p}'

-- the key prefix of the table's owner applies to stream names
SELECT current_user AS pub_owner \gset
CREATE ROLE cb_pub_app1;
ALTER ROLE cb_pub_app1 SET cachebridge.key_prefix = 'app1:';
ALTER TABLE pub_capped OWNER TO cb_pub_app1;
INSERT INTO pub_capped VALUES (0);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT xlen app1:ev:capped
ALTER TABLE pub_capped OWNER TO :"pub_owner";
DROP ROLE cb_pub_app1;

-- a transaction that also writes through a cache: its keys are in Redis
-- when COMMIT returns (the backend applies them; the worker sends the
-- entries and, again, harmlessly, the keys)
CREATE TABLE pub_cached (id int PRIMARY KEY, v text);
CREATE TRIGGER pub_cached_cache AFTER INSERT OR UPDATE OR DELETE ON pub_cached
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('pc:{id}');
SELECT cachebridge.stats_reset();
BEGIN;
INSERT INTO pub_cached VALUES (1, 'cached');
INSERT INTO pub_orders VALUES (60, 1, 1, 'with a cache write');
COMMIT;
\! redis-cli -p $CB_REDIS_PORT get pc:1
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw xrevrange ev:orders + - count 1 | sed -n '/^row$/{n;p}'
SELECT queued, delivered, failed FROM cachebridge.stats;

-- change events cannot degrade: past cachebridge.max_pending_memory the
-- transaction fails, and publishes nothing
SET cachebridge.max_pending_memory = '1MB';
\! redis-cli -p $CB_REDIS_PORT del ev:capped > /dev/null
INSERT INTO pub_capped SELECT g FROM generate_series(1, 100000) g;
RESET cachebridge.max_pending_memory;
INSERT INTO pub_capped VALUES (-1);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT xlen ev:capped

-- PREPARE TRANSACTION is refused for a transaction that publishes
BEGIN;
INSERT INTO pub_orders VALUES (50, 1, 1, 'prepared');
PREPARE TRANSACTION 'pub_prepared';
SELECT count(*) FROM pub_orders WHERE id = 50;

-- bad input, at CREATE TRIGGER
CREATE TABLE pub_bad (id int, v text);
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:{nosuch}');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:{id');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'maxlen=0');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'maxlen=ten');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'maxlen=99999999999');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'old=yes');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'colour=red');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'ttl=5');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b', 'ev:c');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish();
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.publish('ev:b');
CREATE TRIGGER b AFTER TRUNCATE ON pub_bad
    FOR EACH STATEMENT EXECUTE FUNCTION cachebridge.publish('ev:{v}');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('k:{id}', 'maxlen=5');
CREATE TRIGGER b AFTER INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('k:{id}', 'notify=');
SELECT cachebridge.attach('pub_bad', 'ev:b', 'publish', 60);
-- a BEFORE trigger is refused at CREATE TRIGGER, and one made where event
-- triggers do not fire fails at its first firing
CREATE TRIGGER b BEFORE INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b');
SET session_replication_role = replica;
CREATE TRIGGER b BEFORE INSERT ON pub_bad
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:b');
RESET session_replication_role;
INSERT INTO pub_bad VALUES (1, 'x');
DROP TRIGGER b ON pub_bad;
-- not callable as a function, nor by PUBLIC
SELECT cachebridge.publish();
SELECT has_function_privilege('public', 'cachebridge.publish()', 'EXECUTE') AS public_may_publish;

-- a stream key that holds a string: the entries are rejected for good, counted,
-- and their outbox row is kept as dead with Redis' error (not retried)
\! redis-cli -p $CB_REDIS_PORT set ev:wrongtype x > /dev/null
CREATE TABLE pub_wrongtype (id int);
CREATE TRIGGER w AFTER INSERT ON pub_wrongtype
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:wrongtype');
SELECT cachebridge.stats_reset();
INSERT INTO pub_wrongtype VALUES (1), (2);
SELECT cachebridge.wait_delivered();
SELECT failed > 0 AS failed, last_error LIKE '%WRONGTYPE%' AS wrongtype FROM cachebridge.stats;
SELECT dead, last_error LIKE '%WRONGTYPE%ev:wrongtype%' AS reason FROM cachebridge.outbox;
DELETE FROM cachebridge.outbox WHERE dead;

DROP TABLE pub_orders, pub_cached, pub_many, pub_tenant, pub_attached, pub_attached2, pub_parted,
    pub_capped, pub_bad, pub_wrongtype;
DROP SCHEMA "Odd Schema" CASCADE;
