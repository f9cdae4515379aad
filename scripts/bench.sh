#!/usr/bin/env bash
# `make bench`: the end-to-end benchmark of BENCHMARKS.md (release build, seed-shaped records,
# pulsar2mysql run vs --dry-run vs LOAD DATA LOCAL INFILE vs a multi-row INSERT dump, all
# side by side in one run; medians and ratios printed and written under target/bench/).
# Settings are environment variables: see benches/e2e.sh. Needs `make services` first.
#   scripts/bench.sh full  (make bench-full)          # the whole comparison (benches/full.sh):
#                                                     # raw results, BENCHMARKS.md, plots, ~50 min
#   make bench                                        # 1e5 and 1e6 records, 3 rounds
#   P2M_BENCH_SIZES="1000000 10000000" make bench      # the flatness check up to 1e7
#   benches/tune.sh                                   # batch size / writers sweep
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${1:-}" == full ]]; then
    shift
    exec benches/full.sh "$@"
fi
export P2M_BENCH_SIZES="${P2M_BENCH_SIZES:-100000 1000000}"
exec benches/e2e.sh "$@"
