"""What an Airflow user expects of the sync task (issue 23), on Airflow 2.10 and 3, without a
scheduler: exit codes a retry cannot fix fail at once, XCom holds a dict, a run without a data
interval fails with a sentence, sub-minute schedules run at a floor of a minute, the tasks take pool slots and
refuse to start after a failed window, and Pushgateway groups of deleted groups and of old fan-out
groupings are deleted.

The operator tests run the operator in-process with a stand-in for the runner binary that
exits with a given code (what the operator does with each exit code is the point; the real
runner's codes are exercised by the `dags test` cases at the end).
"""

from __future__ import annotations

import base64
import json
import os
import time
import types
import urllib.request
from datetime import timedelta

import pendulum
import pytest

import pulsar2mysql_airflow as p2m
import pulsar2mysql_inlong as inlong
from conftest import AIRFLOW_MAJOR, Database, produce, unique

PUSHGATEWAY = os.environ.get("PUSHGATEWAY_URL", "http://127.0.0.1:9091")


def fake_runner(tmp_path, code: int, stdout: str = "") -> str:
    path = tmp_path / f"runner-{code}"
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' {json.dumps(stdout)}\nexit {code}\n")
    path.chmod(0o755)
    return str(path)


def operator(tmp_path, runner: str, **kwargs):
    with p2m.DAG(unique("d"), schedule=None, start_date=pendulum.datetime(2025, 1, 1),
                 default_args=p2m.DEFAULT_TASK_ARGS):
        op = p2m.sync_task("sync", topic="t", table="x", job_id="j", mysql_conn_id=None,
                           start=1735689600000, end=1735693200000, allow_conf_window=False, **kwargs)
    op.env = {**op.env, "PULSAR2MYSQL_BIN": runner, "PULSAR2MYSQL_FROM": "1735689600000",
              "PULSAR2MYSQL_TO": "1735693200000"}
    return op


@pytest.mark.parametrize("code, retried", [(2, False), (5, False), (3, True), (4, True), (6, True), (130, True)])
def test_exit_codes_a_retry_cannot_fix_fail_at_once(tmp_path, code, retried):
    op = operator(tmp_path, fake_runner(tmp_path, code))
    assert op.retries == 3  # the DAG's retries still apply to the others
    with pytest.raises(p2m.AirflowException) as caught:
        op.execute({})
    no_retry = isinstance(caught.value, p2m.AirflowFailException)
    assert no_retry is not retried, f"exit {code}: {type(caught.value).__name__}: {caught.value}"
    if not retried:
        assert f"exited with {code}" in str(caught.value) and "retry would fail" in str(caught.value)


def test_xcom_is_the_summary_as_a_dict(tmp_path):
    summary = {"job_id": "j", "rows_written": 3, "exit_code": 0, "outcome": "success"}
    op = operator(tmp_path, fake_runner(tmp_path, 0, json.dumps(summary)))
    assert op.execute({}) == summary
    assert p2m.summary_from_output("not json") == "not json"


def render_env(op, **context):
    """The operator's env rendered as Airflow renders it (the DAG's StrictUndefined env)."""
    ctx = {"dag_run": types.SimpleNamespace(conf=context.pop("conf", {})), **context}
    op.render_template_fields(ctx)
    return op.env


