--
-- cachebridge.refresh(): a backfill of rows that existed before the trigger.
-- Each batch of heap blocks is its own transaction; progress is kept in
-- cachebridge.refresh_state (cachebridge.refresh_progress shows it), so a
-- refresh that stopped resumes.  test/specs/refresh_vs_write.spec shows a
-- concurrent trigger write winning over the refresh's copy.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall > /dev/null

-- rows first, trigger later: nothing is cached yet
CREATE TABLE rf_users (id int PRIMARY KEY, name text, pad text);
INSERT INTO rf_users SELECT i, 'user ' || i, repeat('x', 200) FROM generate_series(1, 3000) i;
SELECT cachebridge.attach('rf_users', 'rfu:{id}');
\! redis-cli -p $CB_REDIS_PORT dbsize

-- a refresh in batches of 10 blocks (~30 rows each) caches every row
CALL cachebridge.refresh('rf_users', batch_blocks => 10);
SELECT cachebridge.wait_delivered();
SELECT count(*) AS rows,
       count(*) FILTER (WHERE cachebridge.get('rfu:' || id) = row_to_json(u)::text) AS cached_as_row
FROM rf_users u;
SELECT "table", state, rows_done, blocks_done = total_blocks AS all_blocks,
       rows_per_second > 0 AS rate_shown
FROM cachebridge.refresh_progress;

-- resume: a refresh that stopped after its first batch goes on from there
SELECT cachebridge.refresh_begin('rf_users', false, false) AS from_block;   -- finished: starts over
SELECT cachebridge.refresh_blocks('rf_users', 0, 5, false) AS next_block;
SELECT rows_done > 0 AS some_done, blocks_done FROM cachebridge.refresh_progress;
SELECT cachebridge.refresh_begin('rf_users', false, false) AS resumes_at;
SELECT cachebridge.refresh_begin('rf_users', true, false) AS restart_at;
CALL cachebridge.refresh('rf_users');
SELECT state, rows_done FROM cachebridge.refresh_progress;

-- invalidate: stale entries of existing rows are deleted
CREATE TABLE rf_orders (id int PRIMARY KEY, total int);
INSERT INTO rf_orders SELECT i, i FROM generate_series(1, 200) i;
SELECT count(*) FROM (SELECT cachebridge.set('rfo:' || i, 'stale') FROM generate_series(1, 200) i) s;
SELECT cachebridge.attach('rf_orders', 'rfo:{id}', 'invalidate');
CALL cachebridge.refresh('rf_orders');
SELECT cachebridge.wait_delivered();
SELECT count(*) AS still_cached FROM generate_series(1, 200) i
WHERE cachebridge.get('rfo:' || i) IS NOT NULL;

-- publish: only with events => true, as snapshot entries with op READ
CREATE TABLE rf_events (id int PRIMARY KEY, v text);
INSERT INTO rf_events VALUES (1, 'a'), (2, 'b');
SELECT cachebridge.attach('rf_events', 'rf:stream', 'publish');
CALL cachebridge.refresh('rf_events');
CALL cachebridge.refresh('rf_events', events => true);
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT xlen rf:stream
\! redis-cli -p $CB_REDIS_PORT --raw xrange rf:stream - + | grep -c '^READ$'

