#!/usr/bin/env bash
# Tuning sweep behind the defaults in BENCHMARKS.md, at 1e6 records (P2M_TUNE_SIZE), side by
# side with LOAD DATA in the same run:
#   1. one non-partitioned topic: --batch-rows 5000 / 10000 (default) / 20000 / 50000, and
#      --batch-bytes 1 / 4 / 16 MiB at 50000 rows (the byte cap only binds on big batches:
#      a seed row is ~20 bytes of SQL, so 10000 rows are ~0.2 MiB);
#   2. a 4-partition topic: --writers 1 / 2 / 4.
# Settings: P2M_TUNE_SIZE (default 1000000), P2M_TUNE_ROUNDS (default 2), and those of
# benches/e2e.sh (e.g. P2M_BENCH_BIN_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE="${P2M_TUNE_SIZE:-1000000}"
ROUNDS="${P2M_TUNE_ROUNDS:-2}"
MIB=1048576

P2M_BENCH_SIZES="$SIZE" P2M_BENCH_ROUNDS="$ROUNDS" P2M_BENCH_BASELINES="load-data" \
P2M_BENCH_VARIANTS="--batch-rows 5000;;--batch-rows 20000;--batch-rows 50000;\
--batch-rows 50000 --batch-bytes $MIB;--batch-rows 50000 --batch-bytes $((16 * MIB))" \
    benches/e2e.sh

P2M_BENCH_SIZES="$SIZE" P2M_BENCH_ROUNDS="$ROUNDS" P2M_BENCH_BASELINES="load-data dry-run" \
P2M_BENCH_PARTITIONS=4 P2M_BENCH_VARIANTS="--writers 1;--writers 2;--writers 4" \
    benches/e2e.sh