def test_a_run_without_data_interval_renders_from_conf_or_fails_with_a_sentence(tmp_path):
    def make():
        with p2m.DAG(unique("d"), schedule=None, start_date=pendulum.datetime(2025, 1, 1)):
            op = p2m.sync_task("sync", topic="t", table="x", job_id="j", mysql_conn_id=None)
        op.env["PULSAR2MYSQL_BIN"] = fake_runner(tmp_path, 0, "{}")
        return op

    # An Airflow 3 manual run with logical_date null: no data_interval_* in the context at all.
    op = make()
    env = render_env(op)
    assert env["PULSAR2MYSQL_FROM"] == "" and env["PULSAR2MYSQL_TO"] == ""
    with pytest.raises(p2m.AirflowFailException, match="no data interval.*conf"):
        op.execute({})
    # Its conf names the window: that is the window.
    env = render_env(make(), conf={"from": 1735689600000, "to": 1735693200000})
    assert (env["PULSAR2MYSQL_FROM"], env["PULSAR2MYSQL_TO"]) == ("1735689600000", "1735693200000")
    # A scheduled run: the data interval in ms.
    start = pendulum.datetime(2025, 1, 1, tz="UTC")
    env = render_env(make(), data_interval_start=start, data_interval_end=start.add(minutes=5))
    assert (env["PULSAR2MYSQL_FROM"], env["PULSAR2MYSQL_TO"]) == ("1735689600000", "1735689900000")


@pytest.mark.parametrize("schedule", [{"cron_expr": "*/1 * * * * ?"}, {"cron_expr": "*/10 * * * * ?"},
                                      {"seconds_interval": "1"}, {"seconds_interval": "30"}])
def test_sub_minute_schedules_run_at_a_floor_of_a_minute(schedule):
    """A 1-second Quartz schedule with an hour of backlog would be 3,600 runs; at the floor, 60."""
    start_ms = int(time.time() * 1000) - 3_600_000
    conf = {"inlong_group_id": unique("grp"), "start_time": start_ms, "end_time": None,
            "boundary_type": "time", "cron_expr": None, "seconds_interval": None,
            "connection_id": "inlong_connection", "timezone": "Asia/Shanghai", **schedule}
    dag = inlong.task_dag(inlong.spec_from_conf(conf))
    assert dag.catchup is True  # every window of the group's range is still synced

    from airflow.timetables.base import TimeRestriction

    timetable = dag.timetable
    if not hasattr(timetable, "next_dagrun_info"):  # Airflow 3: the scheduler's own class
        from airflow.timetables.interval import DeltaDataIntervalTimetable

        timetable = DeltaDataIntervalTimetable(dag.timetable.delta)
    # The runs the scheduler would create for the backlog: one a minute, back to back.
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)
    runs, last = [], None
    while True:
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None or info.run_after.timestamp() > time.time():
            break
        runs.append(info.data_interval)
        last = info.data_interval
        assert len(runs) <= 61, "more than one run a minute"
    assert 59 <= len(runs) <= 60, len(runs)
    assert runs[0].start.timestamp() * 1000 == pytest.approx(start_ms, abs=1)
    assert all(a.end == b.start for a, b in zip(runs, runs[1:]))  # no gap, no overlap

    # A minute or more is left as it is.
    conf.update(cron_expr=None, seconds_interval="90")
    tt = inlong.task_dag(inlong.spec_from_conf(conf)).timetable
    assert (getattr(tt, "delta", None) or tt._delta) == timedelta(seconds=90)
    assert p2m.floor_interval(90) == 90 and p2m.floor_interval(1) == 60


class Ti3:
    """What a sync task's ``ti`` answers on Airflow 3 (Task SDK). ``unexpanded``: the state of
    the task's unexpanded instance (map index -1) in a later run than ``previous_state``'s, as a
    mapped task whose upstream failed leaves it."""

    def __init__(self, previous_state, map_index=-1, unexpanded=None):
        self.map_index, self.previous_state, self.unexpanded, self.asked = map_index, previous_state, unexpanded, []

    def get_previous_ti(self, map_index=-1):
        self.asked.append(map_index)
        if map_index == -1 and self.map_index != -1:
            if self.unexpanded is None:
                return None
            return types.SimpleNamespace(state=self.unexpanded, run_id="scheduled__2", logical_date="2025-01-02")
        if self.previous_state is None:
            return None
        return types.SimpleNamespace(state=self.previous_state, run_id="scheduled__1", logical_date="2025-01-01")


