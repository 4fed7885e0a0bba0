#!/usr/bin/env bash
# test/bench/triggers.sh -- what cachebridge's row triggers cost a writer.
#
# Starts its own PostgreSQL 15 (shared_preload_libraries = cachebridge, the
# settings of a dev box, fsync on) and redis-server, as an unprivileged user,
# on loopback and unix sockets in a temporary directory (test/lib.sh), and
# measures, RUNS times each with the variants interleaved:
#
#   update   one UPDATE of every row of a ROWS-row table (id int primary key
#            and four columns), autocommit, timed by psql including COMMIT and
#            the delivery to Redis after it: no trigger (the baseline),
#            cachebridge.invalidate('row:{id}'), cachebridge.write_through
#            ('row:{id}'), and a PL/pgSQL trigger calling pg_notify per row;
#            then, on a SYNC_ROWS-row table against its own baseline, a
#            PL/pgSQL trigger calling cachebridge.del() or cachebridge.set()
#            per row (one Redis round trip per row).
#   pgbench  TPC-B-like pgbench (scale PGBENCH_SCALE, PGBENCH_CLIENTS clients,
#            PGBENCH_SECONDS seconds) with no trigger, an invalidate trigger
#            and a write_through trigger on pgbench_accounts ('acct:{aid}').
#   memory   peak memory (VmHWM of /proc/PID/status) of the backend running
#            one UPDATE of MEM_ROWS rows, with no trigger, invalidate and
#            write_through, at the default cachebridge.max_pending_memory.
#
# After every run with a cachebridge trigger (or a per-row call) Redis is
# checked against the table: write_through keys must equal row_to_json of
# their row (or be gone, where the trigger degraded to a pattern
# invalidation), and keys pre-filled with a stale value must be gone after
# invalidate.  A run that lost an effect prints FAIL and the script exits 1.
# The table printed at the end gives medians and ratios to the baseline.
#
# Usage: sudo bash test/bench/triggers.sh [RUNS]          (default 5)
#
# Environment (defaults in brackets):
#   CB_BENCH_SECTIONS      sections to run ["update pgbench memory"]
#   CB_BENCH_ROWS          rows of the update section [200000]
#   CB_BENCH_SYNC_ROWS     rows for the per-row synchronous calls [20000]
#   CB_BENCH_MEM_ROWS      rows of the memory section [1000000]
#   CB_BENCH_MEM_RUNS      runs of the memory section [RUNS]
#   CB_BENCH_PGBENCH_SCALE, CB_BENCH_PGBENCH_CLIENTS, CB_BENCH_PGBENCH_SECONDS
#                          [10, 2, 20]
#   CB_BENCH_FSYNC         fsync and synchronous_commit [on]
#   CB_BENCH_NO_BUILD=1    use the installed cachebridge, do not build it
#   CB_BENCH_LIBRARY       path of another build of cachebridge.so to measure
#                          (preloaded, and the extension's functions pointed at
#                          it in the benchmark database); the installed SQL
#                          script is used, and nothing is built or installed
#   CB_KEEP=1              keep the temporary directory and server logs
#
# Run as root or a sudoer; it installs missing packages like test/run.sh.

# test/bench/run.sh sources this file for its helpers (servers, checks,
# statistics) and its memory section: the code at the bottom runs only when
# the script is executed itself.

set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then RUNS=${1:-${CB_BENCH_RUNS:-5}}; else RUNS=${CB_BENCH_RUNS:-5}; fi
SECTIONS=${CB_BENCH_SECTIONS:-"update pgbench memory"}
ROWS=${CB_BENCH_ROWS:-200000}
SYNC_ROWS=${CB_BENCH_SYNC_ROWS:-20000}
MEM_ROWS=${CB_BENCH_MEM_ROWS:-1000000}
MEM_RUNS=${CB_BENCH_MEM_RUNS:-$RUNS}
PGB_SCALE=${CB_BENCH_PGBENCH_SCALE:-10}
PGB_CLIENTS=${CB_BENCH_PGBENCH_CLIENTS:-2}
PGB_SECONDS=${CB_BENCH_PGBENCH_SECONDS:-20}
FSYNC=${CB_BENCH_FSYNC:-on}

