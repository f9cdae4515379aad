#!/usr/bin/env bash
# A Redis for the Celery test of the Airflow DAGs (the CeleryExecutor's broker). Debian's
# redis-server package, our own instance in the cache dir (no persistence), on 127.0.0.1.
#
# usage: scripts/redis.sh up|down|env
#   up     install (apt) if missing, start it, wait until it answers PING
#   down   stop it
#   env    print `export P2M_REDIS_URL=redis://127.0.0.1:<port>`
#
#   P2M_CACHE_DIR    [<repo>/.cache]
#   P2M_REDIS_PORT   [56379]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${P2M_REDIS_PORT:-56379}
DIR=$P2M_CACHE_DIR/redis

ensure_installed() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    log "installing Debian's redis-server"
    local guard=/usr/sbin/policy-rc.d added=0
    # Keep the package's postinst from starting the system Redis on 6379.
    if [[ ! -e $guard ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$guard && chmod 755 $guard"
        added=1
    fi
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >&2 || {
        ((added == 0)) || as_root rm -f "$guard"
        die "apt-get could not install redis-server"
    }
    ((added == 0)) || as_root rm -f "$guard"
}

ready() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

up() {
    ensure_installed
    ready && return 0
    mkdir -p "$DIR"
    log "starting Redis on 127.0.0.1:$PORT"
    redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --dir "$DIR" \
        --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --save '' --appendonly no >&2
    for _ in $(seq 1 50); do
        ready && return 0
        sleep 0.2
    done
    tail -n 20 "$DIR/redis.log" >&2 || true
    die "Redis did not start"
}

down() {
    command -v redis-cli >/dev/null || return 0
    ready || return 0
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}

case ${1:-} in
    up) up ;;
    down) down ;;
    env) echo "export P2M_REDIS_URL=redis://127.0.0.1:$PORT" ;;
    *)
        sed -n '2,10p' "$0" >&2
        exit 2
        ;;
esac
