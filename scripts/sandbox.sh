#!/usr/bin/env bash
# scripts/sandbox.sh -- a PostgreSQL 15 + Redis sandbox with cachebridge in it.
#
# On Debian 12, as root (no sudo needed) or through sudo: installs the missing Debian
# packages, builds and installs cachebridge, then starts
#   - a PostgreSQL 15 cluster (shared_preload_libraries = cachebridge) on
#     127.0.0.1 and a unix socket, with a database "cachebridge" holding
#     the extension, and
#   - a redis-server on 127.0.0.1,
# both as an unprivileged user (postgres when run as root), on the first
# free ports from 5433 and 6380, so that servers already on 5432/6379 are
# left alone.  Everything lives in CB_SANDBOX_DIR (/tmp/cachebridge-sandbox).
# A short walkthrough then shows a value going through Redis, a table kept
# there by a trigger, change events and a sharding ring, and the script
# prints how to connect and how to stop (with CB_SANDBOX_DIR when given).
#
# Running "start" again stops the running sandbox and builds a fresh one,
# on the same ports when they are still free.  The sandbox trusts every
# local connection: it is for trying cachebridge out, not for data.
#
# With --tls, Redis also listens for TLS on the first free port from 6480,
# with a throwaway CA and certificates (test/make_certs.sh, in
# $CB_SANDBOX_DIR/certs), and cachebridge talks to it over rediss://,
# verifying the certificate; the walkthrough shows the connection.
#
# With --cluster, a Redis Cluster of three masters with a replica each runs
# too (six redis-server --cluster-enabled yes on the first free ports from
# 7100, in $CB_SANDBOX_DIR/cluster0..5), cachebridge.redis_url names two of
# its nodes as seeds, and the walkthrough shows keys landing on different
# masters.
#
# Usage: bash scripts/sandbox.sh [start [--tls|--cluster]|stop|status]    (default: start)

set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/test/lib.sh"

SANDBOX_DIR=${CB_SANDBOX_DIR:-/tmp/cachebridge-sandbox}
STATE=$SANDBOX_DIR/sandbox.env
PSQL=$CB_PG_BIN/psql
CALLER_DIR=$(pwd)

usage() {
    echo "usage: bash scripts/sandbox.sh [start [--tls|--cluster]|stop|status]" >&2
    exit 2
}

# The command that runs this script again, as the user should type it:
# with the CB_SANDBOX_DIR it was given, since without it the script would
# look for the sandbox in the default directory.
self_command() {
    local script=scripts/sandbox.sh env=
    [ "$CALLER_DIR" = "$CB_ROOT" ] || script=$CB_ROOT/scripts/sandbox.sh
    [ -n "${CB_SANDBOX_DIR:-}" ] && env="CB_SANDBOX_DIR=$(printf '%q' "$CB_SANDBOX_DIR") "
    if [ -n "${SUDO_USER:-}" ]; then echo "sudo ${env}bash $script"; else echo "${env}bash $script"; fi
}

# Reads the ports of the last sandbox into PG_PORT and REDIS_PORT ("" if none).
# TLS_PORT is the TLS port of a --tls sandbox, CLUSTER_PORT the first node's
# port of a --cluster one.
load_state() {
    PG_PORT=
    REDIS_PORT=
    TLS_PORT=
    CLUSTER_PORT=
    [ -f "$STATE" ] || return 0
    PG_PORT=$(sed -n 's/^PG_PORT=\([0-9]*\)$/\1/p' "$STATE")
    REDIS_PORT=$(sed -n 's/^REDIS_PORT=\([0-9]*\)$/\1/p' "$STATE")
    TLS_PORT=$(sed -n 's/^TLS_PORT=\([0-9]*\)$/\1/p' "$STATE")
    CLUSTER_PORT=$(sed -n 's/^CLUSTER_PORT=\([0-9]*\)$/\1/p' "$STATE")
}

# Refuses a sandbox directory that is a symlink or belongs to someone else.
check_dir_owner() {
    local owner
    [ -e "$SANDBOX_DIR" ] || return 0
    [ -L "$SANDBOX_DIR" ] && cb_die "$SANDBOX_DIR is a symbolic link; remove it or set CB_SANDBOX_DIR"
    [ -d "$SANDBOX_DIR" ] || cb_die "$SANDBOX_DIR is not a directory; remove it or set CB_SANDBOX_DIR"
    owner=$(stat -c %U "$SANDBOX_DIR")
    [ "$owner" = "$CB_USER" ] || cb_die "$SANDBOX_DIR belongs to $owner, not $CB_USER;" \
        "stop that sandbox as $owner (or as root), or set CB_SANDBOX_DIR"
}

