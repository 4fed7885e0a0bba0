#!/usr/bin/env bash
# test/bench/run.sh -- the benchmark suite: cachebridge side by side with the
# ways people keep caches fresh today.  `make bench` runs it.
#
# Starts its own PostgreSQL 15 (cachebridge preloaded, fsync on) and
# redis-server, and a memcached for pgmemcache, as an unprivileged user on
# loopback and unix sockets in a temporary directory (test/lib.sh and the
# helpers of test/bench/triggers.sh), runs every workload RUNS times with the
# variants interleaved, and prints a table of medians and ratios to the
# no-trigger baseline measured in the same run.
#
# Workloads:
#   bulk     one UPDATE of BULK_ROWS rows, one INSERT ... SELECT of BULK_ROWS
#            rows, one DELETE of BULK_ROWS rows (autocommit, timed by psql,
#            COMMIT and the delivery after it included)
#   oltp     pgbench TPC-B-like, and a custom script of single-row UPDATEs of
#            pgbench_accounts (the cached table), at 1 and 2 clients: TPS, the
#            CPU per transaction of PostgreSQL and Redis together (every
#            server process, from /proc; the pgbench client not counted), and
#            for durable variants the worker's CPU per transaction
#   shard    shard_for on 1,000,000 keys vs hashtext vs a PL/pgSQL ketama
#            ring, 3 and 1,000 nodes, and two C floors of its signature
#            (test/bench/shard_for.sh, test/bench/shard_floor.c)
#   memory   peak backend memory (VmHWM) of a 1,000,000-row UPDATE with no
#            trigger, invalidate and write_through (triggers.sh's section)
#   refresh  CALL cachebridge.refresh() of 1,000,000 narrow rows with
#            write_through attached: rows/s, the time against a baseline run
#            interleaved with it (one statement reading, locking FOR SHARE and
#            rendering as JSON every row, without cachebridge), the CPU time
#            per row of the backend and of redis-server, what Redis ran for
#            it (INFO commandstats), and the backend's peak private memory
#            growth (RssAnon sampled every 50 ms, minus its start)
#   cluster  not run by default: a Redis Cluster of three masters with a
#            replica each (test/lib.sh) against the single redis-server,
#            interleaved: the bulk UPDATE with invalidate and write_through
#            and pgbench TPC-B with write_through, durable; the table shows
#            cluster time / single time (or single TPS / cluster TPS).
#            Both also run against one redis-server with a replica (what
#            replication costs, apart from the cluster), and the CPU time
#            the Redis servers spent (per change, or per transaction) is
#            shown beside them
#   tls      not run by default: the same redis-server over rediss:// (its TLS
#            port, certificates from test/make_certs.sh) and redis://,
#            interleaved: the bulk UPDATE with invalidate and write_through
#            and pgbench TPC-B with write_through, durable; the table shows
#            the TLS cost (TLS time / plain time, plain TPS / TLS TPS)
#
# Variants of bulk and oltp: no trigger; cachebridge.invalidate and
# cachebridge.write_through (format=json), each in delivery sync and durable
# (the default); cachebridge.publish('ev:bench') (one stream entry per row,
# every transaction on one stream), sync and durable -- in durable mode the
# worker sends the entries, so the time until they are all in the stream is
# recorded too ("pub_durable, until in the stream"); a PL/pgSQL trigger
# calling pg_notify per row; a PL/pgSQL
# trigger calling pgmemcache's memcache_set/memcache_delete per row against a
# memcached (installed from Debian when missing; skipped with the reason if
# it cannot be installed).
#
# After every cachebridge run Redis is checked against the table (after
# cachebridge.wait_delivered(60000)): write_through keys equal row_to_json of
# their row, pre-filled stale keys are gone after invalidate and DELETE, the
# stream holds one entry per changed row (bulk) or per transaction (oltp).
# Version markers ("<key>#cbv") are not counted.  A lost effect prints FAIL
# and the script exits 1.
#
# Usage: sudo bash test/bench/run.sh [--smoke] [RUNS]     (default 3)
#   --smoke  tiny sizes, 1 run: checks that every part works (< 2 minutes)
#
# Environment (defaults in brackets; printed at the start):
#   CB_BENCH_SECTIONS        ["bulk oltp shard memory refresh"]; add "tls" (or
#                            run CB_BENCH_SECTIONS=tls alone) for TLS vs plain,
#                            "cluster" for a Redis Cluster vs one Redis
#   CB_BENCH_REFRESH_ROWS    [1000000]
#   CB_BENCH_BULK_ROWS       [200000]
#   CB_BENCH_PGBENCH_SCALE   [5]      CB_BENCH_PGBENCH_SECONDS [4]
#   CB_BENCH_CLIENTS         ["1 2"]
#   CB_BENCH_SHARD_RUNS      [5]      CB_BENCH_SHARD_KEYS [1000000]
#   CB_BENCH_PLPGSQL_RUNS    [3]      runs of the PL/pgSQL ring
#   CB_BENCH_MEM_ROWS        [1000000] CB_BENCH_MEM_RUNS [2]
#   CB_BENCH_FSYNC           [on]     CB_BENCH_NO_BUILD=1, CB_KEEP=1 as in triggers.sh
#   CB_BENCH_NO_MEMCACHE=1   do not install or run pgmemcache/memcached
#   CB_BENCH_VARIANTS        [all] the trigger variants of bulk and oltp, e.g. "baseline pub_durable"

set -euo pipefail

SMOKE=0
if [ "${1:-}" = --smoke ]; then SMOKE=1; shift; fi
if [ $SMOKE = 1 ]; then
    : "${CB_BENCH_RUNS:=1}" "${CB_BENCH_BULK_ROWS:=2000}" "${CB_BENCH_PGBENCH_SCALE:=1}"
    : "${CB_BENCH_PGBENCH_SECONDS:=1}" "${CB_BENCH_SHARD_RUNS:=1}" "${CB_BENCH_SHARD_KEYS:=10000}"
    : "${CB_BENCH_PLPGSQL_RUNS:=1}" "${CB_BENCH_MEM_ROWS:=10000}" "${CB_BENCH_MEM_RUNS:=1}"
    : "${CB_BENCH_REFRESH_ROWS:=10000}"
fi
export CB_BENCH_RUNS=${1:-${CB_BENCH_RUNS:-3}}
export CB_BENCH_MEM_ROWS=${CB_BENCH_MEM_ROWS:-1000000}
export CB_BENCH_MEM_RUNS=${CB_BENCH_MEM_RUNS:-2}
set --
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/triggers.sh"

