#!/usr/bin/env bash
# test/run.sh -- runs every cachebridge test against real servers.
#
# Installs missing Debian packages, builds and installs the extension,
# starts a throwaway PostgreSQL 15 cluster and redis-server (as an
# unprivileged user, on a unix socket and a free loopback port), then runs:
#   1. pg_regress: sql/*.sql against expected/*.out
#   2. isolation:  test/specs/*.spec against test/expected/*.out
#   3. TAP:        test/t/*.pl (each starts its own servers)
# and stops everything it started, even when a test fails.  Prints the
# regression diffs of failures and ends with "N passed, N failed".
#
# Usage: bash test/run.sh [regress|isolation|tap ...]   (default: all layers)

set -u
. "$(dirname "$0")/lib.sh"

layers=${*:-regress isolation tap}
passed=0
skipped=0
failed=0

cb_ensure_packages
cb_build_install
cb_pick_user

PGXS_DIR=$(cd "$(dirname "$("$CB_PG_CONFIG" --pgxs)")/../.." && pwd)
WORK=$(mktemp -d /tmp/cachebridge-test.XXXXXX)
chmod 755 "$WORK"

cleanup() {
    cb_pg_stop "$WORK"
    cb_redis_stop "$WORK"
    if [ "${CB_KEEP:-0}" = 1 ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The tests run from a copy owned by the unprivileged user, who must be
# able to write results next to them.
mkdir "$WORK/src"
tar -C "$CB_ROOT" --exclude=.git --exclude='*.o' --exclude='*.so' -cf - . \
    | tar -C "$WORK/src" -xf -
[ "$(id -u)" = 0 ] && chown -R "$CB_USER" "$WORK"
SRC=$WORK/src

REDIS_PORT=$(cb_free_port 16379)
PG_PORT=$(cb_free_port 15432)
cb_redis_start "$WORK" "$REDIS_PORT"
# max_worker_processes: the regression tests' databases leave workers
# lingering (each exits 2 s after its outbox goes idle), and the first
# isolation specs, started at once, need workers of their own
cb_pg_init "$WORK" "$PG_PORT" "" "$REDIS_PORT" "fsync = off" "max_worker_processes = 16"
cb_pg_start "$WORK"

# Environment of every test client.
TEST_ENV=(PGHOST="$WORK" PGPORT="$PG_PORT" PGUSER=postgres
    CB_REDIS_PORT="$REDIS_PORT" CB_REDIS_SOCK="$WORK/redis.sock"
    PATH="$CB_PG_BIN:$PATH")

# count_results LOG: adds up pg_regress "... ok" / "... FAILED" lines and TAP
# "ok N" / "not ok N" lines; leaves the number of failures in last_bad.
count_results() {
    local ok skip
    # a TAP "ok N # skip" is not a pass: it is counted apart
    ok=$(grep -E '\.\.\. ok|^ok [0-9]+' "$1" | grep -cvE '^ok [0-9]+.*# *(skip|SKIP)')
    skip=$(grep -cE '^ok [0-9]+.*# *(skip|SKIP)' "$1")
    skipped=$((skipped + skip))
    last_bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed|^not ok [0-9]+' "$1")
    passed=$((passed + ok))
    failed=$((failed + last_bad))
}

run_regress() {
    local tests
    tests=${CB_REGRESS:-$(cd "$SRC/sql" && ls *.sql 2>/dev/null | sed 's/\.sql$//' | sort)}
    [ -n "$tests" ] || return 0
    cb_log "pg_regress: $(echo $tests)"
    (cd "$SRC" && cb_as_user env "${TEST_ENV[@]}" \
        "$PGXS_DIR/src/test/regress/pg_regress" --inputdir=. --outputdir=. \
        --bindir="$CB_PG_BIN" --load-extension=cachebridge \
        --dbname=cachebridge_regress $tests) >"$WORK/regress.log" 2>&1
    local rc=$?
    cat "$WORK/regress.log"
    count_results "$WORK/regress.log"
    if [ "$last_bad" != 0 ] || [ $rc != 0 ]; then
        [ -f "$SRC/regression.diffs" ] && cat "$SRC/regression.diffs"
        grep -qE '\.\.\. (FAILED|failed)' "$WORK/regress.log" || failed=$((failed + 1))
    fi
}

run_isolation() {
    local specs
    specs=${CB_SPECS:-$(cd "$SRC/test/specs" 2>/dev/null && ls *.spec 2>/dev/null | sed 's/\.spec$//' | sort)}
    [ -n "$specs" ] || return 0
    cb_log "isolation: $(echo $specs)"
    (cd "$SRC/test" && cb_as_user env "${TEST_ENV[@]}" \
        "$PGXS_DIR/src/test/isolation/pg_isolation_regress" --inputdir=. \
        --outputdir=output_iso --bindir="$CB_PG_BIN" --load-extension=cachebridge \
        --dbname=cachebridge_isolation $specs) >"$WORK/isolation.log" 2>&1
    local rc=$?
    cat "$WORK/isolation.log"
    count_results "$WORK/isolation.log"
    if [ "$last_bad" != 0 ] || [ $rc != 0 ]; then
        [ -f "$SRC/test/output_iso/regression.diffs" ] && cat "$SRC/test/output_iso/regression.diffs"
        grep -qE '\.\.\. (FAILED|failed)' "$WORK/isolation.log" || failed=$((failed + 1))
    fi
}

run_tap() {
    local t log rc
    # CB_TAP=050 runs only test/t/050*.pl (CB_REGRESS="a b" and CB_SPECS="c"
    # name the pg_regress tests and isolation specs to run)
    # the files come from the checkout: one missing from the copy (its
    # directory removed under the run) is a failure, not a pass
    for t in "$CB_ROOT"/test/t/${CB_TAP:-}*.pl; do
        [ -f "$t" ] || continue
        t=$SRC/test/t/$(basename "$t")
        if [ ! -f "$t" ]; then
            echo "not ok - test/t/$(basename "$t") is missing from $SRC: the run's directory was removed under it"
            failed=$((failed + 1))
            continue
        fi
        log=$WORK/tap-$(basename "$t" .pl).log
        cb_log "TAP: test/t/$(basename "$t")"
        (cd "$SRC" && cb_as_user env "${TEST_ENV[@]}" TESTDIR="$SRC/test" \
            PERL5LIB="$PGXS_DIR/src/test/perl:$SRC/test/perl" \
            PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
            prove -v "test/t/$(basename "$t")") >"$log" 2>&1
        rc=$?
        cat "$log"
        count_results "$log"
        if [ $rc != 0 ]; then
            [ "$last_bad" = 0 ] && failed=$((failed + 1))
            for f in "$SRC"/test/tmp_check/log/*.log; do
                [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
            done
        fi
        rm -rf "$SRC/test/tmp_check"
    done
}

for layer in $layers; do
    case $layer in
        regress) run_regress ;;
        isolation) run_isolation ;;
        tap) run_tap ;;
        *) cb_die "unknown test layer: $layer" ;;
    esac
done

# a run whose directory vanished has not run what it did not report
if [ ! -d "$SRC" ]; then
    echo "not ok - $WORK was removed during the run"
    failed=$((failed + 1))
fi
[ "$skipped" = 0 ] || echo "$skipped skipped (not counted as passed)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
