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
# It also times what users write today instead: a ketama ring in PL/pgSQL --
# a table of points (MD5 of "node-i", four little-endian points per digest,
# 160 points per node), and a function hashing the key the same way and
# taking the first point >= hash with wrap-around (an index scan per key) --
# with the same 3 and 1,000 nodes (equal weights), PLPGSQL_RUNS times.  Its
# answers are compared with shard_for on 10,000 keys (rings of equal weights)
# and the agreement is printed.
#
# And it times two floors, C functions of shard_for's signature built from
# test/bench/shard_floor.c into a temporary library (loaded by absolute
# path, dropped afterwards): "floor" returns a node name and does nothing
# else, "floor + MD5 of key" also computes the key hash of an md5 ring.
# shard_for on a 3-node md5 ring cannot be cheaper than the second.
#
# Usage: PGHOST=... PGPORT=... bash test/bench/shard_for.sh [RUNS]   (default 5)
#
# Environment: CB_BENCH_SHARD_KEYS keys to map [1000000];
#              CB_BENCH_PLPGSQL_RUNS runs of the PL/pgSQL ring [min(RUNS, 3)];
#              PG_CONFIG of the server [/usr/lib/postgresql/15/bin/pg_config]

set -euo pipefail
runs=${1:-5}
keys=${CB_BENCH_SHARD_KEYS:-1000000}
plpgsql_runs=${CB_BENCH_PLPGSQL_RUNS:-$((runs < 3 ? runs : 3))}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

# The floors' library, readable by the server; the server runs on this host.
floor_dir=$(mktemp -d /tmp/cb-shard-floor.XXXXXX)
trap 'rm -rf "$floor_dir"' EXIT
chmod 755 "$floor_dir"
floor_lib=$floor_dir/shard_floor.so
# shellcheck disable=SC2046  # pg_config prints flags to split
if ! gcc $("$pg_config" --cflags) $("$pg_config" --cflags_sl) -shared \
    -I"$("$pg_config" --includedir-server)" -I"$root/src" \
    -o "$floor_lib" "$root/test/bench/shard_floor.c" "$root/src/md5.c" 2>"$floor_dir/cc.log"; then
    echo "FAIL: the floors of test/bench/shard_floor.c do not build:" >&2
    cat "$floor_dir/cc.log" >&2
    exit 1
fi
chmod 755 "$floor_lib"

psql -X -q -v ON_ERROR_STOP=1 -v runs="$runs" -v keys="$keys" -v plpgsql_runs="$plpgsql_runs" \
    -v floor_lib="$floor_lib" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cachebridge;
SET max_parallel_workers_per_gather = 0;

DROP SCHEMA IF EXISTS bench_floor CASCADE;
CREATE SCHEMA bench_floor;
CREATE FUNCTION bench_floor.shard_floor(key text, ring text) RETURNS text
LANGUAGE c STABLE STRICT AS :'floor_lib', 'shard_floor';
CREATE FUNCTION bench_floor.shard_floor_md5(key text, ring text) RETURNS text
LANGUAGE c STABLE STRICT AS :'floor_lib', 'shard_floor_md5';

SELECT cachebridge.ring_drop(name) FROM cachebridge.ring WHERE name IN ('bench3', 'bench1000', 'bench3fnv', 'bench1000eq') \g /dev/null
SELECT cachebridge.ring_create('bench3fnv', 'ketama', 'fnv1a_64') \g /dev/null
SELECT count(cachebridge.ring_add_node('bench3fnv', 'shard-' || i)) FROM generate_series(1, 3) i \g /dev/null
SELECT count(cachebridge.ring_add_node('bench3', 'shard-' || i)) FROM generate_series(1, 3) i \g /dev/null
SELECT count(cachebridge.ring_add_node('bench1000', format('cache%s.example.net', i), 1 + i % 4))
FROM generate_series(1, 1000) i \g /dev/null
SELECT count(cachebridge.ring_add_node('bench1000eq', format('cache%s.example.net', i)))
FROM generate_series(1, 1000) i \g /dev/null

CREATE TEMP TABLE bench_keys AS SELECT 'user:' || i || ':profile' AS k FROM generate_series(1, :keys) i;
VACUUM ANALYZE bench_keys;

-- The ketama ring users write in PL/pgSQL today: points in a table, one
-- index scan per key.
DROP TABLE IF EXISTS bench_ring_points;
CREATE TABLE bench_ring_points (ring text, point bigint, node text);
INSERT INTO bench_ring_points
SELECT r.ring, ('x' || substr(d, 7 + 8 * j, 2) || substr(d, 5 + 8 * j, 2)
                    || substr(d, 3 + 8 * j, 2) || substr(d, 1 + 8 * j, 2))::bit(32)::bigint, r.node
FROM (SELECT 'pl3' AS ring, 'shard-' || i AS node FROM generate_series(1, 3) i
      UNION ALL
      SELECT 'pl1000', format('cache%s.example.net', i) FROM generate_series(1, 1000) i) r,
     generate_series(0, 39) i, LATERAL md5(r.node || '-' || i) d, generate_series(0, 3) j;
CREATE INDEX ON bench_ring_points (ring, point);
VACUUM ANALYZE bench_ring_points;

