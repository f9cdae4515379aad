"""dag_creator / dag_cleaner driven by `airflow dags test` with InLong Manager's exact conf, and
the generated task DAG syncing its interval against the real services."""

import time

import pytest

import pulsar2mysql_inlong as inlong
from conftest import AIRFLOW_MAJOR, Database, now_ms, parse_summary, produce, unique


def manager_conf(group_id, start_time, end_time, seconds_interval="10", cron_expr=None):
    """Shaped exactly like InLong Manager's DAGRunConf, null keys included."""
    return {
        "inlong_group_id": group_id,
        "start_time": start_time,
        "end_time": end_time,
        "boundary_type": "time",
        "cron_expr": cron_expr,
        "seconds_interval": seconds_interval,
        "connection_id": "inlong_connection",
        "timezone": "Asia/Shanghai",
    }


def write_group_config(home, group_id, topic, db: Database):
    """The group's source and sink settings: the runner's own TOML, no secrets in it."""
    (home.groups / f"{group_id}.toml").write_text(
        f'topic = "{topic}"\ntable = "sink_table"\ndelimiter = "124"\n'
    )


def test_creator_task_dag_and_cleaner(airflow_home, db: Database, topic):
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri()
    group = unique("g").replace("_", "-")
    dag_id = f"inlong_offline_task_{group}"
    write_group_config(home, group, topic, db)

    start, end = produce(topic, 50)
    time.sleep(0.2)
    logical = now_ms()  # a seconds_interval "10" run at L covers [L - 60 s, L) (the floor)
    conf = manager_conf(group, start_time=start - 60_000, end_time=start + 3_600_000)
    out = home.dags_test("dag_creator", conf=conf)
    assert home.task_states("dag_creator") == ["success"], out.stdout[-5000:]
    task_file = home.dags / f"{dag_id}.py"
    assert task_file.exists()
    assert "from pulsar2mysql_inlong import task_dag" in task_file.read_text()

    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(logical // 1000)) + f".{logical % 1000:03d}+00:00"
    out = home.dags_test(dag_id, logical_date=iso)
    assert home.task_states(dag_id) == ["success"], out.stdout[-6000:]
    assert db.rows() == [(i, f"msg-{i}") for i in range(50)]
    summary = parse_summary(home.xcom(dag_id, dag_id))
    assert summary["job_id"] == f"inlong_{group}" and summary["rows_written"] == 50
    window = summary["range"]
    assert int(window["to"]) - int(window["from"]) == 60_000  # milliseconds, not seconds
    assert db.password not in home.logs_text() + out.stdout

    # Unregister: the Manager triggers dag_cleaner with the group id; twice is fine.
    for _ in range(2):
        home.dags_test("dag_cleaner", conf={"inlong_group_id": group})
        assert not task_file.exists()
    assert home.task_states("dag_cleaner") == ["success", "success"]


def test_creator_refuses_unmappable_cron_and_bad_group(airflow_home):
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    start = now_ms()
    home.dags_test("dag_creator", conf=manager_conf("grp1", start, None, None, "*/10 5 * * * ?"))
    home.dags_test("dag_creator", conf=manager_conf("../../evil", start, None))
    assert home.task_states("dag_creator") == ["failed", "failed"]
    home.dags_test("dag_cleaner", conf={"inlong_group_id": "inlong_offline_task_../../evil"})
    assert home.task_states("dag_cleaner") == ["failed"]  # at once: no retry of a bad id
    logs = home.logs_text()
    assert "Airflow schedules whole minutes" in logs and "is not a group id" in logs
    assert "REFUSED InLong group '../../evil'" in logs and "REFUSED: inlong_group_id '../../evil'" in logs
    assert list(home.dags.glob("inlong_offline_task_*")) == []
    assert not (home.root / "evil.py").exists()


def test_cleaner_removes_expired_task_dags(airflow_home):
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    home.env["AIRFLOW__PULSAR2MYSQL__CLEANUP_GRACE_SECONDS"] = "0"
    now = now_ms()
    home.dags_test("dag_creator", conf=manager_conf("expired", now - 7_200_000, now - 3_600_000,
                                                    None, "0 0 * * * ?"))
    home.dags_test("dag_creator", conf=manager_conf("running", now - 7_200_000, now + 3_600_000))
    home.dags_test("dag_creator", conf=manager_conf("once", now - 7_200_000, None, "0"))
    assert home.task_states("dag_creator") == ["success"] * 3
    home.dags_test("dag_cleaner", conf={})
    assert sorted(p.name for p in home.dags.glob("inlong_offline_task_*")) == [
        "inlong_offline_task_once.py", "inlong_offline_task_running.py"]
    assert inlong.read_spec(home.dags / "inlong_offline_task_once.py")["schedule"] == {"once": True}


def test_update_rewrites_the_task_dag(airflow_home):
    """Updating a group sends dag_creator the whole conf again: the file is rewritten with the
    new schedule (here a Quartz seconds step, which becomes a fixed interval)."""
    home = airflow_home("dag_creator.py")
    now = now_ms()
    home.dags_test("dag_creator", conf=manager_conf("grp-update", now - 60_000, now + 3_600_000, "30"))
    home.dags_test("dag_creator", conf=manager_conf("grp-update", now - 60_000, now + 3_600_000,
                                                    None, "*/2 * * * * ?"))
    assert home.task_states("dag_creator") == ["success", "success"]
    spec = inlong.read_spec(home.dags / "inlong_offline_task_grp-update.py")
    assert spec["schedule"] == {"seconds": 2}


@pytest.mark.skipif(AIRFLOW_MAJOR != 2, reason="Airflow 2 only: Airflow 3 tasks have no database "
                    "access; its DAG processor retires a DAG whose file is gone")
def test_cleaner_deletes_the_dag_metadata(airflow_home):
    """InLong Manager unregisters with the prefix doubled and DELETEs the DAG right away, before
    dag_cleaner has removed the file: Airflow re-parses the file and the DAG is back. So the
    cleaner removes the file and then the DAG's metadata itself."""
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    group = "grp.meta-1"
    dag_id = f"inlong_offline_task_{group}"
    now = now_ms()
    home.dags_test("dag_creator", conf=manager_conf(group, now - 60_000, now + 3_600_000))
    home.airflow("dags", "reserialize")  # as the DAG processor would: the DAG is in the database
    assert home.query("SELECT dag_id FROM dag WHERE dag_id = ?", dag_id) == [(dag_id,)]

    conf = {**manager_conf(f"inlong_offline_task_{dag_id}", 0, 0, None), "boundary_type": None,
            "connection_id": None, "timezone": None}
    out = home.dags_test("dag_cleaner", conf=conf)
    assert home.task_states("dag_cleaner") == ["success"], out.stdout[-5000:]
    assert not (home.dags / f"{dag_id}.py").exists()
    for table in ("dag", "serialized_dag", "dag_run"):
        assert home.query(f"SELECT count(*) FROM {table} WHERE dag_id = ?", dag_id) == [(0,)], table
