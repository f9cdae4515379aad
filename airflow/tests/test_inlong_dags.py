"""dag_creator / dag_cleaner driven by `airflow dags test` with InLong Manager's exact conf, and
the generated task DAG syncing its interval against the real services."""

import time

import pulsar2mysql_inlong as inlong
from conftest import Database, now_ms, parse_summary, produce, unique


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
    logical = now_ms()  # a seconds_interval run at L covers [L - 10 s, L)
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
    assert int(window["to"]) - int(window["from"]) == 10_000  # milliseconds, not seconds
    assert db.password not in home.logs_text() + out.stdout

    # Unregister: the Manager triggers dag_cleaner with the group id; twice is fine.
    for _ in range(2):
        home.dags_test("dag_cleaner", conf={"inlong_group_id": group})
        assert not task_file.exists()
    assert home.task_states("dag_cleaner") == ["success", "success"]


def test_creator_refuses_unmappable_cron_and_bad_group(airflow_home):
    home = airflow_home("dag_creator.py")
    start = now_ms()
    home.dags_test("dag_creator", conf=manager_conf("g1", start, None, None, "*/10 * * * * ?"))
    home.dags_test("dag_creator", conf=manager_conf("../../evil", start, None))
    assert home.task_states("dag_creator") == ["failed", "failed"]
    logs = home.logs_text()
    assert "Airflow schedules whole minutes" in logs and "is not a group id" in logs
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
