"""Unit tests of the shared helpers: command and environment building, InLong conf parsing,
Quartz cron translation, task DAG files. No services needed."""

import shlex

import pytest

import pulsar2mysql_airflow as p2m
import pulsar2mysql_inlong as inlong

# The conf InLong Manager sends (DAGRunConf serialized with null keys present).
MANAGER_CONF = {
    "inlong_group_id": "test_group",
    "start_time": 1735660800000,
    "end_time": 1893427200000,
    "boundary_type": "time",
    "cron_expr": None,
    "seconds_interval": "300",
    "connection_id": "inlong_connection",
    "timezone": "Asia/Shanghai",
}


def test_command_quotes_constants_and_refuses_secrets():
    cmd = p2m.runner_command(topic="a b;rm -rf /", table="db.t", partitions=[0, 2], dry_run=True, mode=None)
    assert "--topic 'a b;rm -rf /'" in cmd
    assert "--partitions 0,2" in cmd and "--dry-run" in cmd and "--mode" not in cmd
    assert shlex.split(cmd)  # valid shell
    for secret in ("mysql_password", "pulsar_token", "mysql_url"):
        with pytest.raises(ValueError, match="command line"):
            p2m.runner_command(topic="t", **{secret: "x"})


def test_window_is_milliseconds_and_conf_overridable():
    env = p2m.window_env()
    assert "data_interval_start.timestamp() * 1000" in env["PULSAR2MYSQL_FROM"]
    assert "data_interval_end.timestamp() * 1000" in env["PULSAR2MYSQL_TO"]
    assert ".get('from')" in env["PULSAR2MYSQL_FROM"]
    fixed = p2m.window_env(1, "latest", allow_conf=False)
    assert fixed == {"PULSAR2MYSQL_FROM": "{{ '1' }}", "PULSAR2MYSQL_TO": "{{ 'latest' }}"}


def test_password_only_in_env():
    with p2m.DAG("d", schedule=None, default_args=p2m.DEFAULT_TASK_ARGS):
        task = p2m.sync_task("t", topic="x", table="y", mysql_conn_id="my_db")
    assert "password" not in task.bash_command.lower().replace("pulsar2mysql_mysql_password", "")
    assert "'my_db'" in task.env["PULSAR2MYSQL_MYSQL_PASSWORD"]
    assert task.append_env is True
    assert task.retries == 3 and task.execution_timeout is not None


@pytest.mark.parametrize("quartz, cron", [
    ("0 */5 * * * ?", "*/5 * * * *"),
    ("0 0/15 8-17 * * ?", "0-59/15 8-17 * * *"),
    ("0 30 2 ? * MON-FRI", "30 2 * * MON-FRI"),
    ("0 0 12 ? * 1,7", "0 12 * * 0,6"),
    ("0 0 0 1 * ? *", "0 0 1 * *"),
    ("*/5 * * * *", "*/5 * * * *"),
    ("@daily", "@daily"),
])
def test_quartz_translated(quartz, cron):
    assert inlong.quartz_to_cron(quartz) == cron


@pytest.mark.parametrize("quartz, reason", [
    ("*/10 5 * * * ?", "second"),
    ("*/7 * * * * ?", "second"),
    ("30 * * * * ?", "second"),
    ("0 15 10 L * ?", "L, W or #"),
    ("0 15 10 ? * 6#3", "L, W or #"),
    ("0 0 0 1 1 ? 2030", "year"),
    ("0 0 0 32 * ?", "valid cron"),
    ("0 0", "6 or 7"),
])
def test_quartz_refused_with_reason(quartz, reason):
    with pytest.raises(inlong.InvalidConf, match=reason):
        inlong.quartz_to_cron(quartz)


def test_manager_conf_becomes_spec():
    spec = inlong.spec_from_conf(MANAGER_CONF)
    assert spec["group_id"] == "test_group"
    assert spec["schedule"] == {"seconds": 300}
    assert spec["timezone"] == "Asia/Shanghai"
    assert (spec["start_time"], spec["end_time"]) == (1735660800000, 1893427200000)
    cron = inlong.spec_from_conf({**MANAGER_CONF, "cron_expr": "0 */5 * * * ?", "seconds_interval": None})
    assert cron["schedule"] == {"cron": "*/5 * * * *"}
    once = inlong.spec_from_conf({**MANAGER_CONF, "seconds_interval": "0"})
    assert once["schedule"] == {"once": True}
    assert inlong.spec_from_conf({**MANAGER_CONF, "end_time": None})["end_time"] is None