# The settings of a developer's machine: a few GB for PostgreSQL, WAL room
# for a large UPDATE without a forced checkpoint in the middle.
PG_SETTINGS=(
    "fsync = $FSYNC"
    "synchronous_commit = $FSYNC"
    "full_page_writes = on"
    "shared_buffers = 1GB"
    "effective_cache_size = 4GB"
    "work_mem = 16MB"
    "maintenance_work_mem = 256MB"
    "wal_buffers = 16MB"
    "max_wal_size = 4GB"
    "checkpoint_timeout = 15min"
    "max_connections = 50"
    "max_parallel_workers_per_gather = 0"
)
LIBRARY=${CB_BENCH_LIBRARY:-}

# ---------------------------------------------------------------- helpers

bench_fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# psql on the benchmark database; q1 prints one unaligned value.
q() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PG_PORT" -U postgres -d bench "$@"; }
q1() { q -At -c "$1"; }
rc() { redis-cli -p "$REDIS_PORT" "$@"; }

# record SECTION VARIANT VALUE: one measurement.
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$DIR/results.tsv"; }

# Median / min / max of the measurements of SECTION VARIANT ("" if none).
stat_of() {
    awk -F'\t' -v s="$1" -v v="$2" '$1 == s && $2 == v { print $3 }' "$DIR/results.tsv" |
        sort -g | awk -v what="$3" '
            { x[NR] = $1 }
            END {
                if (NR == 0) { print ""; exit }
                if (what == "min") print x[1]
                else if (what == "max") print x[NR]
                else if (NR % 2) print x[(NR + 1) / 2]
                else print (x[NR / 2] + x[NR / 2 + 1]) / 2
            }'
}

# prefill PREFIX N: SET PREFIX1 .. PREFIXN to "stale" in one pipe.
prefill() {
    awk -v p="$1" -v n="$2" 'BEGIN {
        for (i = 1; i <= n; i++) {
            k = p i
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$5\r\nstale\r\n", length(k), k
        }
    }' | rc --pipe >/dev/null
    [ "$(rc DBSIZE)" = "$2" ] || bench_fail "could not pre-fill $2 keys in Redis"
}

# redis_values PREFIX N: the value of PREFIX1 .. PREFIXN, one a line, "(nil)"
# for a missing key (values must hold no newline).
redis_values() {
    local lua='local o = {}
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
    o[#o + 1] = redis.call("GET", ARGV[1] .. i) or "(nil)"
end
return o'
    local from to
    for ((from = 1; from <= $2; from += 100000)); do
        to=$((from + 99999 > $2 ? $2 : from + 99999))
        rc --raw EVAL "$lua" 0 "$1" "$from" "$to"
    done
}

# count_keys: keys in Redis, not counting the version markers ("<key>#cbv")
# that durable delivery keeps next to the keys it wrote or deleted.
count_keys() {
    rc EVAL 'local n, c = 0, "0"
repeat
    local r = redis.call("SCAN", c, "COUNT", 10000)
    c = r[1]
    for _, k in ipairs(r[2]) do
        if string.sub(k, -4) ~= "#cbv" then n = n + 1 end
    end
until c == "0"
return n' 0
}

# await_delivery: every effect committed so far is applied in Redis (a no-op
# in sync mode; in durable mode the worker may still hold some).
await_delivery() {
    [ "$(q1 'SELECT cachebridge.wait_delivered(60000)')" = t ] ||
        bench_fail "cachebridge.wait_delivered(60000) timed out: $(q1 'SELECT outbox_depth, last_error FROM cachebridge.stats')"
}

# check_rows TABLE PREFIX N ALLOW_MISSING: Redis holds row_to_json of every
# row of TABLE (ids 1..N) under PREFIX<id>, or (ALLOW_MISSING=1) no key.
check_rows() {
    local table=$1 prefix=$2 n=$3 allow_missing=$4 verdict
    await_delivery
    verdict=$(paste -d '\n' \
        <(q -At -c "SELECT row_to_json(t)::text FROM $table t ORDER BY id") \
        <(redis_values "$prefix" "$n") |
        awk -v n="$n" -v allow="$allow_missing" '
            NR % 2 { json = $0; next }
            $0 == "(nil)" { missing++; next }
            $0 != json { wrong++; if (!ex) ex = "got " substr($0, 1, 80) " want " substr(json, 1, 80) }
            END {
                rows = NR / 2
                if (rows != n) print "FAIL " rows " rows compared, expected " n
                else if (wrong > 0) print "FAIL " wrong " keys hold another value (" ex ")"
                else if (missing > 0 && !allow) print "FAIL " missing " keys missing"
                else print "ok " n - missing " keys equal row_to_json, " missing + 0 " removed"
            }')
    case $verdict in
        ok*) CHECK+="${verdict#ok }, " ;;
        *) bench_fail "$table: $verdict" ;;
    esac
}

