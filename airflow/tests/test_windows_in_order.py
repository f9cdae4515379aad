"""Chained windows run strictly in order, under a real scheduler (Airflow 2.10 and 3).

The runner chains a job's windows by position (README, "Ranges, precisely"): window N+1 starts
where N stopped. If N+1 ran after N failed, a late record of N's boundary would be read by
neither. Here window N fails (its table does not exist yet: exit 2); N+1's sync refuses to
start and says why (the runner is never started, nothing is written); then the table is
created, N is cleared with the runs after it, and both windows complete in order with every
record once.

Airflow 3: api-server + scheduler + dag-processor (LocalExecutor, sqlite); Airflow 2.10: a
scheduler (SequentialExecutor, sqlite). Both with the pool the sync tasks take.
"""

from __future__ import annotations

import secrets
import subprocess
import time

import pendulum
import pytest

from conftest import AIRFLOW_MAJOR, VENV_BIN, Database, free_port, kill_group, mysql, produce, unique, wait_for

pytestmark = pytest.mark.slow

WINDOW_S = 15

DAG_TEMPLATE = '''
from datetime import timedelta

import pendulum

from pulsar2mysql_airflow import DAG, DEFAULT_TASK_ARGS, DeltaDataIntervalTimetable, sync_task

START = pendulum.from_timestamp({start_ms} / 1000, tz="UTC")
with DAG(
    dag_id={dag_id!r},
    schedule=DeltaDataIntervalTimetable(timedelta(seconds={window})),
    start_date=START,
    end_date=START + timedelta(seconds={window}),  # two windows: [S, S+W) and [S+W, S+2W)
    catchup=True,
    max_active_runs=1,
    is_paused_upon_creation=False,
    default_args={{**DEFAULT_TASK_ARGS, "retries": 0, "execution_timeout": timedelta(seconds=120)}},
) as dag:
    sync_task("sync", topic={topic!r}, table="sink_table", job_id={dag_id!r})
'''


def start_airflow(home):
    """The scheduler (and on Airflow 3 the api-server and dag-processor); returns (procs, logs)."""
    home.env.update({
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
    })
    if AIRFLOW_MAJOR >= 3:
        port = free_port()
        home.env.update({
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        })
        commands = (("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
                    ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]))
    else:
        home.env.update({
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "3",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "3",
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        })
        commands = (("scheduler", ["scheduler"]),)
    procs, logs = [], {}
    for name, args in commands:
        logs[name] = home.root / f"{name}.log"
        procs.append(subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=home.env, cwd=home.root,
                                      stdout=logs[name].open("w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))

    def tail_logs() -> str:
        return "\n".join(f"--- {n} (last lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
                         for n, p in logs.items())

    return procs, tail_logs


def test_window_after_a_failed_one_waits_until_it_is_fixed(airflow_home, topic):
    db = Database()
    home = airflow_home()
    try:
        dag_id = unique("in_order")
        home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri()
        home.airflow("pools", "set", "pulsar2mysql", "16", "MySQL connections of pulsar2mysql tasks")
        mysql("RENAME TABLE sink_table TO sink_table_later", db.name)  # window N fails: exit 2

        start_ms = (int(time.time()) + 3) * 1000
        (home.dags / f"{dag_id}.py").write_text(DAG_TEMPLATE.format(
            start_ms=start_ms, dag_id=dag_id, window=WINDOW_S, topic=topic))
        procs, logs = start_airflow(home)
        try:
            # 20 records in each window.
            while time.time() * 1000 < start_ms + 1000:
                time.sleep(0.2)
            produce(topic, 20, start=0)
            while time.time() * 1000 < start_ms + WINDOW_S * 1000 + 1000:
                time.sleep(0.2)
            produce(topic, 20, start=20)

            def runs():
                return home.query("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY data_interval_start",
                                  dag_id)

            def sync(run_id):
                return home.query("SELECT state, start_date FROM task_instance WHERE dag_id = ? AND task_id = 'sync'"
                                  " AND run_id = ?", dag_id, run_id)

            wait_for("window N to fail", lambda: runs() and runs()[0][1] == "failed", 240, logs)
            n = runs()[0][0]
            assert sync(n)[0][0] == "failed", sync(n)
            # Window N+1's run comes (its interval ended): its sync refuses to start while N is
            # failed, and says why.
            wait_for("window N+1's run to end", lambda: len(runs()) == 2 and runs()[1][1] in ("success", "failed"),
                     180, logs)
            n1 = runs()[1][0]
            assert runs()[1][1] == "failed" and sync(n1)[0][0] == "failed", f"{runs()} {sync(n1)}\n{logs()}"
            text = home.logs_text() + logs()
            assert "not started: the previous window of this task" in text, text[-6000:]
            assert mysql("SELECT count(*) FROM sink_table_later", db.name) == [["0"]]

            # Fixed, then N and every run after it cleared: they run in order, every record once.
            mysql("RENAME TABLE sink_table_later TO sink_table", db.name)
            start_iso = pendulum.from_timestamp(start_ms / 1000, tz="UTC").isoformat()
            for attempt in range(5):  # sqlite shared with the scheduler: a locked write is retried
                out = home.airflow("tasks", "clear", dag_id, "-s", start_iso, "-y", check=False)
                if out.returncode == 0:
                    break
                time.sleep(2)
            assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
            wait_for("both windows to succeed",
                     lambda: [s for _, s in runs()] == ["success", "success"], 240, logs)
            assert db.rows() == [(i, f"msg-{i}") for i in range(40)]
            spans = home.query("SELECT t.start_date, t.end_date FROM task_instance t JOIN dag_run r"
                               " ON t.run_id = r.run_id AND t.dag_id = r.dag_id WHERE t.dag_id = ?"
                               " AND t.task_id = 'sync' ORDER BY r.data_interval_start", dag_id)
            assert spans[0][1] <= spans[1][0], f"N+1's sync started before N's ended: {spans}"
        finally:
            for p in procs:
                kill_group(p)
                p.wait(timeout=30)
    finally:
        db.drop()
