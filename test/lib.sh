# test/lib.sh -- shell functions shared by scripts/sandbox.sh and test/run.sh:
# installing what is missing, building, and starting/stopping a private
# PostgreSQL 15 cluster and redis-server as an unprivileged user.
#
# Source it; it defines functions and variables only.

CB_ROOT=${CB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
CB_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
# CB_PRIVATE_PG=DIR installs the extension into a private copy of the
# PostgreSQL installation under DIR and runs the servers from it, so that
# several checkouts can be tested at once without sharing (or locking) the
# system's installation.  PostgreSQL finds its share and lib directories
# relative to its binaries, so the copy needs no configuration.
if [ -n "${CB_PRIVATE_PG:-}" ]; then
    CB_PG_BIN=$CB_PRIVATE_PG/usr/lib/postgresql/15/bin
else
    CB_PG_BIN=/usr/lib/postgresql/15/bin
fi
CB_PACKAGES="make gcc libc6-dev postgresql-15 postgresql-client-15 postgresql-server-dev-15
    libhiredis-dev libssl-dev openssl redis-server redis-tools libipc-run-perl perl python3 python3-uhashring python3-yaml
    libmemcached-dev"

cb_log() { printf '== %s\n' "$*" >&2; }
cb_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly, or through sudo).
cb_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages of CB_PACKAGES that are missing.
cb_ensure_packages() {
    local missing=() p
    for p in $CB_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    cb_log "installing ${missing[*]}"
    cb_as_root apt-get update -qq || cb_die "apt-get update failed"
    cb_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null || cb_die "apt-get install failed"
}

# Builds the extension warning-free and installs it.
cb_build_install() {
    cb_log "building and installing cachebridge"
    make -s -C "$CB_ROOT" PG_CONFIG="$CB_PG_CONFIG" >/dev/null || cb_die "build failed"
    if [ -n "${CB_PRIVATE_PG:-}" ]; then
        cb_private_pg
        make -s -C "$CB_ROOT" PG_CONFIG="$CB_PG_CONFIG" DESTDIR="$CB_PRIVATE_PG" install \
            >/dev/null || cb_die "install into $CB_PRIVATE_PG failed"
        return 0
    fi
    cb_as_root make -s -C "$CB_ROOT" PG_CONFIG="$CB_PG_CONFIG" install >/dev/null \
        || cb_die "install failed"
}

# Makes the private copy of CB_PRIVATE_PG, once: real files (a binary
# reached through a symlink would look for its share directory beside the
# symlink's target), readable by the unprivileged user.
cb_private_pg() {
    local d
    [ -x "$CB_PG_BIN/postgres" ] && return 0
    cb_log "copying PostgreSQL's installation into $CB_PRIVATE_PG"
    for d in /usr/lib/postgresql/15 /usr/share/postgresql/15; do
        mkdir -p "$CB_PRIVATE_PG$(dirname "$d")"
        cp -a "$d" "$CB_PRIVATE_PG$(dirname "$d")/" || cb_die "cannot copy $d"
    done
    chmod 755 "$CB_PRIVATE_PG"
}

# The unprivileged user that runs the servers: postgres when we are root.
cb_pick_user() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || cb_die "no postgres user (is postgresql-15 installed?)"
        CB_USER=postgres
    else
        CB_USER=$(id -un)
    fi
}

# Runs a command as CB_USER.
cb_as_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$CB_USER" -- "$@"; else "$@"; fi
}

