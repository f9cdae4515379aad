#!/usr/bin/env bash
# End-to-end benchmark of `pulsar2mysql run`, measured side by side with the server's own
# limits, in one run (see BENCHMARKS.md).
#
# For each size N (P2M_BENCH_SIZES), N records of one shape (P2M_BENCH_SHAPE; the seed's
# `i|msg-i` by default) are produced once to a fresh topic; then, for P2M_BENCH_ROUNDS rounds,
# interleaved (the order rotates each round):
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
# time over the same interval is read from /proc, and so are the whole machine's busy CPU seconds
# (all processes, other people's included) and its I/O wait. Rows/s = N / wall time of the process
# (connect and start-up included for every contender alike). On a non-partitioned topic a
# sidecar (benches/first_row.py) polls the table for record 0 every 5 ms during every
# contender (dry-run included, so that all carry its load): the time from start to the first
# row committed. Every contender talks to MariaDB without TLS by default (P2M_BENCH_MYSQL_SSL).
#
# Settings (environment):
#   P2M_BENCH_SIZES       record counts, e.g. "100000 1000000"            (default 1000000)
#   P2M_BENCH_ROUNDS      rounds per size                                    (default 3)
#   P2M_BENCH_VARIANTS    ';'-separated extra `run` arguments, one contender each, e.g.
#                         "--batch-rows 5000;--batch-rows 50000"     (default: one, no args)
#   P2M_BENCH_SHAPE       seed (`i|msg-i` into sink_table), payload-1k / payload-10k (1 / 10 KiB
#                         records into benches/sql/payload_table.sql), wide (20 mixed-type
#                         columns, some NULL, into benches/sql/wide_table.sql); records from
#                         examples/shape_producer.rs (seed: seed_producer)       (default seed)
#   P2M_BENCH_PARTITIONS  0 = non-partitioned topic, else partition count    (default 0)
#   P2M_BENCH_MYSQL_SSL   disabled: `run --mysql-ssl-mode disabled`, `mariadb --skip-ssl` (the
#                         Flink peer never uses TLS); required: TLS for run and the mariadb
#                         client (the Flink peer still without)              (default disabled)
#   P2M_BENCH_FIRST_ROW   1 = the first-row sidecar (non-partitioned topics only) (default 1)
#   P2M_BENCH_BASELINES   which baselines to run: any of "dry-run load-data insert-dump"
#                         (default all three)
#   P2M_BENCH_DUMP_ROWS   rows per INSERT in the dump                        (default 10000)
#   P2M_BENCH_FLINK       Flink peer contenders, any of "flink-inlong flink-tuned" (default none;
#                         built first by benches/flink/build.sh). A "-as-shipped" suffix (e.g.
#                         flink-inlong-as-shipped) leaves the server's sql_mode as InLong does:
#                         it fails on the seed's id 0 (BENCHMARKS.md)
#   P2M_BENCH_FLINK_TIMEOUT  seconds allowed per Flink run (default: P2M_BENCH_TIMEOUT's); one
#                         that times out is a failed sample, with the rows it committed by then;
#                         P2M_BENCH_FLINK_INLONG_TIMEOUT / P2M_BENCH_FLINK_TUNED_TIMEOUT per config
#   P2M_BENCH_FLINK_ROUNDS   rounds of the Flink contenders (default P2M_BENCH_ROUNDS; they run in
#                         the first rounds, interleaved with the others)
#   P2M_BENCH_STRICT=1    exit 1 unless every sample is ok and every table holds exactly the
#                         N rows `i|msg-i` (the CI smoke, scripts/bench-smoke.sh)
#   P2M_BENCH_TIMEOUT     seconds allowed per command (default: 120 + N/20000)
#   P2M_BENCH_DB          database, created and dropped        (default p2m_bench_<pid>: the
#                         server is shared, and a concurrent run must not drop this one's tables)
#   P2M_BENCH_OUT         directory for raw results                   (default target/bench)
#                         (e2e-<stamp>-<shape>-p<partitions>.tsv, a .meta file beside it)
#   P2M_BENCH_BIN_DIR     use these pulsar2mysql, seed_producer and shape_producer binaries;
#                         no build
#   P2M_BENCH_BASE_BIN    a second pulsar2mysql binary (e.g. the last release, or main before a
#                         change), measured as contender "base <variant>" beside every "run"
#                         variant: an A/B comparison in one run                (default none)
#   P2M_BENCH_KEEP=1      keep the database, topics and files afterwards
# Needs the services up (scripts/services.sh up). Every command stops by itself (timeout).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZES="${P2M_BENCH_SIZES:-1000000}"
ROUNDS="${P2M_BENCH_ROUNDS:-3}"
VARIANTS="${P2M_BENCH_VARIANTS:-}"
BASE_BIN="${P2M_BENCH_BASE_BIN:-}"
PARTITIONS="${P2M_BENCH_PARTITIONS:-0}"
BASELINES="${P2M_BENCH_BASELINES:-dry-run load-data insert-dump}"
DUMP_ROWS="${P2M_BENCH_DUMP_ROWS:-10000}"
DB="${P2M_BENCH_DB:-p2m_bench_$$}" # per run: the MariaDB server is shared
OUT="${P2M_BENCH_OUT:-$ROOT/target/bench}"
KEEP="${P2M_BENCH_KEEP:-0}"
FLINK="${P2M_BENCH_FLINK:-}"
STRICT="${P2M_BENCH_STRICT:-0}"
SHAPE="${P2M_BENCH_SHAPE:-seed}"
MYSQL_SSL="${P2M_BENCH_MYSQL_SSL:-disabled}"
FIRST_ROW="${P2M_BENCH_FIRST_ROW:-1}"
[[ "$PARTITIONS" -gt 0 ]] && FIRST_ROW=0 # record 0 is not the first commit of every design there
FLINK_ROUNDS="${P2M_BENCH_FLINK_ROUNDS:-$ROUNDS}"

