#!/usr/bin/env bash
# The benchmark's smoke (CI, from scripts/test.sh): benches/e2e.sh at the seed size (10,000
# records), one round, every contender: `pulsar2mysql run`, its dry run, LOAD DATA, the INSERT
# dump and both configurations of the Flink peer (benches/flink; the first run downloads Flink
# from Maven Central into ~/.m2), with the first-row sidecar. It asserts correctness, not speed:
# every contender must exit 0 and leave exactly the 10,000 rows i|msg-i in sink_table
# (P2M_BENCH_STRICT=1). Then the report generator (benches/report.sh: the pinned plotting venv,
# benches/report.py, the plots) runs over those raw results into a temporary directory, so
# that `make bench-full`'s last step cannot rot unnoticed. ~1 min once the Flink jar and the
# venv exist. Binaries: the debug build (built here if missing), or P2M_BENCH_BIN_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tmp="$(mktemp -d /tmp/p2m-smoke.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
if [[ -z "${P2M_BENCH_BIN_DIR:-}" ]]; then
    cargo build --quiet --bin pulsar2mysql --example seed_producer --example shape_producer
    mkdir "$tmp/bin"
    for b in pulsar2mysql examples/seed_producer examples/shape_producer; do
        ln -s "$PWD/target/debug/$b" "$tmp/bin/$(basename "$b")"
    done
    export P2M_BENCH_BIN_DIR="$tmp/bin"
fi
out="${P2M_BENCH_OUT:-$tmp/results}"
P2M_BENCH_SIZES=10000 \
P2M_BENCH_ROUNDS=1 \
P2M_BENCH_VARIANTS="" \
P2M_BENCH_PARTITIONS=0 \
P2M_BENCH_SHAPE=seed \
P2M_BENCH_BASELINES="dry-run load-data insert-dump" \
P2M_BENCH_FLINK="flink-inlong flink-tuned" \
P2M_BENCH_TIMEOUT="${P2M_BENCH_TIMEOUT:-300}" \
P2M_BENCH_DB="p2m_bench_smoke_$$" \
P2M_BENCH_OUT="$out" \
P2M_BENCH_STRICT=1 \
    benches/e2e.sh

# The report generator over the smoke's raw results: it must produce the report and its plots.
benches/report.sh "$out" "$tmp/BENCHMARKS.md"
for f in "$tmp/BENCHMARKS.md" "$out/tables.md" "$out/rows_per_s.png" "$out/ratio_load_data.png" "$out/peak_rss.png"; do
    [[ -s "$f" ]] || { echo "bench smoke: the report generator did not write $f" >&2; exit 1; }
done
grep -q '^| `flink-tuned` |' "$tmp/BENCHMARKS.md" \
    || { echo "bench smoke: the generated report lacks the start-up table" >&2; exit 1; }
echo "bench smoke: every contender wrote exactly its rows; the report generator wrote the report and its plots"