# Takes a lock on the sandbox directory, so that two runs cannot interleave.
# The servers must not inherit it: start them with "9<&-".
lock_sandbox() {
    exec 9<"$SANDBOX_DIR" || cb_die "cannot open $SANDBOX_DIR"
    flock -n 9 || cb_die "another scripts/sandbox.sh is working on $SANDBOX_DIR"
}

# Forgets a redis pid file whose process is not a redis-server (a stale
# file must not make cb_redis_stop kill an unrelated process).
forget_stale_redis_pid() {
    local pidfile=$SANDBOX_DIR/redis.pid pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    case $(ps -o comm= -p "$pid" 2>/dev/null) in
        redis-server) ;;
        *) rm -f "$pidfile" ;;
    esac
}

# True when the sandbox cluster runs.
pg_running() {
    [ -f "$SANDBOX_DIR/pgdata/postmaster.pid" ] &&
        cb_as_user "$CB_PG_BIN/pg_ctl" -D "$SANDBOX_DIR/pgdata" status >/dev/null 2>&1
}

# True when the sandbox redis-server answers on its port.
redis_running() {
    [ -n "$REDIS_PORT" ] && [ -f "$SANDBOX_DIR/redis.pid" ] &&
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

# Stops both servers of the sandbox, keeping its directory and logs.
stop_servers() {
    forget_stale_redis_pid
    cb_pg_stop "$SANDBOX_DIR"
    cb_redis_stop "$SANDBOX_DIR"
    cb_redis_cluster_stop "$SANDBOX_DIR"
}

# psql on the sandbox database, stopping at the first error.
sandbox_psql() {
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -P pager=off -h 127.0.0.1 -p "$PG_PORT" \
        -U postgres -d cachebridge "$@"
}

# redis-cli on the Redis cachebridge uses: the cluster (following its
# redirections) in a --cluster sandbox.
redis_cli() {
    if [ -n "$CLUSTER_PORT" ]; then
        redis-cli -c -p "$CLUSTER_PORT" "$@"
    else
        redis-cli -p "$REDIS_PORT" "$@"
    fi
}

# Shows a redis-cli command, then its output.
show_redis() {
    if [ -n "$CLUSTER_PORT" ]; then
        echo "\$ redis-cli -c -p $CLUSTER_PORT $*"
    else
        echo "\$ redis-cli -p $REDIS_PORT $*"
    fi
    redis_cli "$@"
}

# Shows SQL statements, then their output.
show_sql() {
    sandbox_psql -e -c "$1" || walkthrough_failed "the statement above failed"
}

walkthrough_failed() {
    cb_die "walkthrough: $*; the logs are in $SANDBOX_DIR"
}

# Shows a value written and read through Redis, and checks what Redis holds.
walkthrough_cache_aside() {
    local from_pg from_redis
    echo
    echo "-- cache-aside: set a value with a TTL, read it back, look at it in Redis"
    show_sql "SELECT cachebridge.set('greeting', 'hello from PostgreSQL', 300);"
    show_sql "SELECT cachebridge.get('greeting');"
    show_redis GET greeting
    show_redis TTL greeting
    show_sql "SELECT round_trips, cache_hits, cache_misses, errors FROM cachebridge.stats;"
    from_pg=$(sandbox_psql -A -t -c "SELECT cachebridge.get('greeting')")
    from_redis=$(redis_cli GET greeting)
    if [ "$from_pg" != "hello from PostgreSQL" ] || [ "$from_redis" != "$from_pg" ]; then
        walkthrough_failed "cachebridge.get returned \"$from_pg\", Redis holds \"$from_redis\""
    fi
}

# Shows a write_through trigger keeping a row in Redis (once the trigger exists).
walkthrough_write_through() {
    local expected from_redis
    [ "$(sandbox_psql -A -t -c "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc
            WHERE pronamespace = 'cachebridge'::regnamespace
              AND proname = 'write_through')")" = t ] || return 0
    echo
    echo "-- write-through: every committed change of a row is written to Redis"
    show_sql "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text);"
    show_sql "CREATE TRIGGER users_cache AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('user:{id}', 'ttl=300');"
    show_sql "INSERT INTO users VALUES (1, 'Ada', 'ada@example.com');"
    show_sql "UPDATE users SET name = 'Ada Lovelace' WHERE id = 1;"
    show_redis GET user:1
    expected=$(sandbox_psql -A -t -c "SELECT row_to_json(u)::text FROM users u WHERE id = 1")
    for _ in $(seq 30); do
        from_redis=$(redis_cli GET user:1)
        [ "$from_redis" = "$expected" ] && return 0
        sleep 0.1
    done
    walkthrough_failed "Redis holds \"$from_redis\" under user:1, expected \"$expected\""
}