# ---- the shape: table, column mapping, records --------------------------------------------
case "$SHAPE" in
seed)
    TABLE=sink_table; DDL=sql/sink_table.sql; COLS="id, name"; RUN_SHAPE_ARGS=() ;;
payload-1k | payload-10k)
    TABLE=payload_table; DDL=benches/sql/payload_table.sql; COLS="id, name"; RUN_SHAPE_ARGS=() ;;
wide)
    TABLE=wide_table; DDL=benches/sql/wide_table.sql
    COLS="id, c_tiny, c_small, c_int, c_big, c_uint, c_dec, c_dec6, c_double, c_date, c_dt, c_ts, c_code, c_name, c_email, c_city, c_note, c_flag, c_score, c_status"
    RUN_SHAPE_ARGS=(--columns "${COLS//, /,}" --null-literal '\N') ;;
*) die "unknown P2M_BENCH_SHAPE '$SHAPE' (seed, payload-1k, payload-10k, wide)" ;;
esac
case "$MYSQL_SSL" in
disabled) RUN_SSL_ARGS=(--mysql-ssl-mode disabled); CLIENT_SSL_ARGS=(--skip-ssl) ;;
required) RUN_SSL_ARGS=(--mysql-ssl-mode required); CLIENT_SSL_ARGS=(--ssl) ;;
*) die "P2M_BENCH_MYSQL_SSL is disabled or required, not '$MYSQL_SSL'" ;;
esac

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
MY_ARGS=(-h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" --protocol=TCP "${CLIENT_SSL_ARGS[@]}")
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
machine_ticks() { # busy and iowait clock ticks of all CPUs together (/proc/stat)
    awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $6; exit}' /proc/stat
}
cpu_ticks() { # utime + stime of process $1, in clock ticks
    if [[ -n "$1" && -r /proc/$1/stat ]]; then
        # the command name (field 2) may hold spaces: count from the closing parenthesis
        sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
    else
        echo 0
    fi
}