class Ti2:
    """... and on Airflow 2.10 (no map_index in get_previous_ti: through the previous run)."""

    def __init__(self, previous_state, map_index=-1, unexpanded=None):
        self.map_index, self.task_id, self.previous_state, self.asked = map_index, "sync", previous_state, []
        self.unexpanded = unexpanded

    def get_previous_ti(self, state=None, session=None):
        raise AssertionError("would read map index -1 of a mapped task")

    def get_previous_dagrun(self, state=None, session=None):
        def get_task_instance(task_id, map_index=-1):
            self.asked.append(map_index)
            if self.unexpanded is not None:  # the previous run never expanded the task
                if map_index != -1:
                    return None
                return types.SimpleNamespace(state=self.unexpanded, run_id="scheduled__2", execution_date="2025-01-02")
            return types.SimpleNamespace(state=self.previous_state, run_id="scheduled__1", execution_date="2025-01-01")
        if self.previous_state is None and self.unexpanded is None:
            return None
        return types.SimpleNamespace(get_task_instance=get_task_instance)


@pytest.mark.parametrize("ti_class", [Ti3, Ti2])
def test_a_window_refuses_to_start_after_a_failed_one(tmp_path, ti_class):
    marker = tmp_path / "runner-started"
    runner = tmp_path / "runner"
    runner.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    runner.chmod(0o755)
    for state in ("failed", "upstream_failed", "up_for_retry"):
        ti = ti_class(state, map_index=5)
        with pytest.raises(p2m.AirflowFailException, match=f"previous window.* is {state}, not success.*clear"):
            operator(tmp_path, str(runner)).execute({"ti": ti, "dag_run": types.SimpleNamespace(conf={})})
        assert ti.asked[0] == 5 and not marker.exists()
    # The previous run's upstream failed (an InLong group's Manager down), so this map index was
    # never expanded there: its unexpanded instance is the previous window, not an older success.
    ti = ti_class("success", map_index=0, unexpanded="upstream_failed")
    with pytest.raises(p2m.AirflowFailException, match="run scheduled__2.* is upstream_failed, not success"):
        operator(tmp_path, str(runner)).execute({"ti": ti, "dag_run": types.SimpleNamespace(conf={})})
    assert ti.asked == [0, -1] and not marker.exists()
    # The previous window succeeded, there is none (the first), or the conf names the window.
    for ti, conf in ((ti_class("success"), {}), (ti_class(None), {}), (ti_class("failed"), {"from": 1, "to": 2})):
        operator(tmp_path, str(runner)).execute({"ti": ti, "dag_run": types.SimpleNamespace(conf=conf)})
        assert marker.exists()
        marker.unlink()


def test_sync_tasks_take_pool_slots():
    with p2m.DAG(unique("d"), schedule=None, start_date=pendulum.datetime(2025, 1, 1)):
        one = p2m.sync_task("one", topic="t", table="x", job_id="j1")
        four = p2m.sync_task("four", topic="t", table="x", job_id="j4", writers=4)
        fan = p2m.sync_task("fan", topic="t", table="x", job_id="j", partitions=4)
        free = p2m.sync_task("free", topic="t", table="x", job_id="j5", pool=None)
    assert (one.pool, one.pool_slots) == ("pulsar2mysql", 3)
    assert (four.pool, four.pool_slots) == ("pulsar2mysql", 6)
    mapped = fan.operator.dag.get_task("fan")
    assert mapped.partial_kwargs["pool"] == "pulsar2mysql" and mapped.partial_kwargs["pool_slots"] == 3
    assert free.pool != "pulsar2mysql"


def test_an_inlong_groups_sync_takes_pool_slots(tmp_path, monkeypatch):
    """InLong's mapped sync takes the same slots, ``writers`` from the group's override file."""
    monkeypatch.setenv("AIRFLOW__PULSAR2MYSQL__GROUP_CONFIG_DIR", str(tmp_path))
    group = unique("grp").replace("_", "-")
    conf = {"inlong_group_id": group, "start_time": 1735689600000, "end_time": None, "boundary_type": "time",
            "cron_expr": None, "seconds_interval": "60", "connection_id": "inlong_connection", "timezone": "UTC"}

    def sync_kwargs():
        dag = inlong.task_dag(inlong.spec_from_conf(conf))
        mapped = dag.get_task(inlong.task_dag_id(group))
        return mapped.partial_kwargs["pool"], mapped.partial_kwargs["pool_slots"]

    assert sync_kwargs() == ("pulsar2mysql", 3)
    (tmp_path / f"{group}.toml").write_text("writers = 4\n")
    assert sync_kwargs() == ("pulsar2mysql", 6)


