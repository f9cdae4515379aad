"""InLong Manager, unchanged, against a real Airflow 2.10 (webserver + scheduler, basic-auth API
backend, FAB auth manager): the Manager's requests A-G replayed by inlong_manager.Manager, in
its order and timing, against the project's dag_creator / dag_cleaner and the real Pulsar and
MariaDB.

The story, as an operator would live it:

1. Airflow starts with no InLong DAG parsed yet; the Manager starts and sends A-D at once:
   its PATCHes of dag_cleaner and dag_creator get 404 and are never retried.
2. The DAG files are parsed: both must come up unpaused anyway.
3. A group is registered (E, seconds_interval "120"); its task DAG runs on its own schedule and
   syncs what was published, its settings read at run time from the Manager's REST API
   (inlong_manager.ManagerReplay answering as the recorded real Manager did) through the
   ``inlong_connection`` the Manager created in step 1: nothing written by hand.
4. The group is updated (E again) with InLong's Quartz cron "*/10 * * * * ?": the DAG now runs
   every minute (sub-minute schedules run at a floor of a minute); records published after the
   update are synced; every record lands once.
   A group with a cron Airflow cannot express is refused in dag_creator's task log only (the
   Manager's request still gets 200).
5. The group is unregistered: F (prefix doubled) and, without waiting, G (DELETE). The file is
   still there, so Airflow brings the DAG back (task slots are held until it has: the race made
   certain); then dag_cleaner runs, and no file, no DAG and no run of it remain, also after
   Airflow has re-parsed the dags folder; no row was written twice.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from datetime import datetime

import pytest

from conftest import (AIRFLOW_MAJOR, DAGS_SRC, MYSQL, PULSAR_URL, VENV_BIN, Database, free_port, kill_group,
                      produce, unique, wait_for)
from inlong_manager import Manager, ManagerReplay, dag_run_conf, recorded_stream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(AIRFLOW_MAJOR != 2, reason="InLong Manager speaks Airflow 2's /api/v1: "
                       "runs in .venv-airflow2 (airflow/run-tests.sh runs both)"),
]

HEARTBEAT_FIRST_ID = 1000  # ids of the live topic's steady trickle; the test's batches are below

PARSE_INTERVAL = 5  # seconds: how often the scheduler lists the dags folder and re-parses files
PROCESSOR_TIMEOUT = 20  # [core] dag_file_processor_timeout: dag_cleaner waits this long once


class Observer:
    """Reads Airflow's API the way an operator looking at the UI would (not the Manager)."""

    def __init__(self, base: str, user: str, password: str):
        self.base = base
        self.auth = "Basic " + b64encode(f"{user}:{password}".encode()).decode()

    def get(self, path: str, method: str = "GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": self.auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None

    def dag(self, dag_id: str):
        status, body = self.get(f"/api/v1/dags/{dag_id}")
        return body if status == 200 else None

    def runs(self, dag_id: str) -> list[dict]:
        status, body = self.get(f"/api/v1/dags/{dag_id}/dagRuns?limit=100&order_by=execution_date")
        return body["dag_runs"] if status == 200 else []


class Heartbeat(threading.Thread):
    """A live topic: one record a second (ids from HEARTBEAT_FIRST_ID), as an InLong topic gets.

    (A window that starts after the topic's last message used to fail with exit 3 after the
    retry budget; the runner now ends it at once, and tests/it/ranges.rs covers that. The live
    topic stays: it is what an InLong topic looks like.)
    """

    def __init__(self, topic: str):
        super().__init__(daemon=True)
        self.topic, self.next_id, self.stopped = topic, HEARTBEAT_FIRST_ID, threading.Event()

    def run(self):
        while not self.stopped.wait(1.0):
            produce(self.topic, 1, start=self.next_id)
            self.next_id += 1

    def stop(self):
        self.stopped.set()
        if self.ident is not None:  # started
            self.join(timeout=60)


@pytest.fixture
def heartbeat(topic):
    beat = Heartbeat(topic)
    yield beat
    beat.stop()


@pytest.fixture
def airflow2(airflow_home, db: Database):
    """Airflow 2.10 webserver + scheduler on a free port (never Pulsar's 8080), sqlite and the
    SequentialExecutor, basic auth, a user for the Manager; the dags folder holds only the
    helper modules: the InLong DAG files are copied in by the test, after the Manager started.
    No MySQL Connection and no group file: the group's settings come from the Manager's REST API
    (a replay of the recorded Manager) through the ``inlong_connection`` the Manager creates."""
    home = airflow_home()
    replay = ManagerReplay(password="inlong-" + secrets.token_hex(8))
    home.airflow("pools", "set", "pulsar2mysql", "128", "MySQL connections of pulsar2mysql tasks")
    port = free_port()
    user, password = "inlong", secrets.token_hex(12)
    home.env.update({
        "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
        "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(port),
        "AIRFLOW__WEBSERVER__WORKERS": "1",
        "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": str(PARSE_INTERVAL),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": str(PARSE_INTERVAL),
        "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": str(PROCESSOR_TIMEOUT),
    })
    home.airflow("users", "create", "--username", user, "--password", password, "--role", "Admin",
                 "--firstname", "InLong", "--lastname", "Manager", "--email", "inlong@example.invalid")
    procs, logs = [], {}
    for name, args in (("webserver", ["webserver"]), ("scheduler", ["scheduler"])):
        logs[name] = home.root / f"{name}.log"
        procs.append(subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=home.env, cwd=home.root,
                                      stdout=logs[name].open("w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))

    def tail_logs() -> str:
        return "\n".join(f"--- {n} (last lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
                         for n, p in logs.items())

    base = f"http://127.0.0.1:{port}"
    observer = Observer(base, user, password)
    try:
        wait_for("the webserver", lambda: observer.get("/health")[0] == 200, 180, tail_logs)
        manager = Manager(base, user, password, manager_port=replay.port, manager_password=replay.password)
        yield home, manager, observer, tail_logs, password, replay
    finally:
        for p in procs:
            kill_group(p)
            p.wait(timeout=30)
        replay.stop()


def test_unchanged_inlong_manager_on_airflow_2(airflow2, db: Database, topic, heartbeat):
    home, manager, airflow, logs, api_password, replay = airflow2
    group = unique("grp.replay").replace("_", "-")
    dag_id = f"inlong_offline_task_{group}"
    task_file = home.dags / f"{dag_id}.py"
    replay.groups[group] = [recorded_stream(
        group, topic=topic.removeprefix("persistent://"), service_url=PULSAR_URL,
        admin_url=os.environ.get("PULSAR_ADMIN_URL", "http://127.0.0.1:8080"),
        jdbc_url=f"jdbc:mysql://{MYSQL.hostname}:{MYSQL.port or 3306}/{db.name}",
        user=db.user, password=db.password)]

    # 1. The Manager starts before any InLong DAG file is parsed: A-D in one burst.
    startup = manager.start()
    assert [(c.label, c.status) for c in startup[:4]] == [("A", 404), ("B", 200), ("C", 404), ("C", 404)], startup
    assert startup[4].label == "D" and startup[4].status < 500, startup[4]
    # A baseUrl configured with a trailing '/' gives //api/v1/...: Airflow 2.10 serves it too.
    slash = Manager(manager.base_url + "/", manager.username, manager.password)
    probe = slash.send("A", "GET", "/api/v1/connections/inlong_connection")
    assert "//api/v1/" in probe.url and probe.status == 200, probe
    # B's connection is stored as the Manager described it.
    status, conn = airflow.get("/api/v1/connections/inlong_connection")
    assert status == 200 and conn["conn_type"] == "HTTP" and conn["port"] == replay.port

    # 2. The DAG files arrive (a deploy after the Manager's start): both come up unpaused.
    for name in ("dag_creator.py", "dag_cleaner.py"):
        shutil.copy(DAGS_SRC / name, home.dags / name)
    for original in ("dag_creator", "dag_cleaner"):
        dag = wait_for(f"{original} to be parsed", lambda: airflow.dag(original), 120, logs)
        assert dag["is_paused"] is False, f"{original} is paused and nothing will unpause it: {dag}"

    # 3. Register: records first, then the group, its first 120 s window holding them.
    heartbeat.start()
    before, _ = produce(topic, 50)
    start = before - 5_000
    end = start + 600_000  # far beyond the test: only unregister may stop the DAG
    e = manager.register(dag_run_conf(group, start, end, seconds_interval="120"))
    assert e.status == 200, e

    def synced(count: int, after_ms: int):
        def check():
            runs = airflow.runs(dag_id)
            failed = [r for r in runs if r["state"] == "failed"]
            assert not failed, f"a run of {dag_id} failed: {failed}"
            done = [r for r in runs if r["state"] == "success"
                    and datetime.fromisoformat(r["data_interval_end"]).timestamp() * 1000 >= after_ms]
            return done and len(batch_rows()) >= count
        return check

    def batch_rows():
        return [r for r in db.rows() if r[0] < HEARTBEAT_FIRST_ID]

    def heartbeat_rows():
        return [r for r in db.rows() if r[0] >= HEARTBEAT_FIRST_ID]

    wait_for(f"{dag_id} to sync its first window", synced(50, before), 240, logs)
    assert airflow.dag(dag_id)["is_paused"] is False

    # 4. Update: InLong's Quartz cron with seconds becomes a fixed interval, at the floor of a
    # minute; new records follow.
    e = manager.register(dag_run_conf(group, start, end, cron_expr="*/10 * * * * ?"))
    assert e.status == 200, e
    # (A timetable's schedule_interval is its summary: "0:01:00" for 60 s.)
    wait_for(f"{dag_id} to be re-parsed with the new interval", lambda: "0:01:00" in json.dumps(
        (airflow.get(f"/api/v1/dags/{dag_id}/details")[1] or {}).get("schedule_interval")), 120, logs)
    before2, _ = produce(topic, 50, start=50)
    wait_for(f"{dag_id} to sync the records published after the update", synced(100, before2), 240, logs)
    assert batch_rows() == [(i, f"msg-{i}") for i in range(100)]  # every record once
    beats = heartbeat_rows()  # a prefix of the trickle, each record once
    assert beats == [(i, f"msg-{i}") for i in range(HEARTBEAT_FIRST_ID, HEARTBEAT_FIRST_ID + len(beats))]

    # A cron Airflow cannot express: the Manager sees 200, dag_creator's run fails with the reason.
    refused = "grp-refused-" + group[-8:]
    e = manager.register(dag_run_conf(refused, start, end, cron_expr="0 15 10 L * ?"))
    assert e.status == 200, e
    run_id = json.loads(e.answer)["dag_run_id"]
    wait_for("dag_creator to refuse the cron", lambda: (airflow.get(
        f"/api/v1/dags/dag_creator/dagRuns/{run_id}")[1] or {}).get("state") == "failed", 120, logs)
    assert "REFUSED InLong group" in home.logs_text() and "L, W or #" in home.logs_text()
    assert not (home.dags / f"inlong_offline_task_{refused}.py").exists()

    # 5. Unregister: F with the prefix doubled, G at once (204, or 409 if a task is running then).
    # How soon dag_cleaner starts is up to the scheduler; to see the race the Manager creates,
    # every task slot is held (default_pool at 0) until Airflow has re-parsed the file the
    # DELETE left on disk and the DAG is back.
    def pool_slots(n: int):
        status, _ = airflow.get("/api/v1/pools/default_pool?update_mask=slots", "PATCH",
                                {"name": "default_pool", "slots": n})
        assert status == 200, status

    pool_slots(0)
    f, g = manager.unregister(group)
    assert f.status == 200 and json.loads(f.answer)["conf"]["inlong_group_id"] == (
        f"inlong_offline_task_inlong_offline_task_{group}"), f
    assert g.status in (204, 409), g
    # Had the DELETE carried the JSON Content-Type with its empty body, Airflow 2.10 would refuse
    # it (the Manager only logs that): dag_cleaner's own deletion below covers that case too.
    typed = manager.send("G'", "DELETE", "/api/v1/dags/inlong_offline_task_no-such-group",
                         content_type_without_body=True)
    assert typed.status == 400, typed
    cleaner_run = json.loads(f.answer)["dag_run_id"]
    back = wait_for(f"{dag_id} to come back after the DELETE", lambda: airflow.dag(dag_id), 120, logs)
    assert back["is_paused"] is False  # unpaused, catching up from start_time again
    pool_slots(128)
    wait_for("dag_cleaner's run to succeed", lambda: (airflow.get(
        f"/api/v1/dags/dag_cleaner/dagRuns/{cleaner_run}")[1] or {}).get("state") == "success",
        PROCESSOR_TIMEOUT + 180, logs)
    assert not task_file.exists()

    # Airflow re-parses the dags folder every few seconds: the DAG must not come back.
    rows = db.rows()
    deadline = time.monotonic() + 6 * PARSE_INTERVAL + 10
    while time.monotonic() < deadline:
        assert airflow.dag(dag_id) is None, f"{dag_id} is back: {airflow.dag(dag_id)}\n{logs()}"
        assert home.query("SELECT count(*) FROM dag_run WHERE dag_id = ?", dag_id) == [(0,)]
        time.sleep(2)
    assert not task_file.exists() and db.rows() == rows
    # The runs the resurrected DAG made re-read synced windows: still every record once.
    assert batch_rows() == [(i, f"msg-{i}") for i in range(100)]
    beats = heartbeat_rows()
    assert beats == [(i, f"msg-{i}") for i in range(HEARTBEAT_FIRST_ID, HEARTBEAT_FIRST_ID + len(beats))]

    # Secrets: neither the MySQL nor the API password in any log Airflow wrote.
    everything = home.logs_text() + "\n".join(p.read_text(errors="replace") for p in home.root.glob("*.log"))
    assert db.password not in everything and api_password not in everything
    assert replay.password not in everything
    # Every run asked the Manager, as InLong's own task does: credentials and tenant.
    assert replay.requests and all(r["headers"].get("tenant") == "public" for r in replay.requests)
