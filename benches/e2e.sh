#!/usr/bin/env bash
# End-to-end benchmark of `pulsar2mysql run`, measured side by side with the server's own
# limits, in one run (see BENCHMARKS.md).
#
# For each size N (P2M_BENCH_SIZES), N seed-shaped records (`i|msg-i`) are produced once to a
# fresh topic; then, for P2M_BENCH_ROUNDS rounds, interleaved (the order rotates each round):
#   run:<variant>  `pulsar2mysql run` into a freshly created sink_table (fresh --job-id)
#   dry-run        `pulsar2mysql run --dry-run` over the same topic (the read limit)
#   load-data      `mariadb --local-infile=1` LOAD DATA LOCAL INFILE of the same N rows from a
#                  local file (the server's limit)
#   insert-dump    the same N rows as 10,000-row multi-row INSERTs piped into `mariadb` (the
#                  server's INSERT limit, without pulsar2mysql)
#   flink-<config> the Flink peer (benches/flink: the Flink 1.18 batch job with the Flink Pulsar
#                  and JDBC connectors that Apache InLong runs for this sync) into a freshly
#                  created sink_table; wall time includes JVM start-up and job submission
# Each is timed with bash's microsecond clock (wall) and /usr/bin/time (client CPU, peak RSS); the MariaDB server's CPU
# time over the same interval is read from /proc. Rows/s = N / wall time of the process
# (connect and start-up included for every contender alike).
#
# Settings (environment):
#   P2M_BENCH_SIZES       record counts, e.g. "100000 1000000"            (default 1000000)
#   P2M_BENCH_ROUNDS      rounds per size                                    (default 3)
#   P2M_BENCH_VARIANTS    ';'-separated extra `run` arguments, one contender each, e.g.
#                         "--batch-rows 5000;--batch-rows 50000"     (default: one, no args)
#   P2M_BENCH_PARTITIONS  0 = non-partitioned topic, else partition count    (default 0)
#   P2M_BENCH_BASELINES   which baselines to run: any of "dry-run load-data insert-dump"
#                         (default all three)
#   P2M_BENCH_DUMP_ROWS   rows per INSERT in the dump                        (default 10000)
#   P2M_BENCH_FLINK       Flink peer contenders, any of "flink-inlong flink-tuned" (default none;
#                         built first by benches/flink/build.sh). A "-as-shipped" suffix (e.g.
#                         flink-inlong-as-shipped) leaves the server's sql_mode as InLong does:
#                         it fails on the seed's id 0 (BENCHMARKS.md)
#   P2M_BENCH_FLINK_TIMEOUT  seconds allowed per Flink run (default: P2M_BENCH_TIMEOUT's); one
#                         that times out is a failed sample, with the rows it committed by then
#   P2M_BENCH_STRICT=1    exit 1 unless every sample is ok and every table holds exactly the
#                         N rows `i|msg-i` (the CI smoke, scripts/bench-smoke.sh)
#   P2M_BENCH_TIMEOUT     seconds allowed per command (default: 120 + N/20000)
#   P2M_BENCH_DB          database, created and dropped                      (default p2m_bench)
#   P2M_BENCH_OUT         directory for raw results                   (default target/bench)
#   P2M_BENCH_BIN_DIR     use these pulsar2mysql and seed_producer binaries; no build
#   P2M_BENCH_KEEP=1      keep the database, topics and files afterwards
# Needs the services up (scripts/services.sh up). Every command stops by itself (timeout).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZES="${P2M_BENCH_SIZES:-1000000}"
ROUNDS="${P2M_BENCH_ROUNDS:-3}"
VARIANTS="${P2M_BENCH_VARIANTS:-}"
PARTITIONS="${P2M_BENCH_PARTITIONS:-0}"
BASELINES="${P2M_BENCH_BASELINES:-dry-run load-data insert-dump}"
DUMP_ROWS="${P2M_BENCH_DUMP_ROWS:-10000}"
DB="${P2M_BENCH_DB:-p2m_bench}"
OUT="${P2M_BENCH_OUT:-$ROOT/target/bench}"
KEEP="${P2M_BENCH_KEEP:-0}"
FLINK="${P2M_BENCH_FLINK:-}"
STRICT="${P2M_BENCH_STRICT:-0}"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- tools and services -------------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time (for peak RSS)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time) >/dev/null \
        || die "cannot install GNU time; install the 'time' package"
