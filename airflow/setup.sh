#!/usr/bin/env bash
# Creates a pinned Airflow venv for the DAG tests.
#   airflow/setup.sh [3]     <repo>/.venv-airflow   Airflow 3 (airflow/requirements.txt)
#   airflow/setup.sh 2.10    <repo>/.venv-airflow2  Airflow 2.10, the Airflow an unchanged InLong
#                                                   Manager talks to (airflow/requirements-2.10.txt)
# Idempotent: a stamp holding the requirements' and interpreter's hash skips the install when
# nothing changed.
#   AIRFLOW_VENV / AIRFLOW2_VENV   where the Airflow 3 / 2.10 venv goes
#   PYTHON     interpreter; default python3 for Airflow 3 (3.10-3.13), and for 2.10
#              python3.11 when there is one, else python3 (2.10 supports 3.8-3.12)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
flavour=${1:-3}
case $flavour in
    3)
        venv=${AIRFLOW_VENV:-$repo/.venv-airflow}
        req=$here/requirements.txt
        python=${PYTHON:-python3}
        ;;
    2 | 2.10)
        venv=${AIRFLOW2_VENV:-$repo/.venv-airflow2}
        req=$here/requirements-2.10.txt
        if [[ -n ${PYTHON:-} ]]; then
            python=$PYTHON
        elif command -v python3.11 >/dev/null && python3.11 -c '' 2>/dev/null; then
            python=python3.11
        else
            python=python3
        fi
        ;;
    *)
        echo "usage: airflow/setup.sh [3|2.10]" >&2
        exit 2
        ;;
esac
stamp=$venv/.pulsar2mysql-requirements.sha256
want=$( (cat "$req"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)

if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/airflow ]]; then
    echo "airflow venv up to date: $venv"
    exit 0
fi

started=$SECONDS
echo "== creating airflow venv $venv (pinned in $req, $("$python" --version))"
rm -f "$stamp"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
"$venv/bin/airflow" version >/dev/null  # fails here, not in the tests, if the install is broken
echo "$want" >"$stamp"
echo "airflow venv ready in $((SECONDS - started))s: $("$venv/bin/airflow" version)"
