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
    # The Manager's dataflow, then the sync mapped over its stream/sink pairs.
    assert sorted(t.task_id for t in dag.tasks) == ["dataflow", "inlong_offline_task_test_group"]
    assert type(dag.timetable).__name__ == timetable
    assert dag.catchup is True
    shanghai = pendulum.timezone("Asia/Shanghai")
    assert dag.start_date == pendulum.from_timestamp(MANAGER_CONF["start_time"] / 1000, tz=shanghai)
    if timetable == "CronDataIntervalTimetable":
        tt = dag.timetable  # Airflow 3 exposes these publicly, Airflow 2 with an underscore
        tz = getattr(tt, "timezone", None) or getattr(tt, "_timezone")
        assert getattr(tz, "name", str(tz)) == "Asia/Shanghai"  # cron in the conf's timezone
        assert (getattr(tt, "expression", None) or getattr(tt, "_expression")) == "0 2 * * *"


@pytest.mark.parametrize("per_task, expected", [
    (1, ["--partitions 0 --job-id pulsar2mysql_example.p0", "--partitions 1 --job-id pulsar2mysql_example.p1",
         "--partitions 2 --job-id pulsar2mysql_example.p2"]),
    (2, ["--partitions 0,1 --job-id pulsar2mysql_example.p0-1", "--partitions 2 --job-id pulsar2mysql_example.p2"]),
])
def test_partition_fan_out_maps_one_task_per_group_and_adds_up(tmp_path, per_task, expected):
    for name in HELPERS:
        shutil.copy(DAGS_SRC / name, tmp_path / name)
    text = (DAGS_SRC / "pulsar2mysql_example.py").read_text()
    text = text.replace("PARTITIONS = 0\n", "PARTITIONS = 3\n")
    text = text.replace("PARTITIONS_PER_TASK = 1\n", f"PARTITIONS_PER_TASK = {per_task}\n")
    (tmp_path / "pulsar2mysql_example.py").write_text(text)
    dag = load(tmp_path).dags.get("pulsar2mysql_example")
    task = dag.get_task("sync")
    commands = task.expand_input.value["bash_command"]
    assert len(commands) == len(expected)
    for command, want in zip(commands, expected):
        assert want in command, command
    summary = dag.get_task("sync_summary")
    assert [t.task_id for t in summary.upstream_list] == ["sync"]