fi
command -v mariadb >/dev/null || die "the mariadb client is missing (scripts/services.sh up installs it)"
command -v python3 >/dev/null || die "python3 is needed for the summary"
command -v curl >/dev/null || die "curl is needed"
[[ -n "${EPOCHREALTIME:-}" ]] || die "bash 5 or newer is needed (its EPOCHREALTIME clock times the runs)"

eval "$(scripts/services.sh env)"
: "${PULSAR_URL:?}" "${PULSAR_ADMIN_URL:?}" "${MYSQL_URL:?}"
# mysql://user[:pw]@host:port/db -> client arguments
MY_HOSTPORT="${MYSQL_URL#*@}"; MY_HOSTPORT="${MY_HOSTPORT%%/*}"
MY_USERINFO="${MYSQL_URL#mysql://}"; MY_USERINFO="${MY_USERINFO%%@*}"
MY_USER="${MY_USERINFO%%:*}"
MY_HOST="${MY_HOSTPORT%%:*}"; MY_PORT="${MY_HOSTPORT##*:}"
[[ "$MY_PORT" == "$MY_HOSTPORT" ]] && MY_PORT=3306
MY_ARGS=(-h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" --protocol=TCP)
MY_PW=""
if [[ "$MY_USERINFO" == *:* ]]; then MY_PW="${MY_USERINFO#*:}"; MY_ARGS+=("-p$MY_PW"); fi
DB_URL="mysql://${MY_USERINFO}@${MY_HOSTPORT}/${DB}"
sql() { mariadb "${MY_ARGS[@]}" -N -B -e "$1"; }
sql "SELECT 1" >/dev/null || die "MariaDB at $MY_HOSTPORT does not answer; run scripts/services.sh up"
curl -fsS -m 5 "$PULSAR_ADMIN_URL/admin/v2/brokers/health" >/dev/null \
    || die "Pulsar admin at $PULSAR_ADMIN_URL does not answer; run scripts/services.sh up"

server_pid() { pgrep -x mariadbd | head -1 || pgrep -x mysqld | head -1 || true; }
SERVER_PID="$(server_pid)"
[[ -n "$SERVER_PID" ]] || log "warning: no local mariadbd process: server CPU is not measured"
BROKER_PID="$(pgrep -f PulsarStandaloneStarter | head -1 || true)"
[[ -n "$BROKER_PID" ]] || log "warning: no local Pulsar standalone process: broker CPU is not measured"
CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { # utime + stime of process $1, in clock ticks
    if [[ -n "$1" && -r /proc/$1/stat ]]; then
        # the command name (field 2) may hold spaces: count from the closing parenthesis
        sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
    else
        echo 0
    fi
}

# ---- binaries: built once, copied so that a concurrent build cannot swap them mid-run -----
WORK="$(mktemp -d /tmp/p2m-bench.XXXXXX)"
TOPICS=()
cleanup() {
    set +e
    if [[ "$KEEP" != 1 ]]; then
        sql "DROP DATABASE IF EXISTS \`$DB\`" >/dev/null 2>&1
        for t in "${TOPICS[@]}"; do
            local path="${t#persistent://}"
            if [[ "$PARTITIONS" -gt 0 ]]; then
                curl -fsS -m 30 -X DELETE "$PULSAR_ADMIN_URL/admin/v2/persistent/$path/partitions?force=true" >/dev/null 2>&1
            else
                curl -fsS -m 30 -X DELETE "$PULSAR_ADMIN_URL/admin/v2/persistent/$path?force=true" >/dev/null 2>&1
            fi
        done
        rm -rf "$WORK"
    else
        log "kept: database $DB, topics ${TOPICS[*]}, files in $WORK"
    fi
}
trap cleanup EXIT

if [[ -n "${P2M_BENCH_BIN_DIR:-}" ]]; then
    cp "$P2M_BENCH_BIN_DIR/pulsar2mysql" "$P2M_BENCH_BIN_DIR/seed_producer" "$WORK/"
else
    log "building (release)"
    cargo build --release --quiet --bin pulsar2mysql --example seed_producer
    cp target/release/pulsar2mysql target/release/examples/seed_producer "$WORK/"
fi
BIN="$WORK/pulsar2mysql"
PRODUCER="$WORK/seed_producer"
if [[ -n "$FLINK" ]]; then
    for f in $FLINK; do
        [[ "$f" =~ ^flink-(inlong|tuned)(-as-shipped)?$ ]] || die "unknown Flink contender '$f' (flink-inlong, flink-tuned)"
    done
    log "building the Flink peer (benches/flink/build.sh; cached)"
    # copied, as the binaries: a concurrent rebuild cannot swap it mid-run
    cp "$(benches/flink/build.sh)" "$WORK/flink-peer.jar"
    export P2M_FLINK_JAR="$WORK/flink-peer.jar"
    JDBC_URL="jdbc:mysql://${MY_HOSTPORT}/${DB}"
fi

mkdir -p "$OUT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RAW="$OUT/e2e-$STAMP.tsv"
printf 'size\tround\tcontender\twall_s\trows\tclient_user_s\tclient_sys_s\tmax_rss_kib\tserver_cpu_s\trun_duration_ms\toutcome\tbroker_cpu_s\n' >"$RAW"

# ---- one measurement ----------------------------------------------------------------------
# measure SIZE ROUND NAME EXPECTED_ROWS -- command...   (stdin of the command: $MEASURE_STDIN)
MEASURE_STDIN=/dev/null
measure() {
    local size="$1" round="$2" name="$3" expected="$4"; shift 5
    local tfile="$WORK/time.$$" ofile="$WORK/out.$$" efile="$WORK/err.$$"
    local before after broker_before broker_after
    SERVER_PID="$(server_pid)"
    local pid_before="$SERVER_PID"
    BROKER_PID="$(pgrep -f PulsarStandaloneStarter | head -1 || true)"
    local broker_pid_before="$BROKER_PID"
    before="$(cpu_ticks "$SERVER_PID")"
    broker_before="$(cpu_ticks "$BROKER_PID")"
    set +e
    local t0="$EPOCHREALTIME"
    /usr/bin/time -f '%e %U %S %M' -o "$tfile" timeout -k 10 "$TIMEOUT" "$@" \
        <"$MEASURE_STDIN" >"$ofile" 2>"$efile"
    local rc=$?
    local t1="$EPOCHREALTIME"
    set -e
    after="$(cpu_ticks "$SERVER_PID")"
    broker_after="$(cpu_ticks "$BROKER_PID")"
    local wall user sys rss
    read -r wall user sys rss < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$tfile" | tail -1)
    # GNU time prints the wall time in 10 ms steps (7 % of a 100,000-record run); bash's
    # microsecond clock around the same command replaces it. Both wrappers (time, timeout)
    # fork and exec in front of every contender alike: ~1 ms.
    wall="$(awk -v a="${t0/,/.}" -v b="${t1/,/.}" 'BEGIN{printf "%.4f", b-a}')"
    local server_s
    server_s="$(awk -v a="$before" -v b="$after" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/t}')"
    local broker_s
    broker_s="$(awk -v a="$broker_before" -v b="$broker_after" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/t}')"
    local rows="$expected" duration="" outcome="ok"
    if [[ "$name" == run* || "$name" == dry-run ]]; then
        local summary
        summary="$(tail -1 "$ofile")"
        rows="$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("rows_converted" if d.get("dry_run") else "rows_written", 0))' "$summary" 2>/dev/null || echo 0)"
        duration="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("duration_ms",""))' "$summary" 2>/dev/null || true)"
        outcome="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("outcome","?"))' "$summary" 2>/dev/null || echo "no-summary")"
    fi
    if [[ "$name" == flink-* ]]; then # rows: what the table holds (checked in full by check_count)
        rows="$(sql "SELECT COUNT(*) FROM \`$DB\`.sink_table" 2>/dev/null || echo 0)"
        duration="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("duration_ms",""))' "$(tail -1 "$ofile")" 2>/dev/null || true)"
    fi
    if [[ $rc -ne 0 ]]; then
        outcome="failed(rc=$rc)"
        log "  $name failed (rc=$rc; 124 = timed out after ${TIMEOUT}s); last stderr lines:"
        grep -v '^[[:space:]]*at \|^[[:space:]]*\.\.\. ' "$efile" | tail -3 | cut -c1-300 >&2
    elif [[ "$(server_pid)" != "$pid_before" ]]; then
        outcome="server-restarted" # someone restarted MariaDB meanwhile: not a valid sample
    elif [[ "$(pgrep -f PulsarStandaloneStarter | head -1 || true)" != "$broker_pid_before" ]]; then
        outcome="broker-restarted" # the same for Pulsar
    elif [[ "$rows" != "$expected" ]]; then
        outcome="rows=$rows!=$expected"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$round" "$name" "$wall" "$rows" \
        "$user" "$sys" "$rss" "$server_s" "$duration" "$outcome" "$broker_s" >>"$RAW"
    log "  $(printf '%-28s' "$name") wall ${wall}s  $(awk -v n="$rows" -v w="$wall" 'BEGIN{if(w>0)printf "%9.0f", n/w}') rows/s  rss ${rss} KiB  server cpu ${server_s}s  broker cpu ${broker_s}s  $outcome"
}

fresh_table() {
    sql "DROP TABLE IF EXISTS \`$DB\`.sink_table; USE \`$DB\`; $(grep -v '^--' sql/sink_table.sql)"
}
check_count() { # N [CONTENDER]: the table must hold exactly the N rows i|msg-i (i = 0..N-1)
    local got
    got="$(sql "SELECT COUNT(*), COUNT(DISTINCT id), IFNULL(MIN(id), -1), IFNULL(MAX(id), -1),
                       IFNULL(SUM(name <> CONCAT('msg-', id)), 0) FROM \`$DB\`.sink_table")"
    if [[ "$got" != "$(printf '%s\t%s\t0\t%s\t0' "$1" "$1" "$(($1 - 1))")" ]]; then
        log "  warning: sink_table is not the $1 rows i|msg-i: rows, distinct ids, min id, max id, wrong names = $(tr '\t' ' ' <<<"$got")"
        printf '#\t%s\tcount-mismatch\t%s\t%s\n' "$1" "$(tr '\t' ' ' <<<"$got")" "${2:-}" >>"$RAW"
    fi
}

# ---- the benchmark --------------------------------------------------------------------------
sql "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\`"
IFS=';' read -r -a VARIANT_LIST <<<"${VARIANTS:-}"
[[ ${#VARIANT_LIST[@]} -eq 0 ]] && VARIANT_LIST=("")

log "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load: $(cut -d' ' -f1-3 /proc/loadavg)"
log "versions: $("$BIN" --version), $(sql 'SELECT VERSION()'), Pulsar $(curl -fsS -m 5 "$PULSAR_ADMIN_URL/admin/v2/brokers/version" 2>/dev/null || echo '?')"
log "raw results: $RAW"

for N in $SIZES; do
    TIMEOUT="${P2M_BENCH_TIMEOUT:-$((120 + N / 20000))}"
    TOPIC="persistent://public/default/p2m-bench-$N-$$-$RANDOM"
    TOPICS+=("$TOPIC")
    if [[ "$PARTITIONS" -gt 0 ]]; then
        curl -fsS -m 30 -X PUT -H 'Content-Type: application/json' -d "$PARTITIONS" \
            "$PULSAR_ADMIN_URL/admin/v2/persistent/${TOPIC#persistent://}/partitions" >/dev/null \
            || die "cannot create the partitioned topic $TOPIC"
    fi
    log "size $N: producing to $TOPIC (partitions: $PARTITIONS)"
    t0=$(date +%s.%N)
    timeout -k 10 $((300 + N / 5000)) "$PRODUCER" --url "$PULSAR_URL" --topic "$TOPIC" --count "$N" >/dev/null 2>"$WORK/produce.err" \
        || { tail -5 "$WORK/produce.err" >&2; die "producing failed"; }
    log "  produced in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"

    DATA="$WORK/seed-$N.txt"
    DUMP="$WORK/seed-$N.sql"
    awk -v n="$N" 'BEGIN{for(i=0;i<n;i++) printf "%d|msg-%d\n", i, i}' >"$DATA"
    awk -v n="$N" -v per="$DUMP_ROWS" -v db="$DB" 'BEGIN{
        printf "USE `%s`;\nSET SESSION sql_mode = \"STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO\";\n", db;
        for(i=0;i<n;i++){
            if(i%per==0) printf "INSERT INTO sink_table (id,name) VALUES ";
            else printf ",";
            printf "(%d,'"'"'msg-%d'"'"')", i, i;
            if(i%per==per-1 || i==n-1) printf ";\n";
        }}' >"$DUMP"

    CONTENDERS=()
    for v in "${VARIANT_LIST[@]}"; do
        v="$(xargs <<<"$v")" # trim
        CONTENDERS+=("run:$v")
    done
    for b in $BASELINES; do CONTENDERS+=("$b"); done
    for f in $FLINK; do CONTENDERS+=("$f"); done
    count=${#CONTENDERS[@]}

    # One unrecorded dry run first: the broker is a JVM, and right after a restart (the
    # integration tests restart it) its first reads of a topic run on cold code, ~2x the CPU.
    # Warming it up once keeps that out of whichever contender would have come first.
    log "size $N: warm-up (one dry run, not recorded)"
    fresh_table
    timeout -k 10 "$TIMEOUT" "$BIN" run --pulsar-url "$PULSAR_URL" --topic "$TOPIC" --table sink_table \
        --mysql-url "$DB_URL" --job-id "bench-warm-$N-$RANDOM" --dry-run >/dev/null 2>&1 \
        || log "  warning: the warm-up run failed"
    for ((r = 1; r <= ROUNDS; r++)); do
        log "size $N round $r/$ROUNDS"
        for ((k = 0; k < count; k++)); do
            c="${CONTENDERS[$(((k + r - 1) % count))]}"
            case "$c" in
            run:*)
                args="${c#run:}"
                fresh_table
                # shellcheck disable=SC2086 # the variant is a list of arguments
                measure "$N" "$r" "run${args:+ $args}" "$N" -- "$BIN" run --pulsar-url "$PULSAR_URL" \
                    --topic "$TOPIC" --table sink_table --mysql-url "$DB_URL" \
                    --job-id "bench-$N-$r-$RANDOM$RANDOM" $args
                check_count "$N" "$c"
                ;;
            dry-run)
                measure "$N" "$r" dry-run "$N" -- "$BIN" run --pulsar-url "$PULSAR_URL" \
                    --topic "$TOPIC" --table sink_table --mysql-url "$DB_URL" \
                    --job-id "bench-dry-$N-$r-$RANDOM" --dry-run
                ;;
            load-data)
                fresh_table
                measure "$N" "$r" load-data "$N" -- mariadb "${MY_ARGS[@]}" --local-infile=1 "$DB" -e \
                    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO'; LOAD DATA LOCAL INFILE '$DATA' INTO TABLE sink_table FIELDS TERMINATED BY '|' LINES TERMINATED BY '\n' (id, name)"
                check_count "$N" "$c"
                ;;
            insert-dump)
                fresh_table
                MEASURE_STDIN="$DUMP"
                measure "$N" "$r" "insert-dump" "$N" -- mariadb "${MY_ARGS[@]}" "$DB"
                MEASURE_STDIN=/dev/null
                check_count "$N" "$c"
                ;;
            flink-*)
                fresh_table
                config="${c%-as-shipped}"
                sqlmode=()
                [[ "$c" == *-as-shipped ]] && sqlmode=(--sql-mode as-shipped)
                TIMEOUT="${P2M_BENCH_FLINK_TIMEOUT:-$TIMEOUT}" measure "$N" "$r" "$c" "$N" -- benches/flink/run.sh \
                    --config "$config" "${sqlmode[@]}" --pulsar-url "$PULSAR_URL" --admin-url "$PULSAR_ADMIN_URL" \
                    --topic "$TOPIC" --jdbc-url "$JDBC_URL" --user "$MY_USER" --password "${MY_PW:-}"
                check_count "$N" "$c"
                ;;
            esac
        done
    done
    rm -f "$DATA" "$DUMP"
    sql "DROP TABLE IF EXISTS \`$DB\`.sink_table"
done

# ---- summary: medians and ratios --------------------------------------------------------------
python3 "$ROOT/benches/summarize.py" "$RAW" | tee "$OUT/e2e-$STAMP.md"
log "summary: $OUT/e2e-$STAMP.md"
if [[ "$STRICT" == 1 ]]; then
    bad="$(awk -F'\t' 'NR > 1 && ($1 ~ /^#/ || ($11 != "ok" && $11 != "success"))' "$RAW")"
    if [[ -n "$bad" ]]; then
        log "error: not every sample wrote exactly its rows:"
        printf '%s\n' "$bad" >&2
        exit 1
    fi
    log "strict: every sample ok, every table exactly its N rows"
fi
