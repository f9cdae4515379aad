#!/usr/bin/env bash
# The whole comparison of issue 13 (`make bench-full`, `scripts/bench.sh full`): every block
# below is one benches/e2e.sh run (contenders side by side, rounds interleaved, order rotated);
# then benches/report.sh regenerates BENCHMARKS.md and its plots from the raw results.
#
#   block                         sizes                rounds  contenders
#   seed, non-partitioned         1e4                  3       run, dry-run, load-data, insert-dump,
#                                                              flink-inlong, flink-tuned (3 rounds)
#   seed, non-partitioned         1e5, 1e6, 1e7        3       the same; Flink 1 round, capped (below)
#   seed, 4 and 16 partitions     1e4, 1e5, 1e6, 1e7   3       run, dry-run, load-data
#   seed, 64 partitions           1e6, 1e7             3       run, dry-run, load-data
#   payload-1k                    1e4, 1e5             3       run, dry-run, load-data, insert-dump
#   payload-10k                   1e4 (100 MiB)        3       the same
#   wide (20 columns)             1e4, 1e5, 1e6        3       run, dry-run, load-data, insert-dump
#
# The Flink peer is capped: flink-inlong commits every row (~3,000 rows/s here), so at 1e6 and
# 1e7 it gets 60 s and its rate is that of the rows it committed by then (the report marks it
# "timed out"); flink-tuned gets 150 s at 1e6 and 240 s at 1e7. ~50 min on this machine
# (2 cores), plus the release build and, on a bare machine, the Flink download.
#
# Writes benches/results/full-<UTC stamp>/ (raw TSV + .meta per block, a log, the plots,
# tables.md: every sample's table) and BENCHMARKS.md (at a glance, linking them and
# benches/NOTES.md). Settings: P2M_FULL_OUT (results dir), P2M_FULL_REPORT (the Markdown file,
# default BENCHMARKS.md), P2M_FULL_ROUNDS (default 3), P2M_FULL_FLINK_CAP=0 to run the Flink
# peer uncapped (hours), P2M_BENCH_BIN_DIR (binaries; default: the release build of this tree).
# Needs the services (make services). Every block stops by itself (timeouts in e2e.sh); a block
# that fails is recorded as such and the next one runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${P2M_FULL_OUT:-$ROOT/benches/results/full-$STAMP}"
REPORT="${P2M_FULL_REPORT:-$ROOT/BENCHMARKS.md}"
ROUNDS="${P2M_FULL_ROUNDS:-3}"
CAP="${P2M_FULL_FLINK_CAP:-1}"
mkdir -p "$OUT"
LOG="$OUT/full.log"
log() { printf '[full %(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$LOG" >&2; }
T0=$SECONDS

# ---- binaries, the Flink peer, the plotting venv: once, timed --------------------------------
if [[ -z "${P2M_BENCH_BIN_DIR:-}" ]]; then
    log "building the release binaries (cargo build --release)"
    cargo build --release --quiet --bin pulsar2mysql --example seed_producer --example shape_producer
    BINS="$(mktemp -d /tmp/p2m-full-bin.XXXXXX)"
    trap 'rm -rf "$BINS"' EXIT
    cp target/release/pulsar2mysql target/release/examples/seed_producer \
        target/release/examples/shape_producer "$BINS/"
    export P2M_BENCH_BIN_DIR="$BINS"
fi
log "building the Flink peer (cached)"
benches/flink/build.sh >/dev/null
log "the plotting venv (cached)"
benches/report.sh --venv-only
log "set-up took $((SECONDS - T0)) s"

export P2M_BENCH_OUT="$OUT" P2M_BENCH_ROUNDS="$ROUNDS"
block() { # NAME, then VAR=value settings for benches/e2e.sh
    local name="$1" t=$SECONDS; shift
    log "block $name: $*"
    if env "$@" benches/e2e.sh >>"$OUT/e2e.log" 2>&1; then
        log "block $name done in $((SECONDS - t)) s"
    else
        log "block $name FAILED after $((SECONDS - t)) s (see e2e.log)"
        echo "$name" >>"$OUT/blocks.failed"
    fi
}
cap() { [[ "$CAP" == 1 ]] && echo "$1"; }
FL="flink-inlong flink-tuned"

block seed-p0-1e4 P2M_BENCH_SIZES=10000 P2M_BENCH_FLINK="$FL"
block seed-p0-1e5 P2M_BENCH_SIZES=100000 P2M_BENCH_FLINK="$FL" P2M_BENCH_FLINK_ROUNDS=1
block seed-p0-1e6 P2M_BENCH_SIZES=1000000 P2M_BENCH_FLINK="$FL" P2M_BENCH_FLINK_ROUNDS=1 \
    P2M_BENCH_FLINK_INLONG_TIMEOUT="$(cap 60)" P2M_BENCH_FLINK_TUNED_TIMEOUT="$(cap 150)"
block seed-p0-1e7 P2M_BENCH_SIZES=10000000 P2M_BENCH_FLINK="$FL" P2M_BENCH_FLINK_ROUNDS=1 \
    P2M_BENCH_FLINK_INLONG_TIMEOUT="$(cap 60)" P2M_BENCH_FLINK_TUNED_TIMEOUT="$(cap 240)"
for p in 4 16; do
    block "seed-p$p" P2M_BENCH_SIZES="10000 100000 1000000 10000000" P2M_BENCH_PARTITIONS=$p \
        P2M_BENCH_BASELINES="dry-run load-data"
done
block seed-p64 P2M_BENCH_SIZES="1000000 10000000" P2M_BENCH_PARTITIONS=64 \
    P2M_BENCH_BASELINES="dry-run load-data"
block payload-1k P2M_BENCH_SHAPE=payload-1k P2M_BENCH_SIZES="10000 100000"
block payload-10k P2M_BENCH_SHAPE=payload-10k P2M_BENCH_SIZES=10000
block wide P2M_BENCH_SHAPE=wide P2M_BENCH_SIZES="10000 100000 1000000"
log "measurements took $((SECONDS - T0)) s in all"
echo "$((SECONDS - T0))" >"$OUT/elapsed_s"

benches/report.sh "$OUT" "$REPORT"
log "report: $REPORT (plots in $OUT); total $((SECONDS - T0)) s"
[[ ! -s "$OUT/blocks.failed" ]] || { log "failed blocks: $(tr '\n' ' ' <"$OUT/blocks.failed")"; exit 1; }
