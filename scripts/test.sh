#!/usr/bin/env bash
# Every test: formatting and lints, unit tests, integration tests against the real Pulsar and
# MariaDB (started here if they are not running), the fault tests, the Airflow DAG tests, the
# release artifacts, the compose file and the benchmark's smoke.
#
# Wall time (2 cores): the set-up that mostly waits on the network (the Python venvs, the Flink
# peer's Maven build, the podman base image) runs in the background from the start, beside the
# Rust build, and is waited for right before the phase that needs it (its log is shown if it
# failed). After the Rust phases, the Airflow tests (airflow/run-tests.sh: its two suites side
# by side) run beside the release, compose and benchmark checks: those share only the
# services, each with databases, topics and job ids of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

logs=$(mktemp -d "${TMPDIR:-/tmp}/p2m-test.XXXXXX")
trap bg_stop_all EXIT

# ---- set-up in the background ------------------------------------------------------------------
# nice: the Rust build in the foreground keeps the CPU; these mostly wait on downloads.
setup() { # setup NAME CMD...
    bg_start "$1" "$logs/$1.log" nice -n 10 "${@:2}"
}
setup_wait() { # setup_wait NAME: waits for it; a failure stops the run, with its log
    local rc=0
    bg_wait "$1" || rc=$?
    if ((rc != 0)); then
        echo "test.sh: set-up '$1' failed (exit $rc); its log ($logs/$1.log):" >&2
        cat "$logs/$1.log" >&2
        exit 1
    fi
}

# The Python venvs need neither the services nor apt-get: they start first.
# A non-Rust producer for the codec tests: the official Python client (C++ inside).
pulsar_venv() {
    local version=3.13.0 venv=.cache/venv-pulsar
    if ! "$venv/bin/python" -c "import pulsar" 2>/dev/null \
       || [ "$("$venv/bin/pip" show pulsar-client 2>/dev/null | sed -n 's/^Version: //p')" != "$version" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "pulsar-client==$version"
    fi
}
export -f pulsar_venv
setup venv-pulsar bash -euo pipefail -c pulsar_venv
airflow_suites=${P2M_AIRFLOW_SUITES:-3 2.10}
for suite in $airflow_suites; do
    setup "airflow-venv-$suite" airflow/setup.sh "$suite"
done
setup bench-venv benches/report.sh --venv-only

scripts/services.sh up
eval "$(scripts/services.sh env)"
export PULSAR_URL PULSAR_ADMIN_URL PULSAR_TLS_URL PULSAR_ADMIN_TLS_URL PULSAR_TLS_CA_FILE PULSAR_TOKEN_FILE MYSQL_URL PUSHGATEWAY_URL TOXIPROXY_URL

# ---- Debian packages of the later phases, in one apt-get -------------------------------------
# Each script installs what it lacks when run alone; here the phases run side by side, and two
# apt-gets at once fail on dpkg's lock. Nothing to do on a machine that has them.
debian_packages() {
    local missing=()
    # need PACKAGE CHECK...: PACKAGE is missing unless CHECK (the check of the script using it) passes
    need() { "${@:2}" >/dev/null 2>&1 || missing+=("$1"); }
    installed() { dpkg-query -W -f='${db:Status-Status}' "$1" | grep -qx installed; }
    have() { local c; for c; do command -v "$c" || return 1; done; }
    need podman installed podman  # scripts/podman.sh
    need runc installed runc
    need mmdebstrap installed mmdebstrap
    need postgresql compgen -G '/usr/lib/postgresql/*/bin'  # scripts/postgres.sh
    need redis-server have redis-server redis-cli  # scripts/redis.sh
    need prometheus have promtool  # airflow/alerts/test-rules.sh
    need docker-compose have docker-compose  # scripts/test-compose.sh
    need time test -x /usr/bin/time  # benches/e2e.sh
    need openjdk-17-jdk-headless have javac  # benches/flink/build.sh
    need maven have mvn
    ((${#missing[@]})) || return 0
    log "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"  # system PostgreSQL, Redis, Prometheus stay stopped
}
debian_packages

# These may need the Debian packages above (a JDK and Maven; podman, mmdebstrap).
setup flink-peer benches/flink/build.sh
setup podman-base scripts/podman.sh base

# ---- Rust ----------------------------------------------------------------------------------------
echo "== vendored pulsar-rs: vendor/pulsar is the pristine crate + vendor/patches (offline)"
scripts/vendor-pulsar.sh check

echo "== cargo fmt --check / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

echo "== Rust tests (unit + integration)"
setup_wait venv-pulsar
export P2M_PYTHON="$PWD/.cache/venv-pulsar/bin/python"
# Integration tests share two cores with the broker and the database: keep them few at a time.
cargo test --all-targets -- --test-threads "${P2M_TEST_THREADS:-3}"

echo "== fault tests: MariaDB and Pulsar restarted under a run (alone: they restart shared services)"
cargo test --test it -- --ignored --test-threads 1

# ---- Airflow, beside the release artifacts, the compose file and the benchmark smoke ----------
# Every binary the later phases run, built once now: no cargo build may swap one of them while
# another phase runs it (the later `cargo build`s find them fresh).
echo "== the debug binaries of the later phases"
cargo build --quiet --bin pulsar2mysql --example seed_producer --example shape_producer
for suite in $airflow_suites; do
    setup_wait "airflow-venv-$suite"
done
setup_wait podman-base
setup_wait bench-venv
setup_wait flink-peer

# One after another, beside the Airflow tests; each runs even if an earlier one failed.
release_compose_bench() {
    local failed=()
    echo "== release artifacts: tarball, .deb (dpkg -x and dpkg -i in a container), the image running the seed scenario"
    P2M_SEED_PRODUCER="$PWD/target/debug/examples/seed_producer" scripts/test-release.sh || failed+=("release artifacts (scripts/test-release.sh)")
    echo "== docker/compose.yaml validated (docker-compose 1.29 config) and its dashboard's metrics"
    scripts/test-compose.sh || failed+=("compose (scripts/test-compose.sh)")
    echo "== benchmark smoke: the seed's 10,000 records, one round, every contender incl. the Flink peer (rows checked, not speed)"
    scripts/bench-smoke.sh || failed+=("benchmark smoke (scripts/bench-smoke.sh)")
    if ((${#failed[@]})); then
        printf 'FAILED: %s\n' "${failed[@]}"
        return 1
    fi
}
export -f release_compose_bench
bg_start release-compose-bench "$logs/release-compose-bench.log" bash -uo pipefail -c release_compose_bench

echo "== Airflow DAG tests (against the debug binaries); beside them: the release, compose and benchmark checks ($logs/release-compose-bench.log)"
failed=()
PULSAR2MYSQL_BIN="$PWD/target/debug/pulsar2mysql" \
P2M_SEED_PRODUCER="$PWD/target/debug/examples/seed_producer" \
    airflow/run-tests.sh || failed+=("Airflow tests (airflow/run-tests.sh)")

echo "== release artifacts, compose file, benchmark smoke (ran beside the Airflow tests)"
bg_wait release-compose-bench || failed+=("release, compose or benchmark checks (see FAILED above)")
cat "$logs/release-compose-bench.log"

if ((${#failed[@]})); then
    printf 'test.sh: failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
rm -rf "$logs"
