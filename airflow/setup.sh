#!/usr/bin/env bash
# Creates <repo>/.venv-airflow with the pinned Airflow 3 and pytest of airflow/requirements.txt.
# Idempotent: a stamp holding the requirements' hash skips the install when nothing changed.
#   AIRFLOW_VENV   [<repo>/.venv-airflow]   where the venv goes
#   PYTHON         [python3]                 interpreter (3.10-3.13)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
venv=${AIRFLOW_VENV:-$repo/.venv-airflow}
python=${PYTHON:-python3}
req=$here/requirements.txt
stamp=$venv/.pulsar2mysql-requirements.sha256
want=$( (cat "$req"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)

if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/airflow ]]; then
    echo "airflow venv up to date: $venv"
    exit 0
fi

started=$SECONDS
echo "== creating airflow venv $venv (pinned in $req)"
rm -f "$stamp"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
"$venv/bin/airflow" version >/dev/null  # fails here, not in the tests, if the install is broken
echo "$want" >"$stamp"
echo "airflow venv ready in $((SECONDS - started))s: $("$venv/bin/airflow" version)"
