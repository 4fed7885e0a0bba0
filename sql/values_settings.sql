--
-- Cached values (format=json and format=hash), stream entries and keys do
-- not depend on the output settings of the session that writes them:
-- TimeZone, DateStyle, IntervalStyle, bytea_output and extra_float_digits.
-- Every row is rendered under fixed settings (ISO dates, UTC, IntervalStyle
-- postgres, shortest exact floats, hex bytea); json keeps row_to_json's own
-- forms (ISO 8601 with a "T", here in UTC).  Two sessions with opposite
-- settings write the same row; Redis must hold the same bytes after each.
--
-- Every key a trigger writes or deletes has a version marker next to it,
-- key || '#cbv' (see src/scripts.c); key listings below leave them out.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TYPE vs_pair AS (at timestamptz, b bytea);
CREATE TABLE vs (
    id int PRIMARY KEY,
    at timestamptz,
    ts timestamp,
    d date,
    t timetz,
    iv interval,
    b bytea,
    f8 float8,
    f4 real,
    ats timestamptz[],
    pair vs_pair,
    span tstzrange
);
CREATE TRIGGER vs_json AFTER INSERT OR UPDATE ON vs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('vs:json:{id}');
CREATE TRIGGER vs_hash AFTER INSERT OR UPDATE ON vs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('vs:hash:{id}', 'format=hash');
CREATE TRIGGER vs_key AFTER INSERT OR UPDATE ON vs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('vs:key:{at}:{b}:{f8}', 'columns=id');
CREATE TRIGGER vs_events AFTER INSERT OR UPDATE ON vs
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('vs:events');

-- the first session: PostgreSQL's defaults, more or less
\c
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET bytea_output = 'hex';
SET extra_float_digits = 1;
INSERT INTO vs VALUES (1, '2025-01-01 12:00:00+00', '2025-01-02 03:04:05.5', '2025-01-03',
    '12:00:00+02', '1 day 02:03:04', '\x01ff', 1.0 / 3, 1.0 / 3,
    ARRAY['2025-01-01 12:00:00+00'::timestamptz], ROW('2025-01-01 12:00:00+00', '\x01'),
    tstzrange('2025-01-01 12:00:00+00', '2025-01-02 12:00:00+00'));
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw get vs:json:1
\! redis-cli -p $CB_REDIS_PORT --raw hgetall vs:hash:1
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'vs:key:*' | grep -v '#cbv$'
-- keep copies of what the first session wrote
\! redis-cli -p $CB_REDIS_PORT copy vs:json:1 vs:first:json
\! redis-cli -p $CB_REDIS_PORT copy vs:hash:1 vs:first:hash

-- the second session: every setting the other way; the same row again
\c
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET bytea_output = 'escape';
SET extra_float_digits = -3;
-- (what the session itself shows)
SELECT at, d, iv, b, f8 FROM vs;
UPDATE vs SET id = id;
SELECT cachebridge.wait_delivered();
-- identical bytes: GET against GET, HGETALL against HGETALL
\! redis-cli -p $CB_REDIS_PORT eval "return redis.call('get', KEYS[1]) == redis.call('get', KEYS[2]) and 'json: same bytes' or 'json: DIFFERENT'" 2 vs:json:1 vs:first:json
\! redis-cli -p $CB_REDIS_PORT eval "local a, b = redis.call('hgetall', KEYS[1]), redis.call('hgetall', KEYS[2]) if #a ~= #b then return 'hash: DIFFERENT' end for i = 1, #a do if a[i] ~= b[i] then return 'hash: DIFFERENT' end end return 'hash: same bytes'" 2 vs:hash:1 vs:first:hash
-- one key, not two
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'vs:key:*' | grep -v '#cbv$'
-- both stream entries carry the same row
\! redis-cli -p $CB_REDIS_PORT eval "local e = redis.call('xrange', KEYS[1], '-', '+') local function row(x) for i = 1, #x[2], 2 do if x[2][i] == 'row' then return x[2][i + 1] end end end return (#e == 2 and row(e[1]) == row(e[2])) and 'stream: same row' or 'stream: DIFFERENT'" 1 vs:events

-- the session's own settings are untouched by the trigger
SHOW TimeZone;
SELECT '2025-01-01 12:00:00+00'::timestamptz AS at, '\x01'::bytea AS b, 1.0::float8 / 3 AS f8;

-- and they come back when a trigger fails: an entry too large for
-- max_pending_memory is an ERROR inside the trigger, caught here
SET cachebridge.max_pending_memory = '64kB';
DO $$
BEGIN
    INSERT INTO vs (id, b) VALUES (2, pg_catalog.decode(pg_catalog.repeat('ab', 100000), 'hex'));
EXCEPTION WHEN program_limit_exceeded THEN
    RAISE NOTICE 'trigger failed: %', SQLERRM;
END
$$;
RESET cachebridge.max_pending_memory;
SHOW TimeZone;
SHOW DateStyle;
SELECT '2025-01-01 12:00:00+00'::timestamptz AS at, '2025-01-03'::date AS d,
       '1 day 02:03:04'::interval AS iv, '\x01'::bytea AS b, 1.0::float8 / 3 AS f8;

-- money follows lc_monetary; it is rendered under lc_monetary C
CREATE TABLE vs_money (id int PRIMARY KEY, price money);
CREATE TRIGGER vs_money AFTER INSERT ON vs_money
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('vs:money:{price}', 'format=hash');
SET lc_monetary = 'C.utf8';
INSERT INTO vs_money VALUES (1, 12.5);
SELECT cachebridge.wait_delivered();
SHOW lc_monetary;
\! redis-cli -p $CB_REDIS_PORT --raw hgetall 'vs:money:$12.50'

\c
DROP TABLE vs;
DROP TABLE vs_money;
DROP TYPE vs_pair;
