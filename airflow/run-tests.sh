#!/usr/bin/env bash
# The Airflow tests, on both Airflows the DAGs support, against the running Pulsar and MariaDB
# (scripts/services.sh up):
#   Airflow 3     (.venv-airflow,  airflow/requirements.txt):      every test in airflow/tests;
#   Airflow 2.10  (.venv-airflow2, airflow/requirements-2.10.txt): the unit and DagBag tests, the
#       cleaner's Airflow-2-only metadata deletion, InLong Manager's requests replayed on a
#       real Airflow 2.10 (the Airflow an unchanged Manager can talk to), and the partition
#       fan-out on the LocalExecutor with PostgreSQL (scripts/postgres.sh, started here), and
#       on the CeleryExecutor with two workers and Redis (scripts/redis.sh, started and stopped here);
#   both: what an Airflow user expects of the sync task (test_airflow_native.py, and windows run
#       in order under a real scheduler, test_windows_in_order.py, an InLong group's too,
#       test_inlong_in_order.py);
#   the alert rules (alerts/pulsar2mysql.rules.yml) with promtool (alerts/test-rules.sh).
# Each venv is installed by airflow/setup.sh (skipped when up to date).
#   PULSAR2MYSQL_BIN   [<repo>/target/release/pulsar2mysql]  built here if missing
#   P2M_AIRFLOW_SUITES ["3 2.10"]  which suites to run
# Arguments go to pytest in every suite, e.g. airflow/run-tests.sh -m 'not slow'  or  -k creator
# pytest's "no tests collected" (exit 5) counts as a failure, in any suite.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cd "$repo"

suites=${P2M_AIRFLOW_SUITES:-3 2.10}
for suite in $suites; do
    "$here/setup.sh" "$suite"
done

# The fan-out test's Airflow runs the LocalExecutor, whose metadata database cannot be sqlite;
# the Celery test adds Redis as its broker (stopped again when the tests end).
if [[ " $suites " == *" 2.10 "* || " $suites " == *" 2 "* ]]; then
    "$repo/scripts/postgres.sh" up
    eval "$("$repo/scripts/postgres.sh" env)"
    export P2M_POSTGRES_URL
    "$repo/scripts/redis.sh" up
    trap '"$repo/scripts/redis.sh" down' EXIT
    eval "$("$repo/scripts/redis.sh" env)"
    export P2M_REDIS_URL
fi

export PULSAR2MYSQL_BIN=${PULSAR2MYSQL_BIN:-$repo/target/release/pulsar2mysql}
export P2M_SEED_PRODUCER=${P2M_SEED_PRODUCER:-$repo/target/release/examples/seed_producer}
if [[ ! -x $PULSAR2MYSQL_BIN || ! -x $P2M_SEED_PRODUCER ]]; then
    echo "== building the runner and the seed producer"
    cargo build --release --bin pulsar2mysql --example seed_producer
fi

failed=()
echo "== alert rules (promtool)"
"$here/alerts/test-rules.sh" || failed+=("alert rules (promtool)")
for suite in $suites; do
    case $suite in
        3)
            python=${AIRFLOW_VENV:-$repo/.venv-airflow}/bin/python
            tests=("$here/tests")
            ;;
        2 | 2.10)
            python=${AIRFLOW2_VENV:-$repo/.venv-airflow2}/bin/python
            # What the Airflow 3 suite covers the same way (the example DAG, the InLong DAGs under
            # `dags test`) is not rerun: the replay drives them on a real Airflow 2.10 instead.
            tests=("$here/tests/test_helpers.py" "$here/tests/test_dagbag.py"
                   "$here/tests/test_inlong_dags.py::test_cleaner_deletes_the_dag_metadata"
                   "$here/tests/test_inlong_dataflow.py"
                   "$here/tests/test_inlong_manager_replay.py"
                   "$here/tests/test_fan_out.py"
                   "$here/tests/test_celery.py"
                   "$here/tests/test_airflow_native.py"
                   "$here/tests/test_windows_in_order.py"
                   "$here/tests/test_inlong_in_order.py")
            ;;
    esac
    echo "== Airflow $suite tests ($("$python" -c 'from importlib.metadata import version; print(version("apache-airflow"))'))"
    set +e
    "$python" -m pytest "${tests[@]}" "$@"
    rc=$?
    set -e
    if [[ $rc == 5 ]]; then
        echo "airflow/run-tests.sh: pytest collected no tests for Airflow $suite" >&2
    fi
    if [[ $rc != 0 ]]; then
        failed+=("Airflow $suite (pytest exit $rc)")
    fi
done
if ((${#failed[@]})); then
    echo "airflow/run-tests.sh: failed: ${failed[*]}" >&2
    exit 1
fi
