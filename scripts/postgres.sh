#!/usr/bin/env bash
# A PostgreSQL instance for Airflow's metadata database in the fan-out test (a parallel
# executor needs a database other than sqlite; Airflow supports PostgreSQL and MySQL 8, not
# MariaDB). Debian's postgresql package, our own cluster in the cache dir, run as the
# `postgres` user (PostgreSQL refuses root), listening on 127.0.0.1 and a socket in the cache.
#
# usage: scripts/postgres.sh up|down|env
#   up     install (apt) if missing, init the cluster once, start it, wait until ready
#   down   stop it (data kept)
#   env    print `export P2M_POSTGRES_URL=...` (an SQLAlchemy URL without database name)
#
#   P2M_CACHE_DIR       [<repo>/.cache]
#   P2M_POSTGRES_PORT   [55432]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${P2M_POSTGRES_PORT:-55432}
PGDIR=$P2M_CACHE_DIR/postgres
# The server runs as `postgres`, which must reach its files: a cache dir below a folder only
# root may enter (a clone in /root) gets its cluster under /var/lib/postgresql instead.
if [[ $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$P2M_CACHE_DIR" 2>/dev/null; then
    PGDIR=/var/lib/postgresql/pulsar2mysql-$(printf '%s' "$P2M_CACHE_DIR" | sha256sum | cut -c1-12)
fi
DATA=$PGDIR/data
SOCK=$PGDIR/run
LOG=$PGDIR/postgres.log

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [[ -n $dir ]] || return 1
    echo "$dir"
}

ensure_installed() {
    pg_bin >/dev/null && return 0
    log "installing Debian's postgresql"
    local guard=/usr/sbin/policy-rc.d added=0
    # Keep the package's postinst from starting the system cluster on 5432.
    if [[ ! -e $guard ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$guard && chmod 755 $guard"
        added=1
    fi
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2 || {
        ((added == 0)) || as_root rm -f "$guard"
        die "apt-get could not install postgresql"
    }
    ((added == 0)) || as_root rm -f "$guard"
}

# as_pg CMD...: run as the postgres user (or as ourselves when we are not root).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ready() { as_pg "$(pg_bin)/pg_isready" -q -h "$SOCK" -p "$PORT"; }

up() {
    ensure_installed
    local bin
    bin=$(pg_bin)
    mkdir -p "$PGDIR" "$SOCK"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$PGDIR" "$SOCK"
        touch "$LOG" && chown postgres "$LOG"
    fi
    if [[ ! -s $DATA/PG_VERSION ]]; then
        log "initialising the PostgreSQL cluster in $DATA"
        rm -rf "$DATA"
        as_pg "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if ready; then
        return 0
    fi
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    as_pg "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off" start >&2 ||
        { tail -n 20 "$LOG" >&2; die "PostgreSQL did not start"; }
}

down() {
    local bin
    bin=$(pg_bin) || return 0
    [[ -s $DATA/PG_VERSION ]] || return 0
    as_pg "$bin/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
}

case ${1:-} in
    up) up ;;
    down) down ;;
    env) echo "export P2M_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:$PORT" ;;
    *)
        sed -n '2,13p' "$0" >&2
        exit 2
        ;;
esac