BENCH_SECTIONS=${CB_BENCH_SECTIONS:-"bulk oltp shard memory refresh"}
REFRESH_ROWS=${CB_BENCH_REFRESH_ROWS:-1000000}
BULK_ROWS=${CB_BENCH_BULK_ROWS:-200000}
PGB_SCALE=${CB_BENCH_PGBENCH_SCALE:-5}
PGB_SECONDS=${CB_BENCH_PGBENCH_SECONDS:-4}
CLIENTS=${CB_BENCH_CLIENTS:-"1 2"}
SHARD_RUNS=${CB_BENCH_SHARD_RUNS:-5}
export CB_BENCH_SHARD_KEYS=${CB_BENCH_SHARD_KEYS:-1000000}
export CB_BENCH_PLPGSQL_RUNS=${CB_BENCH_PLPGSQL_RUNS:-3}
VARIANTS=${CB_BENCH_VARIANTS:-"baseline inv_sync inv_durable wt_sync wt_durable pub_sync pub_durable notify memcache"}
MEMCACHE_SKIP=
DEGRADED=
# where bulk_run and oltp_run record (the tls section sets them)
SECTION_PREFIX=
VARIANT_SUFFIX=

# ---------------------------------------------------------------- memcached

# Installs pgmemcache and memcached from Debian when missing; on failure sets
# MEMCACHE_SKIP to the reason.
ensure_memcache() {
    if [ "${CB_BENCH_NO_MEMCACHE:-}" = 1 ]; then
        MEMCACHE_SKIP="CB_BENCH_NO_MEMCACHE=1"
        return
    fi
    local missing=() p
    for p in postgresql-15-pgmemcache memcached; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    cb_log "installing ${missing[*]}"
    if ! { cb_as_root apt-get update -qq && cb_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"/tmp/cb-bench-apt.$$.log" 2>&1; then
        MEMCACHE_SKIP="could not install ${missing[*]}: $(tail -n 1 "/tmp/cb-bench-apt.$$.log")"
    fi
    rm -f "/tmp/cb-bench-apt.$$.log"
    # Debian starts a memcached service on port 11211: the benchmark runs its own
    if [ -z "$MEMCACHE_SKIP" ] && [[ " ${missing[*]} " == *" memcached "* ]]; then
        cb_as_root systemctl stop memcached >/dev/null 2>&1 || true
    fi
}

# Starts memcached on a free loopback port as CB_USER.
memcache_start() {
    MEMCACHE_PORT=$(cb_free_port 11311)
    cb_as_user memcached -d -l 127.0.0.1 -p "$MEMCACHE_PORT" -U 0 -m 1024 \
        -P "$DIR/memcached.pid" || { MEMCACHE_SKIP="memcached did not start"; return; }
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHE_PORT") 2>/dev/null && return
        sleep 0.1
    done
    MEMCACHE_SKIP="memcached on port $MEMCACHE_PORT does not answer"
}

memcache_stop() {
    [ -f "$DIR/memcached.pid" ] || return 0
    kill "$(cat "$DIR/memcached.pid")" 2>/dev/null
    rm -f "$DIR/memcached.pid"
}

stop_all() {
    set +e
    memcache_stop
    [ -n "${DIR:-}" ] && cb_redis_cluster_stop "$DIR"
    [ -n "${DIR:-}" ] && cb_redis_stop "$DIR/repl1" && cb_redis_stop "$DIR/repl0"
    stop_servers
    [ -n "${CB_REDIS_TLS_CERTS:-}" ] && rm -rf "$CB_REDIS_TLS_CERTS"
}

# ---------------------------------------------------------------- setup

# The alternatives' trigger functions for TABLE, key PREFIX and key COLUMN,
# as users write them: one pg_notify, or one pgmemcache call, per row.
define_alternatives() {
    local table=$1 prefix=$2 col=$3
    q <<SQL
CREATE OR REPLACE FUNCTION ${table}_notify() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('cache_invalidate', '$prefix' || OLD.$col);
    ELSE
        PERFORM pg_notify('cache_invalidate', '$prefix' || NEW.$col);
    END IF;
    RETURN NULL;
END \$\$;
SQL
    [ -n "$MEMCACHE_SKIP" ] && return
    q <<SQL
CREATE OR REPLACE FUNCTION ${table}_memcache() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM memcache_delete('$prefix' || OLD.$col);
    ELSE
        PERFORM memcache_set('$prefix' || NEW.$col, row_to_json(NEW)::text);
    END IF;
    RETURN NULL;
END \$\$;
SQL
}

# set_variant TABLE VARIANT TEMPLATE: the trigger and delivery mode of VARIANT
# (the delivery mode applies to the sessions started afterwards).
set_variant() {
    local table=$1 variant=$2 tmpl=$3 fn mode=durable
    q1 "DROP TRIGGER IF EXISTS bench_cache ON $table" >/dev/null
    case $variant in
        baseline) fn= ;;
        inv_sync) fn="cachebridge.invalidate('$tmpl')"; mode=sync ;;
        inv_durable) fn="cachebridge.invalidate('$tmpl')" ;;
        wt_sync) fn="cachebridge.write_through('$tmpl', 'format=json')"; mode=sync ;;
        wt_durable) fn="cachebridge.write_through('$tmpl', 'format=json')" ;;
        pub_sync) fn="cachebridge.publish('ev:bench')"; mode=sync ;;
        pub_durable) fn="cachebridge.publish('ev:bench')" ;;
        notify) fn="${table}_notify()" ;;
        memcache) fn="${table}_memcache()" ;;
        *) cb_die "unknown variant $variant" ;;
    esac
    q1 "ALTER DATABASE bench SET cachebridge.delivery = $mode" >/dev/null
    [ -z "$fn" ] || q1 "CREATE TRIGGER bench_cache AFTER INSERT OR UPDATE OR DELETE ON $table
        FOR EACH ROW EXECUTE FUNCTION $fn" >/dev/null
}

# skip_variant VARIANT: true when VARIANT cannot run here.
skip_variant() { [ "$1" = memcache ] && [ -n "$MEMCACHE_SKIP" ]; }

# check_memcache SQL: memcached holds row_to_json of the rows SQL selects
# (at most 1,000 of them, a sample) -- or (GONE=1) no value for them.
check_memcache() {
    local sql=$1 gone=${2:-0} prefix=$3 col=$4 bad
    if [ "$gone" = 1 ]; then
        bad=$(q1 "SELECT count(*) FROM ($sql LIMIT 1000) r WHERE memcache_get('$prefix' || r.$col) IS NOT NULL")
    else
        bad=$(q1 "SELECT count(*) FROM ($sql LIMIT 1000) r WHERE memcache_get('$prefix' || r.$col) IS DISTINCT FROM row_to_json(r)::text")
    fi
    [ "$bad" = 0 ] || bench_fail "memcached: $bad of a sample of the rows have a wrong value"
    CHECK="memcached sample ok"
}

# check_stream N: after delivery, the stream ev:bench holds N entries.
check_stream() {
    local n=$1 len
    await_delivery
    len=$(rc XLEN ev:bench)
    [ "$len" = "$n" ] || bench_fail "ev:bench holds $len entries, $n expected"
    CHECK="$n stream entries, "
    check_stats
}

# ---------------------------------------------------------------- bulk

