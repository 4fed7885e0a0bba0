#!/usr/bin/env bash
# test/bench/shard_for.sh -- how fast shard_for() is, against hashtext().
#
# Runs against an already-running server chosen by the usual PG* variables
# (PGHOST, PGPORT, PGUSER, PGDATABASE), as a role that may change rings.
# Creates rings "bench3" (3 nodes), "bench3fnv" (3 nodes, fnv1a_64 key hash)
# and "bench1000" (1,000 nodes, weights 1-4), maps 1,000,000 distinct keys with shard_for and with hashtext in the
# same session, RUNS times each (interleaved), and prints the medians, the
# ratio shard_for/hashtext, and the median time to build the 1,000-node ring
# after a change.  Parallel query is off so that both run on one core.
#
# Usage: PGHOST=... PGPORT=... bash test/bench/shard_for.sh [RUNS]   (default 5)

set -euo pipefail
runs=${1:-5}

psql -X -q -v ON_ERROR_STOP=1 -v runs="$runs" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cachebridge;
SET max_parallel_workers_per_gather = 0;

SELECT cachebridge.ring_drop(name) FROM cachebridge.ring WHERE name IN ('bench3', 'bench1000', 'bench3fnv') \g /dev/null
SELECT cachebridge.ring_create('bench3fnv', 'ketama', 'fnv1a_64') \g /dev/null
SELECT count(cachebridge.ring_add_node('bench3fnv', 'shard-' || i)) FROM generate_series(1, 3) i \g /dev/null
SELECT count(cachebridge.ring_add_node('bench3', 'shard-' || i)) FROM generate_series(1, 3) i \g /dev/null
SELECT count(cachebridge.ring_add_node('bench1000', format('cache%s.example.net', i), 1 + i % 4))
FROM generate_series(1, 1000) i \g /dev/null

CREATE TEMP TABLE bench_keys AS SELECT 'user:' || i || ':profile' AS k FROM generate_series(1, 1000000) i;
VACUUM ANALYZE bench_keys;

-- Milliseconds a query takes.
CREATE FUNCTION pg_temp.ms(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    RETURN 1000 * extract(epoch FROM clock_timestamp() - t0);
END
$$;

-- Milliseconds to rebuild a ring after a change (the first call compiles).
CREATE FUNCTION pg_temp.build_ms(ring_name text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
BEGIN
    UPDATE cachebridge.ring SET algorithm = algorithm WHERE name = ring_name;
    t0 := clock_timestamp();
    PERFORM cachebridge.shard_for('k', ring_name);
    RETURN 1000 * extract(epoch FROM clock_timestamp() - t0);
END
$$;

CREATE TEMP TABLE timings (what text, ms float8);
-- warm up: build both rings, read the keys once
SELECT count(cachebridge.shard_for(k, 'bench3')), count(cachebridge.shard_for(k, 'bench1000'))
FROM bench_keys \g /dev/null

SELECT set_config('bench.runs', :'runs', false) \g /dev/null
DO $$
BEGIN
    FOR r IN 1 .. current_setting('bench.runs')::int LOOP
        INSERT INTO timings SELECT 'hashtext', pg_temp.ms('SELECT count(hashtext(k)) FROM bench_keys');
        INSERT INTO timings SELECT 'shard_for 3 nodes', pg_temp.ms('SELECT count(cachebridge.shard_for(k, ''bench3'')) FROM bench_keys');
        INSERT INTO timings SELECT 'shard_for 3 nodes fnv1a_64', pg_temp.ms('SELECT count(cachebridge.shard_for(k, ''bench3fnv'')) FROM bench_keys');
        INSERT INTO timings SELECT 'shard_for 1000 nodes', pg_temp.ms('SELECT count(cachebridge.shard_for(k, ''bench1000'')) FROM bench_keys');
        INSERT INTO timings SELECT 'build 1000-node ring', pg_temp.build_ms('bench1000');
    END LOOP;
END
$$;

\echo
\echo 'shard_for over 1,000,000 distinct keys (medians of' :runs 'runs)'
WITH m AS (
    SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms
    FROM timings GROUP BY what
)
SELECT m.what, round(m.ms::numeric, 1) AS median_ms,
       CASE WHEN m.what LIKE 'shard_for%'
            THEN round((m.ms / h.ms)::numeric, 2) END AS ratio_to_hashtext
FROM m, m h WHERE h.what = 'hashtext'
ORDER BY m.what;

SELECT cachebridge.ring_drop(name) FROM cachebridge.ring WHERE name IN ('bench3', 'bench1000', 'bench3fnv') \g /dev/null
SQL
