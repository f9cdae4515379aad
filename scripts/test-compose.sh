#!/usr/bin/env bash
# docker/compose.yaml, validated without a Docker engine (part of `make test`):
#   - Debian's docker-compose 1.29 parses and resolves it (`config`), installed with apt if missing;
#   - the stack is the one documented: Pulsar 4.0.x, MySQL 8.4, Airflow 2.10 with the DAGs and
#     the image's binary mounted on its workers, Pushgateway, Prometheus, Grafana;
#   - Prometheus scrapes the Pushgateway with honor_labels; Grafana provisions the data source
#     and the dashboard; every metric the dashboard queries is one src/metrics exports.
# Pulling and starting the images needs a registry, which the project's machines do not reach:
# that part is not run here (docker/README.md).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$P2M_REPO_DIR"

if ! command -v docker-compose >/dev/null; then
    log "installing Debian's docker-compose (1.29) to validate docker/compose.yaml"
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >&2
fi
resolved=$(mktemp)
trap 'rm -f "$resolved"' EXIT
echo "== docker-compose $(docker-compose version --short) config"
docker-compose -f docker/compose.yaml config >"$resolved"

/usr/bin/python3 - "$resolved" <<'EOF'
import json, pathlib, re, sys
import yaml  # python3-yaml, a dependency of Debian's docker-compose

passed = failed = 0
def check(name, ok):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name)
    passed += bool(ok); failed += (not ok)

compose = yaml.safe_load(open(sys.argv[1]))
s = compose["services"]
check("services: pulsar mysql airflow pushgateway prometheus grafana and the binary",
      {"pulsar", "mysql", "airflow-db", "airflow-init", "airflow-webserver", "airflow-scheduler",
       "pulsar2mysql-bin", "pushgateway", "prometheus", "grafana"} <= set(s))
check("Pulsar 4.0.x", re.fullmatch(r"apachepulsar/pulsar:4\.0\.\d+", s["pulsar"]["image"]))
check("MySQL 8.4", s["mysql"]["image"] == "mysql:8.4")
for name in ("airflow-init", "airflow-webserver", "airflow-scheduler"):
    check(f"{name}: Airflow 2.10", re.fullmatch(r"apache/airflow:2\.10\.\d+(-python3\.\d+)?", s[name]["image"]))
sched = s["airflow-scheduler"]
mounts = [str(v) for v in sched["volumes"]]
check("scheduler mounts the DAGs", any(m.endswith("airflow/dags:/opt/airflow/dags:ro") for m in mounts))
check("scheduler mounts the image's binary", any("pulsar2mysql-bin:/opt/pulsar2mysql/bin" in m for m in mounts))
check("scheduler runs that binary", sched["environment"]["PULSAR2MYSQL_BIN"] == "/opt/pulsar2mysql/bin/pulsar2mysql")
check("scheduler waits for the binary", sched["depends_on"]["pulsar2mysql-bin"]["condition"] == "service_completed_successfully")
check("binary service builds docker/Dockerfile",
      s["pulsar2mysql-bin"]["build"]["dockerfile"] == "docker/Dockerfile"
      and (pathlib.Path(s["pulsar2mysql-bin"]["build"]["context"]) / "docker/Dockerfile").is_file())
check("runs push to the Pushgateway", sched["environment"]["PULSAR2MYSQL_PUSHGATEWAY_URL"] == "http://pushgateway:9091")

prom = yaml.safe_load(open("docker/prometheus.yml"))
jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
check("Prometheus scrapes the Pushgateway with honor_labels",
      jobs["pushgateway"]["honor_labels"] is True
      and jobs["pushgateway"]["static_configs"][0]["targets"] == ["pushgateway:9091"])
ds = yaml.safe_load(open("docker/grafana/provisioning/datasources/prometheus.yaml"))["datasources"][0]
check("Grafana data source is Prometheus", ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090")
prov = yaml.safe_load(open("docker/grafana/provisioning/dashboards/pulsar2mysql.yaml"))["providers"][0]
check("Grafana provisions the dashboards folder",
      prov["options"]["path"] == "/var/lib/grafana/dashboards"
      and "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in [str(v).replace(str(pathlib.Path.cwd() / "docker"), ".") for v in s["grafana"]["volumes"]])

dash = json.load(open("docker/grafana/dashboards/pulsar2mysql.json"))
sources = [pathlib.Path("src/metrics.rs"), *pathlib.Path("src").glob("metrics/**/*.rs")]
exported = {m for f in sources if f.is_file() for m in re.findall(r'"(pulsar2mysql_[a-z_]+)"', f.read_text())}
exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
used = {re.sub(r"_bucket$", "", m) for e in exprs for m in re.findall(r"pulsar2mysql_[a-z_]+", e)}
check(f"dashboard queries only exported metrics ({len(used)} used)", used and used <= exported)
missing = used - exported
if missing:
    print("     not exported:", sorted(missing))
titles = " ".join(p["title"].lower() for p in dash["panels"])
for what in ("rows per second", "lag", "bad records", "last success", "batch latency"):
    check(f"dashboard has a panel for {what}", what in titles)
check("every panel has its own id", len({p["id"] for p in dash["panels"]}) == len(dash["panels"]))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
