--
-- Partition DDL (issue 12, Partitioned tables): DETACH PARTITION (also
-- CONCURRENTLY) and DROP TABLE of a partition take its rows out of the
-- partitioned table, ATTACH PARTITION puts them in, and no row trigger
-- fires for any of them.  cachebridge applies them as a DELETE, resp. an
-- INSERT, of every row through the partitioned table's cache triggers, at
-- the statement's commit: no key of a row that is no longer the table's
-- stays behind.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE pd (id int, region text, v text) PARTITION BY LIST (region);
CREATE TABLE pd_eu PARTITION OF pd FOR VALUES IN ('eu');
CREATE TABLE pd_us PARTITION OF pd FOR VALUES IN ('us');
-- a partition whose columns lie at other positions than the parent's
CREATE TABLE pd_asia (v text, dropped int, region text, id int);
ALTER TABLE pd_asia DROP COLUMN dropped;
ALTER TABLE pd ATTACH PARTITION pd_asia FOR VALUES IN ('asia');
SELECT cachebridge.attach('pd', 'pd:{id}');
-- and one level deeper
CREATE TABLE pd_sa PARTITION OF pd FOR VALUES IN ('sa') PARTITION BY RANGE (id);
CREATE TABLE pd_sa_low PARTITION OF pd_sa FOR VALUES FROM (0) TO (100);

-- which of the keys pd:1 .. pd:8 are cached
CREATE FUNCTION pd_cached() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(i::text, ',' ORDER BY i), 'none')
    FROM generate_series(1, 8) i WHERE cachebridge.get('pd:' || i) IS NOT NULL;
$$;

INSERT INTO pd VALUES (1, 'eu', 'a'), (2, 'eu', 'b'), (3, 'us', 'c'),
                      (5, 'asia', 'e'), (6, 'asia', 'f'), (7, 'sa', 'g');
SELECT pd_cached() AS cached;

-- a DETACH rolled back changes nothing (nothing before commit)
BEGIN;
ALTER TABLE pd DETACH PARTITION pd_eu;
ROLLBACK;
SELECT pd_cached() AS after_rolled_back_detach;

-- DETACH: the keys of its rows go at commit, the others stay
BEGIN;
ALTER TABLE pd DETACH PARTITION pd_eu;
SELECT pd_cached() AS before_commit;
COMMIT;
SELECT pd_cached() AS after_detach_eu;
-- the rows are still there, in a table of their own
SELECT count(*) AS rows_kept FROM pd_eu;
-- deleted as a DELETE deletes: versioned, leaving its tombstone marker
\! redis-cli -p $CB_REDIS_PORT exists 'pd:1#cbv'

-- the detached table lost its TRUNCATE copy: a TRUNCATE of it no longer
-- removes the partitioned table's keys
SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relname LIKE 'pd%' AND NOT t.tgisinternal ORDER BY 1, 2;
TRUNCATE pd_eu;
SELECT pd_cached() AS after_truncate_of_detached;
-- nor do its writes touch them
INSERT INTO pd_eu VALUES (4, 'eu', 'd');
SELECT pd_cached() AS after_insert_into_detached;
-- and dropping it leaves nothing to do
DROP TABLE pd_eu;
SELECT pd_cached() AS after_drop_of_detached;

-- a partition with its columns elsewhere: the keys come from its own id
-- column (detached in the same session as pd_us, whose trigger arguments
-- were parsed against another layout)
BEGIN;
ALTER TABLE pd DETACH PARTITION pd_us;
ALTER TABLE pd DETACH PARTITION pd_asia;
COMMIT;
SELECT pd_cached() AS after_detach_us_asia;

-- ATTACH of a table that has rows: write_through writes them, as an
-- INSERT through the partitioned table would
ALTER TABLE pd ATTACH PARTITION pd_asia FOR VALUES IN ('asia');
SELECT pd_cached() AS after_attach_asia;
SELECT cachebridge.get('pd:5') AS attached_value;
UPDATE pd SET v = 'f' WHERE id = 6;
SELECT cachebridge.get('pd:6') AS value_an_update_writes;

-- DETACH ... CONCURRENTLY (two transactions): the same
ALTER TABLE pd DETACH PARTITION pd_asia CONCURRENTLY;
SELECT pd_cached() AS after_detach_concurrently;
SELECT count(*) AS truncate_copies_left FROM pg_trigger
WHERE tgrelid = 'pd_asia'::regclass AND tgname LIKE '%\_partition';
DROP TABLE pd_asia, pd_us;

-- DROP TABLE of a partition still attached, one level down and up
DROP TABLE pd_sa_low;
SELECT pd_cached() AS after_drop_sa_low;
CREATE TABLE pd_sa_low PARTITION OF pd_sa FOR VALUES FROM (0) TO (100);
INSERT INTO pd VALUES (7, 'sa', 'g'), (8, 'sa', 'h');
SELECT pd_cached() AS cached;
DROP TABLE pd_sa;
SELECT pd_cached() AS after_drop_sa;

-- invalidate: a value filled by a reader while the row was not the
-- partitioned table's is deleted by the ATTACH, and a value filled
-- from the partitioned table is deleted by the DETACH
CREATE TABLE pi (id int, region text) PARTITION BY LIST (region);
CREATE TABLE pi_eu PARTITION OF pi FOR VALUES IN ('eu');
SELECT cachebridge.attach('pi', 'pi:{id}', 'invalidate');
CREATE TABLE pi_us (id int, region text);
INSERT INTO pi_us VALUES (10, 'us');
SELECT cachebridge.set('pi:10', 'not found');
ALTER TABLE pi ATTACH PARTITION pi_us FOR VALUES IN ('us');
SELECT cachebridge.get('pi:10') AS negative_fill_after_attach;
SELECT cachebridge.set('pi:10', '{"id":10}');
ALTER TABLE pi DETACH PARTITION pi_us;
SELECT cachebridge.get('pi:10') AS fill_after_detach;