# bulk_run OP VARIANT: one timed OP (update, insert, delete) of BULK_ROWS rows.
bulk_run() {
    local op=$1 variant=$2 n=$BULK_ROWS
    if [ "$op" = insert ]; then make_table bench_t 0; else make_table bench_t "$n"; fi
    set_variant bench_t "$variant" 'row:{id}'
    rc FLUSHALL >/dev/null
    prefill row: "$n"
    [ "$variant" = memcache ] && q1 "SELECT memcache_flush_all()" >/dev/null
    [ "$variant" = memcache ] && [ "$op" = delete ] &&
        q1 "SELECT count(memcache_set('row:' || id, 'stale')) FROM bench_t WHERE id <= 1000" >/dev/null
    q -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    case $op in
        update) timed -c "UPDATE bench_t SET n = n + 1, updated_at = updated_at + interval '1 day'" ;;
        insert) timed -c "INSERT INTO bench_t SELECT * FROM bench_src" ;;
        delete) timed -c "DELETE FROM bench_t" ;;
    esac
    CHECK=
    case $variant:$op in
        inv_*:* | wt_*:delete) check_gone "$n"; check_stats ;;
        wt_*:*)
            # past cachebridge.max_pending_memory a trigger degrades to a
            # pattern invalidation (counted): then a key may be gone, never stale
            check_rows bench_t row: "$n" "$(q1 "SELECT (degraded > 0)::int FROM cachebridge.stats")"
            check_stats ;;
        pub_durable:*)
            local t0=$(date +%s%N)
            check_stream "$n"
            record "${SECTION_PREFIX}bulk_${op}" pub_delivered "$(awk -v ms="$MS" -v ns="$(($(date +%s%N) - t0))" 'BEGIN { print ms + ns / 1e6 }')" ;;
        pub_*:*) check_stream "$n" ;;
        memcache:delete) check_memcache "SELECT generate_series(1, 1000) AS id" 1 row: id ;;
        memcache:*) check_memcache "SELECT * FROM bench_t" 0 row: id ;;
        *) CHECK="no effect to check" ;;
    esac
    printf '  %-7s %-12s %8s rows  %10.1f ms   %s\n' "$op" "$variant" "$n" "$MS" "$CHECK"
    record "${SECTION_PREFIX}bulk_$op" "$variant$VARIANT_SUFFIX" "$MS"
    [[ $CHECK != *"degraded 0"* && $CHECK == *degraded* ]] && DEGRADED+="$op/$variant "
    return 0
}

section_bulk() {
    local run op v
    echo "== bulk: $BULK_ROWS rows per statement, $RUNS runs, variants interleaved"
    make_table bench_src "$BULK_ROWS"
    define_alternatives bench_t row: id
    for ((run = 1; run <= RUNS; run++)); do
        echo " run $run"
        for op in update insert delete; do
            for v in $VARIANTS; do
                skip_variant "$v" || bulk_run "$op" "$v"
            done
        done
    done
    q1 "DROP TABLE bench_t, bench_src" >/dev/null
    echo
}

# ---------------------------------------------------------------- oltp

# worker_ticks: "pid ticks" (user + system CPU, in clock ticks) of every
# cachebridge worker of the benchmark's server running now.
worker_ticks() {
    local pid postmaster
    postmaster=$(head -n 1 "$DIR/pgdata/postmaster.pid")
    for pid in $(pgrep -P "$postmaster" -f '^postgres: cachebridge worker' || true); do
        [ -r "/proc/$pid/stat" ] &&
            awk -v p="$pid" '{ sub(/^.*\) /, ""); print p, $12 + $13 }' "/proc/$pid/stat"
    done
    return 0
}

# server_ticks: user + system CPU (clock ticks) of every process the
# benchmark's PostgreSQL ever ran (the postmaster, its live children, and
# through its cutime/cstime the children it has reaped: the backends of a
# finished pgbench run), plus redis-server's.  A child that exits between two
# readings moves from the second term to the first, so differences add up.
server_ticks() {
    local postmaster pid
    postmaster=$(head -n 1 "$DIR/pgdata/postmaster.pid")
    {
        awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$postmaster/stat"
        for pid in $(pgrep -P "$postmaster" || true) $(cat "$DIR/redis.pid"); do
            awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || true
        done
    } | awk '{ s += $1 } END { print s }'
}

# server_us BEFORE AFTER XACTS: microseconds of server CPU per transaction
# between two server_ticks readings.
server_us() {
    awk -v b="$1" -v a="$2" -v xacts="$3" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f", (xacts > 0 ? (a - b) * 1e6 / hz / xacts : 0) }'
}

# worker_us BEFORE AFTER XACTS: microseconds of worker CPU per transaction
# between two worker_ticks readings.
worker_us() {
    awk -v xacts="$3" -v hz="$(getconf CLK_TCK)" '
        FNR == NR { before[$1] = $2; next }
        { used += $2 - ($1 in before ? before[$1] : 0) }
        END { printf "%.1f", (xacts > 0 ? used * 1e6 / hz / xacts : 0) }' \
        <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# oltp_run WORKLOAD CLIENTS VARIANT: one pgbench run; records its TPS, the
# CPU per transaction of PostgreSQL and Redis together (firmer than TPS on a
# shared machine), and for durable variants the worker's CPU per transaction.
oltp_run() {
    local workload=$1 clients=$2 variant=$3 accounts=$((PGB_SCALE * 100000))
    local out tps touched touched_sql left wrong xacts args=() ticks0 ticks1 cpu0 cpu1
    q1 "DROP TRIGGER IF EXISTS bench_cache ON pgbench_accounts" >/dev/null
    q1 "UPDATE pgbench_accounts SET abalance = 0 WHERE abalance <> 0" >/dev/null
    set_variant pgbench_accounts "$variant" 'acct:{aid}'
    rc FLUSHALL >/dev/null
    [[ $variant == inv_* ]] && prefill acct: "$accounts"
    [ "$variant" = memcache ] && q1 "SELECT memcache_flush_all()" >/dev/null
    q -c 'VACUUM pgbench_accounts' -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    case $workload in
        tpcb) touched_sql="SELECT DISTINCT aid FROM pgbench_history" ;;
        update)
            args=(-n -f "$DIR/update.pgbench")
            touched_sql="SELECT aid FROM pgbench_accounts WHERE abalance <> 0" ;;
    esac
    ticks0=$(worker_ticks)
    cpu0=$(server_ticks)
    out=$(pgbench -h "$DIR" -p "$PG_PORT" -U postgres -c "$clients" -j "$clients" \
        -T "$PGB_SECONDS" "${args[@]}" bench 2>&1) || { echo "$out"; bench_fail "pgbench failed"; }
    ticks1=$(worker_ticks)
    # the run's backends have exited once no session but the worker's is left
    for _ in $(seq 50); do
        [ "$(q1 "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
        sleep 0.1
    done
    sleep 0.2
    cpu1=$(server_ticks)
    tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
    [ -n "$tps" ] || { echo "$out"; bench_fail "no TPS in pgbench output"; }
    touched=$(q1 "SELECT count(*) FROM ($touched_sql) t")
    xacts=$(awk '/^number of transactions actually processed:/ { print $6; exit }' <<<"$out")
    record "${SECTION_PREFIX}cpu_${workload}_c$clients" "$variant$VARIANT_SUFFIX" "$(server_us "$cpu0" "$cpu1" "$xacts")"
    [[ $variant == *_durable ]] &&
        record "${SECTION_PREFIX}worker_${workload}_c$clients" "$variant$VARIANT_SUFFIX" "$(worker_us "$ticks0" "$ticks1" "$xacts")"
    CHECK=
    case $variant in
        pub_*) check_stream "$xacts" ;;
        inv_*)
            await_delivery
            left=$(count_keys)
            [ "$left" = $((accounts - touched)) ] ||
                bench_fail "$touched accounts changed, but $((accounts - left)) of $accounts pre-filled keys were removed"
            wrong=$(q1 "SELECT count(*) FROM ($touched_sql) t WHERE cachebridge.get('acct:' || aid) IS NOT NULL")
            [ "$wrong" = 0 ] || bench_fail "$wrong changed accounts still have a cached value"
            CHECK="$touched keys invalidated, "; check_stats ;;
        wt_*)
            await_delivery
            left=$(count_keys)
            [ "$left" = "$touched" ] || bench_fail "$touched accounts changed, Redis holds $left keys"
            wrong=$(q1 "SELECT count(*) FROM ($touched_sql) t JOIN pgbench_accounts a USING (aid)
                        WHERE cachebridge.get('acct:' || aid) IS DISTINCT FROM row_to_json(a)::text")
            [ "$wrong" = 0 ] || bench_fail "$wrong of $touched cached accounts differ from their row"
            CHECK="$touched keys equal row_to_json, "; check_stats ;;
        memcache)
            check_memcache "SELECT a.* FROM pgbench_accounts a WHERE aid IN ($touched_sql)" 0 acct: aid ;;
        *) CHECK="$touched accounts changed" ;;
    esac
    printf '  %-7s -c %s %-12s %9.1f tps   %s\n' "$workload" "$clients" "$variant" "$tps" "$CHECK"
    record "${SECTION_PREFIX}oltp_${workload}_c$clients" "$variant$VARIANT_SUFFIX" "$tps"
}