# check_gone N: no key left of the N pre-filled ones.
check_gone() {
    local left
    await_delivery
    left=$(count_keys)
    [ "$left" = 0 ] || bench_fail "$left of $1 pre-filled keys were not invalidated"
    CHECK+="$1 keys invalidated, "
}

# check_stats: cachebridge counted no failed delivery; notes degradations.
check_stats() {
    local failed degraded
    IFS='|' read -r failed degraded < <(q1 "SELECT failed, degraded FROM cachebridge.stats")
    [ "$failed" = 0 ] || bench_fail "cachebridge.stats counts $failed failed effects: $(q1 "SELECT last_error FROM cachebridge.stats")"
    CHECK+="degraded $degraded"
}

# make_table TABLE N: a fresh table of N rows, vacuumed, no trigger.
make_table() {
    q <<SQL
DROP TABLE IF EXISTS $1;
CREATE TABLE $1 (id int PRIMARY KEY, n int NOT NULL, name text NOT NULL,
                 score float8, updated_at timestamptz NOT NULL);
INSERT INTO $1
SELECT i, 0, 'customer-' || i, i * 0.5, '2024-01-01'::timestamptz + i * interval '1 second'
FROM generate_series(1, $2) i;
VACUUM ANALYZE $1;
SQL
}

# add_trigger TABLE VARIANT KEYTEMPLATE: the trigger of a variant.
add_trigger() {
    local table=$1 variant=$2 tmpl=$3 fn
    case $variant in
        baseline | baseline_small) return 0 ;;
        invalidate) fn="cachebridge.invalidate('$tmpl')" ;;
        write_through) fn="cachebridge.write_through('$tmpl')" ;;
        notify) fn="bench_notify()" ;;
        sync_del) fn="bench_sync_del()" ;;
        sync_set) fn="bench_sync_set()" ;;
        *) cb_die "unknown variant $variant" ;;
    esac
    q1 "CREATE TRIGGER bench_cache AFTER INSERT OR UPDATE OR DELETE ON $table
        FOR EACH ROW EXECUTE FUNCTION $fn" >/dev/null
}

# server_failed WHAT: FAIL, with the end of the server log.
server_failed() {
    tail -n 15 "$DIR/postgresql.log" >&2
    bench_fail "$1 (server log above)"
}

# timed SQL...: sets MS to the milliseconds of the last statement, as psql's
# \timing sees them (round trip, COMMIT and delivery after it included).
timed() {
    local out
    out=$(q -c '\timing on' "$@" 2>>"$DIR/psql-warnings.log") || server_failed "statement failed: $*"
    MS=$(awk '/^Time:/ { t = $2 } END { print t }' <<<"$out")
}

# ---------------------------------------------------------------- servers

