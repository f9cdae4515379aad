#!/usr/bin/env bash
# Regenerates a benchmark report from raw results: benches/report.py in a pinned venv
# (benches/requirements.txt, created once under $P2M_CACHE_DIR/venv-bench and re-created when
# the requirements change).
#   benches/report.sh RESULTS_DIR [OUTPUT.md]     (default OUTPUT.md: BENCHMARKS.md)
#   benches/report.sh --venv-only                 (only create the venv)
# OUTPUT.md is the report at a glance (targets, headline figures, plots, method, machine); it
# links RESULTS_DIR, benches/NOTES.md (the history) and RESULTS_DIR/tables.md (every sample's
# table). The plots and tables.md are written into RESULTS_DIR and linked by relative path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${P2M_CACHE_DIR:-$ROOT/.cache}"
VENV="$CACHE/venv-bench"
REQ="$ROOT/benches/requirements.txt"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
    echo "[report] creating the plotting venv $VENV (pinned: benches/requirements.txt)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
    echo "$want" >"$VENV/.requirements.sha256"
fi
[[ "${1:-}" == --venv-only ]] && exit 0
exec "$VENV/bin/python" "$ROOT/benches/report.py" --results "$1" --out "${2:-$ROOT/BENCHMARKS.md}" \
    --notes "$ROOT/benches/NOTES.md"