CREATE OR REPLACE FUNCTION plpgsql_shard_for(key text, ring_name text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m text := md5(key);
    h bigint := ('x' || substr(m, 7, 2) || substr(m, 5, 2) || substr(m, 3, 2)
                     || substr(m, 1, 2))::bit(32)::bigint;
    n text;
BEGIN
    SELECT node INTO n FROM bench_ring_points
    WHERE ring = ring_name AND point >= h ORDER BY point LIMIT 1;
    IF n IS NULL THEN
        SELECT node INTO n FROM bench_ring_points WHERE ring = ring_name ORDER BY point LIMIT 1;
    END IF;
    RETURN n;
END
$$;

-- CPU time this backend has used, in milliseconds (Linux: the first field
-- of /proc/self/schedstat, in ns), or NULL where it cannot be read.  The
-- machine may be shared: CPU time does not count the time other processes
-- held the CPU, wall time does.
CREATE FUNCTION pg_temp.cpu_ms() RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
    RETURN split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint / 1e6;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- Milliseconds a query takes, wall clock and CPU time of the backend.
CREATE FUNCTION pg_temp.ms(query text, OUT ms float8, OUT cpu_ms float8) LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    c0 float8 := pg_temp.cpu_ms();
BEGIN
    EXECUTE query;
    ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
    cpu_ms := pg_temp.cpu_ms() - c0;
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

CREATE TEMP TABLE timings (what text, ms float8, cpu_ms float8);
-- warm up: build both rings, read the keys once
SELECT count(cachebridge.shard_for(k, 'bench3')), count(cachebridge.shard_for(k, 'bench1000')),
       count(bench_floor.shard_floor(k, 'bench3')), count(bench_floor.shard_floor_md5(k, 'bench3'))
FROM bench_keys \g /dev/null

SELECT set_config('bench.runs', :'runs', false) \g /dev/null
SELECT set_config('bench.plpgsql_runs', :'plpgsql_runs', false) \g /dev/null
DO $$
BEGIN
    FOR r IN 1 .. current_setting('bench.runs')::int LOOP
        INSERT INTO timings SELECT 'hashtext', * FROM pg_temp.ms('SELECT count(hashtext(k)) FROM bench_keys');
        INSERT INTO timings SELECT 'floor', * FROM pg_temp.ms('SELECT count(bench_floor.shard_floor(k, ''bench3'')) FROM bench_keys');
        INSERT INTO timings SELECT 'floor + MD5 of key', * FROM pg_temp.ms('SELECT count(bench_floor.shard_floor_md5(k, ''bench3'')) FROM bench_keys');
        INSERT INTO timings SELECT 'shard_for 3 nodes', * FROM pg_temp.ms('SELECT count(cachebridge.shard_for(k, ''bench3'')) FROM bench_keys');
        INSERT INTO timings SELECT 'shard_for 3 nodes fnv1a_64', * FROM pg_temp.ms('SELECT count(cachebridge.shard_for(k, ''bench3fnv'')) FROM bench_keys');
        INSERT INTO timings SELECT 'shard_for 1000 nodes', * FROM pg_temp.ms('SELECT count(cachebridge.shard_for(k, ''bench1000'')) FROM bench_keys');
        INSERT INTO timings SELECT 'build 1000-node ring', pg_temp.build_ms('bench1000'), NULL;
    END LOOP;
    FOR r IN 1 .. current_setting('bench.plpgsql_runs')::int LOOP
        INSERT INTO timings SELECT 'PL/pgSQL ring 3 nodes', * FROM pg_temp.ms('SELECT count(plpgsql_shard_for(k, ''pl3'')) FROM bench_keys');
        INSERT INTO timings SELECT 'PL/pgSQL ring 1000 nodes', * FROM pg_temp.ms('SELECT count(plpgsql_shard_for(k, ''pl1000'')) FROM bench_keys');
    END LOOP;
END
$$;

\echo
\echo 'shard_for over' :keys 'distinct keys (medians of' :runs 'runs; PL/pgSQL ring:' :plpgsql_runs 'runs)'
WITH m AS (
    SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_ms) AS cpu_ms
    FROM timings GROUP BY what
)
SELECT m.what, round(m.ms::numeric, 1) AS median_ms,
       CASE WHEN m.what NOT LIKE 'build%'
            THEN round((m.ms / h.ms)::numeric, 2) END AS ratio_to_hashtext,
       round(m.cpu_ms::numeric, 1) AS median_cpu_ms,
       round((m.cpu_ms / h.cpu_ms)::numeric, 2) AS cpu_ratio
FROM m, m h WHERE h.what = 'hashtext'
ORDER BY m.what LIKE 'PL%', m.what;

\echo 'PL/pgSQL ring vs shard_for (equal weights), same node for 10,000 keys:'
SELECT round(100.0 * count(*) FILTER (WHERE plpgsql_shard_for(k, 'pl3') = cachebridge.shard_for(k, 'bench3')) / count(*), 2) AS "3 nodes %",
       round(100.0 * count(*) FILTER (WHERE plpgsql_shard_for(k, 'pl1000') = cachebridge.shard_for(k, 'bench1000eq')) / count(*), 2) AS "1000 nodes %"
FROM (SELECT k FROM bench_keys LIMIT 10000) s;

DROP SCHEMA bench_floor CASCADE;
DROP FUNCTION plpgsql_shard_for(text, text);
DROP TABLE bench_ring_points;
SELECT cachebridge.ring_drop(name) FROM cachebridge.ring WHERE name IN ('bench3', 'bench1000', 'bench3fnv', 'bench1000eq') \g /dev/null
SQL