start_servers() {
    cb_ensure_packages
    if [ -n "$LIBRARY" ]; then
        [ -r "$LIBRARY" ] || cb_die "CB_BENCH_LIBRARY $LIBRARY is not readable"
    elif [ "${CB_BENCH_NO_BUILD:-}" != 1 ]; then
        cb_build_install
    fi
    cb_pick_user
    DIR=$(mktemp -d /tmp/cachebridge-bench.XXXXXX)
    chown "$CB_USER" "$DIR" 2>/dev/null || true
    chmod 755 "$DIR"
    trap stop_servers EXIT
    REDIS_PORT=$(cb_free_port 6390)
    cb_redis_start "$DIR" "$REDIS_PORT"
    PG_PORT=$(cb_free_port 5440)
    cb_pg_init "$DIR" "$PG_PORT" 127.0.0.1 "$REDIS_PORT" "${PG_SETTINGS[@]}"
    cb_pg_start "$DIR"
    psql -X -q -h "$DIR" -p "$PG_PORT" -U postgres -d postgres -c 'CREATE DATABASE bench'
    q1 'CREATE EXTENSION cachebridge'
    if [ -n "$LIBRARY" ]; then
        # point the functions at the other build, then preload it instead
        q1 "UPDATE pg_proc SET probin = '$LIBRARY' WHERE probin = '\$libdir/cachebridge'" >/dev/null
        cb_pg_stop "$DIR"
        echo "shared_preload_libraries = '$LIBRARY'" |
            cb_as_user tee -a "$DIR/pgdata/postgresql.conf" >/dev/null
        cb_pg_start "$DIR"
    fi
    q <<'SQL'
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench_cache',
                      'row:' || CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    RETURN NULL;
END $$;
CREATE FUNCTION bench_sync_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cachebridge.del('row:' || CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    RETURN NULL;
END $$;
CREATE FUNCTION bench_sync_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM cachebridge.del('row:' || OLD.id);
    ELSE
        PERFORM cachebridge.set('row:' || NEW.id, row_to_json(NEW)::text);
    END IF;
    RETURN NULL;
END $$;
SQL
}

stop_servers() {
    set +e
    cb_pg_stop "$DIR"
    cb_redis_stop "$DIR"
    if [ "${CB_KEEP:-}" = 1 ]; then
        cb_log "kept $DIR"
    else
        rm -rf "$DIR"
    fi
}

print_machine() {
    echo "== machine"
    printf '%-22s %s\n' "cpus (nproc)" "$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf '%-22s %s\n' "memory" "$(awk '/^MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)"
    printf '%-22s %s\n' "kernel" "$(uname -sr)"
    printf '%-22s %s\n' "data directory on" "$(df -T "$DIR" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
    printf '%-22s %s\n' "PostgreSQL" "$(q1 'SHOW server_version')"
    printf '%-22s %s\n' "Redis" "$(rc INFO server | awk -F: '/^redis_version/ { sub(/\r/, ""); print $2 }')"
    printf '%-22s %s\n' "cachebridge" "$(q1 "SELECT extversion FROM pg_extension WHERE extname = 'cachebridge'") ($(git -C "$CB_ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
    printf '%-22s %s\n' "library" "${LIBRARY:-$($CB_PG_CONFIG --pkglibdir)/cachebridge.so}"
    printf '%-22s %s\n' "runs per figure" "$RUNS (memory: $MEM_RUNS)"
    echo
    echo "== PostgreSQL settings"
    q -At -F ' = ' -c "SELECT name, current_setting(name)
        FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
            'shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem',
            'wal_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_level',
            'max_parallel_workers_per_gather', 'shared_preload_libraries',
            'cachebridge.max_pending_memory', 'cachebridge.redis_url') ORDER BY name" |
        sed 's/^/  /'
    echo
}

# ---------------------------------------------------------------- sections

# update_run VARIANT N: one timed UPDATE of every row of an N-row table.
update_run() {
    local variant=$1 n=$2
    make_table bench_t "$n"
    add_trigger bench_t "$variant" 'row:{id}'
    rc FLUSHALL >/dev/null
    prefill row: "$n"
    q -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    timed -c "UPDATE bench_t SET n = n + 1, updated_at = updated_at + interval '1 day'"
    CHECK=
    case $variant in
        invalidate | sync_del) check_gone "$n"; check_stats ;;
        write_through | sync_set) check_rows bench_t row: "$n" 0; check_stats ;;
        *) CHECK="no Redis effect to check" ;;
    esac
    printf '  %-14s %8s rows  %10.1f ms   %s\n' "$variant" "$n" "$MS" "$CHECK"
    record update "$variant" "$MS"
}

section_update() {
    local run v
    echo "== update: $RUNS runs, variants interleaved"
    for ((run = 1; run <= RUNS; run++)); do
        echo " run $run"
        for v in baseline invalidate write_through notify; do update_run "$v" "$ROWS"; done
        for v in baseline_small sync_del sync_set; do update_run "$v" "$SYNC_ROWS"; done
    done
    q1 "DROP TABLE bench_t" >/dev/null
    echo
}