runq_snapshot() { # "tid wait_ns" per thread of process $1: the time each waited for a CPU while runnable
    if [[ -n "$1" && -d /proc/$1/task ]]; then
        for t in /proc/"$1"/task/*; do
            read -r _ wait _ <"$t/schedstat" 2>/dev/null && echo "${t##*/} $wait"
        done
    fi
    return 0
}
runq_s() { # seconds waited between two snapshots: threads in both, and threads started between
    # (a thread that exits meanwhile takes its wait with it; MariaDB keeps a connection's thread
    # in its cache after the disconnect, so the sample's thread is seen)
    awk 'NR == FNR {before[$1] = $2; next} {w += $2 - ($1 in before ? before[$1] : 0)}
         END {printf "%.2f", w / 1e9}' <(echo "$1") <(echo "$2")
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
    [[ "$SHAPE" == seed ]] || cp "$P2M_BENCH_BIN_DIR/shape_producer" "$WORK/"
else
    log "building (release)"
    cargo build --release --quiet --bin pulsar2mysql --example seed_producer --example shape_producer
    cp target/release/pulsar2mysql target/release/examples/seed_producer \
        target/release/examples/shape_producer "$WORK/"
fi
BIN="$WORK/pulsar2mysql"
PRODUCER="$WORK/seed_producer"
SHAPER="$WORK/shape_producer"
if [[ -n "$FLINK" ]]; then
    for f in $FLINK; do
        [[ "$f" =~ ^flink-(inlong|tuned)(-as-shipped)?$ ]] || die "unknown Flink contender '$f' (flink-inlong, flink-tuned)"
    done
    [[ "$SHAPE" != wide ]] || die "the Flink peer writes (id, name) only: not the wide shape"
    log "building the Flink peer (benches/flink/build.sh; cached)"
    # copied, as the binaries: a concurrent rebuild cannot swap it mid-run
    cp "$(benches/flink/build.sh)" "$WORK/flink-peer.jar"
    export P2M_FLINK_JAR="$WORK/flink-peer.jar"
    JDBC_URL="jdbc:mysql://${MY_HOSTPORT}/${DB}"
fi

mkdir -p "$OUT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RAW="$OUT/e2e-$STAMP-$SHAPE-p$PARTITIONS.tsv"
# The runner's time budget per run (the summary's `timing`; BENCHMARKS.md's "Time budget").
TIMING="${RAW%.tsv}.timing.tsv"
printf 'size\tround\tcontender\tpartitions\tpulsar_setup_ms\tmysql_setup_ms\tfirst_record_ms\tfirst_write_ms\treading_done_ms\ttail_ms\tload_input_wait_ms\tcommits\tcommit_ms\tcommit_max_ms\ttotal_ms\tentries_read\tlockstep_held_ms\n' >"$TIMING"
printf 'size\tround\tcontender\twall_s\trows\tclient_user_s\tclient_sys_s\tmax_rss_kib\tserver_cpu_s\trun_duration_ms\toutcome\tbroker_cpu_s\tshape\tpartitions\tfirst_row_s\tload1\tmachine_cpu_s\tiowait_s\tretries\tserver_runq_s\n' >"$RAW"

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
    local load1 poller="" first_row=""
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    if [[ "$FIRST_ROW" == 1 ]]; then
        # The sidecar: connected and polling before the clock starts; prints the epoch time
        # of the first poll that saw record 0 committed.
        : >"$WORK/first.$$"
        python3 "$ROOT/benches/first_row.py" --interval-ms 5 --query \
            "SELECT EXISTS(SELECT 1 FROM \`$DB\`.\`$TABLE\` WHERE id = 0)" -- "${MY_ARGS[@]}" \
            >"$WORK/first.$$" 2>"$WORK/first.err.$$" &
        poller=$!
        for _ in $(seq 500); do grep -q ready "$WORK/first.$$" && break; sleep 0.01; done
        grep -q ready "$WORK/first.$$" || log "  warning: the first-row sidecar is not ready: $(tail -1 "$WORK/first.err.$$")"
    fi
    before="$(cpu_ticks "$SERVER_PID")"
    local runq_before runq_after
    runq_before="$(runq_snapshot "$SERVER_PID")"
    broker_before="$(cpu_ticks "$BROKER_PID")"
    local mach_before mach_after
    mach_before="$(machine_ticks)"
    set +e
    local t0="$EPOCHREALTIME"
    /usr/bin/time -f '%e %U %S %M' -o "$tfile" timeout -k 10 "$TIMEOUT" "$@" \
        <"$MEASURE_STDIN" >"$ofile" 2>"$efile"
    local rc=$?
    local t1="$EPOCHREALTIME"
    set -e
    after="$(cpu_ticks "$SERVER_PID")"
    runq_after="$(runq_snapshot "$SERVER_PID")"
    broker_after="$(cpu_ticks "$BROKER_PID")"
    mach_after="$(machine_ticks)"
    local machine_s iowait_s
    read -r machine_s iowait_s < <(awk -v a="$mach_before" -v b="$mach_after" -v t="$CLK_TCK" \
        'BEGIN{split(a, x, " "); split(b, y, " "); printf "%.2f %.2f\n", (y[1]-x[1])/t, (y[2]-x[2])/t}')
    if [[ -n "$poller" ]]; then
        # a row committed at the very end is seen by the next poll (<= 5 ms later)
        for _ in $(seq 50); do [[ "$(wc -l <"$WORK/first.$$")" -ge 2 ]] && break; sleep 0.01; done
        kill "$poller" 2>/dev/null || true
        wait "$poller" 2>/dev/null || true
        local seen
        seen="$(sed -n 2p "$WORK/first.$$")"
        if [[ -n "$seen" ]]; then # seconds from start; after the process ended = at its end
            first_row="$(awk -v a="${t0/,/.}" -v b="${t1/,/.}" -v s="$seen" 'BEGIN{d=s-a; if(s>b)d=b-a; if(d<0)d=0; printf "%.4f", d}')"
        fi
    fi
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
    local rows="$expected" duration="" outcome="ok" retries=""
    if [[ "$name" == run* || "$name" == dry-run ]]; then
        local summary
        summary="$(tail -1 "$ofile")"
        rows="$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("rows_converted" if d.get("dry_run") else "rows_written", 0))' "$summary" 2>/dev/null || echo 0)"
        duration="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("duration_ms",""))' "$summary" 2>/dev/null || true)"
        outcome="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("outcome","?"))' "$summary" 2>/dev/null || echo "no-summary")"
        # batches retried after a transient error (e.g. a deadlock between partitions' streams)
        retries="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("retries",""))' "$summary" 2>/dev/null || true)"
        # The run's own time budget (the summary's `timing`), one line per run beside RAW.
        python3 - "$summary" "$size" "$round" "$name" "$PARTITIONS" >>"$TIMING" 2>/dev/null <<'PY' || true
import json, sys
summary, size, rnd, name, partitions = sys.argv[1:6]
s = json.loads(summary)
t = s.get("timing") or {}
keys = ["pulsar_setup_ms", "mysql_setup_ms", "first_record_ms", "first_write_ms",
        "reading_done_ms", "tail_ms", "load_input_wait_ms", "commits", "commit_ms",
        "commit_max_ms", "total_ms"]
cells = ["" if t.get(k) is None else str(t[k]) for k in keys]
# Broker entries the records came in (absent before the summary had it).
cells.append("" if s.get("entries_read") is None else str(s["entries_read"]))
# Readers held back in step by a partition the broker had not served (absent before).
cells.append("" if t.get("lockstep_held_ms") is None else str(t["lockstep_held_ms"]))
print("\t".join([size, rnd, name, partitions] + cells))
PY
    fi
    if [[ "$name" == flink-* ]]; then # rows: what the table holds (checked in full by check_count)
        rows="$(sql "SELECT COUNT(*) FROM \`$DB\`.\`$TABLE\`" 2>/dev/null || echo 0)"
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
    local runq_s
    runq_s="$(runq_s "$runq_before" "$runq_after")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$round" "$name" "$wall" "$rows" \
        "$user" "$sys" "$rss" "$server_s" "$duration" "$outcome" "$broker_s" "$SHAPE" "$PARTITIONS" \
        "$first_row" "$load1" "$machine_s" "$iowait_s" "$retries" "$runq_s" >>"$RAW"
    log "  $(printf '%-28s' "$name") wall ${wall}s  $(awk -v n="$rows" -v w="$wall" 'BEGIN{if(w>0)printf "%9.0f", n/w}') rows/s  first row ${first_row:--}s${retries:+  retries $retries}  rss ${rss} KiB  server cpu ${server_s}s (waited ${runq_s}s for a core)  broker cpu ${broker_s}s  $outcome"
}

fresh_table() {
    sql "DROP TABLE IF EXISTS \`$DB\`.\`$TABLE\`; USE \`$DB\`; $(grep -v '^--' "$DDL")"
}
# check_count N [CONTENDER]: the table must hold exactly the N records (ids 0..N-1; for the seed
# every name msg-<id>; for the other shapes the same checksum of every column as the first
# contender of this size that held N rows).
REF_SUM=""
check_count() {
    local got want
    if [[ "$SHAPE" == seed ]]; then
        got="$(sql "SELECT COUNT(*), COUNT(DISTINCT id), IFNULL(MIN(id), -1), IFNULL(MAX(id), -1),
                           IFNULL(SUM(name <> CONCAT('msg-', id)), 0) FROM \`$DB\`.sink_table")"
        want="$(printf '%s\t%s\t0\t%s\t0' "$1" "$1" "$(($1 - 1))")"
    else
        got="$(sql "SELECT COUNT(*), COUNT(DISTINCT id), IFNULL(MIN(id), -1), IFNULL(MAX(id), -1),
                           IFNULL(BIT_XOR(CRC32(CONCAT_WS('|', $COLS, ISNULL(${COLS//, /), ISNULL(})))), 0)
                    FROM \`$DB\`.\`$TABLE\`")"
        if [[ -z "$REF_SUM" && "$(cut -f1-4 <<<"$got")" == "$(printf '%s\t%s\t0\t%s' "$1" "$1" "$(($1 - 1))")" ]]; then
            REF_SUM="$(cut -f5 <<<"$got")"
        fi
        want="$(printf '%s\t%s\t0\t%s\t%s' "$1" "$1" "$(($1 - 1))" "${REF_SUM:-?}")"
    fi
    if [[ "$got" != "$want" ]]; then
        log "  warning: $TABLE is not the $1 records: rows, distinct ids, min id, max id, wrong names (seed) or checksum = $(tr '\t' ' ' <<<"$got") (want $(tr '\t' ' ' <<<"$want"))"
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
# What the report needs besides the samples: machine, versions, server settings, the block.
{
    echo "stamp=$STAMP"
    echo "shape=$SHAPE"
    echo "partitions=$PARTITIONS"
    echo "sizes=$SIZES"
    echo "rounds=$ROUNDS"
    echo "flink=$FLINK"
    echo "flink_rounds=$FLINK_ROUNDS"
    echo "flink_inlong_timeout=${P2M_BENCH_FLINK_INLONG_TIMEOUT:-${P2M_BENCH_FLINK_TIMEOUT:-${P2M_BENCH_TIMEOUT:-default}}}"
    echo "flink_tuned_timeout=${P2M_BENCH_FLINK_TUNED_TIMEOUT:-${P2M_BENCH_FLINK_TIMEOUT:-${P2M_BENCH_TIMEOUT:-default}}}"
    echo "variants=$VARIANTS"
    echo "baselines=$BASELINES"
    echo "mysql_ssl=$MYSQL_SSL"
    echo "first_row=$FIRST_ROW"
    echo "cores=$(nproc)"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "mem_gib=$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "p2m_version=$("$BIN" --version)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock vendor 2>/dev/null || echo '+dirty')"
    echo "server=$(sql 'SELECT VERSION()')"
    sql "SELECT CONCAT('innodb_autoinc_lock_mode=', @@innodb_autoinc_lock_mode),
                CONCAT('innodb_flush_log_at_trx_commit=', @@innodb_flush_log_at_trx_commit),
                CONCAT('innodb_buffer_pool_mib=', @@innodb_buffer_pool_size DIV 1048576),
                CONCAT('innodb_log_file_mib=', @@innodb_log_file_size DIV 1048576),
                CONCAT('log_bin=', @@log_bin), CONCAT('max_allowed_packet=', @@max_allowed_packet),
                CONCAT('have_ssl=', @@have_ssl)" | tr '\t' '\n'
    echo "pulsar=$(curl -fsS -m 5 "$PULSAR_ADMIN_URL/admin/v2/brokers/version" 2>/dev/null || echo '?')"
    echo "java=$(java -version 2>&1 | head -1 || true)"
} >"${RAW%.tsv}.meta"

for N in $SIZES; do
    TIMEOUT="${P2M_BENCH_TIMEOUT:-$((120 + N / 20000))}"
    TOPIC="persistent://public/default/p2m-bench-$N-$$-$RANDOM"
    TOPICS+=("$TOPIC")
    if [[ "$PARTITIONS" -gt 0 ]]; then
        curl -fsS -m 30 -X PUT -H 'Content-Type: application/json' -d "$PARTITIONS" \
            "$PULSAR_ADMIN_URL/admin/v2/persistent/${TOPIC#persistent://}/partitions" >/dev/null \
            || die "cannot create the partitioned topic $TOPIC"
    fi
    log "size $N: producing $SHAPE records to $TOPIC (partitions: $PARTITIONS)"
    t0=$(date +%s.%N)
    if [[ "$SHAPE" == seed ]]; then
        producer=("$PRODUCER")
    else
        producer=("$SHAPER" --shape "$SHAPE")
    fi
    timeout -k 10 $((300 + N / 5000)) "${producer[@]}" --url "$PULSAR_URL" --topic "$TOPIC" --count "$N" >/dev/null 2>"$WORK/produce.err" \
        || { tail -5 "$WORK/produce.err" >&2; die "producing failed"; }
    log "  produced in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"

    # The baselines' input: the same records as a file, and as multi-row INSERTs of at most
    # P2M_BENCH_DUMP_ROWS rows and ~4 MiB each (fields quoted, `\N` = NULL).
    DATA="$WORK/$SHAPE-$N.txt"
    DUMP="$WORK/$SHAPE-$N.sql"
    if [[ "$SHAPE" == seed ]]; then
        awk -v n="$N" 'BEGIN{for(i=0;i<n;i++) printf "%d|msg-%d\n", i, i}' >"$DATA"
    else
        "$SHAPER" --shape "$SHAPE" --count "$N" --print >"$DATA"
    fi
    per="$(awk -v per="$DUMP_ROWS" -v b="$(head -1 "$DATA" | wc -c)" 'BEGIN{k=int(4194304/(b+8)); if(k<1)k=1; if(k>per)k=per; print k}')"
    awk -F'|' -v per="$per" -v db="$DB" -v table="$TABLE" -v cols="$COLS" '
        BEGIN { printf "USE `%s`;\nSET SESSION sql_mode = \"STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO\";\n", db }
        {
            i = NR - 1
            if (i % per == 0) printf "INSERT INTO %s (%s) VALUES ", table, cols; else printf ","
            row = "(" $1
            for (f = 2; f <= NF; f++) row = row "," ($f == "\\N" ? "NULL" : "'"'"'" $f "'"'"'")
            printf "%s)", row
            if (i % per == per - 1) printf ";\n"
        }
        END { if (NR % per != 0) printf ";\n" }' "$DATA" >"$DUMP"

    CONTENDERS=()
    for v in "${VARIANT_LIST[@]}"; do
        v="$(xargs <<<"$v")" # trim
        CONTENDERS+=("run:$v")
        [[ -n $BASE_BIN ]] && CONTENDERS+=("base:$v")
    done
    for b in $BASELINES; do CONTENDERS+=("$b"); done
    for f in $FLINK; do CONTENDERS+=("$f"); done
    count=${#CONTENDERS[@]}

    # One unrecorded dry run first: the broker is a JVM, and right after a restart (the
    # integration tests restart it) its first reads of a topic run on cold code, ~2x the CPU.
    # Warming it up once keeps that out of whichever contender would have come first.
    log "size $N: warm-up (one dry run, not recorded)"
    fresh_table
    timeout -k 10 "$TIMEOUT" "$BIN" run --pulsar-url "$PULSAR_URL" --topic "$TOPIC" --table "$TABLE" \
        --mysql-url "$DB_URL" "${RUN_SSL_ARGS[@]}" "${RUN_SHAPE_ARGS[@]}" --job-id "bench-warm-$N-$RANDOM" \
        --dry-run >/dev/null 2>"$WORK/warm.err" \
        || { log "  warning: the warm-up run failed:"; tail -3 "$WORK/warm.err" | cut -c1-300 >&2; }
    REF_SUM=""
    for ((r = 1; r <= ROUNDS; r++)); do
        log "size $N round $r/$ROUNDS"
        for ((k = 0; k < count; k++)); do
            c="${CONTENDERS[$(((k + r - 1) % count))]}"
            [[ "$c" == flink-* && $r -gt $FLINK_ROUNDS ]] && continue
            case "$c" in
            run:* | base:*)
                args="${c#*:}"
                bin="$BIN" label="run"
                [[ $c == base:* ]] && bin="$BASE_BIN" label="base"
                fresh_table
                # shellcheck disable=SC2086 # the variant is a list of arguments
                measure "$N" "$r" "$label${args:+ $args}" "$N" -- "$bin" run --pulsar-url "$PULSAR_URL" \
                    --topic "$TOPIC" --table "$TABLE" --mysql-url "$DB_URL" "${RUN_SSL_ARGS[@]}" \
                    "${RUN_SHAPE_ARGS[@]}" --job-id "bench-$N-$r-$RANDOM$RANDOM" $args
                check_count "$N" "$c"
                ;;
            dry-run)
                fresh_table # empty, as the sidecar's table for every contender
                measure "$N" "$r" dry-run "$N" -- "$BIN" run --pulsar-url "$PULSAR_URL" \
                    --topic "$TOPIC" --table "$TABLE" --mysql-url "$DB_URL" "${RUN_SSL_ARGS[@]}" \
                    "${RUN_SHAPE_ARGS[@]}" --job-id "bench-dry-$N-$r-$RANDOM" --dry-run
                ;;
            load-data)
                fresh_table
                measure "$N" "$r" load-data "$N" -- mariadb "${MY_ARGS[@]}" --local-infile=1 "$DB" -e \
                    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO'; LOAD DATA LOCAL INFILE '$DATA' INTO TABLE \`$TABLE\` FIELDS TERMINATED BY '|' LINES TERMINATED BY '\n' ($COLS)"
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
                ftimeout="${P2M_BENCH_FLINK_TIMEOUT:-$TIMEOUT}"
                [[ "$config" == flink-inlong ]] && ftimeout="${P2M_BENCH_FLINK_INLONG_TIMEOUT:-$ftimeout}"
                [[ "$config" == flink-tuned ]] && ftimeout="${P2M_BENCH_FLINK_TUNED_TIMEOUT:-$ftimeout}"
                TIMEOUT="$ftimeout" measure "$N" "$r" "$c" "$N" -- benches/flink/run.sh \
                    --config "$config" "${sqlmode[@]}" --pulsar-url "$PULSAR_URL" --admin-url "$PULSAR_ADMIN_URL" \
                    --topic "$TOPIC" --jdbc-url "$JDBC_URL" --user "$MY_USER" --password "${MY_PW:-}" \
                    --table "$TABLE"
                check_count "$N" "$c"
                ;;
            esac
        done
    done
    rm -f "$DATA" "$DUMP"
    sql "DROP TABLE IF EXISTS \`$DB\`.\`$TABLE\`"
done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"${RAW%.tsv}.meta"

# ---- summary: medians and ratios --------------------------------------------------------------
python3 "$ROOT/benches/summarize.py" "$RAW" | tee "${RAW%.tsv}.md"
log "summary: ${RAW%.tsv}.md"
if [[ "$STRICT" == 1 ]]; then
    bad="$(awk -F'\t' 'NR > 1 && ($1 ~ /^#/ || ($11 != "ok" && $11 != "success"))' "$RAW")"
    if [[ -n "$bad" ]]; then
        log "error: not every sample wrote exactly its rows:"
        printf '%s\n' "$bad" >&2
        exit 1
    fi
    log "strict: every sample ok, every table exactly its N rows"
fi