# Shows change events: every committed row change appended to a stream.
walkthrough_publish() {
    local len
    [ "$(sandbox_psql -A -t -c "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc
            WHERE pronamespace = 'cachebridge'::regnamespace
              AND proname = 'publish')")" = t ] || return 0
    echo
    echo "-- change events: every committed row change, appended to a Redis stream"
    show_sql "CREATE TRIGGER users_events AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('events:users', 'old=true');"
    show_sql "UPDATE users SET email = 'ada@lovelace.example' WHERE id = 1;"
    show_sql "SELECT cachebridge.wait_delivered();"
    show_redis XRANGE events:users - +
    len=$(redis_cli XLEN events:users)
    [ "$len" = 1 ] || walkthrough_failed "the stream events:users holds $len entries, expected 1"
}

# Shows sharding: a consistent-hash ring, and which node each key goes to.
walkthrough_sharding() {
    local nodes
    [ "$(sandbox_psql -A -t -c "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc
            WHERE pronamespace = 'cachebridge'::regnamespace
              AND proname = 'shard_for')")" = t ] || return 0
    echo
    echo "-- sharding: a ketama ring of two nodes (shard-b weighs twice as much), keys placed on it"
    show_sql "SELECT cachebridge.ring_add_node('default', 'shard-a');"
    show_sql "SELECT cachebridge.ring_add_node('default', 'shard-b', 2);"
    show_sql "SELECT id, cachebridge.shard_for('user:' || id) AS node FROM generate_series(1, 6) AS id;"
    show_sql "SELECT * FROM cachebridge.ring_balance('default');"
    nodes=$(sandbox_psql -A -t -c "SELECT string_agg(DISTINCT cachebridge.shard_for('user:' || id), ',')
            FROM generate_series(1, 1000) AS id")
    [ "$nodes" = "shard-a,shard-b" ] ||
        walkthrough_failed "1000 keys went to \"$nodes\", expected both shard-a and shard-b"
}

# Shows keys of one table landing on the masters of the cluster (a --cluster
# sandbox): each key on the master that owns its slot, none with a hash tag.
walkthrough_cluster() {
    local port ports masters=0 n
    [ -n "$CLUSTER_PORT" ] || return 0
    echo
    echo "-- Redis Cluster: cachebridge routes each key to the master of its slot"
    show_sql "SELECT node, role, slots FROM cachebridge.cluster_nodes() ORDER BY node;"
    show_sql "CREATE TABLE products (id int PRIMARY KEY, name text);"
    show_sql "SELECT cachebridge.attach('products', 'product:{id}');"
    show_sql "INSERT INTO products SELECT g, 'product ' || g FROM generate_series(1, 9) AS g;"
    show_sql "SELECT 'product:' || id AS key, cachebridge.key_slot('product:' || id) AS slot FROM products;"
    read -r -a ports <"$SANDBOX_DIR/cluster.ports"
    for port in "${ports[@]}"; do
        redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q master || continue
        echo "\$ redis-cli -p $port --scan --pattern 'product:*'   (a master)"
        redis-cli -p "$port" --scan --pattern 'product:*' | grep -v '#cbv$' | sort
        n=$(redis-cli -p "$port" --scan --pattern 'product:*' | grep -vc '#cbv$')
        [ "$n" -gt 0 ] && masters=$((masters + 1))
    done
    [ "$masters" = 3 ] ||
        walkthrough_failed "the product keys are on $masters masters, expected all three"
}

