"""Drives the InLong DAGs on a real Airflow 3 through its /api/v2, with the Manager's conf (the
calls an Airflow 3 user's own tooling would make): api-server + scheduler + dag-processor on
127.0.0.1, dag_creator triggered through the REST API, the created
inlong_offline_task_<groupId> DAG seen to run and sync its window into MySQL, then dag_cleaner
triggered with the group id and the DAG deleted.

This is NOT what an unchanged InLong Manager sends: it speaks Airflow 2's /api/v1 with basic
auth, which Airflow 3 removed (/api/v2 with a JWT from /auth/token, and a trigger body that
needs logical_date). It shows the same DAGs serving Airflow 3 users who drive them through
the v2 API; test_inlong_manager_replay.py replays the Manager itself on Airflow 2.10.
"""

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import os

from conftest import (AIRFLOW_MAJOR, MYSQL, PULSAR_URL, VENV_BIN, Database, free_port, kill_group, produce,
                      unique, wait_for)
from inlong_manager import ManagerReplay, recorded_stream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(AIRFLOW_MAJOR < 3, reason="Airflow 3's /api/v2 and processes; on Airflow 2 "
                       "test_inlong_manager_replay.py plays the unchanged Manager"),
]


class Api:
    def __init__(self, base: str):
        self.base = base
        self.token = None

    def call(self, method: str, path: str, body=None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        # The api-server, scheduler and dag-processor share one sqlite file here; a write that
        # meets another's lock answers 500 "Database error". Asked again, it goes through.
        for attempt in range(5):
            req = urllib.request.Request(self.base + path, data=data, method=method)
            req.add_header("Content-Type", "application/json")
            if self.token:
                req.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status, text = r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                status, text = e.code, e.read().decode()
            if status < 500 or status in expect or "Database error" not in text:
                break
            time.sleep(1 + attempt)
        assert status in expect, f"{method} {path} -> {status}: {text[:2000]}"
        return status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)


@pytest.fixture
def airflow_server(airflow_home):
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    home.airflow("pools", "set", "pulsar2mysql", "16", "MySQL connections of pulsar2mysql tasks")
    port = free_port()
    password = secrets.token_hex(12)
    (home.root / "passwords.json").write_text(json.dumps({"inlong": password}))
    home.env.update({
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "inlong:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home.root / "passwords.json"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",  # notice dag_creator's new files soon
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    })
    procs, logs = [], {}
    for name, args in (("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
                       ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
        logs[name] = home.root / f"{name}.log"
        procs.append(subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=home.env, cwd=home.root,
                                      stdout=logs[name].open("w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))

    def tail_logs() -> str:
        return "\n".join(f"--- {n} (last lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                         for n, p in logs.items())

    api = Api(f"http://127.0.0.1:{port}")
    try:
        wait_for("the api-server", lambda: api.call("GET", "/api/v2/monitor/health")[0] == 200, 180, tail_logs)
        _, token = api.call("POST", "/auth/token", {"username": "inlong", "password": password})
        api.token = token["access_token"]
        yield home, api, tail_logs
    finally:
        for p in procs:
            kill_group(p)
            p.wait(timeout=30)


def test_inlong_manager_flow(airflow_server, db: Database, topic):
    home, api, logs = airflow_server
    group = unique("e2e").replace("_", "-")
    dag_id = f"inlong_offline_task_{group}"
    # The group as the Manager holds it (a replay of the recorded Manager's REST API): nothing
    # about it is written into Airflow by hand.
    replay = ManagerReplay(password="inlong-" + secrets.token_hex(8))
    replay.groups[group] = [recorded_stream(
        group, topic=topic.removeprefix("persistent://"), service_url=PULSAR_URL,
        admin_url=os.environ.get("PULSAR_ADMIN_URL", "http://127.0.0.1:8080"),
        jdbc_url=f"jdbc:mysql://{MYSQL.hostname}:{MYSQL.port or 3306}/{db.name}",
        user=db.user, password=db.password)]

    # Manager start-up: its HTTP connection (created when missing), both original DAGs unpaused.
    api.call("GET", "/api/v2/connections/inlong_connection", expect=(404,))
    api.call("POST", "/api/v2/connections", {"connection_id": "inlong_connection", "conn_type": "http",
                                             "host": "127.0.0.1", "port": replay.port, "login": "admin",
                                             "password": replay.password})
    for original in ("dag_creator", "dag_cleaner"):
        wait_for(f"{original} to be parsed", lambda: api.call("GET", f"/api/v2/dags/{original}",
                                                              expect=(200, 404))[0] == 200, 120, logs)
        api.call("PATCH", f"/api/v2/dags/{original}", {"is_paused": False})

    # Records, then the group registered with a 20 s interval (run at the floor of a minute)
    # whose first window holds them.
    before, _ = produce(topic, 50)
    start = before - 5_000
    conf = {"inlong_group_id": group, "start_time": start, "end_time": start + 20_000,
            "boundary_type": "time", "cron_expr": None, "seconds_interval": "20",
            "connection_id": "inlong_connection", "timezone": "Asia/Shanghai"}
    _, run = api.call("POST", "/api/v2/dags/dag_creator/dagRuns", {"logical_date": None, "conf": conf})

    def creator_state():
        state = api.call("GET", f"/api/v2/dags/dag_creator/dagRuns/{run['dag_run_id']}")[1]["state"]
        assert state != "failed", "dag_creator failed"
        return state == "success"

    wait_for("dag_creator's run to succeed", creator_state, 180, logs)
    wait_for(f"{dag_id} to be parsed", lambda: api.call("GET", f"/api/v2/dags/{dag_id}",
                                                        expect=(200, 404))[0] == 200, 120, logs)
    api.call("PATCH", "/api/v2/dags?dag_id_pattern=inlong_offline_task_", {"is_paused": False})

    def task_run_succeeded():
        runs = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")[1]["dag_runs"]
        assert not any(r["state"] == "failed" for r in runs), f"a run failed: {runs}"
        return any(r["state"] == "success" for r in runs)

    wait_for(f"a scheduled run of {dag_id} to succeed", task_run_succeeded, 240, logs)
    assert db.rows() == [(i, f"msg-{i}") for i in range(50)]

    # Unregister: dag_cleaner with the group id, then the DAG deleted through the API.
    _, run = api.call("POST", "/api/v2/dags/dag_cleaner/dagRuns",
                      {"logical_date": None, "conf": {"inlong_group_id": group}})
    wait_for("dag_cleaner's run to succeed", lambda: api.call(
        "GET", f"/api/v2/dags/dag_cleaner/dagRuns/{run['dag_run_id']}")[1]["state"] == "success", 180, logs)
    assert not (home.dags / f"{dag_id}.py").exists()
    api.call("DELETE", f"/api/v2/dags/{dag_id}")
    replay.stop()
