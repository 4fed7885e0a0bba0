--
-- Partitioned tables (issue 12, Bounded): PostgreSQL does not clone
-- TRUNCATE triggers to partitions, so a TRUNCATE of one partition used to
-- leave its rows' keys.  attach() on a partitioned table now covers every
-- partition, made before or after, at any depth: each gets a copy of the
-- TRUNCATE trigger, which invalidates the parent's template.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE pt (id int, region text) PARTITION BY LIST (region);
CREATE TABLE pt_eu PARTITION OF pt FOR VALUES IN ('eu');
SELECT cachebridge.attach('pt', 'pt:{id}');
-- made after attach(), attached after attach(), and one level deeper
CREATE TABLE pt_us PARTITION OF pt FOR VALUES IN ('us');
CREATE TABLE pt_asia (id int, region text);
ALTER TABLE pt ATTACH PARTITION pt_asia FOR VALUES IN ('asia');
CREATE TABLE pt_sa PARTITION OF pt FOR VALUES IN ('sa') PARTITION BY RANGE (id);
CREATE TABLE pt_sa_low PARTITION OF pt_sa FOR VALUES FROM (0) TO (100);

SELECT c.relname, t.tgname
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relname LIKE 'pt%' AND NOT t.tgisinternal AND t.tgname LIKE '%truncate%'
ORDER BY 1, 2;

CREATE FUNCTION pt_keys() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM unnest(ARRAY[1, 2, 3, 4]) i
    WHERE cachebridge.get('pt:' || i) IS NOT NULL;
$$;

INSERT INTO pt VALUES (1, 'eu'), (2, 'us'), (3, 'asia'), (4, 'sa');
SELECT pt_keys() AS cached;
TRUNCATE pt_eu;
SELECT pt_keys() AS left_after_truncate_eu;
TRUNCATE pt;
INSERT INTO pt VALUES (1, 'eu'), (2, 'us'), (3, 'asia'), (4, 'sa');
SELECT pt_keys() AS cached;
TRUNCATE pt_us;
SELECT pt_keys() AS left_after_truncate_us;
TRUNCATE pt;
INSERT INTO pt VALUES (1, 'eu'), (2, 'us'), (3, 'asia'), (4, 'sa');
SELECT pt_keys() AS cached;
TRUNCATE pt_asia;
SELECT pt_keys() AS left_after_truncate_asia;
TRUNCATE pt;
INSERT INTO pt VALUES (1, 'eu'), (2, 'us'), (3, 'asia'), (4, 'sa');
SELECT pt_keys() AS cached;
TRUNCATE pt_sa_low;
SELECT pt_keys() AS left_after_truncate_sa_low;

-- a table that is no partition gets no copy
CREATE TABLE pt_plain (id int);
SELECT count(*) AS plain_copies FROM pg_trigger
WHERE tgrelid = 'pt_plain'::regclass AND tgname = 'cachebridge_write_through_truncate_partition';

DROP TABLE pt, pt_plain;
DROP FUNCTION pt_keys();