# Shows cachebridge's connection going over TLS (a --tls sandbox).
walkthrough_tls() {
    local line
    [ -n "$TLS_PORT" ] || return 0
    echo
    echo "-- TLS: cachebridge talks to Redis over rediss://, the certificate verified"
    show_sql "SELECT current_setting('cachebridge.redis_url') AS redis_url,
       current_setting('cachebridge.tls_ca_file') AS tls_ca_file;"
    # a session that holds its connection open while Redis is asked
    sandbox_psql -A -t -c "SELECT cachebridge.get('greeting'), pg_sleep(1.5)" >/dev/null &
    sleep 0.7
    echo "\$ redis-cli -p $REDIS_PORT CLIENT LIST   (cachebridge's connections)"
    line=$(redis-cli -p "$REDIS_PORT" CLIENT LIST | grep 'name=cachebridge:backend:')
    echo "$line"
    wait
    [[ $line == *"laddr=127.0.0.1:$TLS_PORT "* ]] ||
        walkthrough_failed "no cachebridge connection on the TLS port $TLS_PORT"
}

# How to use and stop the running sandbox.
print_instructions() {
    cat <<EOF

The cachebridge sandbox is running (data and logs in $SANDBOX_DIR):
  PostgreSQL 15   psql -h 127.0.0.1 -p $PG_PORT -U postgres cachebridge
                  (or through its socket: psql -h $SANDBOX_DIR -p $PG_PORT -U postgres cachebridge)
  Redis           redis-cli -p $REDIS_PORT
EOF
    if [ -n "$TLS_PORT" ]; then
        cat <<EOF
  Redis over TLS  redis-cli --tls --cacert $SANDBOX_DIR/certs/ca.crt -p $TLS_PORT
  The cluster has cachebridge.redis_url = 'rediss://127.0.0.1:$TLS_PORT/0',
                  cachebridge.tls_ca_file = '$SANDBOX_DIR/certs/ca.crt'.
EOF
    elif [ -n "$CLUSTER_PORT" ]; then
        echo "  Redis Cluster   redis-cli -c -p $CLUSTER_PORT   (three masters, three replicas)"
        echo "  The cluster has cachebridge.redis_url = '$(cb_redis_cluster_url "$SANDBOX_DIR")'."
    else
        echo "  The cluster has cachebridge.redis_url = 'redis://127.0.0.1:$REDIS_PORT/0'."
    fi
    echo "Stop it with:     $(self_command) stop"
}

