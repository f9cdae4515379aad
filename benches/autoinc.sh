#!/usr/bin/env bash
# Partitioned topics under both AUTO-INC lock modes, side by side with LOAD DATA.
#
# innodb_autoinc_lock_mode decides whether parallel LOAD DATA streams contend: 1 (MariaDB's
# default, and the services') holds the table's AUTO-INC lock for a whole bulk statement; 2
# (MySQL 8's default) does not. The variable is read-only at run time, so this starts a second,
# throwaway MariaDB from the same packages and docker/mariadb.cnf with
# innodb_autoinc_lock_mode=2 on its own port and data directory (the services' server is not
# touched), runs benches/e2e.sh against each server in turn for every partition count, with the
# runner's default (the server picks the number of write streams) and with each of
# P2M_AUTOINC_VARIANTS (default "--writers 1;--writers 4"), and stops the second server at the
# end.
#
#   benches/autoinc.sh
#
# Settings (environment): P2M_AUTOINC_PARTITIONS (default "4 16"), P2M_AUTOINC_SIZE (1000000),
# P2M_AUTOINC_ROUNDS (3), P2M_AUTOINC_PORT (3316), P2M_BENCH_BIN_DIR (as for e2e.sh). Raw
# results and logs go to target/bench/autoinc-<stamp>/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
eval "$(scripts/services.sh env)"

PARTITIONS="${P2M_AUTOINC_PARTITIONS:-4 16}"
SIZE="${P2M_AUTOINC_SIZE:-1000000}"
ROUNDS="${P2M_AUTOINC_ROUNDS:-3}"
PORT="${P2M_AUTOINC_PORT:-3316}"
CACHE="${P2M_CACHE_DIR:-$ROOT/.cache}"
DIR="$CACHE/bench-mariadb-autoinc2"
OUT="$ROOT/target/bench/autoinc-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$DIR" "$OUT"

cat >"$DIR/my.cnf" <<EOF
!include $ROOT/docker/mariadb.cnf
[mysqld]
datadir      = $DIR/data
socket       = $DIR/mariadb.sock
pid-file     = $DIR/mariadb.pid
log-error    = $DIR/mariadb.log
port         = $PORT
innodb_autoinc_lock_mode = 2
EOF

stop_second() {
    if [[ -f $DIR/mariadb.pid ]] && kill -0 "$(cat "$DIR/mariadb.pid")" 2>/dev/null; then
        kill "$(cat "$DIR/mariadb.pid")"
        for _ in $(seq 1 120); do
            kill -0 "$(cat "$DIR/mariadb.pid" 2>/dev/null || echo 0)" 2>/dev/null || break
            sleep 0.5
        done
    fi
}
trap stop_second EXIT

if [[ ! -f $DIR/.initialized ]]; then
    rm -rf "$DIR/data"
    mariadb-install-db --defaults-file="$DIR/my.cnf" --user="$(id -un)" --datadir="$DIR/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$DIR/install.log" 2>&1 \
        || { cat "$DIR/install.log" >&2; exit 1; }
    touch "$DIR/.initialized"
fi
stop_second
"$(command -v mariadbd || echo /usr/sbin/mariadbd)" --defaults-file="$DIR/my.cnf" \
    --user="$(id -un)" >/dev/null 2>&1 &
for _ in $(seq 1 120); do
    mariadb -S "$DIR/mariadb.sock" -u root -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
done
mariadb -S "$DIR/mariadb.sock" -u root -e "
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
SECOND_URL="mysql://root@127.0.0.1:$PORT/p2m_autoinc"
MAIN_URL="${MYSQL_URL%/*}/p2m_autoinc"

for url in "$MAIN_URL" "$SECOND_URL"; do
    port="${url##*:}"; port="${port%%/*}"
    mode=$(mariadb -h 127.0.0.1 -P "$port" -u root --protocol=TCP -N -B \
        -e "SELECT @@innodb_autoinc_lock_mode")
    for p in $PARTITIONS; do
        log "innodb_autoinc_lock_mode=$mode, $p partitions, $SIZE records"
        MYSQL_URL="$url" P2M_BENCH_DB="p2m_autoinc" P2M_BENCH_SIZES="$SIZE" \
            P2M_BENCH_ROUNDS="$ROUNDS" P2M_BENCH_PARTITIONS="$p" P2M_BENCH_BASELINES="load-data" \
            P2M_BENCH_VARIANTS=";${P2M_AUTOINC_VARIANTS:---writers 1;--writers 4}" \
            P2M_BENCH_OUT="$OUT/mode$mode-p$p" benches/e2e.sh 2>&1 | tee "$OUT/mode$mode-p$p.log" \
            | grep -E "wall|warning|failed" || true
    done
done
log "results: $OUT"
