"""InLong Manager's offline-sync contract, served by pulsar2mysql instead of a Flink job.

InLong Manager triggers ``dag_creator`` with a ``conf`` per group and ``dag_cleaner`` to remove
a group; it needs exactly the DAG ids, task ids and conf keys of its own DAGs. This module holds
the logic those two DAGs use, plus :func:`task_dag`, which each generated
``inlong_offline_task_<groupId>.py`` file calls: the generated files carry only data (their
``SPEC``), so fixing this module fixes every deployed task DAG.

What a generated task DAG does differs from InLong's own on purpose:

* it runs ``pulsar2mysql run`` itself, over the interval that just ended, in **milliseconds**
  (InLong's task asked the Manager to submit a Flink job, and sent seconds);
* it takes the group's settings from the Manager at run time, the same *dataflow* (InLong
  Sort's GroupInfo) the Flink job would get: ``POST stream/listAll`` through the
  ``inlong_connection`` Connection the Manager stores in Airflow, one runner job per
  stream/sink pair; nothing about the group is written by hand, and an edit in InLong applies
  from the next run on;
* the sink password and a Pulsar token reach the runner only through its environment; the
  document goes to its stdin (never the command line, XCom or the log);
* it fails when the sync fails (InLong's only printed a non-200 answer), so retries and
  alerts work; a Manager that cannot be reached fails the task, which is retried.

Settings (``airflow.cfg`` section ``[pulsar2mysql]`` or ``AIRFLOW__PULSAR2MYSQL__<KEY>``):

* ``group_config_dir``: folder of optional per-group overrides, ``<groupId>.toml`` (runner
  options; whatever they share with the dataflow must agree with it, or the run stops with
  exit 2 naming both) (default ``$AIRFLOW_HOME/pulsar2mysql/groups``);
* ``registry``: ``files`` (default: one task DAG file per group, written by ``dag_creator``) or
  ``database`` (registrations in an Airflow Variable, built into DAGs by the generator file
  ``inlong_offline_tasks.py``: for a dags folder Airflow cannot write);
* ``task_dags_folder``: where ``dag_creator`` writes task DAGs (default: ``[core] dags_folder``);
* ``task_retries``, ``task_retry_delay_seconds``: retries of a task DAG's tasks and the first
  delay (default 3, 60; the delay doubles);
* ``cleanup_grace_seconds``: ``dag_cleaner`` removes a task DAG this long after its end time
  (default 3600, leaving time for the last interval to run).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pendulum

from pulsar2mysql_airflow import (
    DAG,
    DEFAULT_POOL,
    DEFAULT_TASK_ARGS,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    NO_RETRY_EXIT_CODES,
    floor_interval,
    pool_slots,
    refuse_after_a_failed_window,
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


class DeleteEcho(ValueError):
    """A conf with ``start_time == end_time``: not a registration but what InLong Manager sends
    when deleting an offline group fails inside InLong ("sort job id is empty"), whose failure
    handler registers the group once more with an empty range. InLong then says the group still
    exists, so its registration is left as it is."""


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


REGISTRY_VARIABLE = "pulsar2mysql_inlong_registrations"


def registry() -> str:
    """Where ``dag_creator`` keeps registrations: ``files`` (one DAG file per group in the dags
    folder, the default) or ``database`` (one Airflow Variable, read by the generator DAG file
    ``inlong_offline_tasks.py``: for a dags folder Airflow cannot write, e.g. mounted read-only,
    git-sync, or the KubernetesExecutor's image)."""
    value = _setting("registry", "files").strip().lower() or "files"
    if value not in ("files", "database"):
        raise InvalidConf(f"[pulsar2mysql] registry = {value!r}: use 'files' or 'database'")
    return value


def _variable():
    try:  # Airflow 3
        from airflow.sdk import Variable
    except ImportError:  # Airflow 2.10
        from airflow.models import Variable
    return Variable


def stored_registrations() -> dict[str, dict]:
    """The registrations kept in Airflow's database: ``{groupId: spec}``."""
    value = _variable().get(REGISTRY_VARIABLE, default_var=None, deserialize_json=True) \
        if airflow_major() < 3 else _variable().get(REGISTRY_VARIABLE, default=None, deserialize_json=True)
    return value if isinstance(value, dict) else {}


def _store_registrations(groups: dict[str, dict]) -> None:
    _variable().set(REGISTRY_VARIABLE, groups, serialize_json=True,
                    description="InLong groups registered by dag_creator (pulsar2mysql)")


def task_args() -> dict:
    """The task DAGs' ``default_args``: the shared defaults (3 retries with backoff from 1 min,
    1 h timeout), retries and their first delay tunable with ``task_retries`` and
    ``task_retry_delay_seconds`` (a Manager restart takes a minute or two)."""
    args = dict(DEFAULT_TASK_ARGS)
    retries = _setting("task_retries", "")
    if retries.strip():
        args["retries"] = int(retries)
    delay = _setting("task_retry_delay_seconds", "")
    if delay.strip():
        args["retry_delay"] = timedelta(seconds=float(delay))
    return args


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
    if end_ms is not None and end_ms == start_ms:
        raise DeleteEcho(
            f"start_time == end_time ({start_ms}) for InLong group {group_id}: InLong Manager "
            "sends this after a group delete failed inside InLong; the group stays registered "
            "as it was (InLong still lists it), nothing was changed"
        )
    if end_ms is not None and end_ms <= start_ms:
        raise InvalidConf(f"end_time {end_ms} is not after start_time {start_ms}")
    return {
        "group_id": group_id,
        "start_time": start_ms,
        "end_time": end_ms,
        "timezone": tz,
        "schedule": _schedule(conf),
        # the Manager's HTTP Connection: the task reads the group's dataflow through it
        "inlong_connection_id": conf.get("connection_id") or "inlong_connection",
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


def register(spec: dict, registered_at_ms: int, folder: Path | None = None, log=print) -> Path | None:
    """Writes the group's task DAG unless a later registration is already written.

    InLong Manager triggers ``dag_creator`` twice within half a second at approval (the second
    from its own update, with the start moved to "now"), and an executor may run the two runs
    in either order. Each registration carries the time it was triggered (``registered_at``);
    under a lock, the file is replaced only by a registration at least as recent as the one it
    holds, so the later trigger wins whatever order the runs execute in. Returns the path
    written, or None when this registration was older and left out.
    """
    import fcntl

    spec = {**spec, "registered_at": int(registered_at_ms)}
    if folder is None and registry() == "database":
        # dag_creator runs one at a time (max_active_runs=1): no other writer in between.
        groups = stored_registrations()
        current = groups.get(spec["group_id"]) or {}
        if int(current.get("registered_at") or 0) > spec["registered_at"]:
            log(f"InLong group {spec['group_id']}: a later registration (triggered at "
                f"{current['registered_at']} ms) is already stored; this older one changes nothing")
            return None
        groups[spec["group_id"]] = spec
        _store_registrations(groups)
        return Path(f"variable:{REGISTRY_VARIABLE}/{spec['group_id']}")
    folder = Path(folder or task_dags_folder())
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".inlong_registrations.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_spec(task_file(folder, spec["group_id"])) or {}
        if int(current.get("registered_at") or 0) > spec["registered_at"]:
            log(f"InLong group {spec['group_id']}: a later registration (triggered at "
                f"{current['registered_at']} ms) is already in place; this one (triggered at "
                f"{spec['registered_at']} ms) is older and changes nothing")
            return None
        return write_task_file(spec, folder)


def registration_time_ms(dag_run) -> int:
    """When a ``dag_creator`` run was triggered: its logical date (the trigger time of a run
    made through the API), else Airflow 3's ``run_after``, else when it was queued."""
    for attr in ("logical_date", "run_after", "queued_at", "start_date"):
        value = getattr(dag_run, attr, None)
        if value is not None:
            return int(round(value.timestamp() * 1000))
    return int(time.time() * 1000)


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
    group_id = cleaner_group_id(group_id)
    if folder is None and registry() == "database":
        groups = stored_registrations()
        if groups.pop(group_id, None) is None:
            return False
        _store_registrations(groups)
        return True
    path = task_file(Path(folder or task_dags_folder()), group_id)
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
    """Deletes the registrations (task DAG files, or entries in Airflow's database) whose end
    time is more than ``grace_ms`` in the past; returns them as ``<dag_id>.py`` names."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    grace_ms = cleanup_grace_ms() if grace_ms is None else grace_ms
    removed = []
    if folder is None and registry() == "database":
        groups = stored_registrations()
        expired = sorted(g for g, spec in groups.items()
                         if spec.get("end_time") is not None and spec["end_time"] + grace_ms < now_ms)
        if expired:
            _store_registrations({g: spec for g, spec in groups.items() if g not in expired})
        # Named like the files would be: dag_cleaner turns each name into its DAG id.
        return [f"{task_dag_id(g)}.py" for g in expired]
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


# --- InLong Manager: the group's dataflow ---------------------------------------------------

MANAGER_API = "/inlong/manager/api"
# The tenant every call names; InLong's default tenant, the one the dashboard uses.
MANAGER_TENANT = "public"
MANAGER_TIMEOUT_S = 30
MANAGER_PAGE_SIZE = 100
PULSAR_TOKEN_AUTH = "org.apache.pulsar.client.impl.auth.AuthenticationToken"


class ManagerError(RuntimeError):
    """InLong Manager could not be asked, refused, or answered something unusable; the message
    names the Manager by its base URL (never the credentials) and what to check."""


def _connection(conn_id: str):
    try:  # Airflow 3
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 2.10
        from airflow.hooks.base import BaseHook
    return BaseHook.get_connection(conn_id)


def manager_base_url(conn, conn_id: str = "inlong_connection") -> str:
    """``http://host:port`` of the Manager from the Connection the Manager stores in Airflow at
    start-up (type HTTP, host and port of the Manager; a host may carry its scheme)."""
    host = (getattr(conn, "host", None) or "").strip().rstrip("/")
    if not host:
        raise ManagerError(f"the Airflow Connection {conn_id!r} has no host: InLong Manager "
                           "creates it at start-up with its own host and port")
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    netloc = parts.netloc
    if parts.port is None and getattr(conn, "port", None):
        netloc = f"{netloc}:{int(conn.port)}"
    return f"{parts.scheme}://{netloc}"


def _post(base: str, path: str, body: dict, conn, conn_id: str, timeout: float) -> dict:
    """One Manager call as InLong's own task DAG makes it: ``username``/``password`` query
    parameters and a ``tenant`` header. Errors never show the URL's query (the password)."""
    import json
    import urllib.error
    import urllib.request

    query = urlencode({"username": conn.login or "", "password": conn.password or ""})
    request = urllib.request.Request(
        f"{base}{MANAGER_API}{path}?{query}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "tenant": MANAGER_TENANT},
        method="POST",
    )
    where = f"InLong Manager at {base} (Airflow Connection {conn_id!r})"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise ManagerError(f"{where} refused the Connection's login and password (HTTP "
                               f"{e.code} on {path}); fix the Connection's login/password") from None
        raise ManagerError(f"{where} answered HTTP {e.code} on {path}; it may be restarting "
                           "(the task is retried)") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ManagerError(f"{where} cannot be reached ({reason}); it may be restarting (the "
                           "task is retried), else check the Connection's host and port") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise ManagerError(f"{where} answered {path} with something that is not JSON; is the "
                           "Connection's host and port the Manager's?") from None
    if not isinstance(answer, dict) or not answer.get("success"):
        message = answer.get("errMsg") if isinstance(answer, dict) else None
        raise ManagerError(f"{where} refused {path}: {message or 'no reason given'}")
    return answer.get("data")


def list_streams(group_id: str, conn_id: str = "inlong_connection", *, conn=None,
                 timeout: float = MANAGER_TIMEOUT_S) -> list[dict]:
    """Every stream of the group as ``POST stream/listAll`` returns it (all pages): fields,
    sources, sinks and, in ``extList``, the ``dataflow`` InLong Sort would run."""
    conn = conn if conn is not None else _connection(conn_id)
    base = manager_base_url(conn, conn_id)
    streams: list[dict] = []
    page = 1
    while True:
        data = _post(base, "/stream/listAll",
                     {"inlongGroupId": group_id, "pageNum": page, "pageSize": MANAGER_PAGE_SIZE},
                     conn, conn_id, timeout) or {}
        batch = data.get("list") or []
        streams += batch
        if not batch or len(streams) >= int(data.get("total") or 0):
            break
        page += 1
    if not streams:
        raise ManagerError(f"InLong Manager at {base} lists no stream for group {group_id!r}: "
                           "the group was deleted or has no stream yet")
    return streams


def stream_dataflow(stream: dict, group_id: str) -> dict:
    """The ``dataflow`` entry of a listed stream's ``extList`` (InLong Sort's GroupInfo), with
    only that stream in it."""
    import json

    sid = stream.get("inlongStreamId")
    entry = next((e for e in stream.get("extList") or [] if e.get("keyName") == "dataflow"), None)
    if not entry or not entry.get("keyValue"):
        raise ManagerError(f"stream {sid!r} of InLong group {group_id!r} has no dataflow yet "
                           f"(status {stream.get('status')}); InLong writes it when the group "
                           "is approved and configured")
    try:
        doc = json.loads(entry["keyValue"])
    except ValueError:
        raise ManagerError(f"the dataflow of stream {sid!r} of group {group_id!r} is not JSON") from None
    doc["streams"] = [s for s in doc.get("streams") or [] if s.get("streamId") == sid] or doc.get("streams") or []
    return doc


def stream_sinks(streams: list[dict], group_id: str) -> list[dict]:
    """One ``{"stream", "sink"}`` pair per MySQL sink (``mysqlLoad`` node) of every stream:
    what the group's task maps over, one runner job each. Ids only: no secret reaches XCom."""
    pairs = []
    for stream in streams:
        doc = stream_dataflow(stream, group_id)
        for s in doc["streams"]:
            sinks = [n.get("id") for n in s.get("nodes") or [] if n.get("type") == "mysqlLoad"]
            if not sinks:
                kinds = sorted({n.get("type") for n in s.get("nodes") or []})
                raise ManagerError(f"stream {s.get('streamId')!r} of InLong group {group_id!r} has "
                                   f"no MySQL sink (nodes: {kinds}); pulsar2mysql writes MySQL only")
            pairs += [{"stream": s.get("streamId"), "sink": sink} for sink in sinks]
    return pairs


def _mask(secret: str | None) -> None:
    """Asks Airflow to mask a secret in every log line from now on."""
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:
        try:
            from airflow.sdk.execution_time.secrets_masker import mask_secret
        except ImportError:
            from airflow.utils.log.secrets_masker import mask_secret
    mask_secret(secret)


def take_secrets(doc: dict) -> tuple[dict, dict[str, str]]:
    """The dataflow without its secrets, and the runner's environment holding them: the sink
    password becomes ``PULSAR2MYSQL_MYSQL_PASSWORD``, a Pulsar token
    ``PULSAR2MYSQL_PULSAR_TOKEN``. The runner reads the document from stdin; the secrets travel
    only in its environment (and are masked in Airflow's logs)."""
    import copy

    doc = copy.deepcopy(doc)
    env: dict[str, str] = {}
    for stream in doc.get("streams") or []:
        for node in stream.get("nodes") or []:
            if node.get("type") == "mysqlLoad" and node.get("password"):
                password = node.pop("password")
                _mask(password)
                if env.get("PULSAR2MYSQL_MYSQL_PASSWORD", password) != password:
                    raise ManagerError("the MySQL sinks of this dataflow have different passwords; "
                                       "run them one sink per document")
                env["PULSAR2MYSQL_MYSQL_PASSWORD"] = password
            params = node.get("clientAuthParams")
            # Only a token is a secret input of the runner; any other plugin stays in the
            # document, for the runner to refuse it with its name.
            token_auth = node.get("clientAuthPluginClassName") == PULSAR_TOKEN_AUTH
            if node.get("type") == "pulsarExtract" and token_auth and params and not str(params).startswith("file:"):
                token = str(params)[len("token:"):] if str(params).startswith("token:") else str(params)
                _mask(token)
                node["clientAuthParams"] = None
                node["clientAuthPluginClassName"] = None
                env["PULSAR2MYSQL_PULSAR_TOKEN"] = token
    return doc, env


def pair_job_id(group_id: str, stream_id: str, sink_id: str) -> str:
    """The runner's job id of one stream/sink pair: ``inlong_<group>.<stream>.<sink>``, its own
    checkpoints and lock; too long for the runner's 191 characters, a prefix and a hash."""
    job = f"inlong_{group_id}.{stream_id}.{sink_id}"
    if len(job) <= MAX_JOB_ID:
        return job
    digest = hashlib.sha256(job.encode()).hexdigest()[:16]
    return job[: MAX_JOB_ID - len(digest) - 1] + "~" + digest


def window(spec: dict, context) -> tuple[str, str]:
    """``(from, to)`` of this run in epoch ms: the data interval, a once-only group's whole
    range, or a manual run's ``{"from", "to"}`` conf."""
    conf = (context.get("dag_run").conf if context.get("dag_run") else None) or {}
    if spec["schedule"].get("once"):
        start, end = str(spec["start_time"]), str(spec.get("end_time") or "latest")
    else:
        ms = lambda edge: str(int(round(context[f"data_interval_{edge}"].timestamp() * 1000)))  # noqa: E731
        start, end = ms("start"), ms("end")
        cron = spec["schedule"].get("cron")
        if cron:
            lo, hi = cron_first_window(cron, spec["start_time"], spec["timezone"])
            if lo < int(start) < hi:
                start = str(lo)
    return str(conf.get("from") or start), str(conf.get("to") or end)


def run_runner(stdin_text: str, env: dict[str, str], log=print, grace_s: float = 60) -> tuple[int, dict | None]:
    """Runs ``pulsar2mysql run`` with the dataflow on stdin; its output goes to the task log
    line by line. Returns the exit code and the JSON summary (its last line). If the task is
    stopped (timeout, mark failed), the runner gets SIGTERM and finishes its batch in flight."""
    import json
    import signal
    import subprocess

    runner = os.environ.get("PULSAR2MYSQL_BIN") or "pulsar2mysql"
    try:
        proc = subprocess.Popen([runner, "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env={**os.environ, **env}, text=True)
    except OSError as e:
        raise RuntimeError(f"cannot start the runner {runner!r} ({e.strerror}): put pulsar2mysql on "
                           "the worker's PATH or set PULSAR2MYSQL_BIN to its path") from None
    last = ""
    try:
        proc.stdin.write(stdin_text)
        proc.stdin.close()
        for line in proc.stdout:
            line = line.rstrip("\n")
            log(line)
            if line.strip():
                last = line
        code = proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    try:
        summary = json.loads(last)
    except ValueError:
        summary = None
    return code, summary if isinstance(summary, dict) else None


def sync_pair(spec: dict, pair: dict, context, *, conn=None, log=print) -> dict:
    """One stream/sink pair over this run's window: the dataflow fetched now from the Manager
    (an edit in InLong applies from the next run on), the runner fed with it."""
    group_id = spec["group_id"]
    conn_id = spec.get("inlong_connection_id") or "inlong_connection"
    streams = list_streams(group_id, conn_id, conn=conn)
    stream = next((s for s in streams if s.get("inlongStreamId") == pair["stream"]), None)
    if stream is None:
        raise ManagerError(f"stream {pair['stream']!r} is no longer in InLong group {group_id!r}")
    doc, secret_env = take_secrets(stream_dataflow(stream, group_id))
    start, end = window(spec, context)
    env = {
        **secret_env,
        "PULSAR2MYSQL_INLONG_DATAFLOW": "-",
        "PULSAR2MYSQL_INLONG_STREAM": pair["stream"],
        "PULSAR2MYSQL_INLONG_SINK": pair["sink"],
        "PULSAR2MYSQL_JOB_ID": pair_job_id(group_id, pair["stream"], pair["sink"]),
        "PULSAR2MYSQL_FROM": start,
        "PULSAR2MYSQL_TO": end,
    }
    override = group_config_dir() / f"{group_id}.toml"
    if override.is_file():  # an explicit override; the runner checks it agrees with InLong
        env["PULSAR2MYSQL_CONFIG"] = str(override)
    import json

    log(f"InLong group {group_id}, stream {pair['stream']}, sink {pair['sink']}: "
        f"[{start}, {end}) as job {env['PULSAR2MYSQL_JOB_ID']}"
        + (f", with the override {override}" if "PULSAR2MYSQL_CONFIG" in env else ""))
    code, summary = run_runner(json.dumps(doc), env, log=log)
    if code == 2:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(
            f"pulsar2mysql refused stream {pair['stream']!r} / sink {pair['sink']!r} of InLong "
            f"group {group_id!r} (exit 2, see the line above); fix the group in InLong (or its "
            "override file), retrying cannot help")
    if code in NO_RETRY_EXIT_CODES:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(
            f"pulsar2mysql exited with {code}, {NO_RETRY_EXIT_CODES[code]}, on stream "
            f"{pair['stream']!r} / sink {pair['sink']!r} of InLong group {group_id!r} (see the lines "
            "above): a retry would fail the same way, so the task fails now; fix it, then clear the task")
    if code != 0:
        raise RuntimeError(f"pulsar2mysql failed with exit code {code} (see the lines above); "
                           "the task is retried and the window resumes after its last commit")
    return summary or {}


def override_writers(group_id: str) -> int | None:
    """``writers`` of the group's override file, if it sets it: the sync task's pool slots
    follow the write streams the runner may open (read when the DAG is parsed, so an edit
    applies from the next parse on)."""
    path = group_config_dir() / f"{group_id}.toml"
    if not path.is_file():
        return None
    import tomllib

    try:
        value = tomllib.loads(path.read_text()).get("writers")
    except (OSError, ValueError):
        return None  # the runner refuses a broken file with exit 2, naming it
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def task_dag(spec: dict):
    """The DAG of a group's ``inlong_offline_task_<groupId>.py`` file (or of the generator).

    Each run: ``dataflow`` asks InLong Manager (through the ``inlong_connection`` Connection the
    Manager stores in Airflow) for the group's streams and lists their MySQL sinks; then the
    task ``inlong_offline_task_<groupId>`` is mapped over them, one runner job per stream/sink
    pair over ``[data_interval_start, data_interval_end)`` in ms, catching up from the group's
    start time; a once-only group syncs ``[start_time, end_time)`` in one run. Nothing about the
    group's source or sink is stored in Airflow: it is read from the Manager at run time.

    As every sync task (``pulsar2mysql_airflow``): a scheduled window refuses to start while
    the pair's previous window has not succeeded (the runner chains them: clear the failed run
    with the runs after it), and each pair takes ``writers + 2`` slots of the ``pulsar2mysql``
    pool.
    """
    try:
        from airflow.sdk import task
    except ImportError:  # Airflow 2.10
        from airflow.decorators import task

    group_id = spec["group_id"]
    dag_id = task_dag_id(group_id)
    tz = pendulum.timezone(spec["timezone"])
    start = pendulum.from_timestamp(spec["start_time"] / 1000, tz=tz)
    end = spec.get("end_time")
    once = bool(spec["schedule"].get("once"))
    conn_id = spec.get("inlong_connection_id") or "inlong_connection"
    with DAG(
        dag_id=dag_id,
        description=f"InLong group {group_id}: Pulsar -> MySQL with pulsar2mysql",
        schedule=_timetable(spec["schedule"], spec["timezone"]),
        start_date=start,
        end_date=pendulum.from_timestamp(end / 1000, tz=tz) if end and not once else None,
        catchup=True,  # every interval since start_time is part of the group's range
        max_active_runs=1,
        is_paused_upon_creation=False,  # the Manager does not unpause DAGs created later
        default_args=task_args(),
        tags=["inlong", "pulsar2mysql"],
    ) as dag:

        @task(task_id="dataflow")
        def dataflow() -> list[dict]:
            pairs = stream_sinks(list_streams(group_id, conn_id), group_id)
            print(f"InLong group {group_id}: {len(pairs)} stream/sink pair(s): {pairs}")
            return pairs

        @task(task_id=dag_id, pool=DEFAULT_POOL, pool_slots=pool_slots(override_writers(group_id)))
        def sync(pair: dict, **context) -> dict:
            if not once:  # a once-only group has one window, nothing to chain
                refuse_after_a_failed_window(context)
            return sync_pair(spec, pair, context)

        sync.expand(pair=dataflow())
    return dag


def registered_dags() -> dict:
    """``{dag_id: DAG}`` of every group registered in Airflow's database (``registry =
    database``); the generator DAG file ``inlong_offline_tasks.py`` publishes them. A group that
    also has a DAG file of its own is left to that file."""
    if registry() != "database":
        return {}
    folder = task_dags_folder()
    dags = {}
    for group_id, spec in sorted(stored_registrations().items()):
        if task_file(folder, group_id).exists():
            continue
        dags[task_dag_id(group_id)] = task_dag(spec)
    return dags