# --- Pushgateway ---------------------------------------------------------------------------


def push(job_id: str, value: float = 1.0) -> None:
    encoded = base64.urlsafe_b64encode(job_id.encode()).decode()
    # Typed and described as the runner does (src/metrics/exposition.rs): a family of the same
    # name that differs would make the Pushgateway refuse the runner's own pushes.
    body = ("# HELP pulsar2mysql_last_success_timestamp_seconds When the last successful run of "
            "this job ended, seconds since the Unix epoch.\n"
            "# TYPE pulsar2mysql_last_success_timestamp_seconds gauge\n"
            f"pulsar2mysql_last_success_timestamp_seconds {value}\n").encode()
    req = urllib.request.Request(f"{PUSHGATEWAY}/metrics/job/pulsar2mysql/job_id@base64/{encoded}",
                                 data=body, method="PUT")
    urllib.request.urlopen(req, timeout=10).close()


def groups() -> list[str]:
    return p2m.metric_group_job_ids(PUSHGATEWAY)


def test_delete_metric_groups_takes_the_job_and_its_fan_out_ids_only():
    job = unique("inlong_grp")
    family = [job, f"{job}.p0", f"{job}.p1-3", f"{job}.p0_2_5"]
    others = [f"{job}x", f"{job}.p1x", f"{job}.pool", "other_" + job]
    for j in family + others:
        push(j)
    try:
        deleted = p2m.delete_metric_groups(job, keep=[f"{job}.p1-3"], url=PUSHGATEWAY, log=lambda _: None)
        assert sorted(deleted) == sorted([job, f"{job}.p0", f"{job}.p0_2_5"])
        assert set(groups()) >= {f"{job}.p1-3", *others}
        assert not set(groups()) & set(deleted)
    finally:
        for j in family + others:
            p2m.delete_metric_groups(j, url=PUSHGATEWAY, log=lambda _: None)


def test_pushgateway_password_never_in_errors():
    with pytest.raises(OSError) as caught:
        p2m.delete_metric_groups("j", url="http://user:s3cret-pw@127.0.0.1:1", log=lambda _: None)
    assert "s3cret-pw" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)


def test_dag_cleaner_deletes_the_groups_pushgateway_metrics(airflow_home):
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    home.env["PULSAR2MYSQL_PUSHGATEWAY_URL"] = PUSHGATEWAY
    group = unique("grp").replace("_", "-")
    job = inlong.job_id(group)
    kept = inlong.job_id(group + "-other")
    for j in (job, f"{job}.p0", f"{job}.p1", kept):
        push(j)
    try:
        out = home.dags_test("dag_cleaner", conf={"inlong_group_id": f"inlong_offline_task_inlong_offline_task_{group}"})
        assert home.task_states("dag_cleaner") == ["success"], out.stdout[-4000:] + out.stderr[-3000:]
        assert not {job, f"{job}.p0", f"{job}.p1"} & set(groups()), groups()
        assert kept in groups()
    finally:
        p2m.delete_metric_groups(kept, url=PUSHGATEWAY, log=lambda _: None)


# --- with the real runner (`airflow dags test`) --------------------------------------------

EXAMPLE = "pulsar2mysql_example"


