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
# The two suites run side by side (they mostly wait on schedulers), each pytest's output in a
# log file printed when it ends; see "Side by side" below for what keeps them apart.
#   PULSAR2MYSQL_BIN     [<repo>/target/release/pulsar2mysql]  built here if missing
#   P2M_AIRFLOW_SUITES   ["3 2.10"]  which suites to run
#   P2M_AIRFLOW_PARALLEL [1]         0: one suite after the other, output as it comes
# Arguments go to pytest in every suite, e.g. airflow/run-tests.sh -m 'not slow'  or  -k creator
# pytest's "no tests collected" (exit 5) counts as a failure, in any suite.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cd "$repo"
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

suites=${P2M_AIRFLOW_SUITES:-3 2.10}
stop_redis=0
# A failed or interrupted run leaves no pytest of a suite running, nor Redis.
# shellcheck disable=SC2329  # invoked by the trap
on_exit() {
    bg_stop_all
    ((stop_redis == 0)) || "$repo/scripts/redis.sh" down
}
trap on_exit EXIT
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
    stop_redis=1
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

python_of() { # python_of SUITE
    case $1 in
        3) echo "${AIRFLOW_VENV:-$repo/.venv-airflow}/bin/python" ;;
        2 | 2.10) echo "${AIRFLOW2_VENV:-$repo/.venv-airflow2}/bin/python" ;;
    esac
}
tests_of() { # tests_of SUITE: sets tests=(...)
    case $1 in
        3) tests=("$here/tests") ;;
        2 | 2.10)
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
}
# pytest_cmd SUITE TESTS...: sets cmd=(...), one pytest run of a suite. Each suite its own
# pytest cache (lastfailed is written at the end of a run: the suites must not write one file
# at once) and its own port for the scheduler's log server (Airflow's default, 8793, would be
# taken by the other suite's scheduler).
pytest_cmd() {
    local suite=$1 port=8793
    shift
    [[ $suite == 3 ]] || port=8795
    cmd=(env "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$port"
         "$(python_of "$suite")" -m pytest -o "cache_dir=.pytest_cache/airflow-$suite" "$@" "${pytest_args[@]}")
}
airflow_version() { "$(python_of "$1")" -c 'from importlib.metadata import version; print(version("apache-airflow"))'; }
pytest_args=("$@")
declare -A rcs=()  # suite -> the exit statuses of its pytest runs
judge() { # judge SUITE: adds the suite to failed unless its runs passed and collected tests
    local suite=$1 rc any=0 bad=()
    for rc in ${rcs[$suite]}; do
        [[ $rc == 5 ]] || any=1
        [[ $rc == 0 || $rc == 5 ]] || bad+=("$rc")
    done
    if ((any == 0)); then
        echo "airflow/run-tests.sh: pytest collected no tests for Airflow $suite" >&2
        failed+=("Airflow $suite (no tests collected)")
    elif ((${#bad[@]})); then
        failed+=("Airflow $suite (pytest exit ${bad[*]})")
    fi
}

# ---- Side by side --------------------------------------------------------------------------
# What the suites share is the services: every test has its own AIRFLOW_HOME, MySQL database
# and user, Pulsar topic, PostgreSQL database and Pushgateway groups (all named after the
# pytest's pid), and free ports. Except for the job lock: the runner's is MariaDB's GET_LOCK,
# whose names are server-wide, and these files run it under fixed job ids (the example DAG's
# `pulsar2mysql_example` and its fan-out ids `.p<N>`, test_fan_out.py's `fan`): a run would
# find the other suite's lock taken (exit 6). They never run in both suites at once: Airflow
# 2.10 runs its share of them first, then the rest; Airflow 3 the rest first, then its share
# (once 2.10's are done). A test that runs the runner under a fixed job id belongs in this list.
fixed_job_ids=(test_example_dag.py test_airflow_native.py test_fan_out.py test_celery.py)
has_fixed_job_id() { # has_fixed_job_id TEST: a file (or a test in one) of fixed_job_ids
    local f
    for f in "${fixed_job_ids[@]}"; do
        [[ ${1##*/} == "$f" || ${1##*/} == "$f"::* ]] && return 0
    done
    return 1
}

parallel=${P2M_AIRFLOW_PARALLEL:-1}
read -ra suite_list <<<"$suites"
if [[ $parallel == 1 && ${#suite_list[@]} == 2 && " $suites " == *" 3 "* ]]; then
    other=${suite_list[0]}
    [[ $other != 3 ]] || other=${suite_list[1]}
    logs=$(mktemp -d "${TMPDIR:-/tmp}/p2m-airflow.XXXXXX")
    # The two suites' runs: their tests split into those of fixed_job_ids and the others.
    tests_of "$other"
    other_fixed=() other_rest=()
    for t in "${tests[@]}"; do
        if has_fixed_job_id "$t"; then other_fixed+=("$t"); else other_rest+=("$t"); fi
    done
    three_fixed=() three_rest=("$here/tests")
    for f in "${fixed_job_ids[@]}"; do
        three_fixed+=("$here/tests/$f")
        three_rest+=("--ignore=$here/tests/$f")
    done
    start() { # start SUITE PART TESTS...: a pytest run in the background, its output in a log
        local suite=$1 part=$2
        shift 2
        pytest_cmd "$suite" "$@"
        echo "== Airflow $suite tests ($(airflow_version "$suite")), $part: started"
        bg_start "$suite-$part" "$logs/$suite-$part.log" "${cmd[@]}"
    }
    finish() { # finish SUITE PART: waits for a run, prints its log, keeps its exit status
        local suite=$1 part=$2 rc=0
        bg_wait "$suite-$part" || rc=$?
        echo "== Airflow $suite tests, $part (pytest exit $rc):"
        cat "$logs/$suite-$part.log"
        rcs[$suite]+=" $rc"
    }
    echo "== Airflow 3 and $other side by side (logs in $logs, each printed when its run ends)"
    start "$other" fixed-job-ids "${other_fixed[@]}"
    start 3 rest "${three_rest[@]}"
    finish "$other" fixed-job-ids
    start "$other" rest "${other_rest[@]}"
    finish 3 rest
    start 3 fixed-job-ids "${three_fixed[@]}"
    finish "$other" rest
    finish 3 fixed-job-ids
    judge 3
    judge "$other"
    rm -rf "$logs"
else
    for suite in $suites; do
        tests_of "$suite"
        pytest_cmd "$suite" "${tests[@]}"
        echo "== Airflow $suite tests ($(airflow_version "$suite"))"
        rc=0
        "${cmd[@]}" || rc=$?
        rcs[$suite]=$rc
        judge "$suite"
    done
fi
if ((${#failed[@]})); then
    echo "airflow/run-tests.sh: failed: ${failed[*]}" >&2
    exit 1
fi