@pytest.mark.parametrize("change, reason", [
    ({"inlong_group_id": "../etc/x"}, "not a group id"),
    ({"inlong_group_id": "a/b"}, "not a group id"),
    ({"inlong_group_id": None}, "not a group id"),
    ({"start_time": 1735660800}, "seconds"),
    ({"start_time": None}, "required"),
    ({"end_time": 1735660700000}, "not after"),
    ({"timezone": "Mars/Base"}, "timezone"),
    ({"boundary_type": "offset"}, "only 'time'"),
    ({"seconds_interval": None}, "neither"),
    ({"cron_expr": "15 * * * * ?"}, "second"),
    ({"cron_expr": "*/10 * 1 * * ?"}, "second"),
])
def test_bad_conf_refused(change, reason):
    with pytest.raises(inlong.InvalidConf, match=reason):
        inlong.spec_from_conf({**MANAGER_CONF, **change})


def test_task_file_written_atomically_and_cleaned(tmp_path):
    spec = inlong.spec_from_conf(MANAGER_CONF)
    path = inlong.write_task_file(spec, tmp_path)
    assert path == tmp_path / "inlong_offline_task_test_group.py"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    text = path.read_text()
    assert "from pulsar2mysql_inlong import task_dag" in text  # code stays in the helper
    assert inlong.read_spec(path) == spec
    assert inlong.remove_group("test_group", tmp_path) is True
    assert inlong.remove_group("test_group", tmp_path) is False  # already gone: no crash