section_oltp() {
    local run w c v
    echo "== oltp: pgbench scale $PGB_SCALE, -T $PGB_SECONDS, clients $CLIENTS, $RUNS runs, variants interleaved"
    pgbench -h "$DIR" -p "$PG_PORT" -U postgres -i -q -s "$PGB_SCALE" bench >/dev/null 2>&1 ||
        bench_fail "pgbench -i failed"
    printf '%s\n' "\\set aid random(1, $((PGB_SCALE * 100000)))" \
        'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;' >"$DIR/update.pgbench"
    define_alternatives pgbench_accounts acct: aid
    for ((run = 1; run <= RUNS; run++)); do
        echo " run $run"
        for w in tpcb update; do
            for c in $CLIENTS; do
                for v in $VARIANTS; do
                    skip_variant "$v" || oltp_run "$w" "$c" "$v"
                done
            done
        done
    done
    set_variant pgbench_accounts baseline x
    echo
}

# ---------------------------------------------------------------- tls

# tls_use plain|tls: cachebridge (every new session, and the worker) talks to
# the same redis-server on its plain or its TLS port.
tls_use() {
    local url="redis://127.0.0.1:$REDIS_PORT/0"
    [ "$1" = tls ] && url="rediss://127.0.0.1:$CB_REDIS_TLS_PORT/0"
    q -c "ALTER SYSTEM SET cachebridge.redis_url = '$url'" -c 'SELECT pg_reload_conf()' >/dev/null
    for _ in $(seq 50); do
        [ "$(q1 "SELECT current_setting('cachebridge.redis_url')")" = "$url" ] && return
        sleep 0.1
    done
    bench_fail "cachebridge.redis_url was not reloaded"
}

# TLS against plain TCP to the same Redis, interleaved run by run: the bulk
# UPDATE with invalidate and write_through, and pgbench TPC-B with
# write_through on pgbench_accounts, all durable.
section_tls() {
    local run v t c
    echo "== tls: rediss:// vs redis:// to one redis-server, $RUNS runs, interleaved"
    q -c "ALTER SYSTEM SET cachebridge.tls_ca_file = '$CB_REDIS_TLS_CERTS/ca.crt'" \
        -c 'SELECT pg_reload_conf()' >/dev/null
    make_table bench_src "$BULK_ROWS"
    pgbench -h "$DIR" -p "$PG_PORT" -U postgres -i -q -s "$PGB_SCALE" bench >/dev/null 2>&1 ||
        bench_fail "pgbench -i failed"
    SECTION_PREFIX=tls_
    for ((run = 1; run <= RUNS; run++)); do
        echo " run $run"
        for v in baseline inv_durable wt_durable; do
            for t in plain tls; do
                [ "$v" = baseline ] && [ "$t" = tls ] && continue
                tls_use "$t"
                VARIANT_SUFFIX=@$t
                printf '  %-5s' "$t"
                bulk_run update "$v"
            done
        done
        for c in $CLIENTS; do
            for t in plain tls; do
                tls_use "$t"
                VARIANT_SUFFIX=@$t
                printf '  %-5s' "$t"
                oltp_run tpcb "$c" wt_durable
            done
        done
    done
    SECTION_PREFIX=
    VARIANT_SUFFIX=
    tls_use plain
    set_variant pgbench_accounts baseline x
    q1 "DROP TABLE bench_t, bench_src" >/dev/null
    echo
}

# pair_line SECTION VARIANT LABEL UNIT A B: the medians of VARIANT@A and
# VARIANT@B side by side, and the cost of B (B time / A time, or A TPS / B TPS).
pair_line() {
    local a b ratio
    a=$(stat_of "$1" "$2@$5" median)
    b=$(stat_of "$1" "$2@$6" median)
    [ -n "$a" ] && [ -n "$b" ] || return 0
    ratio=$(awk -v a="$a" -v b="$b" -v u="$4" 'BEGIN {
        if (a == 0 || b == 0) print "-"; else if (u == "tps") printf "%.3f", a / b; else printf "%.3f", b / a }')
    printf '| %-44s | %10.1f %-3s | %10.1f %-3s | %7sx |\n' "$3" "$a" "$4" "$b" "$4" "$ratio"
}

# tls_line SECTION VARIANT LABEL UNIT: plain and TLS side by side.
tls_line() { pair_line "$@" plain tls; }

tls_report() {
    grep -q '^tls_' "$DIR/results.tsv" || return 0
    printf '\n| %-44s | %14s | %14s | %8s |\n|---|---:|---:|---:|\n' \
        "TLS vs plain TCP (medians of $RUNS runs)" "redis://" "rediss://" "TLS cost"
    local base c
    base=$(stat_of tls_bulk_update baseline@plain median)
    [ -n "$base" ] && printf '| %-44s | %10.1f %-3s | %14s | %8s |\n' \
        "UPDATE of $BULK_ROWS rows, no trigger" "$base" ms "" ""
    tls_line tls_bulk_update inv_durable "UPDATE of $BULK_ROWS rows, invalidate" ms
    tls_line tls_bulk_update wt_durable "UPDATE of $BULK_ROWS rows, write_through" ms
    for c in $CLIENTS; do
        tls_line "tls_oltp_tpcb_c$c" wt_durable "pgbench TPC-B -c $c, write_through (${PGB_SECONDS}s)" tps
    done
}

