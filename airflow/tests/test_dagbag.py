"""Every DAG file imports with no errors in Airflow's DagBag, and has the shape InLong Manager
and the issue ask for."""

import shutil

import pendulum
import pytest

import pulsar2mysql_inlong as inlong
from conftest import DAGS_SRC, HELPERS
from test_helpers import MANAGER_CONF

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2


def load(folder) -> DagBag:
    bag = DagBag(dag_folder=str(folder), include_examples=False) if _has_examples_arg() else DagBag(dag_folder=str(folder))
    assert not bag.import_errors, f"import errors: {bag.import_errors}"
    return bag


def _has_examples_arg() -> bool:
    import inspect
    return "include_examples" in inspect.signature(DagBag.__init__).parameters


def test_every_dag_file_imports():
    bag = load(DAGS_SRC)
    assert sorted(bag.dag_ids) == ["dag_cleaner", "dag_creator", "pulsar2mysql_example"]
    example = bag.dags.get("pulsar2mysql_example")
    assert example.catchup is False and example.max_active_runs == 1
    assert type(example.timetable).__name__ == "CronDataIntervalTimetable"
    sync = example.get_task("sync")
    assert sync.retries == 3 and sync.retry_exponential_backoff and sync.execution_timeout
    assert sync.do_xcom_push
    assert type(bag.dags["dag_creator"].timetable).__name__ == "NullTimetable"  # trigger only
    # InLong Manager unpauses both only at its start-up, and never again: a Manager started
    # before these files are parsed gets a 404 and they would stay paused.
    for original in ("dag_creator", "dag_cleaner"):
        assert bag.dags[original].is_paused_upon_creation is False, original


@pytest.mark.parametrize("change, timetable", [
    ({"seconds_interval": "300"}, "DeltaDataIntervalTimetable"),
    ({"cron_expr": "0 0 2 * * ?", "seconds_interval": None}, "CronDataIntervalTimetable"),
    ({"seconds_interval": "0"}, "OnceTimetable"),
])
def test_generated_task_dag_imports(tmp_path, change, timetable):
    for name in HELPERS:
        shutil.copy(DAGS_SRC / name, tmp_path / name)
    inlong.write_task_file(inlong.spec_from_conf({**MANAGER_CONF, **change}), tmp_path)
    dag = load(tmp_path).dags.get("inlong_offline_task_test_group")
    assert dag is not None
    assert [t.task_id for t in dag.tasks] == ["inlong_offline_task_test_group"]
    assert type(dag.timetable).__name__ == timetable
    assert dag.catchup is True
    shanghai = pendulum.timezone("Asia/Shanghai")
    assert dag.start_date == pendulum.from_timestamp(MANAGER_CONF["start_time"] / 1000, tz=shanghai)
    if timetable == "CronDataIntervalTimetable":
        tt = dag.timetable  # Airflow 3 exposes these publicly, Airflow 2 with an underscore
        tz = getattr(tt, "timezone", None) or getattr(tt, "_timezone")
        assert getattr(tz, "name", str(tz)) == "Asia/Shanghai"  # cron in the conf's timezone
        assert (getattr(tt, "expression", None) or getattr(tt, "_expression")) == "0 2 * * *"


def test_partition_fan_out_maps_one_task_per_partition(tmp_path):
    for name in HELPERS:
        shutil.copy(DAGS_SRC / name, tmp_path / name)
    text = (DAGS_SRC / "pulsar2mysql_example.py").read_text()
    text = text.replace("PARTITIONS = []", "PARTITIONS = [0, 1, 2]")
    (tmp_path / "pulsar2mysql_example.py").write_text(text)
    task = load(tmp_path).dags.get("pulsar2mysql_example").get_task("sync")
    commands = task.expand_input.value["bash_command"]
    assert len(commands) == 3
    assert "--partitions 0 --job-id pulsar2mysql_example.p0" in commands[0]


class _Run:
    conf: dict = {}


def _render(template: str, **context) -> str:
    import jinja2

    return jinja2.Environment().from_string(template).render(dag_run=_Run(), **context)


def test_cron_group_first_window_starts_at_start_time(tmp_path):
    """A cron DAG's first interval starts at the first tick after start_date: the first window
    is widened back to start_time, so nothing published in between is left out; later
    windows are the plain data intervals."""
    for name in HELPERS:
        shutil.copy(DAGS_SRC / name, tmp_path / name)
    shanghai = pendulum.timezone("Asia/Shanghai")
    start = pendulum.datetime(2025, 1, 1, 10, 3, 7, tz=shanghai)  # not on a tick
    conf = {**MANAGER_CONF, "start_time": int(start.timestamp() * 1000),
            "cron_expr": "0 0 * * * ?", "seconds_interval": None}  # hourly, on the hour
    inlong.write_task_file(inlong.spec_from_conf(conf), tmp_path)
    dag = load(tmp_path).dags.get("inlong_offline_task_test_group")
    env = dag.get_task("inlong_offline_task_test_group").env
    # The scheduler's own timetable class (Airflow 3's SDK one only describes the schedule).
    from airflow.timetables.interval import CronDataIntervalTimetable

    timetable = CronDataIntervalTimetable("0 * * * *", timezone=shanghai)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=_restriction(dag))
    assert first.data_interval.start == pendulum.datetime(2025, 1, 1, 11, tz=shanghai)
    interval = {"data_interval_start": first.data_interval.start, "data_interval_end": first.data_interval.end}
    assert _render(env["PULSAR2MYSQL_FROM"], **interval) == str(conf["start_time"])
    assert _render(env["PULSAR2MYSQL_TO"], **interval) == str(int(first.data_interval.end.timestamp() * 1000))
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval,
                                            restriction=_restriction(dag))
    interval = {"data_interval_start": second.data_interval.start, "data_interval_end": second.data_interval.end}
    assert _render(env["PULSAR2MYSQL_FROM"], **interval) == str(int(first.data_interval.end.timestamp() * 1000))


def _restriction(dag):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)