def test_expired_task_files_removed(tmp_path):
    old = inlong.spec_from_conf({**MANAGER_CONF, "inlong_group_id": "old-group", "end_time": 1735664400000})
    live = inlong.spec_from_conf({**MANAGER_CONF, "inlong_group_id": "live"})
    endless = inlong.spec_from_conf({**MANAGER_CONF, "inlong_group_id": "endless", "end_time": None})
    for spec in (old, live, endless):
        inlong.write_task_file(spec, tmp_path)
    (tmp_path / "inlong_offline_task_broken.py").write_text("not python (")
    removed = inlong.remove_expired(now_ms=1800000000000, folder=tmp_path, grace_ms=0)
    assert removed == ["inlong_offline_task_old-group.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "inlong_offline_task_broken.py", "inlong_offline_task_endless.py", "inlong_offline_task_live.py"]


# --- issue 12: what InLong Manager really sends -----------------------------------------------


@pytest.mark.parametrize("group_id", ["abcd", "-grp", ".grp", "a.b-c_D9", "....", "a" * 200])
def test_group_ids_inlong_allows_are_accepted(group_id):
    # InLong's rule: ^[a-zA-Z0-9_.-]{4,200}$ (a leading '.' or '-' is fine: the file name is
    # always prefixed, and '/' is never allowed)
    assert inlong.spec_from_conf({**MANAGER_CONF, "inlong_group_id": group_id})["group_id"] == group_id


@pytest.mark.parametrize("group_id", ["abc", "a" * 201, "a/bcd", "../etc", "grp id", "grp\n", 1234, None])
def test_group_ids_inlong_refuses_are_refused(group_id):
    with pytest.raises(inlong.InvalidConf, match="not a group id"):
        inlong.spec_from_conf({**MANAGER_CONF, "inlong_group_id": group_id})


def test_job_id_of_a_long_group_id_fits_the_runner():
    # The runner takes job ids of 1-191 characters; "inlong_" + a 200-character group id is 207.
    assert inlong.job_id("test_group") == "inlong_test_group"
    long_ids = ["a" * 200, "a" * 199 + "b"]
    jobs = [inlong.job_id(g) for g in long_ids]
    assert all(len(j) <= 191 for j in jobs) and jobs[0] != jobs[1]


@pytest.mark.parametrize("quartz, seconds", [
    ("*/1 * * * * ?", 1),
    ("*/2 * * * * ?", 2),
    ("0/15 * * * * ?", 15),
    ("*/30 * * * ? *", 30),
    ("* * * * * ?", 1),
])
def test_quartz_seconds_step_becomes_a_fixed_interval(quartz, seconds):
    # InLong's own tests schedule "*/1 * * * * ?": Airflow cannot fire on seconds in a cron,
    # but a step that divides the minute is a fixed interval.
    spec = inlong.spec_from_conf({**MANAGER_CONF, "cron_expr": quartz, "seconds_interval": None})
    assert spec["schedule"] == {"seconds": seconds}


def test_cleaner_strips_every_manager_prefix(tmp_path):
    # The Manager unregisters with inlong_group_id = "inlong_offline_task_" twice + groupId.
    path = inlong.write_task_file(inlong.spec_from_conf(MANAGER_CONF), tmp_path)
    doubled = "inlong_offline_task_inlong_offline_task_test_group"
    assert inlong.cleaner_group_id(doubled) == "test_group"
    assert inlong.cleaner_group_id("inlong_offline_task_test_group") == "test_group"
    assert inlong.cleaner_group_id("test_group") == "test_group"
    assert inlong.remove_group(doubled, tmp_path) is True
    assert not path.exists()
    assert inlong.remove_group(doubled, tmp_path) is False  # already gone: no crash


def test_partition_groups_and_their_job_ids():
    assert p2m.partition_groups(4) == [[0], [1], [2], [3]]
    assert p2m.partition_groups(5, 2) == [[0, 1], [2, 3], [4]]
    assert p2m.partition_groups([3, 1, 1, 0], 4) == [[0, 1, 3]]
    with pytest.raises(ValueError):
        p2m.partition_groups(4, 0)
    with pytest.raises(ValueError):
        p2m.partition_groups([-1])
    assert p2m.group_job_id("job", [7]) == "job.p7"
    assert p2m.group_job_id("job", [4, 5, 6, 7]) == "job.p4-7"
    assert p2m.group_job_id("job", [0, 1, 3]) == "job.p0_1_3"


def _summary(partition, rows, started, ended, outcome="success", exit_code=0, bad=None):
    import json
    return json.dumps({
        "job_id": f"job.p{partition}", "topic": "t", "table": "sink_table",
        "range": {"from": "1000", "to": "2000", "partitions": [{"partition": partition}]},
        "records_read": rows + sum((bad or {}).values()), "bytes_read": 10 * rows,
        "rows_converted": rows, "rows_written": rows, "duplicates_skipped": 0,
        "bad_records": sum((bad or {}).values()), "bad_records_by_reason": bad or {},
        "dead_lettered": 0, "batches": 1 if rows else 0, "retries": 0,
        "started_at": started, "ended_at": ended, "duration_ms": 1, "rows_per_sec": 1.0,
        "outcome": outcome, "exit_code": exit_code, "error": None,
    })


def test_summaries_of_mapped_tasks_add_up():
    total = p2m.add_up_summaries([
        _summary(1, 300, "2025-01-01T00:00:01.000Z", "2025-01-01T00:00:02.000Z", bad={"invalid_value": 2}),
        _summary(0, 700, "2025-01-01T00:00:00.500Z", "2025-01-01T00:00:01.500Z",
                 bad={"invalid_value": 1, "too_long": 4}),
        _summary(2, 0, "2025-01-01T00:00:01.000Z", "2025-01-01T00:00:01.100Z", outcome="nothing_to_do"),
    ])
    assert total["job_id"] == "job" and total["job_ids"] == ["job.p1", "job.p0", "job.p2"]
    assert total["tasks"] == 3 and total["rows_written"] == 1000 and total["records_read"] == 1007
    assert total["bad_records"] == 7 and total["bad_records_by_reason"] == {"invalid_value": 3, "too_long": 4}
    assert [p["partition"] for p in total["range"]["partitions"]] == [0, 1, 2]
    assert total["range"]["from"] == "1000" and total["range"]["to"] == "2000"
    assert total["started_at"] == "2025-01-01T00:00:00.500Z" and total["ended_at"] == "2025-01-01T00:00:02.000Z"
    assert total["duration_ms"] == 1500 and total["rows_per_sec"] == 666.7
    assert total["outcome"] == "success" and total["exit_code"] == 0
    quiet = p2m.add_up_summaries([_summary(0, 0, "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z",
                                           outcome="nothing_to_do")])
    assert quiet["outcome"] == "nothing_to_do" and quiet["rows_per_sec"] == 0.0
    with pytest.raises(ValueError):
        p2m.add_up_summaries([])
