"""InLong Manager's offline-sync contract, served by pulsar2mysql instead of a Flink job.

InLong Manager triggers ``dag_creator`` with a ``conf`` per group and ``dag_cleaner`` to remove
a group; it needs exactly the DAG ids, task ids and conf keys of its own DAGs. This module holds
the logic those two DAGs use, plus :func:`task_dag`, which each generated
``inlong_offline_task_<groupId>.py`` file calls: the generated files carry only data (their
``SPEC``), so fixing this module fixes every deployed task DAG.

What a generated task does differs from InLong's own on purpose:

* it runs ``pulsar2mysql run`` itself, over the interval that just ended, in **milliseconds**
  (InLong's task asked the Manager to submit a Flink job, and sent seconds);
* it fails when the sync fails (InLong's only printed a non-200 answer), so retries and
  alerts work, and it never logs a credential;
* a group's source and sink settings (topic, table, delimiter, columns, ...) are read from a
  per-group runner config file, ``<group_config_dir>/<groupId>.toml``, because the Manager's
  ``conf`` carries only the schedule; MySQL credentials come from an Airflow Connection.

Settings (``airflow.cfg`` section ``[pulsar2mysql]`` or ``AIRFLOW__PULSAR2MYSQL__<KEY>``):

* ``group_config_dir``: folder of the per-group TOML files
  (default ``$AIRFLOW_HOME/pulsar2mysql/groups``);
* ``mysql_conn_id``: the MySQL Connection for every group (default ``pulsar2mysql_mysql``);
* ``task_dags_folder``: where ``dag_creator`` writes task DAGs (default: ``[core] dags_folder``);
* ``cleanup_grace_seconds``: ``dag_cleaner`` removes a task DAG this long after its end time
  (default 3600, leaving time for the last interval to run).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shlex
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pendulum

from pulsar2mysql_airflow import (
    DAG,
    DEFAULT_MYSQL_CONN_ID,
    DEFAULT_TASK_ARGS,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    floor_interval,
    sync_task,
)

TASK_PREFIX = "inlong_offline_task_"

# InLong Manager's own rule for group ids. It has no '/', so a group id can never name a file
# outside the task DAG folder (and the file name always starts with TASK_PREFIX).
GROUP_ID_RE = re.compile(r"[a-zA-Z0-9_.-]{4,200}")

# The runner's limit on --job-id (a job id is also its lock and its checkpoint key).
MAX_JOB_ID = 191

# Schedule units in InLong's seconds_interval are already multiplied out; unit "O" (once) has no
# interval: accept the spellings it may take.
ONCE_VALUES = {"0", "o", "once", "@once"}


class InvalidConf(ValueError):
    """The conf cannot become a task DAG; the message says which key and why."""


# --- settings -----------------------------------------------------------------------------


def _setting(key: str, default: str) -> str:
    """A ``[pulsar2mysql]`` setting from Airflow's config (airflow.cfg or environment)."""
    from airflow.configuration import conf

    return conf.get("pulsar2mysql", key, fallback=default)


def task_dags_folder() -> Path:
    from airflow.configuration import conf

    return Path(_setting("task_dags_folder", "") or conf.get("core", "dags_folder"))


def group_config_dir() -> Path:
    from airflow.configuration import AIRFLOW_HOME

    return Path(_setting("group_config_dir", os.path.join(AIRFLOW_HOME, "pulsar2mysql", "groups")))


def mysql_conn_id() -> str:
    return _setting("mysql_conn_id", DEFAULT_MYSQL_CONN_ID)


def cleanup_grace_ms() -> int:
    return int(float(_setting("cleanup_grace_seconds", "3600")) * 1000)


# --- conf -> spec ------------------------------------------------------------------------


def check_group_id(group_id) -> str:
    if not isinstance(group_id, str) or not GROUP_ID_RE.fullmatch(group_id):
        raise InvalidConf(
            f"inlong_group_id {group_id!r} is not a group id "
            "(InLong's ^[a-zA-Z0-9_.-]{4,200}$: letters, digits, '_', '-', '.', 4 to 200 of them)"
        )
    return group_id


