#!/usr/bin/env bash
# The benchmark's smoke (CI, from scripts/test.sh): benches/e2e.sh at the seed size (10,000
# records), one round, every contender: `pulsar2mysql run`, its dry run, LOAD DATA, the INSERT
# dump and both configurations of the Flink peer (benches/flink; the first run downloads Flink
# from Maven Central into ~/.m2). It asserts correctness, not speed: every contender must exit 0
# and leave exactly the 10,000 rows i|msg-i in sink_table (P2M_BENCH_STRICT=1). ~2-4 min.
# Binaries: the debug build (built here if missing), or P2M_BENCH_BIN_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${P2M_BENCH_BIN_DIR:-}" ]]; then
    cargo build --quiet --bin pulsar2mysql --example seed_producer
    bins="$(mktemp -d /tmp/p2m-smoke-bin.XXXXXX)"
    trap 'rm -rf "$bins"' EXIT
    ln -s "$PWD/target/debug/pulsar2mysql" "$bins/pulsar2mysql"
    ln -s "$PWD/target/debug/examples/seed_producer" "$bins/seed_producer"
    export P2M_BENCH_BIN_DIR="$bins"
fi
P2M_BENCH_SIZES=10000 \
P2M_BENCH_ROUNDS=1 \
P2M_BENCH_VARIANTS="" \
P2M_BENCH_PARTITIONS=0 \
P2M_BENCH_BASELINES="dry-run load-data insert-dump" \
P2M_BENCH_FLINK="flink-inlong flink-tuned" \
P2M_BENCH_TIMEOUT="${P2M_BENCH_TIMEOUT:-300}" \
P2M_BENCH_DB=p2m_bench_smoke \
P2M_BENCH_OUT="${P2M_BENCH_OUT:-$PWD/target/bench-smoke}" \
P2M_BENCH_STRICT=1 \
    benches/e2e.sh