-- a partitioned table is refreshed partition by partition
CREATE TABLE rf_parts (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE rf_parts_1 PARTITION OF rf_parts FOR VALUES FROM (0) TO (100);
CREATE TABLE rf_parts_2 PARTITION OF rf_parts FOR VALUES FROM (100) TO (200);
INSERT INTO rf_parts SELECT i, 'p' || i FROM generate_series(1, 199) i;
CREATE TRIGGER rf_parts_cache AFTER INSERT OR UPDATE OR DELETE ON rf_parts
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfp:{id}');
CALL cachebridge.refresh('rf_parts');
SELECT cachebridge.wait_delivered();
SELECT count(*) FILTER (WHERE cachebridge.get('rfp:' || id) = row_to_json(p)::text) AS cached
FROM rf_parts p;
SELECT "table", state, rows_done FROM cachebridge.refresh_progress
WHERE "table"::text LIKE 'rf_parts%' ORDER BY 1;

-- what refresh refuses
CREATE TABLE rf_plain (id int);
CALL cachebridge.refresh('rf_plain');
CREATE VIEW rf_view AS SELECT * FROM rf_users;
CALL cachebridge.refresh('rf_view');
CREATE TABLE rf_when (id int PRIMARY KEY, v int);
CREATE TRIGGER rf_when_cache AFTER INSERT OR UPDATE ON rf_when
    FOR EACH ROW WHEN (NEW.v > 0) EXECUTE FUNCTION cachebridge.write_through('rfw:{id}');
CALL cachebridge.refresh('rf_when');
ALTER TABLE rf_orders DISABLE TRIGGER USER;
CALL cachebridge.refresh('rf_orders');
ALTER TABLE rf_orders ENABLE TRIGGER USER;
SELECT cachebridge.refresh_blocks('rf_users', -1, 10, false);
SELECT cachebridge.refresh_blocks('rf_users', 0, 0, false);
-- it commits per batch: not inside a transaction block
BEGIN;
CALL cachebridge.refresh('rf_users');
ROLLBACK;

-- who may refresh: not PUBLIC; a writer only for tables it owns or holds TRIGGER on
SELECT has_function_privilege('public', 'cachebridge.refresh_blocks(regclass, int8, int4, bool)', 'EXECUTE') AS public_blocks,
       has_function_privilege('public', 'cachebridge.refresh(regclass, int4, bool, bool)', 'EXECUTE') AS public_refresh,
       has_table_privilege('public', 'cachebridge.refresh_state', 'SELECT') AS public_state;
CREATE ROLE rf_writer IN ROLE cachebridge_writer;
GRANT SELECT, UPDATE ON rf_users TO rf_writer;
SET ROLE rf_writer;
CALL cachebridge.refresh('rf_users');
SELECT cachebridge.refresh_blocks('rf_users', 0, 1, false);
SELECT count(*) FROM cachebridge.refresh_state;
RESET ROLE;
GRANT TRIGGER ON rf_users TO rf_writer;
SET ROLE rf_writer;
CALL cachebridge.refresh('rf_users');
RESET ROLE;

-- the rights of SELECT ... FOR SHARE: SELECT, and UPDATE on the table or
-- on one of its columns (1.4 reads the rows without SQL, so checks them
-- itself)
REVOKE UPDATE ON rf_users FROM rf_writer;
SET ROLE rf_writer;
CALL cachebridge.refresh('rf_users');
RESET ROLE;
GRANT UPDATE (name) ON rf_users TO rf_writer;
REVOKE SELECT ON rf_users FROM rf_writer;
SET ROLE rf_writer;
CALL cachebridge.refresh('rf_users');
RESET ROLE;
GRANT SELECT ON rf_users TO rf_writer;
SET ROLE rf_writer;
CALL cachebridge.refresh('rf_users');
SELECT state, rows_done FROM cachebridge.refresh_progress WHERE "table" = 'rf_users'::regclass;
RESET ROLE;

-- row-level security applies to what the caller's refresh copies: only
-- the rows its policy shows are cached (the owner, a superuser here, whom
-- the policy does not bind, copies them all)
CREATE TABLE rf_tenants (id int PRIMARY KEY, tenant text);
INSERT INTO rf_tenants SELECT i, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END
FROM generate_series(1, 10) i;
SELECT cachebridge.attach('rf_tenants', 'rft:{id}');
ALTER TABLE rf_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY rf_even ON rf_tenants USING (tenant = 'even');
GRANT SELECT, UPDATE, TRIGGER ON rf_tenants TO rf_writer;
SET ROLE rf_writer;
CALL cachebridge.refresh('rf_tenants');
RESET ROLE;
SELECT cachebridge.wait_delivered();
SELECT string_agg(id::text, ',' ORDER BY id) AS cached_for_the_policy
FROM rf_tenants WHERE cachebridge.get('rft:' || id) IS NOT NULL;
CALL cachebridge.refresh('rf_tenants');
SELECT cachebridge.wait_delivered();
SELECT count(*) AS cached_by_the_owner
FROM rf_tenants WHERE cachebridge.get('rft:' || id) IS NOT NULL;

-- how a batch is delivered: its copies reach Redis before it commits,
-- while it holds the row locks, as plain commands (MSET, SET ... EX,
-- UNLINK, DEL + HSET + EXPIRE) that leave no version marker
\! redis-cli -p $CB_REDIS_PORT flushall > /dev/null
CREATE TABLE rf_copies (id int PRIMARY KEY, name text, note text);
INSERT INTO rf_copies SELECT i, 'c' || i, CASE WHEN i % 2 = 0 THEN 'even' END
FROM generate_series(1, 1200) i;
CREATE TRIGGER rf_copies_json AFTER INSERT OR UPDATE OR DELETE ON rf_copies
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfj:{id}');
CREATE TRIGGER rf_copies_ttl AFTER INSERT OR UPDATE OR DELETE ON rf_copies
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfx:{id}', 'ttl=600');
CREATE TRIGGER rf_copies_hash AFTER INSERT OR UPDATE OR DELETE ON rf_copies
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('rfh:{id}', 'format=hash', 'ttl=600');
CREATE TRIGGER rf_copies_inv AFTER INSERT OR UPDATE OR DELETE ON rf_copies
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('rfi:{id}');
\! redis-cli -p $CB_REDIS_PORT eval "for i = 1, 1200 do redis.call('SET', 'rfi:' .. i, 'stale') end" 0 > /dev/null
BEGIN;
SELECT cachebridge.refresh_blocks('rf_copies', 0, 1000, false) AS next_block;
-- not committed yet, and in Redis already
\! redis-cli -p $CB_REDIS_PORT --raw get rfj:2
\! redis-cli -p $CB_REDIS_PORT --raw hgetall rfh:2
COMMIT;
SELECT count(*) FILTER (WHERE cachebridge.get('rfj:' || id) = row_to_json(c)::text) AS json,
       count(*) FILTER (WHERE cachebridge.get('rfx:' || id) = row_to_json(c)::text) AS with_ttl
FROM rf_copies c;
\! redis-cli -p $CB_REDIS_PORT --raw hgetall rfh:1
\! redis-cli -p $CB_REDIS_PORT eval "local n = 0 for i = 1, 1200 do for _, k in ipairs({'rfx:', 'rfh:'}) do local t = redis.call('TTL', k .. i) if t > 500 and t <= 600 then n = n + 1 end end end return n" 0
\! redis-cli -p $CB_REDIS_PORT eval "return #redis.call('KEYS', 'rfi:*')" 0
\! redis-cli -p $CB_REDIS_PORT eval "return #redis.call('KEYS', '*#cbv')" 0

-- a copy never overwrites a newer write: each call of the copy script
-- carries a fence (a version from before the rows were locked) and skips
-- a key whose marker is newer, so a copy Redis runs late, after the batch
-- let go of its rows, loses to a write committed since.  Here the marker
-- of rfj:5 is made newer than any version by hand: its copy is skipped.
\! redis-cli -p $CB_REDIS_PORT del rfj:5 rfj:6 > /dev/null
\! redis-cli -p $CB_REDIS_PORT set 'rfj:5#cbv' 'VFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:1' > /dev/null
CALL cachebridge.refresh('rf_copies');
\! redis-cli -p $CB_REDIS_PORT exists rfj:5 rfj:6
\! redis-cli -p $CB_REDIS_PORT del 'rfj:5#cbv' > /dev/null

-- a batch in a transaction that changed rows itself sends nothing before
-- its commit (it could copy what it has not committed): it is delivered at
-- commit, with versions, and not at all if it rolls back
BEGIN;
UPDATE rf_copies SET name = 'uncommitted' WHERE id = 3;
SELECT cachebridge.refresh_blocks('rf_copies', 0, 1000, false) AS next_block;
\! redis-cli -p $CB_REDIS_PORT --raw get rfj:3
ROLLBACK;
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw get rfj:3

-- copies land in the namespace of the table's owner, as its triggers' do
CREATE ROLE rf_tenant;
ALTER ROLE rf_tenant SET cachebridge.key_prefix = 'tenant1:';
CREATE TABLE rf_ns (id int PRIMARY KEY, v text);
ALTER TABLE rf_ns OWNER TO rf_tenant;
INSERT INTO rf_ns VALUES (1, 'a'), (2, 'b');
SELECT cachebridge.attach('rf_ns', 'rfn:{id}');
CALL cachebridge.refresh('rf_ns');
\! redis-cli -p $CB_REDIS_PORT --scan --pattern '*rfn:*' | sort

DROP TABLE rf_users, rf_orders, rf_events, rf_parts, rf_plain, rf_when, rf_tenants,
    rf_copies, rf_ns CASCADE;
DROP ROLE rf_writer;
DROP ROLE rf_tenant;
