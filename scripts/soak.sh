#!/usr/bin/env bash
# The long soak behind RELIABILITY.md: the fault, exactly-once and load tests, ROUNDS times,
# against the real services (started here if needed), with a tally per test.
#   scripts/soak.sh [ROUNDS]        (default 5; about 3 minutes a round on 2 cores)
# Each round runs, against real Pulsar, MariaDB and Toxiproxy:
#   - tests/it/faults.rs        silent partitions (Toxiproxy) longer and shorter than the retry
#                               budget under both write strategies, the LOAD DATA route, slow logs
#   - tests/it/exactly_once.rs  kill -9 at four points of a 1e6-record run, a second runner,
#                               a moved checkpoint (fence), a lost job lock
#   - the serial phase          MariaDB and the broker restarted mid-run, local_infile=OFF,
#                               ten jobs on ten topics at once
# Output: target/soak/<UTC time>/ with each round's log and summary.md (passed/failed per test).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
export PULSAR_URL PULSAR_ADMIN_URL PULSAR_TLS_URL PULSAR_TLS_CA_FILE PULSAR_TOKEN_FILE MYSQL_URL PUSHGATEWAY_URL TOXIPROXY_URL
cargo build --quiet --tests
out=target/soak/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
started=$SECONDS
for ((r = 1; r <= ROUNDS; r++)); do
    log=$out/round-$r.log
    echo "== round $r of $ROUNDS (log: $log)"
    cargo test --test it -- faults:: exactly_once:: --test-threads 3 --nocapture >>"$log" 2>&1 || true
    cargo test --test it -- --ignored --test-threads 1 --nocapture >>"$log" 2>&1 || true
done
{
    echo "# Soak: $ROUNDS rounds, $((SECONDS - started)) s, $(date -u +%FT%TZ)"
    echo
    echo "| test | passed | failed |"
    echo "|---|---:|---:|"
    cat "$out"/round-*.log | sed -n 's/^test \([^ ]*\) \.\.\. \(ok\|FAILED\)$/\1 \2/p' | sort |
        awk '{ if ($2 == "ok") ok[$1]++; else bad[$1]++; seen[$1] = 1 }
             END { for (t in seen) printf "| %s | %d | %d |\n", t, ok[t], bad[t] }' | sort
    echo
    grep -h '^load:\|ended .* after the cut' "$out"/round-*.log | sed 's/^/    /' || true
} >"$out/summary.md"
cat "$out/summary.md"
if grep -q '| [1-9][0-9]* |$' "$out/summary.md"; then
    echo "soak: some tests failed; see $out" >&2
    exit 1
fi