# ---------------------------------------------------------------- cluster

# cluster_use single|replicated|cluster: cachebridge (every new session,
# and the worker) talks to the single redis-server, to the one with a
# replica, or to the Redis Cluster.
cluster_use() {
    local url="redis://127.0.0.1:$REDIS_PORT/0"
    [ "$1" = replicated ] && url="redis://127.0.0.1:$REPL_PORT/0"
    [ "$1" = cluster ] && url=$(cb_redis_cluster_url "$DIR")
    q -c "ALTER SYSTEM SET cachebridge.redis_url = '$url'" -c 'SELECT pg_reload_conf()' >/dev/null
    for _ in $(seq 50); do
        [ "$(q1 "SELECT current_setting('cachebridge.redis_url')")" = "$url" ] && return
        sleep 0.1
    done
    bench_fail "cachebridge.redis_url was not reloaded"
}

# cluster_flush TARGET: empties the Redis of TARGET (every master of the
# cluster, or the one server).
cluster_flush() {
    local p
    case $1 in
        single) rc FLUSHALL >/dev/null ;;
        replicated) redis-cli -p "$REPL_PORT" FLUSHALL >/dev/null ;;
        cluster)
            for p in $(cat "$DIR/cluster.ports"); do
                redis-cli -p "$p" FLUSHALL >/dev/null 2>&1 || true
            done ;;
    esac
}

# cluster_redis_cpu TARGET: the CPU time (utime + stime, in clock ticks)
# the redis-servers of TARGET have used, replicas included.
cluster_redis_cpu() {
    local f pids=()
    case $1 in
        single) pids=("$(cat "$DIR/redis.pid")") ;;
        replicated) pids=("$(cat "$DIR/repl0/redis.pid")" "$(cat "$DIR/repl1/redis.pid")") ;;
        cluster) for f in "$DIR"/cluster*/redis.pid; do pids+=("$(cat "$f")"); done ;;
    esac
    for f in "${pids[@]}"; do cat "/proc/$f/stat"; done |
        awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t }'
}

# cluster_cached N: how many of row:1 .. row:N hold a value, read through
# cachebridge (so on whichever Redis it uses), and how many of those differ
# from their row of bench_t.
cluster_cached() {
    q1 "SELECT count(m.value), count(m.value) FILTER (WHERE m.value IS DISTINCT FROM row_to_json(t)::text)
        FROM cachebridge.mget(ARRAY(SELECT 'row:' || g FROM generate_series(1, $1) AS g)) AS m
        LEFT JOIN bench_t t ON m.key = 'row:' || t.id"
}

# cluster_bulk_run TARGET VARIANT: the timed bulk UPDATE on TARGET, checked.
cluster_bulk_run() {
    local target=$1 variant=$2 n=$BULK_ROWS have wrong cpu0 cpu_ms
    make_table bench_t "$n"
    set_variant bench_t "$variant" 'row:{id}'
    cluster_flush "$target"
    # stale copies of every row, for invalidate to remove (filled through
    # cachebridge, so on whichever Redis it uses)
    [[ $variant == inv_* ]] &&
        q1 "SELECT count(cachebridge.set('row:' || g, 'stale')) FROM generate_series(1, $n) AS g" >/dev/null
    q -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    cpu0=$(cluster_redis_cpu "$target")
    timed -c "UPDATE bench_t SET n = n + 1, updated_at = updated_at + interval '1 day'"
    CHECK=
    [[ $variant == baseline ]] || await_delivery
    # the CPU time of the target's servers (replicas included) for the change
    cpu_ms=$(awk -v a="$cpu0" -v b="$(cluster_redis_cpu "$target")" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (b - a) * 1000 / hz }')
    case $variant in
        inv_*)
            IFS='|' read -r have wrong < <(cluster_cached "$n")
            [ "$have" = 0 ] || bench_fail "$target: $have of $n stale keys were not invalidated"
            CHECK="$n keys invalidated, "; check_stats ;;
        wt_*)
            IFS='|' read -r have wrong < <(cluster_cached "$n")
            [ "$have" = "$n" ] && [ "$wrong" = 0 ] ||
                bench_fail "$target: $have of $n keys cached, $wrong of them differ from their row"
            CHECK="$n keys equal row_to_json, "; check_stats ;;
        *) CHECK="no effect to check" ;;
    esac
    printf '  %-10s %-7s %-12s %8s rows  %10.1f ms  %6s ms Redis CPU   %s\n' \
        "$target" update "$variant" "$n" "$MS" "$cpu_ms" "$CHECK"
    record cluster_bulk_update "$variant@$target" "$MS"
    [[ $variant == baseline ]] || record cluster_bulk_redis_cpu "$variant@$target" "$cpu_ms"
}