-- a trigger with a WHEN condition deletes the keys of an attached row
-- (its condition is not evaluated there), never writes them
CREATE TRIGGER pi_when AFTER INSERT OR UPDATE OR DELETE ON pi
    FOR EACH ROW WHEN (false) EXECUTE FUNCTION cachebridge.write_through('piw:{id}');
SELECT cachebridge.set('piw:10', 'filled');
ALTER TABLE pi ATTACH PARTITION pi_us FOR VALUES IN ('us');
SELECT cachebridge.get('piw:10') AS when_trigger_after_attach;

-- publish: no stream entries (a DETACH changes no row; see src/partition.c)
SELECT cachebridge.attach('pi', 'pi_events', 'publish');
INSERT INTO pi VALUES (11, 'eu');
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT xlen pi_events
ALTER TABLE pi DETACH PARTITION pi_us;
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT xlen pi_events

-- the owner of a partitioned table detaches without any cachebridge role
-- (the event trigger needs none, as the row triggers need none to fire)
CREATE ROLE pd_owner;
GRANT CREATE ON SCHEMA public TO pd_owner;
CREATE TABLE po (id int, region text) PARTITION BY LIST (region);
CREATE TABLE po_eu PARTITION OF po FOR VALUES IN ('eu');
ALTER TABLE po OWNER TO pd_owner;
ALTER TABLE po_eu OWNER TO pd_owner;
SELECT cachebridge.attach('po', 'po:{id}');
INSERT INTO po VALUES (1, 'eu');
SET ROLE pd_owner;
ALTER TABLE po DETACH PARTITION po_eu;
DROP TABLE po, po_eu;
RESET ROLE;
SELECT cachebridge.get('po:1') AS after_detach_by_plain_owner;
REVOKE CREATE ON SCHEMA public FROM pd_owner;
DROP ROLE pd_owner;

-- a role that may not drop the partition gets the usual error (and its
-- rows are neither read nor locked for it)
CREATE ROLE pd_stranger;
SET ROLE pd_stranger;
DROP TABLE pi_eu;
RESET ROLE;
SELECT count(*) AS pi_eu_rows FROM pi_eu;
DROP ROLE pd_stranger;

-- two partitions with their columns at different positions, detached in
-- one transaction from a table without a TRUNCATE trigger (so nothing else
-- makes the trigger's arguments be parsed again in between): each row's
-- key comes from its own partition's id column
CREATE TABLE pl (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE pl_a PARTITION OF pl FOR VALUES FROM (0) TO (10);
CREATE TABLE pl_b (v text, dropped int, id int);
ALTER TABLE pl_b DROP COLUMN dropped;
ALTER TABLE pl ATTACH PARTITION pl_b FOR VALUES FROM (10) TO (20);
CREATE TRIGGER pl_cache AFTER INSERT OR UPDATE OR DELETE ON pl
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('pl:{id}');
INSERT INTO pl VALUES (1, 'a'), (11, 'b');
BEGIN;
ALTER TABLE pl DETACH PARTITION pl_a;
ALTER TABLE pl DETACH PARTITION pl_b;
COMMIT;
SELECT cachebridge.get('pl:1') AS pl_1, cachebridge.get('pl:11') AS pl_11;
DROP TABLE pl, pl_a, pl_b;

-- attach() of a table whose partitions go two levels down, made before it
-- (1.3 failed: the copy of the TRUNCATE trigger was made twice)
CREATE TABLE p2 (id int, region text) PARTITION BY LIST (region);
CREATE TABLE p2_eu PARTITION OF p2 FOR VALUES IN ('eu') PARTITION BY RANGE (id);
CREATE TABLE p2_eu_low PARTITION OF p2_eu FOR VALUES FROM (0) TO (100);
SELECT cachebridge.attach('p2', 'p2:{id}');
SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relname LIKE 'p2%' AND NOT t.tgisinternal ORDER BY 1, 2;

-- DDL run with session_replication_role = replica fires no event trigger
-- (PostgreSQL's rule): such a DETACH leaves the keys, and a partition made
-- so gets no TRUNCATE copy, as README says; a rename of a template's
-- column is caught at the trigger's next write
CREATE TABLE pr (id int, region text) PARTITION BY LIST (region);
CREATE TABLE pr_eu PARTITION OF pr FOR VALUES IN ('eu');
SELECT cachebridge.attach('pr', 'pr:{id}');
INSERT INTO pr VALUES (1, 'eu');
SET session_replication_role = replica;
ALTER TABLE pr DETACH PARTITION pr_eu;
CREATE TABLE pr_us PARTITION OF pr FOR VALUES IN ('us');
ALTER TABLE pr RENAME COLUMN id TO ident;
RESET session_replication_role;
SELECT cachebridge.get('pr:1') IS NOT NULL AS left_by_a_replica_detach;
SELECT count(*) AS truncate_copies FROM pg_trigger
WHERE tgrelid = 'pr_us'::regclass AND tgname LIKE '%\_partition';
INSERT INTO pr VALUES (2, 'us');
SELECT cachebridge.del('pr:1');

DROP TABLE pd, pi, pi_us, p2, pr, pr_eu;
DROP FUNCTION pd_cached();