# pgbench_run VARIANT: one pgbench run; records its TPS.
pgbench_run() {
    local variant=$1 accounts=$((PGB_SCALE * 100000)) out tps touched left wrong
    q1 "DROP TRIGGER IF EXISTS bench_cache ON pgbench_accounts" >/dev/null
    add_trigger pgbench_accounts "$variant" 'acct:{aid}'
    rc FLUSHALL >/dev/null
    [ "$variant" = invalidate ] && prefill acct: "$accounts"
    q -c 'VACUUM pgbench_accounts' -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    out=$(pgbench -h "$DIR" -p "$PG_PORT" -U postgres -c "$PGB_CLIENTS" -j "$PGB_CLIENTS" \
        -T "$PGB_SECONDS" bench 2>&1) || { echo "$out"; bench_fail "pgbench failed"; }
    tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
    [ -n "$tps" ] || { echo "$out"; bench_fail "no TPS in pgbench output"; }
    touched=$(q1 "SELECT count(DISTINCT aid) FROM pgbench_history")
    [ "$variant" = baseline ] || await_delivery
    case $variant in
        invalidate)
            left=$(count_keys)
            [ "$left" = $((accounts - touched)) ] ||
                bench_fail "$touched accounts changed, but $((accounts - left)) of $accounts pre-filled keys were removed"
            wrong=$(q1 "SELECT count(*) FROM (SELECT DISTINCT aid FROM pgbench_history) h
                        WHERE cachebridge.get('acct:' || aid) IS NOT NULL")
            [ "$wrong" = 0 ] || bench_fail "$wrong changed accounts still have a cached value"
            CHECK="$touched keys invalidated, "; check_stats ;;
        write_through)
            left=$(count_keys)
            [ "$left" = "$touched" ] || bench_fail "$touched accounts changed, Redis holds $left keys"
            wrong=$(q1 "SELECT count(*) FROM (SELECT DISTINCT aid FROM pgbench_history) h
                        JOIN pgbench_accounts a USING (aid)
                        WHERE cachebridge.get('acct:' || aid) IS DISTINCT FROM row_to_json(a)::text")
            [ "$wrong" = 0 ] || bench_fail "$wrong of $touched cached accounts differ from their row"
            CHECK="$touched keys equal row_to_json, "; check_stats ;;
        *) CHECK="$touched accounts changed" ;;
    esac
    printf '  %-14s %10.1f tps   %s\n' "$variant" "$tps" "$CHECK"
    record pgbench "$variant" "$tps"
}

section_pgbench() {
    local run v
    echo "== pgbench: scale $PGB_SCALE, -c $PGB_CLIENTS -j $PGB_CLIENTS -T $PGB_SECONDS, $RUNS runs, variants interleaved"
    pgbench -h "$DIR" -p "$PG_PORT" -U postgres -i -q -s "$PGB_SCALE" bench >/dev/null 2>&1 ||
        bench_fail "pgbench -i failed"
    for ((run = 1; run <= RUNS; run++)); do
        echo " run $run"
        for v in baseline invalidate write_through; do pgbench_run "$v"; done
    done
    q1 "DROP TRIGGER IF EXISTS bench_cache ON pgbench_accounts" >/dev/null
    echo
}

# memory_run VARIANT: VmHWM of a fresh backend running one MEM_ROWS UPDATE.
memory_run() {
    local variant=$1 out ms before after
    make_table bench_m "$MEM_ROWS"
    add_trigger bench_m "$variant" 'row:{id}'
    rc FLUSHALL >/dev/null
    prefill row: "$MEM_ROWS"
    q -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    out=$(q 2>>"$DIR/psql-warnings.log" <<'SQL'
SELECT pg_backend_pid() AS pid \gset
\setenv CB_BENCH_PID :pid
\! awk '/^VmHWM/ { print "before", $2 }' /proc/$CB_BENCH_PID/status
\timing on
UPDATE bench_m SET n = n + 1, updated_at = updated_at + interval '1 day';
\timing off
\! awk '/^VmHWM/ { print "after", $2 }' /proc/$CB_BENCH_PID/status
SQL
    ) || server_failed "memory run $variant failed"
    ms=$(awk '/^Time:/ { print $2 }' <<<"$out")
    before=$(awk '/^before/ { print $2 }' <<<"$out")
    after=$(awk '/^after/ { print $2 }' <<<"$out")
    CHECK=
    case $variant in
        invalidate) check_gone "$MEM_ROWS"; check_stats ;;
        write_through) check_rows bench_m row: "$MEM_ROWS" 1; check_stats ;;
        *) CHECK="no Redis effect to check" ;;
    esac
    printf '  %-14s VmHWM %7.1f MB (%6.1f MB at start)  %9.1f ms   %s\n' "$variant" \
        "$(awk -v k="$after" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$before" 'BEGIN { print k / 1024 }')" "$ms" "$CHECK"
    record memory "$variant" "$(awk -v k="$after" 'BEGIN { print k / 1024 }')"
    record memory_ms "$variant" "$ms"
}