cmd_start() {
    local old_pg old_redis old_tls old_cluster tls_conf=()
    cb_ensure_packages
    cb_build_install
    cb_pick_user
    check_dir_owner

    if [ ! -d "$SANDBOX_DIR" ]; then
        mkdir -m 755 "$SANDBOX_DIR" || cb_die "cannot create $SANDBOX_DIR"
        [ "$(id -u)" = 0 ] && chown "$CB_USER" "$SANDBOX_DIR"
    fi
    lock_sandbox
    cd "$SANDBOX_DIR" || cb_die "cannot enter $SANDBOX_DIR"

    load_state
    old_pg=$PG_PORT
    old_redis=$REDIS_PORT
    old_tls=$TLS_PORT
    old_cluster=$CLUSTER_PORT
    if [ -e "$SANDBOX_DIR/pgdata" ] || [ -e "$SANDBOX_DIR/redis.pid" ] ||
        [ -e "$SANDBOX_DIR/cluster.ports" ]; then
        cb_log "stopping the previous sandbox"
        stop_servers
        rm -rf "$SANDBOX_DIR/pgdata" "$SANDBOX_DIR"/cluster[0-5]
        rm -f "$SANDBOX_DIR/postgresql.log" "$SANDBOX_DIR/redis.log" "$SANDBOX_DIR/cluster.ports"
    fi

    # the previous ports when still free, else the next free ones
    REDIS_PORT=$(cb_free_port "${old_redis:-6380}")
    PG_PORT=$(cb_free_port "${old_pg:-5433}")
    TLS_PORT=
    if [ "$WITH_TLS" = 1 ]; then
        TLS_PORT=$(cb_free_port "${old_tls:-6480}")
        rm -rf "$SANDBOX_DIR/certs"
        cb_as_user bash "$CB_ROOT/test/make_certs.sh" "$SANDBOX_DIR/certs" ||
            cb_die "could not make the TLS certificates"
        export CB_REDIS_TLS_PORT=$TLS_PORT CB_REDIS_TLS_CERTS=$SANDBOX_DIR/certs
        tls_conf=("cachebridge.redis_url = 'rediss://127.0.0.1:$TLS_PORT/0'"
            "cachebridge.tls_ca_file = '$SANDBOX_DIR/certs/ca.crt'")
    fi
    CLUSTER_PORT=
    [ "$WITH_CLUSTER" = 1 ] && CLUSTER_PORT=$(cb_free_port "${old_cluster:-7100}")
    printf 'PG_PORT=%s\nREDIS_PORT=%s\nTLS_PORT=%s\nCLUSTER_PORT=%s\n' \
        "$PG_PORT" "$REDIS_PORT" "$TLS_PORT" "$CLUSTER_PORT" >"$STATE"

    # from here on, a failure stops whatever was started
    trap 'stop_servers' EXIT
    trap 'exit 130' INT TERM
    cb_log "starting redis-server on 127.0.0.1:$REDIS_PORT${TLS_PORT:+ (TLS on $TLS_PORT)}"
    cb_redis_start "$SANDBOX_DIR" "$REDIS_PORT" 9<&-
    if [ -n "$CLUSTER_PORT" ]; then
        cb_log "starting a Redis Cluster (3 masters, 3 replicas) from 127.0.0.1:$CLUSTER_PORT"
        cb_redis_cluster_start "$SANDBOX_DIR" "$CLUSTER_PORT" 9<&-
        tls_conf=("cachebridge.redis_url = '$(cb_redis_cluster_url "$SANDBOX_DIR")'")
    fi
    cb_log "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT"
    cb_pg_init "$SANDBOX_DIR" "$PG_PORT" 127.0.0.1 "$REDIS_PORT" "${tls_conf[@]}"
    cb_pg_start "$SANDBOX_DIR" 9<&-
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -c "CREATE DATABASE cachebridge" >/dev/null || cb_die "could not create database cachebridge"
    sandbox_psql -c "CREATE EXTENSION cachebridge" >/dev/null ||
        cb_die "could not create extension cachebridge; see $SANDBOX_DIR/postgresql.log"

    cb_log "walkthrough"
    walkthrough_cache_aside
    walkthrough_write_through
    walkthrough_publish
    walkthrough_sharding
    walkthrough_tls
    walkthrough_cluster
    trap - EXIT

    print_instructions
}

cmd_stop() {
    cb_pick_user
    check_dir_owner
    if [ ! -d "$SANDBOX_DIR" ]; then
        echo "no sandbox in $SANDBOX_DIR"
        return 0
    fi
    lock_sandbox
    stop_servers
    echo "sandbox stopped (data and logs kept in $SANDBOX_DIR until the next start)"
}

cmd_status() {
    local rc=0
    cb_pick_user
    load_state
    if [ ! -d "$SANDBOX_DIR" ] || [ -z "$PG_PORT" ]; then
        echo "no sandbox in $SANDBOX_DIR"
        return 3
    fi
    if pg_running; then
        echo "PostgreSQL: running on 127.0.0.1:$PG_PORT and $SANDBOX_DIR/.s.PGSQL.$PG_PORT"
    else
        echo "PostgreSQL: stopped (port $PG_PORT; log $SANDBOX_DIR/postgresql.log)"
        rc=3
    fi
    if redis_running; then
        echo "Redis:      running on 127.0.0.1:$REDIS_PORT and $SANDBOX_DIR/redis.sock${TLS_PORT:+, TLS on 127.0.0.1:$TLS_PORT}"
    else
        echo "Redis:      stopped (port $REDIS_PORT; log $SANDBOX_DIR/redis.log)"
        rc=3
    fi
    [ $rc = 0 ] && print_instructions
    return $rc
}

WITH_TLS=0
WITH_CLUSTER=0
case ${1:-} in --tls|--cluster) set -- start "$1" ;; esac
case ${2:-} in
    --tls|--cluster)
        [ "$1" = start ] && [ $# = 2 ] || usage
        [ "$2" = --tls ] && WITH_TLS=1
        [ "$2" = --cluster ] && WITH_CLUSTER=1
        set -- start
        ;;
esac
[ $# -le 1 ] || usage
case ${1:-start} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
