#!/usr/bin/env bash
# test/bench/settings.sh -- what rendering under fixed output settings costs
# a bulk INSERT: one 100,000-row INSERT ... SELECT into a write_through
# table keyed by an int, and into one keyed by a timestamptz (a key whose
# text output depends on TimeZone and DateStyle), and into both without a
# trigger as baselines.  Each variant runs RUNS times, interleaved, on a fresh table;
# prints the median and the range of psql's \timing (the COMMIT and the
# delivery after it included).
#
# Starts its own PostgreSQL 15 (cachebridge preloaded, sync delivery) and
# redis-server as test/run.sh does (test/lib.sh).  Installs the extension:
# run it under the install lock.
#
# Usage: bash test/bench/settings.sh [RUNS]      (default 5; ROWS=100000)

set -euo pipefail
. "$(dirname "$0")/../lib.sh"

RUNS=${1:-5}
ROWS=${ROWS:-100000}

cb_ensure_packages
[ "${CB_BENCH_NO_BUILD:-0}" = 1 ] || cb_build_install
cb_pick_user
WORK=$(mktemp -d /tmp/cachebridge-bench-settings.XXXXXX)
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown "$CB_USER" "$WORK"
trap 'cb_pg_stop "$WORK"; cb_redis_stop "$WORK"; rm -rf "$WORK"' EXIT
REDIS_PORT=$(cb_free_port 26379)
PG_PORT=$(cb_free_port 25432)
cb_redis_start "$WORK" "$REDIS_PORT"
cb_pg_init "$WORK" "$PG_PORT" "" "$REDIS_PORT" "cachebridge.delivery = sync" "fsync = off"
cb_pg_start "$WORK"

psql_() { cb_as_user "$CB_PG_BIN/psql" -X -q -h "$WORK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_ -d postgres -c 'CREATE EXTENSION cachebridge'

# run VARIANT: prints the milliseconds of the INSERT and of its COMMIT
run() {
    local key col
    case $1 in
        none)        col=int ;;
        none_tz)     col=timestamptz ;;
        int)         col=int;         key='b:{k}' ;;
        timestamptz) col=timestamptz; key='b:{k}' ;;
    esac
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    psql_ -d postgres -c "DROP TABLE IF EXISTS bench; CREATE TABLE bench (k $col PRIMARY KEY, v text)"
    [ -n "${key:-}" ] && psql_ -d postgres -c "SELECT cachebridge.attach('bench', '$key')" >/dev/null
    local expr=i
    [ "$col" = timestamptz ] && expr="timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second'"
    psql_ -d postgres <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sed -n '2p;3p' | paste -sd' '
\\timing on
BEGIN;
INSERT INTO bench SELECT $expr, 'row ' || i FROM generate_series(1, $ROWS) i;
COMMIT;
SQL
}

declare -A ins com
for r in $(seq "$RUNS"); do
    for v in none none_tz int timestamptz; do
        read -r i c < <(run $v)
        ins[$v]="${ins[$v]:-} $i"
        com[$v]="${com[$v]:-} $c"
    done
done
# median NAME TIMES...: one table line
median() {
    local name=$1
    shift
    printf '%s\n' "$@" | sort -n | awk -v v="$name" '
        { t[NR] = $1 }
        END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2;
              printf "%-40s | %7.1f ms | %7.1f-%7.1f\n", v, m, t[1], t[NR] }'
}
printf "%-40s | %10s | %17s\n" "$ROWS-row INSERT, sync delivery" median min-max
for v in none none_tz int timestamptz; do
    label="write_through, key $v"
    [ $v = none ] && label="no trigger, key int"
    [ $v = none_tz ] && label="no trigger, key timestamptz"
    # shellcheck disable=SC2086
    median "$label: INSERT" ${ins[$v]}
    # shellcheck disable=SC2086
    median "$label: COMMIT" ${com[$v]}
done
