#!/usr/bin/env bash
# Every test: formatting and lints, unit tests, integration tests against the real Pulsar and
# MariaDB (started here if they are not running), and the Airflow DAG tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
eval "$(scripts/services.sh env)"
export PULSAR_URL PULSAR_ADMIN_URL PULSAR_TLS_URL PULSAR_ADMIN_TLS_URL PULSAR_TLS_CA_FILE PULSAR_TOKEN_FILE MYSQL_URL PUSHGATEWAY_URL TOXIPROXY_URL

# A non-Rust producer for the codec tests: the official Python client (C++ inside).
PULSAR_CLIENT_VERSION=3.13.0
if ! .cache/venv-pulsar/bin/python -c "import pulsar" 2>/dev/null \
   || [ "$(.cache/venv-pulsar/bin/pip show pulsar-client 2>/dev/null | sed -n 's/^Version: //p')" != "$PULSAR_CLIENT_VERSION" ]; then
  python3 -m venv .cache/venv-pulsar
  .cache/venv-pulsar/bin/pip install -q "pulsar-client==$PULSAR_CLIENT_VERSION"
fi
export P2M_PYTHON="$PWD/.cache/venv-pulsar/bin/python"

echo "== vendored pulsar-rs: vendor/pulsar is the pristine crate + vendor/patches (offline)"
scripts/vendor-pulsar.sh check

echo "== cargo fmt --check / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

echo "== Rust tests (unit + integration)"
# Integration tests share two cores with the broker and the database: keep them few at a time.
cargo test --all-targets -- --test-threads "${P2M_TEST_THREADS:-3}"

echo "== fault tests: MariaDB and Pulsar restarted under a run (alone: they restart shared services)"
cargo test --test it -- --ignored --test-threads 1

echo "== Airflow DAG tests (against the debug binaries)"
cargo build --quiet --bin pulsar2mysql --example seed_producer
PULSAR2MYSQL_BIN="$PWD/target/debug/pulsar2mysql" \
P2M_SEED_PRODUCER="$PWD/target/debug/examples/seed_producer" \
  airflow/run-tests.sh

# ---- release artifacts, image, compose stack (issue 15) --------------------------------------
echo "== release artifacts: tarball, .deb (dpkg -x and dpkg -i in a container), the image running the seed scenario"
P2M_SEED_PRODUCER="$PWD/target/debug/examples/seed_producer" scripts/test-release.sh
echo "== docker/compose.yaml validated (docker-compose 1.29 config) and its dashboard's metrics"
scripts/test-compose.sh

# ---- benchmark smoke (issue 13) ------------------------------------------------------------
echo "== benchmark smoke: the seed's 10,000 records, one round, every contender incl. the Flink peer (rows checked, not speed)"
scripts/bench-smoke.sh
