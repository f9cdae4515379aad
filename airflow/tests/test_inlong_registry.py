"""``registry = database``: dag_creator stores registrations in Airflow's database and the
generator DAG file inlong_offline_tasks.py builds the groups' DAGs, so that registration works
where the dags folder is read-only for Airflow (nothing is written into it)."""

from __future__ import annotations

import json
import os
import stat
import time

from conftest import AIRFLOW_MAJOR, now_ms, unique


def manager_conf(group_id, start_time, end_time, seconds_interval="10"):
    return {"inlong_group_id": group_id, "start_time": start_time, "end_time": end_time,
            "boundary_type": "time", "cron_expr": None, "seconds_interval": seconds_interval,
            "connection_id": "inlong_connection", "timezone": "Asia/Shanghai"}


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}+00:00"


def stored(home) -> dict:
    """The registrations Variable (stored encrypted: read through the CLI)."""
    out = home.airflow("variables", "get", "pulsar2mysql_inlong_registrations", check=False)
    if out.returncode != 0:
        return {}
    text = out.stdout[out.stdout.index("{"):]
    return json.loads(text)


def parse(home) -> None:
    """Parse the dags folder as Airflow's own parser does, with the database at hand (Airflow 3:
    the DAG processor, whose files read Variables through it; Airflow 2: reserialize)."""
    if AIRFLOW_MAJOR >= 3:
        # A DAG a file stops defining turns stale once the file was parsed this long after it.
        home.env["AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD"] = "1"
        home.env["AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL"] = "0"  # checked after each parse
        time.sleep(2)
        home.airflow("dag-processor", "-n", "1")
    else:
        home.airflow("dags", "reserialize")


def active(home, dag_id: str) -> bool:
    """Whether the last parse defined the DAG."""
    column = "NOT is_stale" if AIRFLOW_MAJOR >= 3 else "is_active"
    return home.query(f"SELECT {column} FROM dag WHERE dag_id = ?", dag_id) == [(1,)]


def test_registrations_in_the_database_with_a_read_only_dags_folder(airflow_home):
    home = airflow_home("dag_creator.py", "dag_cleaner.py", "inlong_offline_tasks.py")
    home.env["AIRFLOW__PULSAR2MYSQL__REGISTRY"] = "database"
    files_before = sorted(p.name for p in home.dags.iterdir())
    os.chmod(home.dags, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        group = unique("ro").replace("_", "-")
        dag_id = f"inlong_offline_task_{group}"
        now = now_ms()
        first = manager_conf(group, now - 120_000, now + 3_600_000)
        second = manager_conf(group, now - 60_000, now + 3_600_000)
        # The Manager's two approval triggers, run in the wrong order: the later still wins.
        home.dags_test("dag_creator", conf=second, logical_date=iso(now - 1000))
        home.dags_test("dag_creator", conf=first, logical_date=iso(now - 1500))
        assert sorted(home.task_states("dag_creator")) == ["success", "success"], home.outputs[-1][-4000:]
        assert "is older and changes nothing" in home.logs_text() or "this older one changes nothing" in home.logs_text()
        spec = stored(home)[group]
        assert spec["start_time"] == second["start_time"]
        assert sorted(p.name for p in home.dags.iterdir()) == files_before  # nothing written

        # The generator file publishes the group's DAG (its tasks: test_dagbag.py).
        parse(home)
        assert active(home, dag_id)

        # Unregister, as the Manager sends it: the registration is gone, and so is the DAG.
        out = home.dags_test("dag_cleaner", conf={"inlong_group_id": f"inlong_offline_task_{dag_id}"})
        assert home.task_states("dag_cleaner") == ["success"], out.stdout[-4000:]
        assert group not in stored(home)
        parse(home)
        assert not active(home, dag_id)
    finally:
        os.chmod(home.dags, stat.S_IRWXU)
