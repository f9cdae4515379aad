#!/usr/bin/env bash
# The seed scenario end to end on local services: start Pulsar + MariaDB, create sink_table,
# produce 0|msg-0 .. 9999|msg-9999 to persistent://public/default/test, run pulsar2mysql over
# them and show the result. Re-runnable: each run starts from an empty table and topic.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
DB="${MYSQL_URL##*/}"
MYSQL_HOSTPORT="${MYSQL_URL#mysql://*@}"; MYSQL_HOSTPORT="${MYSQL_HOSTPORT%%/*}"
mysql_cli() { mariadb --protocol=tcp -h "${MYSQL_HOSTPORT%%:*}" -P "${MYSQL_HOSTPORT##*:}" -uroot "$@"; }
TOPIC=persistent://public/default/test

echo "== building pulsar2mysql (release)"
cargo build --release --quiet --bin pulsar2mysql --example seed_producer

echo "== fresh sink_table in database $DB and a fresh topic $TOPIC"
mysql_cli "$DB" -e "DROP TABLE IF EXISTS sink_table; DELETE FROM p2m_checkpoint WHERE job_id LIKE '${TOPIC}->%'" 2>/dev/null \
  || mysql_cli "$DB" -e "DROP TABLE IF EXISTS sink_table"
mysql_cli "$DB" < sql/sink_table.sql
curl -s -o /dev/null -X DELETE "$PULSAR_ADMIN_URL/admin/v2/persistent/public/default/test?force=true" || true

echo "== producing the seed's 10,000 records"
target/release/examples/seed_producer --url "$PULSAR_URL" --topic "$TOPIC" --count 10000

echo "== pulsar2mysql run (the JSON summary is the last line)"
target/release/pulsar2mysql run --pulsar-url "$PULSAR_URL" --mysql-url "$MYSQL_URL" \
  --topic test --table sink_table

echo "== result"
mysql_cli "$DB" -t -e "SELECT COUNT(*) AS \`rows\`, MIN(id), MAX(id), SUM(name <> CONCAT('msg-', id)) AS mismatched_names FROM sink_table;
  SELECT * FROM sink_table ORDER BY id LIMIT 5"