def cleaner_group_id(value) -> str:
    """The group id in a ``dag_cleaner`` conf. InLong Manager sends
    ``inlong_offline_task_inlong_offline_task_<groupId>`` (it adds the prefix twice), so every
    leading ``inlong_offline_task_`` is stripped."""
    text = value if isinstance(value, str) else ""
    while text.startswith(TASK_PREFIX):
        text = text[len(TASK_PREFIX):]
    return check_group_id(text if text else value)


def job_id(group_id: str) -> str:
    """The runner's job id for a group: ``inlong_<groupId>``, or for a group id too long for
    the runner's 191 characters, its start plus a hash of the whole id ('~' never occurs in a
    group id, so no other group can have it)."""
    job = "inlong_" + group_id
    if len(job) <= MAX_JOB_ID:
        return job
    digest = hashlib.sha256(group_id.encode()).hexdigest()[:16]
    return job[: MAX_JOB_ID - len(digest) - 1] + "~" + digest


def quartz_fixed_interval(expr) -> int | None:
    """Seconds between the fires of a Quartz cron that fires at a fixed interval, else None.

    Airflow's cron has no seconds field, but ``*/N * * * * ?`` (every N seconds, N dividing 60,
    every other field ``*`` or ``?``) fires every N seconds without exception, which Airflow
    expresses as a ``timedelta`` schedule. InLong's own tests use ``*/1`` and ``*/2``.
    """
    fields = " ".join(str(expr).split()).split(" ")
    if len(fields) not in (6, 7):
        return None
    sec, rest, year = fields[0], fields[1:6], fields[6:]
    if any(f != "*" for f in rest[:3]) or rest[3] not in ("*", "?") or rest[4] not in ("*", "?"):
        return None
    if year not in ([], ["*"], ["?"]):
        return None
    if sec == "*":
        return 1
    step = re.fullmatch(r"(?:\*|0)/(\d+)", sec)
    if not step or int(step.group(1)) == 0 or 60 % int(step.group(1)):
        return None
    return int(step.group(1))


def quartz_to_cron(expr: str) -> str:
    """Translates a Quartz cron (``sec min hour dom month dow [year]``, InLong's format) to
    Airflow's 5-field cron, or refuses it with the reason.

    Airflow schedules at minute granularity, so seconds must be ``0``; ``?`` becomes ``*``;
    Quartz numbers weekdays 1-7 from Sunday, cron 0-6; ``L``, ``W`` and ``#`` and a year other
    than ``*`` have no cron equivalent. A 5-field expression (or ``@daily`` etc.) is taken as
    Airflow cron already.
    """
    from croniter import croniter

    text = " ".join(str(expr).split())
    fields = text.split(" ")
    if text.startswith("@"):
        result = text
    elif len(fields) == 5:
        result = text
    elif len(fields) in (6, 7):
        sec, minute, hour, dom, month, dow = fields[:6]
        if len(fields) == 7 and fields[6] not in ("*", "?"):
            raise InvalidConf(f"cron_expr {expr!r}: a year field ({fields[6]}) has no Airflow equivalent")
        if sec not in ("0", "00"):
            raise InvalidConf(
                f"cron_expr {expr!r}: fires at second {sec!r}; Airflow schedules whole minutes "
                "(use 0 for seconds), and a seconds step is a fixed interval only as */N with N "
                "dividing 60 and every other field '*' or '?'"
            )
        for field in (minute, hour, dom, month, dow):
            if re.search(r"[LW#]", field.upper()):
                raise InvalidConf(
                    f"cron_expr {expr!r}: {field!r} uses Quartz-only L, W or # which Airflow's cron lacks"
                )
        minute, hour, month = (_open_step(f, hi) for f, hi in ((minute, 59), (hour, 23), (month, 12)))
        dom = "*" if dom == "?" else _open_step(dom, 31)
        dow = "*" if dow == "?" else _quartz_dow(dow)
        result = " ".join((minute, hour, dom, month, dow))
    else:
        raise InvalidConf(f"cron_expr {expr!r}: expected 6 or 7 Quartz fields (or 5 cron fields)")
    if not result.startswith("@") and not croniter.is_valid(result):
        raise InvalidConf(f"cron_expr {expr!r}: translated to {result!r}, which is not a valid cron")
    return result


