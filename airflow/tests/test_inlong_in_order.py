"""An InLong group's windows run strictly in order, under a real scheduler (Airflow 2.10 and 3).

The same story as test_windows_in_order.py, for a group's task DAG: its sync task runs one
runner job per stream/sink pair, chained window after window like the example DAG's. The
Manager is the replay of the recorded one (test_inlong_dataflow.py); window N fails (the
group's table does not exist yet: exit 2); N+1's sync refuses to start and says why; the table
is created, N is cleared with the runs after it, and both windows complete in order with every
record once. The sync tasks take their slots of the `pulsar2mysql` pool.
"""

from __future__ import annotations

import time

import pendulum
import pytest

import pulsar2mysql_inlong as inlong
from conftest import Database, kill_group, mysql, now_ms, produce, unique, wait_for
from inlong_manager import ManagerReplay
from test_inlong_dataflow import stream_for
from test_windows_in_order import start_airflow

pytestmark = pytest.mark.slow

# A group's fixed interval cannot be shorter (pulsar2mysql_airflow.MIN_INTERVAL_SECONDS).
WINDOW_S = 60


def test_a_groups_window_after_a_failed_one_waits_until_it_is_fixed(airflow_home, topic):
    manager = ManagerReplay(password="manager-" + unique("pw"))
    db = Database()
    home = airflow_home()
    try:
        home.env["AIRFLOW_CONN_INLONG_CONNECTION"] = manager.connection_uri()
        home.env["AIRFLOW__PULSAR2MYSQL__TASK_RETRIES"] = "0"
        home.airflow("pools", "set", "pulsar2mysql", "16", "MySQL connections of pulsar2mysql tasks")
        group = unique("ord").replace("_", "-")
        dag_id = inlong.task_dag_id(group)
        manager.groups[group] = [stream_for(group, topic, db)]
        mysql("RENAME TABLE sink_table TO sink_table_later", db.name)  # window N fails: exit 2

        # Two windows, [S, S+W) and [S+W, S+2W); S in the past so that N ends soon.
        start_ms = (int(time.time()) - WINDOW_S + 15) * 1000
        conf = {"inlong_group_id": group, "start_time": start_ms, "end_time": start_ms + 2 * WINDOW_S * 1000,
                "boundary_type": "time", "connection_id": "inlong_connection", "cron_expr": None,
                "seconds_interval": str(WINDOW_S), "timezone": "UTC"}
        assert inlong.register(inlong.spec_from_conf(conf), now_ms(), home.dags) is not None
        produce(topic, 20, start=0)  # in window N
        procs, logs = start_airflow(home)
        try:
            while time.time() * 1000 < start_ms + WINDOW_S * 1000 + 1000:
                time.sleep(0.5)
            produce(topic, 20, start=20)  # in window N+1

            def runs():
                return home.query("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY data_interval_start",
                                  dag_id)

            def sync(run_id):
                return home.query("SELECT state, pool, pool_slots FROM task_instance WHERE dag_id = ? AND"
                                  " task_id = ? AND run_id = ?", dag_id, dag_id, run_id)

            wait_for("window N to fail", lambda: runs() and runs()[0][1] == "failed", 240, logs)
            n = runs()[0][0]
            assert [s for s, *_ in sync(n)] == ["failed"], sync(n)  # one pair: one runner job
            # Window N+1's run comes (its interval ended): its sync refuses to start while N is
            # failed, and says why.
            wait_for("window N+1's run to end", lambda: len(runs()) == 2 and runs()[1][1] in ("success", "failed"),
                     240, logs)
            n1 = runs()[1][0]
            assert runs()[1][1] == "failed" and [s for s, *_ in sync(n1)] == ["failed"], f"{runs()} {sync(n1)}\n{logs()}"
            text = home.logs_text() + logs()
            assert "not started: the previous window of this task" in text, text[-6000:]
            assert mysql("SELECT count(*) FROM sink_table_later", db.name) == [["0"]]

            # Fixed, then N and every run after it cleared: they run in order, every record once.
            mysql("RENAME TABLE sink_table_later TO sink_table", db.name)
            start_iso = pendulum.from_timestamp(start_ms / 1000, tz="UTC").isoformat()
            for _ in range(5):  # sqlite shared with the scheduler: a locked write is retried
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
                               " AND t.task_id = ? ORDER BY r.data_interval_start", dag_id, dag_id)
            assert spans[0][1] <= spans[1][0], f"N+1's sync started before N's ended: {spans}"
            # Each took its slots of the pool: writers + 2, as every sync task.
            assert sync(n) + sync(n1) == [("success", "pulsar2mysql", 3)] * 2, sync(n) + sync(n1)
        finally:
            for p in procs:
                kill_group(p)
                p.wait(timeout=30)
    finally:
        manager.stop()
        db.drop()
