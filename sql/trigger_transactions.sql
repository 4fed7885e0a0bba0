--
-- Triggers and transactions (Delivery guarantees 1 and 7): effects are
-- queued, sent after COMMIT in one round trip, and never sent for what was
-- rolled back -- a whole transaction, a savepoint, or a PL/pgSQL exception
-- block.  A key changed many times in a transaction gets its last value.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE tx_kv (k text PRIMARY KEY, v text);
CREATE TRIGGER tx_kv_cache AFTER INSERT OR UPDATE OR DELETE ON tx_kv
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('kv:{k}');

-- what Redis holds, as one line: every kv:* key with its value
CREATE FUNCTION tx_redis() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(k || '=' || coalesce(cachebridge.get(k), '(none)'), ' ' ORDER BY k), '(empty)')
    FROM (SELECT 'kv:' || x FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f']) x) keys(k)
    WHERE cachebridge.get(k) IS NOT NULL;
$$;

--
-- Nothing is visible in Redis before COMMIT
--
BEGIN;
INSERT INTO tx_kv VALUES ('a', 'a1');
\! redis-cli -p $CB_REDIS_PORT exists kv:a
UPDATE tx_kv SET v = 'a2';
\! redis-cli -p $CB_REDIS_PORT exists kv:a
COMMIT;
\! redis-cli -p $CB_REDIS_PORT --raw get kv:a
-- nor a DELETE
BEGIN;
DELETE FROM tx_kv WHERE k = 'a';
\! redis-cli -p $CB_REDIS_PORT exists kv:a
COMMIT;
\! redis-cli -p $CB_REDIS_PORT exists kv:a

--
-- ROLLBACK sends nothing
--
INSERT INTO tx_kv VALUES ('a', 'kept');
BEGIN;
INSERT INTO tx_kv VALUES ('b', 'b1');
UPDATE tx_kv SET v = 'lost' WHERE k = 'a';
DELETE FROM tx_kv WHERE k = 'a';
ROLLBACK;
SELECT tx_redis();
-- a transaction that fails sends nothing either
BEGIN;
INSERT INTO tx_kv VALUES ('b', 'b1');
INSERT INTO tx_kv VALUES ('a', 'duplicate');
COMMIT;
SELECT tx_redis();

--
-- Savepoints: ROLLBACK TO drops only that level's effects, RELEASE keeps
-- them
--
BEGIN;
UPDATE tx_kv SET v = 'outer' WHERE k = 'a';
SAVEPOINT s1;
INSERT INTO tx_kv VALUES ('b', 'rolled back');
UPDATE tx_kv SET v = 'rolled back' WHERE k = 'a';
ROLLBACK TO SAVEPOINT s1;
INSERT INTO tx_kv VALUES ('c', 'after rollback to');
SAVEPOINT s2;
INSERT INTO tx_kv VALUES ('d', 'released');
RELEASE SAVEPOINT s2;
\! redis-cli -p $CB_REDIS_PORT exists kv:c kv:d
COMMIT;
SELECT tx_redis();
SELECT tx_redis() = (SELECT string_agg('kv:' || k || '=' || row_to_json(t)::text, ' ' ORDER BY k) FROM tx_kv t)
    AS redis_matches_table;

-- nested savepoints: an inner level released into a level that is then
-- rolled back is gone too; the levels around it stay
TRUNCATE tx_kv;
\! redis-cli -p $CB_REDIS_PORT flushall
BEGIN;
INSERT INTO tx_kv VALUES ('a', 'level 1');
SAVEPOINT s2;
UPDATE tx_kv SET v = 'level 2' WHERE k = 'a';
INSERT INTO tx_kv VALUES ('b', 'level 2');
SAVEPOINT s3;
UPDATE tx_kv SET v = 'level 3' WHERE k = 'b';
INSERT INTO tx_kv VALUES ('c', 'level 3');
SAVEPOINT s4;
DELETE FROM tx_kv WHERE k = 'c';
INSERT INTO tx_kv VALUES ('d', 'level 4');
RELEASE SAVEPOINT s4;
ROLLBACK TO SAVEPOINT s3;
-- now: a = level 2, b = level 2, no c, no d
INSERT INTO tx_kv VALUES ('e', 'level 3 again');
RELEASE SAVEPOINT s3;
SAVEPOINT s5;
UPDATE tx_kv SET v = 'level 3, kept' WHERE k = 'a';
SAVEPOINT s6;
DELETE FROM tx_kv WHERE k = 'b';
ROLLBACK TO SAVEPOINT s6;
RELEASE SAVEPOINT s5;
COMMIT;
SELECT * FROM tx_kv ORDER BY k;
SELECT tx_redis();
SELECT tx_redis() = (SELECT string_agg('kv:' || k || '=' || row_to_json(t)::text, ' ' ORDER BY k) FROM tx_kv t)
    AS redis_matches_table;

-- everything rolled back at a savepoint: the transaction sends nothing
SELECT round_trips AS rt_before FROM cachebridge.stats \gset
BEGIN;
SAVEPOINT s;
INSERT INTO tx_kv VALUES ('f', 'gone');
UPDATE tx_kv SET v = 'gone';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT round_trips - :rt_before AS round_trips FROM cachebridge.stats;
\! redis-cli -p $CB_REDIS_PORT exists kv:f

--
-- A PL/pgSQL exception block is a subtransaction: its effects are dropped
-- with it, those before and after it are sent
--
DO $$
BEGIN
    UPDATE tx_kv SET v = 'before block' WHERE k = 'a';
    BEGIN
        UPDATE tx_kv SET v = 'in failed block' WHERE k = 'a';
        INSERT INTO tx_kv VALUES ('f', 'in failed block');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        RAISE NOTICE 'block rolled back';
    END;
    BEGIN
        UPDATE tx_kv SET v = 'in good block' WHERE k = 'b';
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'not reached';
    END;
    INSERT INTO tx_kv VALUES ('f', 'after block');
END
$$;
SELECT tx_redis();
SELECT tx_redis() = (SELECT string_agg('kv:' || k || '=' || row_to_json(t)::text, ' ' ORDER BY k) FROM tx_kv t)
    AS redis_matches_table;

--
-- The last effect wins for a key changed many times in one transaction,
-- and the whole transaction is one round trip to Redis however many rows
-- and keys it changed (round_trips counts completed pipelines)
--
TRUNCATE tx_kv;
\! redis-cli -p $CB_REDIS_PORT flushall
SELECT round_trips AS rt_before, queued AS queued_before FROM cachebridge.stats \gset
BEGIN;
INSERT INTO tx_kv VALUES ('a', '0');
UPDATE tx_kv SET v = (v::int + 1)::text WHERE k = 'a';
DO $$ BEGIN FOR i IN 1..200 LOOP UPDATE tx_kv SET v = (v::int + 1)::text WHERE k = 'a'; END LOOP; END $$;
INSERT INTO tx_kv VALUES ('b', 'born');
DELETE FROM tx_kv WHERE k = 'b';
INSERT INTO tx_kv VALUES ('c', 'born');
DELETE FROM tx_kv WHERE k = 'c';
INSERT INTO tx_kv VALUES ('c', 'reborn');
INSERT INTO tx_kv SELECT 'bulk' || i, i::text FROM generate_series(1, 3000) i;
UPDATE tx_kv SET v = v || '!' WHERE k LIKE 'bulk%';
DELETE FROM tx_kv WHERE k LIKE 'bulk%' AND v LIKE '%0!';
COMMIT;
-- a = 0 + 1 + 200; b deleted; c reborn; 300 of the 3,000 bulk rows deleted.
-- One round trip, and one effect per key (a, b, c and 3,000 bulk keys)
SELECT round_trips - :rt_before AS round_trips, queued - :queued_before AS effects
FROM cachebridge.stats;
SELECT tx_redis();
SELECT count(*) FILTER (WHERE cachebridge.get('kv:' || k) = row_to_json(t)::text) AS bulk_current,
       count(*) AS bulk_rows
FROM tx_kv t WHERE k LIKE 'bulk%';
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'kv:bulk*' | grep -cv '#cbv$'
-- three committed transactions: three round trips
SELECT round_trips AS rt_before FROM cachebridge.stats \gset
UPDATE tx_kv SET v = 'x' WHERE k LIKE 'bulk1%';
UPDATE tx_kv SET v = 'y' WHERE k LIKE 'bulk2%';
DELETE FROM tx_kv WHERE k LIKE 'bulk3%';
SELECT round_trips - :rt_before AS round_trips FROM cachebridge.stats;
-- a transaction that changed no row with a trigger: none
SELECT round_trips AS rt_before FROM cachebridge.stats \gset
UPDATE tx_kv SET v = 'none' WHERE k = 'no such key';
SELECT round_trips - :rt_before AS round_trips FROM cachebridge.stats;

--
-- PREPARE TRANSACTION (two-phase commit).  In sync delivery the effects
-- would have to be sent by whichever session commits the prepared
-- transaction, maybe after a restart, so a transaction with pending effects
-- cannot be prepared
--
SET cachebridge.delivery = sync;
BEGIN;
UPDATE tx_kv SET v = 'prepared' WHERE k = 'a';
PREPARE TRANSACTION 'cb_tx_sync';
\echo :LAST_ERROR_SQLSTATE
-- the transaction was rolled back: nothing prepared, nothing changed (were
-- it prepared, it is rolled back here, so that it holds no lock)
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'cb_tx_sync' \gset
\if :prepared
ROLLBACK PREPARED 'cb_tx_sync';
\endif
SELECT :prepared AS prepared;
SELECT v FROM tx_kv WHERE k = 'a';
SELECT cachebridge.get('kv:a') = row_to_json(t)::text AS redis_unchanged FROM tx_kv t WHERE k = 'a';
-- without pending effects (none made, or all rolled back) PREPARE works
BEGIN;
SELECT count(*) FROM tx_kv WHERE k = 'a';
PREPARE TRANSACTION 'cb_tx_read_only';
COMMIT PREPARED 'cb_tx_read_only';
BEGIN;
SAVEPOINT s;
UPDATE tx_kv SET v = 'rolled back' WHERE k = 'a';
ROLLBACK TO SAVEPOINT s;
PREPARE TRANSACTION 'cb_tx_effects_rolled_back';
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'cb_tx%';
COMMIT PREPARED 'cb_tx_effects_rolled_back';
-- and the session goes on sending effects after a refused PREPARE
UPDATE tx_kv SET v = 'after refused prepare' WHERE k = 'a';
SELECT cachebridge.get('kv:a');
RESET cachebridge.delivery;

--
-- In durable delivery (the default with shared_preload_libraries) the
-- effects are prepared with the transaction, in cachebridge.outbox: nothing
-- reaches Redis at PREPARE, the worker delivers them after COMMIT PREPARED,
-- and ROLLBACK PREPARED drops them
--
SHOW cachebridge.delivery;
BEGIN;
UPDATE tx_kv SET v = 'prepared, then committed' WHERE k = 'a';
INSERT INTO tx_kv VALUES ('f', 'prepared, then committed');
PREPARE TRANSACTION 'cb_tx_durable_commit';
BEGIN;
UPDATE tx_kv SET v = 'prepared, then rolled back' WHERE k = 'c';
INSERT INTO tx_kv VALUES ('d', 'prepared, then rolled back');
PREPARE TRANSACTION 'cb_tx_durable_rollback';
SELECT cachebridge.wait_delivered(10000) AS delivered;
SELECT tx_redis();
COMMIT PREPARED 'cb_tx_durable_commit';
ROLLBACK PREPARED 'cb_tx_durable_rollback';
SELECT cachebridge.wait_delivered(10000) AS delivered;
SELECT tx_redis();
SELECT tx_redis() = (SELECT string_agg('kv:' || k || '=' || row_to_json(t)::text, ' ' ORDER BY k)
                     FROM tx_kv t WHERE k IN ('a', 'b', 'c', 'd', 'e', 'f')) AS redis_matches_table;

DROP TABLE tx_kv;
DROP FUNCTION tx_redis();