# cluster_oltp_run TARGET CLIENTS: pgbench TPC-B with write_through on
# TARGET; records the TPS and the Redis servers' CPU time per transaction.
cluster_oltp_run() {
    local target=$1 clients=$2 out tps touched have wrong cpu0 cpu_us n
    q1 "DROP TRIGGER IF EXISTS bench_cache ON pgbench_accounts" >/dev/null
    q1 "UPDATE pgbench_accounts SET abalance = 0 WHERE abalance <> 0" >/dev/null
    q1 "TRUNCATE pgbench_history" >/dev/null
    set_variant pgbench_accounts wt_durable 'acct:{aid}'
    cluster_flush "$target"
    q -c 'VACUUM pgbench_accounts' -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    cpu0=$(cluster_redis_cpu "$target")
    out=$(pgbench -h "$DIR" -p "$PG_PORT" -U postgres -c "$clients" -j "$clients" \
        -T "$PGB_SECONDS" bench 2>&1) || { echo "$out"; bench_fail "pgbench failed"; }
    tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
    [ -n "$tps" ] || { echo "$out"; bench_fail "no TPS in pgbench output"; }
    n=$(awk '/actually processed: / { print $NF; exit }' <<<"$out")
    n=${n%%/*}
    cpu_us=$(awk -v a="$cpu0" -v b="$(cluster_redis_cpu "$target")" -v n="$n" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
    await_delivery
    touched=$(q1 "SELECT count(DISTINCT aid) FROM pgbench_history")
    IFS='|' read -r have wrong < <(q1 "SELECT count(m.value), count(*) FILTER (WHERE m.value IS DISTINCT FROM row_to_json(a)::text)
        FROM cachebridge.mget(ARRAY(SELECT DISTINCT 'acct:' || aid FROM pgbench_history)) AS m
        JOIN pgbench_accounts a ON m.key = 'acct:' || a.aid")
    [ "$have" = "$touched" ] && [ "$wrong" = 0 ] ||
        bench_fail "$target: $touched accounts changed, $have cached, $wrong differ from their row"
    CHECK="$touched keys equal row_to_json, "
    check_stats
    printf '  %-10s tpcb -c %s %-12s %9.1f tps  %6.1f us Redis CPU/tx   %s\n' \
        "$target" "$clients" wt_durable "$tps" "$cpu_us" "$CHECK"
    record "cluster_oltp_tpcb_c$clients" "wt_durable@$target" "$tps"
    record "cluster_oltp_redis_cpu_c$clients" "wt_durable@$target" "$cpu_us"
}

# A Redis Cluster of three masters against the single redis-server,
# interleaved run by run: the bulk UPDATE with no trigger, invalidate and
# write_through, and pgbench TPC-B with write_through, all durable.
section_cluster() {
    local run v t
    echo "== cluster: a Redis Cluster of 3 masters (and 3 replicas) vs one redis-server, $RUNS runs, interleaved"
    cb_redis_cluster_start "$DIR" "$(cb_free_port 7300)"
    # one redis-server with a replica, for the bulk UPDATE and TPC-B
    REPL_PORT=$(cb_free_port 7400)
    mkdir -p "$DIR/repl0" "$DIR/repl1"
    [ "$(id -u)" = 0 ] && chown "$CB_USER" "$DIR/repl0" "$DIR/repl1"
    cb_redis_start "$DIR/repl0" "$REPL_PORT"
    cb_redis_start "$DIR/repl1" "$(cb_free_port $((REPL_PORT + 1)))" --replicaof 127.0.0.1 "$REPL_PORT"
    for _ in $(seq 100); do
        redis-cli -p "$REPL_PORT" INFO replication | grep -q 'slave0:.*state=online' && break
        sleep 0.1
    done
    pgbench -h "$DIR" -p "$PG_PORT" -U postgres -i -q -s "$PGB_SCALE" bench >/dev/null 2>&1 ||
        bench_fail "pgbench -i failed"
    for ((run = 1; run <= RUNS; run++)); do
        echo " run $run"
        for v in baseline inv_durable wt_durable; do
            for t in single replicated cluster; do
                [ "$v" = baseline ] && [ "$t" != single ] && continue
                cluster_use "$t"
                cluster_bulk_run "$t" "$v"
            done
        done
        for t in single replicated cluster; do
            cluster_use "$t"
            cluster_oltp_run "$t" 2
        done
    done
    cluster_use single
    set_variant pgbench_accounts baseline x
    q1 "DROP TABLE bench_t" >/dev/null
    echo
}

# cluster_line SECTION VARIANT LABEL UNIT: one Redis and the cluster side by side.
cluster_line() { pair_line "$@" single cluster; }

cluster_report() {
    grep -q '^cluster_' "$DIR/results.tsv" || return 0
    printf '\n| %-44s | %14s | %14s | %8s |\n|---|---:|---:|---:|\n' \
        "Redis Cluster vs one Redis (medians of $RUNS runs)" "one Redis" "3 masters" "ratio"
    local base
    base=$(stat_of cluster_bulk_update baseline@single median)
    [ -n "$base" ] && printf '| %-44s | %10.1f %-3s | %14s | %8s |\n' \
        "UPDATE of $BULK_ROWS rows, no trigger" "$base" ms "" ""
    cluster_line cluster_bulk_update inv_durable "UPDATE of $BULK_ROWS rows, invalidate" ms
    cluster_line cluster_bulk_update wt_durable "UPDATE of $BULK_ROWS rows, write_through" ms
    cluster_line cluster_bulk_redis_cpu inv_durable "  Redis CPU of the invalidate" ms
    cluster_line cluster_bulk_redis_cpu wt_durable "  Redis CPU of the write_through" ms
    pair_line cluster_bulk_update inv_durable "invalidate, one Redis + replica vs cluster" ms replicated cluster
    pair_line cluster_bulk_redis_cpu inv_durable "  its Redis CPU" ms replicated cluster
    pair_line cluster_bulk_update wt_durable "write_through, one Redis + replica vs cluster" ms replicated cluster
    pair_line cluster_bulk_redis_cpu wt_durable "  its Redis CPU" ms replicated cluster
    cluster_line cluster_oltp_tpcb_c2 wt_durable "pgbench TPC-B -c 2, write_through (${PGB_SECONDS}s)" tps
    cluster_line cluster_oltp_redis_cpu_c2 wt_durable "  its Redis CPU per transaction" us
    pair_line cluster_oltp_tpcb_c2 wt_durable "TPC-B -c 2, one Redis + replica vs cluster" tps replicated cluster
    pair_line cluster_oltp_redis_cpu_c2 wt_durable "  its Redis CPU per transaction" us replicated cluster
}

# ---------------------------------------------------------------- shard, memory

section_shard() {
    echo "== shard: test/bench/shard_for.sh $SHARD_RUNS ($CB_BENCH_SHARD_KEYS keys, PL/pgSQL ring $CB_BENCH_PLPGSQL_RUNS runs)"
    PGHOST=$DIR PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=bench \
        bash "$CB_ROOT/test/bench/shard_for.sh" "$SHARD_RUNS" | tee "$DIR/shard.txt"
    echo
}

# refresh_table: the REFRESH_ROWS-row table bench_r, write_through attached.
refresh_table() {
    q <<SQL >/dev/null
DROP TABLE IF EXISTS bench_r;
CREATE TABLE bench_r (id int PRIMARY KEY, n int NOT NULL, name text NOT NULL);
INSERT INTO bench_r SELECT i, 0, 'customer-' || i FROM generate_series(1, $REFRESH_ROWS) i;
VACUUM ANALYZE bench_r;
SELECT cachebridge.attach('bench_r', 'rr:{id}');
SQL
}

# redis_cpu: the CPU seconds (user + system) redis-server has used so far.
redis_cpu() {
    rc INFO cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.3f", s }'
}

# refresh_baseline_run: what any backfill of bench_r must do, without
# cachebridge, in a fresh backend: read every row, lock it FOR SHARE (as a
# refresh batch does) and render it as JSON (as write_through does); one
# statement, timed by psql.
refresh_baseline_run() {
    local out ms
    q1 'CHECKPOINT' >/dev/null
    out=$(q -c '\timing on' \
        -c 'SELECT count(*) FROM (SELECT row_to_json(r)::text FROM bench_r r FOR SHARE) s' \
        2>>"$DIR/psql-warnings.log") || server_failed "refresh baseline failed"
    ms=$(awk '/^Time:/ { t = $2 } END { print t }' <<<"$out")
    printf '  baseline (read, lock, render) %d rows: %9.1f ms\n' "$REFRESH_ROWS" "$ms"
    record refresh_base ms "$ms"
}

# refresh_run: one CALL cachebridge.refresh() of bench_r, in a fresh
# backend: rows/s, peak memory, and the CPU time of the backend and of
# redis-server (firmer than the elapsed time on a shared machine).
refresh_run() {
    local out ms before after rcpu0 rcpu1 bcpu
    rc FLUSHALL >/dev/null
    q -c 'SELECT cachebridge.stats_reset()' -c 'CHECKPOINT' >/dev/null
    # the backend's private memory (RssAnon, sampled every 50 ms: VmHWM
    # would count the shared buffers it touched) above its size at start
    rm -f "$DIR/refresh.pid" "$DIR/refresh.stat"
    rc CONFIG RESETSTAT >/dev/null
    rcpu0=$(redis_cpu)
    q 2>>"$DIR/psql-warnings.log" >"$DIR/refresh.out" <<SQL &
SELECT pg_backend_pid() AS pid \\gset
\\setenv CB_BENCH_PID :pid
\\! echo \$CB_BENCH_PID > $DIR/refresh.pid
\\timing on
CALL cachebridge.refresh('bench_r', restart => true);
SELECT cachebridge.wait_delivered(600000);
\\timing off
\\! cat /proc/\$CB_BENCH_PID/stat > $DIR/refresh.stat
SQL
    local psql_pid=$! pid peak=0 rss before=
    for _ in $(seq 200); do [ -s "$DIR/refresh.pid" ] && break; sleep 0.05; done
    pid=$(cat "$DIR/refresh.pid")
    while kill -0 "$psql_pid" 2>/dev/null; do
        rss=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        if [ -n "$rss" ]; then
            [ -n "$before" ] || before=$rss
            if [ "$rss" -gt "$peak" ]; then peak=$rss; fi
        fi
        sleep 0.05
    done
    wait "$psql_pid" || server_failed "refresh run failed"
    rcpu1=$(redis_cpu)
    bcpu=$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / t }' "$DIR/refresh.stat")
    out=$(cat "$DIR/refresh.out")
    ms=$(awk '/^Time:/ { t += $2 } END { print t }' <<<"$out")
    after=$peak
    CHECK=
    check_rows bench_r rr: "$REFRESH_ROWS" 0
    check_stats
    printf '  refresh %d rows: %9.1f ms, %8.0f rows/s, CPU: backend %.2f s, redis %.2f s, private memory +%.1f MB   %s\n' \
        "$REFRESH_ROWS" "$ms" \
        "$(awk -v n="$REFRESH_ROWS" -v ms="$ms" 'BEGIN { print n * 1000 / ms }')" "$bcpu" \
        "$(awk -v a="$rcpu0" -v b="$rcpu1" 'BEGIN { print b - a }')" \
        "$(awk -v a="$after" -v b="$before" 'BEGIN { print (a - b) / 1024 }')" "$CHECK"
    # what Redis ran for it, by command (the check's scripts and reads left out)
    printf '    redis commandstats: %s\n' "$(rc INFO commandstats | tr -d '\r' |
        awk -F'[_:,=]' '/^cmdstat_/ && $2 !~ /^(scan|mget|get|eval|info|config|dbsize|select|client|ping|hello|auth|script|flushall)(\||$)/ {
            printf "%s%s %s calls %.0f ms (%.2f us/call)", sep, $2, $4, $6 / 1000, $10; sep = "; " }')"
    record refresh rows_per_s "$(awk -v n="$REFRESH_ROWS" -v ms="$ms" 'BEGIN { print n * 1000 / ms }')"
    record refresh ms "$ms"
    record refresh backend_us_per_row "$(awk -v c="$bcpu" -v n="$REFRESH_ROWS" 'BEGIN { print c * 1e6 / n }')"
    record refresh redis_us_per_row "$(awk -v a="$rcpu0" -v b="$rcpu1" -v n="$REFRESH_ROWS" 'BEGIN { print (b - a) * 1e6 / n }')"
    record refresh_mem growth "$(awk -v a="$after" -v b="$before" 'BEGIN { print (a - b) / 1024 }')"
}

section_refresh() {
    local run
    echo "== refresh: CALL cachebridge.refresh() of $REFRESH_ROWS rows (write_through, durable), $RUNS runs, fresh backend each, interleaved with the baseline"
    q1 "ALTER DATABASE bench RESET cachebridge.delivery" >/dev/null
    refresh_table
    for ((run = 1; run <= RUNS; run++)); do
        refresh_baseline_run
        refresh_run
    done
    q1 "DROP TABLE bench_r" >/dev/null
    echo
}

section_memory_default() {
    q1 "ALTER DATABASE bench RESET cachebridge.delivery" >/dev/null
    section_memory
}

# ---------------------------------------------------------------- report

# line SECTION VARIANT LABEL UNIT: median, min-max, and the cost relative to
# the baseline of SECTION (time / baseline time, or baseline TPS / TPS).
line() {
    local med min max base ratio
    med=$(stat_of "$1" "$2" median)
    [ -n "$med" ] || return 0
    min=$(stat_of "$1" "$2" min)
    max=$(stat_of "$1" "$2" max)
    base=$(stat_of "$1" baseline median)
    ratio=$(awk -v m="$med" -v b="$base" -v u="$4" 'BEGIN {
        if (b == 0 || m == 0) print "-"; else if (u == "tps") printf "%.2f", b / m; else printf "%.2f", m / b }')
    printf '| %-40s | %10.1f %-3s | %15s | %6sx |\n' "$3" "$med" "$4" \
        "$(printf '%.0f-%.0f' "$min" "$max")" "$ratio"
}

LABELS=(
    "baseline:no trigger"
    "inv_sync:cachebridge invalidate, sync"
    "inv_durable:cachebridge invalidate, durable"
    "wt_sync:cachebridge write_through json, sync"
    "wt_durable:cachebridge write_through json, durable"
    "pub_sync:cachebridge publish, sync session"
    "pub_durable:cachebridge publish, durable"
    "pub_delivered:  publish durable, until in the stream"
    "notify:PL/pgSQL pg_notify per row"
    "memcache:PL/pgSQL pgmemcache call per row"
)

# block SECTION TITLE UNIT
block() {
    grep -q "^$1	" "$DIR/results.tsv" || return 0
    printf '\n| %-40s | %14s | %15s | %7s |\n|---|---:|---:|---:|\n' "$2" "median" "min-max" "cost"
    local l
    for l in "${LABELS[@]}"; do line "$1" "${l%%:*}" "${l#*:}" "$3"; done
}

bench_report() {
    echo "== results: medians of $RUNS runs; cost = time / baseline time, or baseline TPS / TPS (1.00x = no cost)"
    block bulk_update "UPDATE of $BULK_ROWS rows" ms
    block bulk_insert "INSERT ... SELECT of $BULK_ROWS rows" ms
    block bulk_delete "DELETE of $BULK_ROWS rows" ms
    local w c
    for w in tpcb update; do
        for c in $CLIENTS; do
            block "oltp_${w}_c$c" "pgbench $([ $w = tpcb ] && echo TPC-B || echo 'single-row UPDATE') -c $c (s $PGB_SCALE, ${PGB_SECONDS}s)" tps
        done
    done
    for w in tpcb update; do
        for c in $CLIENTS; do
            block "cpu_${w}_c$c" "server CPU per transaction, $([ $w = tpcb ] && echo TPC-B || echo 'single-row UPDATE') -c $c (PostgreSQL + Redis)" us
        done
    done
    tls_report
    cluster_report
    for w in tpcb update; do
        for c in $CLIENTS; do
            grep -q "^worker_${w}_c$c	" "$DIR/results.tsv" || continue
            printf '\n| %-40s | %14s | %15s |\n|---|---:|---:|\n' \
                "worker CPU per transaction, $([ $w = tpcb ] && echo TPC-B || echo 'single-row UPDATE') -c $c" "median" "min-max"
            for v in inv_durable wt_durable pub_durable; do
                [ -n "$(stat_of "worker_${w}_c$c" $v median)" ] || continue
                printf '| %-40s | %11s us | %15s |\n' "$v" "$(stat_of "worker_${w}_c$c" $v median)" \
                    "$(stat_of "worker_${w}_c$c" $v min)-$(stat_of "worker_${w}_c$c" $v max) us"
            done
        done
    done
    [ -n "$MEMCACHE_SKIP" ] && echo && echo "pgmemcache skipped: $MEMCACHE_SKIP"
    [ -n "$DEGRADED" ] && echo && echo "degraded to a pattern invalidation (max_pending_memory $(q1 'SHOW cachebridge.max_pending_memory')): $(printf '%s\n' $DEGRADED | sort | uniq -c | awk '{ printf "%s x%s  ", $2, $1 }')"
    if [ -s "$DIR/shard.txt" ]; then
        echo
        cat "$DIR/shard.txt"
    fi
    if grep -q '^memory' "$DIR/results.tsv"; then
        printf '\n| %-40s | %14s | %15s | %7s |\n|---|---:|---:|---:|\n' "peak backend memory, $MEM_ROWS-row UPDATE" "median" "min-max" "ratio"
        line memory baseline "no trigger (VmHWM)" MB
        line memory invalidate "invalidate, durable (VmHWM)" MB
        line memory write_through "write_through, durable (VmHWM)" MB
        line memory_ms baseline "  time: no trigger" ms
        line memory_ms invalidate "  time: invalidate" ms
        line memory_ms write_through "  time: write_through" ms
        echo "(VmHWM includes the shared buffers the backend touched; memory: $MEM_RUNS runs)"
    fi
    if grep -q '^refresh' "$DIR/results.tsv"; then
        printf '\n| %-40s | %14s | %15s |\n|---|---:|---:|\n' "refresh of $REFRESH_ROWS rows, write_through" "median" "min-max"
        printf '| %-40s | %14.0f | %15s |\n' "rows/s" "$(stat_of refresh rows_per_s median)" \
            "$(printf '%.0f-%.0f' "$(stat_of refresh rows_per_s min)" "$(stat_of refresh rows_per_s max)")"
        printf '| %-40s | %13.2fx | %15s |\n' "time / baseline (read, lock, render)" \
            "$(awk -v a="$(stat_of refresh ms median)" -v b="$(stat_of refresh_base ms median)" 'BEGIN { print a / b }')" \
            "$(printf '%.0f ms' "$(stat_of refresh_base ms median)")"
        printf '| %-40s | %11.2f us | %15s |\n' "backend CPU per row" "$(stat_of refresh backend_us_per_row median)" \
            "$(printf '%.2f-%.2f' "$(stat_of refresh backend_us_per_row min)" "$(stat_of refresh backend_us_per_row max)")"
        printf '| %-40s | %11.2f us | %15s |\n' "redis-server CPU per row" "$(stat_of refresh redis_us_per_row median)" \
            "$(printf '%.2f-%.2f' "$(stat_of refresh redis_us_per_row min)" "$(stat_of refresh redis_us_per_row max)")"
        printf '| %-40s | %11.1f MB | %15s |\n' "backend peak private memory growth (RssAnon)" "$(stat_of refresh_mem growth median)" \
            "$(printf '%.1f-%.1f MB' "$(stat_of refresh_mem growth min)" "$(stat_of refresh_mem growth max)")"
    fi
    if [ -s "$DIR/psql-warnings.log" ]; then
        echo
        echo "== server messages during timed statements (most frequent)"
        sort "$DIR/psql-warnings.log" | uniq -c | sort -rn | head -5
    fi
}

# ---------------------------------------------------------------- main

T0=$(date +%s)
if [[ " $BENCH_SECTIONS " == *" tls "* ]]; then
    # the benchmark's redis-server also listens for TLS, with certificates of its own
    cb_pick_user
    export CB_REDIS_TLS_CERTS
    CB_REDIS_TLS_CERTS=$(mktemp -d /tmp/cachebridge-bench-certs.XXXXXX)
    bash "$CB_ROOT/test/make_certs.sh" "$CB_REDIS_TLS_CERTS" || bench_fail "test/make_certs.sh failed"
    chown -R "$CB_USER" "$CB_REDIS_TLS_CERTS" 2>/dev/null || true
    chmod 755 "$CB_REDIS_TLS_CERTS"
    export CB_REDIS_TLS_PORT
    CB_REDIS_TLS_PORT=$(cb_free_port 6490)
fi
ensure_memcache
[ -n "$MEMCACHE_SKIP" ] || PG_SETTINGS+=("shared_preload_libraries = 'cachebridge,pgmemcache'")
start_servers
trap stop_all EXIT
if [ -z "$MEMCACHE_SKIP" ]; then
    memcache_start
    if [ -z "$MEMCACHE_SKIP" ]; then
        q1 "CREATE EXTENSION pgmemcache" >/dev/null
        q1 "ALTER DATABASE bench SET pgmemcache.default_servers = '127.0.0.1:$MEMCACHE_PORT'" >/dev/null
    fi
fi
[ -z "$MEMCACHE_SKIP" ] || echo "pgmemcache skipped: $MEMCACHE_SKIP"
: >"$DIR/results.tsv"
print_machine
echo "== settings: $([ $SMOKE = 1 ] && echo 'SMOKE, ')runs $RUNS, sections '$BENCH_SECTIONS', bulk rows $BULK_ROWS," \
    "pgbench scale $PGB_SCALE x ${PGB_SECONDS}s at clients '$CLIENTS', shard runs $SHARD_RUNS on" \
    "$CB_BENCH_SHARD_KEYS keys (PL/pgSQL $CB_BENCH_PLPGSQL_RUNS), memory $MEM_ROWS rows x $MEM_RUNS runs," \
    "memcached $([ -z "$MEMCACHE_SKIP" ] && echo "port $MEMCACHE_PORT" || echo skipped)"
echo
for s in $BENCH_SECTIONS; do
    case $s in
        bulk) section_bulk ;;
        oltp) section_oltp ;;
        shard) section_shard ;;
        memory) section_memory_default ;;
        tls) section_tls ;;
        cluster) section_cluster ;;
        refresh) section_refresh ;;
        *) cb_die "unknown section $s (bulk, oltp, shard, memory, refresh, tls, cluster)" ;;
    esac
done
bench_report
echo
echo "== done in $(($(date +%s) - T0)) s"