# Prints the first TCP port from $1 on that nothing on 127.0.0.1 listens to.
cb_free_port() {
    local p
    for p in $(seq "$1" $(($1 + 500))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    cb_die "no free port from $1"
}

# cb_redis_start DIR PORT [OPTION...]: a redis-server on 127.0.0.1:PORT and
# DIR/redis.sock, with the redis-server options given (--replicaof H P);
# with CB_REDIS_TLS_PORT and CB_REDIS_TLS_CERTS (a directory made by
# test/make_certs.sh) also a TLS port, without client certificates.
# The daemon gets none of the caller's other file descriptors: under "flock
# LOCK bash test/run.sh" it would otherwise inherit the lock, and a server
# whose directory was removed before it could be stopped would hold the
# lock for everyone.
cb_redis_start() {
    local dir=$1 port=$2 tls=()
    shift 2
    if [ -n "${CB_REDIS_TLS_PORT:-}" ]; then
        tls=(--tls-port "$CB_REDIS_TLS_PORT" --tls-cert-file "$CB_REDIS_TLS_CERTS/server.crt"
            --tls-key-file "$CB_REDIS_TLS_CERTS/server.key"
            --tls-ca-cert-file "$CB_REDIS_TLS_CERTS/ca.crt" --tls-auth-clients no)
    fi
    cb_as_user redis-server --port "$port" --bind 127.0.0.1 "${tls[@]}" \
        --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --dir "$dir" --save '' --appendonly no "$@" >/dev/null \
        3<&- 4<&- 5<&- 6<&- 7<&- 8<&- 9<&- || cb_die "redis-server did not start"
    for _ in $(seq 50); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    cb_die "redis-server on port $port does not answer; see $dir/redis.log"
}

# cb_redis_stop DIR: stops the redis-server whose pid file is in DIR.
cb_redis_stop() {
    local pidfile=$1/redis.pid pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    rm -f "$pidfile"
    return 0
}

# cb_redis_cluster_start DIR PORT: a Redis Cluster of three masters with a
# replica each, six redis-server --cluster-enabled yes on the first free
# 127.0.0.1 ports from PORT, in DIR/cluster0..5 (the ports in
# DIR/cluster.ports), joined with redis-cli --cluster create; returns once
# every node says cluster_state:ok.
cb_redis_cluster_start() {
    local dir=$1 next=$2 ports=() p i
    for i in 0 1 2 3 4 5; do
        p=$(cb_free_port "$next")
        next=$((p + 1))
        mkdir -p "$dir/cluster$i"
        [ "$(id -u)" = 0 ] && chown "$CB_USER" "$dir/cluster$i"
        cb_as_user redis-server --port "$p" --bind 127.0.0.1 \
            --cluster-enabled yes --cluster-config-file "$dir/cluster$i/nodes.conf" \
            --cluster-node-timeout 2000 \
            --daemonize yes --pidfile "$dir/cluster$i/redis.pid" \
            --logfile "$dir/cluster$i/redis.log" --dir "$dir/cluster$i" \
            --save '' --appendonly no >/dev/null \
            3<&- 4<&- 5<&- 6<&- 7<&- 8<&- 9<&- || cb_die "redis-server did not start"
        ports+=("$p")
    done
    echo "${ports[*]}" >"$dir/cluster.ports"
    for p in "${ports[@]}"; do
        for _ in $(seq 50); do
            redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break
            sleep 0.1
        done
    done
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") \
        --cluster-replicas 1 --cluster-yes >"$dir/cluster-create.log" 2>&1 \
        || cb_die "redis-cli --cluster create failed; see $dir/cluster-create.log"
    for p in "${ports[@]}"; do
        for i in $(seq 100); do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
            [ "$i" = 100 ] && cb_die "the Redis Cluster node on port $p is not ok"
            sleep 0.1
        done
    done
}

# cb_redis_cluster_url DIR: a cachebridge.redis_url naming the first two
# nodes of the cluster of DIR as seeds.
cb_redis_cluster_url() {
    local ports
    read -r -a ports <"$1/cluster.ports"
    echo "redis://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}/0"
}

# cb_redis_cluster_stop DIR: stops every node of the cluster of DIR.
cb_redis_cluster_stop() {
    local i
    for i in 0 1 2 3 4 5; do
        [ -d "$1/cluster$i" ] && cb_redis_stop "$1/cluster$i"
    done
    return 0
}

# cb_pg_init DIR PORT LISTEN REDIS_PORT [extra postgresql.conf lines...]:
# a new cluster in DIR/pgdata, sockets in DIR, superuser "postgres".
cb_pg_init() {
    local dir=$1 port=$2 listen=$3 redis_port=$4
    shift 4
    cb_as_user "$CB_PG_BIN/initdb" -D "$dir/pgdata" -U postgres -A trust \
        --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || cb_die "initdb failed; see $dir/initdb.log"
    {
        echo "port = $port"
        echo "listen_addresses = '$listen'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'cachebridge'"
        echo "cachebridge.redis_url = 'redis://127.0.0.1:$redis_port/0'"
        echo "max_prepared_transactions = 10"
        printf '%s\n' "$@"
    } | cb_as_user tee -a "$dir/pgdata/postgresql.conf" >/dev/null
}

# cb_pg_start DIR: starts the cluster of DIR and waits until it accepts connections.
cb_pg_start() {
    cb_as_user "$CB_PG_BIN/pg_ctl" -D "$1/pgdata" -l "$1/postgresql.log" -w -t 60 start \
        >/dev/null 3<&- 4<&- 5<&- 6<&- 7<&- 8<&- 9<&- || { cat "$1/postgresql.log" >&2; cb_die "PostgreSQL did not start"; }
}

# cb_pg_stop DIR: stops the cluster of DIR if it runs.
cb_pg_stop() {
    [ -f "$1/pgdata/postmaster.pid" ] || return 0
    cb_as_user "$CB_PG_BIN/pg_ctl" -D "$1/pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 \
        || cb_as_user "$CB_PG_BIN/pg_ctl" -D "$1/pgdata" -m immediate stop >/dev/null 2>&1
    return 0
}