def example_home(airflow_home, topic, retries=3, **constants):
    """The example DAG edited as a user would: their topic and constants, quick retries."""
    home = airflow_home("pulsar2mysql_example.py")
    path = home.dags / "pulsar2mysql_example.py"
    text = path.read_text().replace('TOPIC = "persistent://public/default/test"', f"TOPIC = {topic!r}")
    for name, value in constants.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{name} = "))
        if old.endswith("{"):  # a dict over several lines: its items first, the rest stays
            text = text.replace(old, old + "".join(f" {k!r}: {v!r}," for k, v in value.items()))
        else:
            text = text.replace(old, f"{name} = {value!r}")
    text = text.replace(
        "default_args=DEFAULT_TASK_ARGS,",
        'default_args={**DEFAULT_TASK_ARGS, "retries": %d, "retry_delay": __import__("datetime").timedelta(seconds=1),'
        ' "retry_exponential_backoff": False, "execution_timeout": __import__("datetime").timedelta(seconds=90)},'
        % retries,
    )
    path.write_text(text)
    return home


def tries(home, dag_id: str) -> int:
    if AIRFLOW_MAJOR >= 3:
        history = home.query("SELECT count(*) FROM task_instance_history WHERE dag_id = ?", dag_id)[0][0]
        return history + 1
    return home.query("SELECT max(try_number) FROM task_instance WHERE dag_id = ?", dag_id)[0][0]


def test_a_configuration_error_fails_at_once_despite_retries(airflow_home, db: Database, topic):
    """Exit 2 from the real runner (a table that does not exist) with retries=3: one try."""
    home = example_home(airflow_home, topic, TABLE="no_such_table")
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri()
    start, end = produce(topic, 5)
    out = home.dags_test(EXAMPLE, conf={"from": start, "to": end}, timeout=240)
    logs = home.logs_text() + out.stdout + out.stderr
    assert home.task_states(EXAMPLE) == ["failed"], logs[-6000:]
    assert "exited with 2" in logs and "retry would fail" in logs, logs[-6000:]
    assert tries(home, EXAMPLE) == 1, logs[-6000:]


def test_bad_record_limit_fails_at_once(airflow_home, db: Database, topic):
    """Exit 5 (records `i|msg-i` read with delimiter ',': one field where two are needed, under
    --on-bad-record fail) with retries=3: one try."""
    home = example_home(airflow_home, topic, RUNNER_OPTIONS={"delimiter": ","})
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri()
    start, end = produce(topic, 5)
    out = home.dags_test(EXAMPLE, conf={"from": start, "to": end}, timeout=240)
    logs = home.logs_text() + out.stdout + out.stderr
    assert "exited with 5" in logs, logs[-6000:]
    assert home.task_states(EXAMPLE) == ["failed"] and tries(home, EXAMPLE) == 1, logs[-6000:]



def test_a_mysql_failure_is_still_retried(airflow_home, db: Database, topic):
    """Exit 4 (a wrong password) keeps Airflow's retries: two tries with retries=1."""
    home = example_home(airflow_home, topic, retries=1)
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri(password="wrong-" + db.password)
    start, end = produce(topic, 5)
    out = home.dags_test(EXAMPLE, conf={"from": start, "to": end}, timeout=300)
    logs = home.logs_text() + out.stdout + out.stderr
    assert home.task_states(EXAMPLE) == ["failed"], logs[-6000:]
    assert "exit code 4" in logs and "retry would fail" not in logs, logs[-6000:]
    assert tries(home, EXAMPLE) == 2, logs[-6000:]


def test_xcom_of_a_real_run_is_a_dict(airflow_home, db: Database, topic):
    home = example_home(airflow_home, topic)
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri()
    start, end = produce(topic, 7)
    out = home.dags_test(EXAMPLE, conf={"from": start, "to": end})
    assert home.task_states(EXAMPLE) == ["success"], out.stdout[-6000:] + out.stderr[-3000:]
    value = home.query("SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'sync' AND key = 'return_value'",
                       EXAMPLE)[0][0]
    stored = json.loads(value)  # Airflow stores XCom as JSON: a dict, not a JSON string in JSON
    assert isinstance(stored, dict) and stored["rows_written"] == 7, value
