#!/usr/bin/env bash
# The Airflow tests: installs the pinned Airflow (airflow/setup.sh), then runs pytest over
# airflow/tests against the running Pulsar and MariaDB (scripts/services.sh up).
#   PULSAR2MYSQL_BIN  [<repo>/target/release/pulsar2mysql]  built here if missing
# Arguments go to pytest, e.g. airflow/run-tests.sh -m 'not slow'   or   -k creator
# pytest's "no tests collected" (exit 5) counts as a failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cd "$repo"

"$here/setup.sh"

export PULSAR2MYSQL_BIN=${PULSAR2MYSQL_BIN:-$repo/target/release/pulsar2mysql}
export P2M_SEED_PRODUCER=${P2M_SEED_PRODUCER:-$repo/target/release/examples/seed_producer}
if [[ ! -x $PULSAR2MYSQL_BIN || ! -x $P2M_SEED_PRODUCER ]]; then
    echo "== building the runner and the seed producer"
    cargo build --release --bin pulsar2mysql --example seed_producer
fi

set +e
"${AIRFLOW_VENV:-$repo/.venv-airflow}/bin/python" -m pytest "$here/tests" "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
    echo "airflow/run-tests.sh: pytest collected no tests" >&2
fi
exit $rc
