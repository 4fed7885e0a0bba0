--
-- Effects made at commit time (issue 12, Bounded): a deferred trigger
-- runs before cachebridge plans the transaction's effects, so what it
-- changes is delivered.  A change made after that point (by another
-- extension's pre-commit callback) would never be sent, and is refused
-- with an ERROR that aborts the transaction.  A trigger on
-- cachebridge.outbox, whose row cachebridge writes at PRE_COMMIT, was a
-- way to make one; since 1.4 the row goes straight into the heap and its
-- indexes, without the executor, so such a trigger does not fire.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall
SHOW cachebridge.delivery;

CREATE TABLE pc_item (id int PRIMARY KEY, v text);
SELECT cachebridge.attach('pc_item', 'pc:{id}');
CREATE TABLE pc_src (id int PRIMARY KEY);

-- a deferred constraint trigger copies each new pc_src row into pc_item
CREATE FUNCTION pc_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pc_item VALUES (NEW.id, 'deferred');
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER pc_copy AFTER INSERT ON pc_src
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pc_copy();

BEGIN;
INSERT INTO pc_src VALUES (1);
SELECT count(*) AS copied_before_commit FROM pc_item;
COMMIT;
SELECT * FROM pc_item;
SELECT cachebridge.get('pc:1');

-- a trigger meant to change a row while cachebridge writes its outbox
-- row, past PRE_COMMIT: it does not fire, the transaction commits
CREATE FUNCTION pc_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.pc_item SET v = 'late' WHERE id = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER pc_late AFTER INSERT ON cachebridge.outbox
    FOR EACH ROW EXECUTE FUNCTION pc_late();

INSERT INTO pc_item VALUES (2, 'two');
-- pc:1 stays 'deferred' in the table and in Redis: nothing is stale
SELECT * FROM pc_item ORDER BY id;
SELECT cachebridge.get('pc:1'), cachebridge.get('pc:2');

DROP TRIGGER pc_late ON cachebridge.outbox;
INSERT INTO pc_item VALUES (3, 'three');
SELECT cachebridge.get('pc:3');

DROP TABLE pc_src, pc_item;
DROP FUNCTION pc_copy(), pc_late();