section_memory() {
    local run v
    echo "== memory: UPDATE of $MEM_ROWS rows in one transaction, $MEM_RUNS runs, fresh backend each"
    for ((run = 1; run <= MEM_RUNS; run++)); do
        echo " run $run"
        for v in baseline invalidate write_through; do memory_run "$v"; done
    done
    q1 "DROP TABLE bench_m" >/dev/null
    echo
}

# ---------------------------------------------------------------- report

# report_line SECTION VARIANT LABEL BASE_VARIANT UNIT: median, spread, ratio.
report_line() {
    local med min max base ratio
    med=$(stat_of "$1" "$2" median)
    [ -n "$med" ] || return 0
    min=$(stat_of "$1" "$2" min)
    max=$(stat_of "$1" "$2" max)
    base=$(stat_of "$1" "$4" median)
    ratio=$(awk -v m="$med" -v b="$base" -v s="$1" 'BEGIN {
        if (b == 0) print "-"; else if (s == "pgbench") printf "%.2f", b / m; else printf "%.2f", m / b }')
    printf '%-48s %11.1f %-4s %11s %6sx\n' "$3" "$med" "$5" \
        "$(printf '%.0f-%.0f' "$min" "$max")" "$ratio"
}

report() {
    echo "== results: medians of $RUNS runs (memory: $MEM_RUNS); ratio = cost relative to the no-trigger baseline"
    if grep -q '^update' "$DIR/results.tsv"; then
        printf '\n%-48s %16s %11s %7s\n' "UPDATE of every row, one statement" "median" "min-max" "ratio"
        report_line update baseline "no trigger ($ROWS rows)" baseline ms
        report_line update invalidate "cachebridge.invalidate('row:{id}')" baseline ms
        report_line update write_through "cachebridge.write_through('row:{id}')" baseline ms
        report_line update notify "PL/pgSQL pg_notify per row" baseline ms
        report_line update baseline_small "no trigger ($SYNC_ROWS rows)" baseline_small ms
        report_line update sync_del "PL/pgSQL cachebridge.del() per row ($SYNC_ROWS)" baseline_small ms
        report_line update sync_set "PL/pgSQL cachebridge.set() per row ($SYNC_ROWS)" baseline_small ms
    fi
    if grep -q '^pgbench' "$DIR/results.tsv"; then
        printf '\n%-48s %16s %11s %7s\n' "pgbench TPC-B, -s $PGB_SCALE -c $PGB_CLIENTS -T $PGB_SECONDS" "median" "min-max" "ratio"
        report_line pgbench baseline "no trigger" baseline tps
        report_line pgbench invalidate "invalidate('acct:{aid}') on pgbench_accounts" baseline tps
        report_line pgbench write_through "write_through('acct:{aid}') on pgbench_accounts" baseline tps
        echo "  (ratio = baseline TPS / TPS: the slowdown)"
    fi
    if grep -q '^memory' "$DIR/results.tsv"; then
        printf '\n%-48s %16s %11s %7s\n' "peak backend memory (VmHWM), $MEM_ROWS-row UPDATE" "median" "min-max" "ratio"
        report_line memory baseline "no trigger" baseline MB
        report_line memory invalidate "invalidate, max_pending_memory $(q1 'SHOW cachebridge.max_pending_memory')" baseline MB
        report_line memory write_through "write_through, max_pending_memory $(q1 'SHOW cachebridge.max_pending_memory')" baseline MB
        report_line memory_ms baseline "  time: no trigger" baseline ms
        report_line memory_ms invalidate "  time: invalidate" baseline ms
        report_line memory_ms write_through "  time: write_through" baseline ms
        echo "  (VmHWM includes the shared buffers the backend touched: compare with the baseline)"
    fi
    if [ -s "$DIR/psql-warnings.log" ]; then
        echo
        echo "== server messages during timed statements (first of each)"
        sort "$DIR/psql-warnings.log" | uniq -c | sort -rn | head -5
    fi
}

main() {
    start_servers
    : >"$DIR/results.tsv"
    print_machine
    for s in $SECTIONS; do
        case $s in
            update) section_update ;;
            pgbench) section_pgbench ;;
            memory) section_memory ;;
            *) cb_die "unknown section $s (update, pgbench, memory)" ;;
        esac
    done
    report
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main; fi