def _open_step(field: str, hi: int) -> str:
    """Quartz's ``5/15`` (from 5, every 15) is ``5-hi/15`` in cron."""
    parts = []
    for part in field.split(","):
        if "/" in part:
            start, step = part.split("/", 1)
            if start != "*" and "-" not in start:
                part = f"{start}-{hi}/{step}"
        parts.append(part)
    return ",".join(parts)


def _quartz_dow(field: str) -> str:
    """Weekday numbers 1-7 (Sunday first) -> 0-6; names (MON, SUN...) are the same in both."""
    if "/" in field and not field.startswith("*"):
        start, step = field.split("/", 1)
        field = f"{start}-7/{step}" if "-" not in start else field
    return re.sub(r"\d+", lambda m: str(_dow_number(m.group())), field)


def _dow_number(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 7:
        raise InvalidConf(f"Quartz weekday {n} is out of range 1-7")
    return n - 1


def _ms(conf: dict, key: str, required: bool) -> int | None:
    value = conf.get(key)
    if value is None or value == "":
        if required:
            raise InvalidConf(f"{key} is required (epoch milliseconds)")
        return None
    try:
        ms = int(value)
    except (TypeError, ValueError):
        raise InvalidConf(f"{key}={value!r} is not epoch milliseconds") from None
    if ms < 100_000_000_000:  # before 1973 in ms, or a seconds value: InLong sends ms
        raise InvalidConf(f"{key}={value!r} looks like seconds; InLong sends epoch milliseconds")
    return ms


def _schedule(conf: dict) -> dict:
    cron = conf.get("cron_expr")
    seconds = conf.get("seconds_interval")
    cron = None if cron is None or str(cron).strip() in ("", "null", "None") else str(cron).strip()
    seconds = None if seconds is None or str(seconds).strip() in ("", "null", "None") else str(seconds).strip()
    if (cron and cron.lower() in ONCE_VALUES) or (seconds and seconds.lower() in ONCE_VALUES):
        return {"once": True}
    if cron:
        interval = quartz_fixed_interval(cron)
        if interval is not None:
            return {"seconds": interval}
        return {"cron": quartz_to_cron(cron)}
    if seconds:
        try:
            n = int(float(seconds))
        except ValueError:
            raise InvalidConf(f"seconds_interval={seconds!r} is not a number of seconds") from None
        if n < 0:
            raise InvalidConf(f"seconds_interval={seconds!r} must be positive")
        return {"seconds": n}
    raise InvalidConf("neither cron_expr nor seconds_interval is set")


def spec_from_conf(conf: dict | None) -> dict:
    """Validates InLong Manager's ``conf`` and returns the spec a task DAG file stores."""
    if not isinstance(conf, dict):
        raise InvalidConf(f"conf must be a JSON object, got {conf!r}")
    group_id = check_group_id(conf.get("inlong_group_id"))
    boundary = conf.get("boundary_type") or "time"
    if str(boundary).lower() != "time":
        raise InvalidConf(f"boundary_type {boundary!r}: only 'time' is supported")
    tz = conf.get("timezone") or "UTC"
    try:
        pendulum.timezone(tz)
    except Exception:
        raise InvalidConf(f"timezone {tz!r} is not a known IANA timezone") from None
    start_ms = _ms(conf, "start_time", required=True)
    end_ms = _ms(conf, "end_time", required=False)
    if end_ms is not None and end_ms <= start_ms:
        raise InvalidConf(f"end_time {end_ms} is not after start_time {start_ms}")
    return {
        "group_id": group_id,
        "start_time": start_ms,
        "end_time": end_ms,
        "timezone": tz,
        "schedule": _schedule(conf),
        "mysql_conn_id": mysql_conn_id(),
        # kept for reference only: the Manager's HTTP connection, which a pulsar2mysql task
        # does not need (it syncs by itself instead of asking the Manager to submit a job)
        "inlong_connection_id": conf.get("connection_id"),
    }


# --- task DAG files ------------------------------------------------------------------------


def task_dag_id(group_id: str) -> str:
    return TASK_PREFIX + check_group_id(group_id)


def task_file(folder: Path, group_id: str) -> Path:
    return Path(folder) / f"{task_dag_id(group_id)}.py"


_TEMPLATE = '''\
"""Airflow task DAG for InLong group {group_id}: pulsar2mysql syncs each interval that ends.

Generated by dag_creator; do not edit (register the group again). The code is in
pulsar2mysql_inlong.py; this file only holds the group's schedule.
"""

from pulsar2mysql_inlong import task_dag

SPEC = {spec!r}

dag = task_dag(SPEC)
'''


def render_task_file(spec: dict) -> str:
    return _TEMPLATE.format(group_id=spec["group_id"], spec=spec)


def write_task_file(spec: dict, folder: Path | None = None) -> Path:
    """Writes the group's task DAG atomically: the DAG processor never sees half a file."""
    folder = Path(folder or task_dags_folder())
    folder.mkdir(parents=True, exist_ok=True)
    target = task_file(folder, spec["group_id"])
    # The temporary name does not end in .py, so the DAG processor never parses it.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_task_file(spec))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_spec(path: Path) -> dict | None:
    """The SPEC of a generated file, read without importing it; None if it has none."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SPEC" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def remove_group(group_id: str, folder: Path | None = None) -> bool:
    """Deletes a group's task DAG file; False (not an error) when there is none. ``group_id`` may
    carry any number of ``inlong_offline_task_`` prefixes (the Manager sends two)."""
    path = task_file(Path(folder or task_dags_folder()), cleaner_group_id(group_id))
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def airflow_major() -> int:
    import airflow

    return int(airflow.__version__.split(".")[0])


def forget_dags(dag_ids: list[str], files_removed: bool = True, running_wait_s: float = 600, log=print) -> None:
    """Deletes the metadata of task DAGs whose files were just removed (Airflow 2).

    Why: InLong Manager DELETEs a group's DAG right after triggering ``dag_cleaner``, before the
    cleaner has removed the file; Airflow re-parses the file and the DAG is back, unpaused,
    catching up from its start time. Deleting the DAG here, after its file is gone, ends that.

    Each DAG is paused, running task instances are given ``running_wait_s`` to finish (Airflow
    refuses to delete a DAG while one runs), and the DAG is deleted. A parse of the file that
    started before the file was removed may still write the DAG back, so after
    ``[core] dag_file_processor_timeout`` (the longest a parse may take) the DAGs are deleted
    again if they came back (only when this call removed a file or deleted a DAG: otherwise no
    parse can be in flight).

    Airflow 3 tasks have no database access: there the DAG processor retires a DAG whose file
    is gone (no new runs); delete its history through the API (``DELETE /api/v2/dags/{id}``).
    """
    if not dag_ids:
        return
    if airflow_major() >= 3:
        log(f"Airflow 3: the DAG processor retires {dag_ids} now that their files are gone")
        return
    from airflow.configuration import conf

    deleted = _forget_now(dag_ids, running_wait_s, log)
    if not (deleted or files_removed):
        return
    wait = conf.getfloat("core", "dag_file_processor_timeout", fallback=50) + 2
    log(f"waiting {wait:.0f}s ([core] dag_file_processor_timeout) for a parse in flight to end")
    time.sleep(wait)
    _forget_now(dag_ids, running_wait_s, log)


def _forget_now(dag_ids: list[str], running_wait_s: float, log) -> bool:
    from airflow.api.common.delete_dag import delete_dag
    from airflow.models import DagModel, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select, update

    deleted = False
    for dag_id in dag_ids:
        with create_session() as session:
            if session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id)) is None:
                continue
            session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=True))
        deadline = time.monotonic() + running_wait_s
        while True:
            with create_session() as session:
                running = session.scalar(
                    select(TaskInstance.task_id)
                    .where(TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.RUNNING)
                    .limit(1)
                )
            if running is None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id}: a task instance is still running after {running_wait_s:.0f}s; "
                                   "its file is removed and the DAG paused, run dag_cleaner again later")
            time.sleep(5)
        delete_dag(dag_id)
        deleted = True
        log(f"{dag_id}: DAG deleted from Airflow's database")
    return deleted


def remove_expired(now_ms: int | None = None, folder: Path | None = None, grace_ms: int | None = None) -> list[str]:
    """Deletes task DAG files whose end time is more than ``grace_ms`` in the past."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    grace_ms = cleanup_grace_ms() if grace_ms is None else grace_ms
    removed = []
    for path in sorted(Path(folder or task_dags_folder()).glob(f"{TASK_PREFIX}*.py")):
        spec = read_spec(path)
        end = (spec or {}).get("end_time")
        if end is not None and end + grace_ms < now_ms:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


# --- the task DAG --------------------------------------------------------------------------


def cron_first_window(cron: str, start_ms: int, tz: str) -> tuple[int, int]:
    """``(start_ms, second_tick_ms)`` for a cron schedule starting at ``start_ms``.

    A cron DAG's first data interval starts at the first tick at or after its start date, so
    ``[start_time, first tick)`` would never be synced. The task widens the window of the run
    whose interval starts after ``start_ms`` and before the second tick (the first run) back to
    ``start_ms``. Ticks are computed as Airflow's cron timetables do: naive local time in the
    schedule's timezone.
    """
    from datetime import datetime

    from croniter import croniter

    zone = pendulum.timezone(tz)
    start = pendulum.from_timestamp(start_ms / 1000, tz=zone)
    naive = start.naive()
    nxt = croniter(cron, naive).get_next(datetime)
    first = naive if croniter(cron, nxt).get_prev(datetime) == naive else nxt
    second = croniter(cron, first).get_next(datetime)
    aware = pendulum.datetime(second.year, second.month, second.day, second.hour, second.minute,
                              second.second, tz=zone)
    return start_ms, int(round(aware.timestamp() * 1000))


def _timetable(schedule: dict, tz: str):
    if schedule.get("once"):
        return "@once"
    if "cron" in schedule:
        return CronDataIntervalTimetable(schedule["cron"], timezone=tz)
    # Sub-minute intervals (Quartz `*/1 * * * * ?`) run at a floor of a minute.
    return DeltaDataIntervalTimetable(timedelta(seconds=floor_interval(schedule["seconds"])))


def task_dag(spec: dict):
    """The DAG of a generated ``inlong_offline_task_<groupId>.py`` file.

    dag_id and task_id are both ``inlong_offline_task_<groupId>``, as InLong Manager expects.
    Each run syncs ``[data_interval_start, data_interval_end)`` in ms, catching up from the
    group's start time; a once-only group syncs ``[start_time, end_time)`` in one run.
    """
    group_id = spec["group_id"]
    dag_id = task_dag_id(group_id)
    tz = pendulum.timezone(spec["timezone"])
    start = pendulum.from_timestamp(spec["start_time"] / 1000, tz=tz)
    end = spec.get("end_time")
    once = bool(spec["schedule"].get("once"))
    config = group_config_dir() / f"{group_id}.toml"
    cron = spec["schedule"].get("cron")
    # Fail with a clear message (exit 2, like any config error) when the group's settings are
    # missing, instead of letting the runner fall back to its default topic and table.
    check = (
        f"[ -r {shlex.quote(str(config))} ] || {{ echo "
        + shlex.quote(f"pulsar2mysql: no settings for InLong group {group_id}: create {config}")
        + " >&2; exit 2; }; "
    )
    with DAG(
        dag_id=dag_id,
        description=f"InLong group {group_id}: Pulsar -> MySQL with pulsar2mysql",
        schedule=_timetable(spec["schedule"], spec["timezone"]),
        start_date=start,
        end_date=pendulum.from_timestamp(end / 1000, tz=tz) if end and not once else None,
        catchup=True,  # every interval since start_time is part of the group's range
        max_active_runs=1,
        is_paused_upon_creation=False,  # the Manager does not unpause DAGs created later
        default_args=DEFAULT_TASK_ARGS,
        tags=["inlong", "pulsar2mysql"],
    ) as dag:
        sync_task(
            dag_id,
            config=str(config),
            job_id=job_id(group_id),
            mysql_conn_id=spec.get("mysql_conn_id") or DEFAULT_MYSQL_CONN_ID,
            start=spec["start_time"] if once else None,
            end=(end if end is not None else "latest") if once else None,
            widen_first=cron_first_window(cron, spec["start_time"], spec["timezone"]) if cron else None,
            preamble=check,
        )
    return dag
