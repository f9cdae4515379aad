"""Shared helpers for every pulsar2mysql DAG: the example DAG, InLong's generated task DAGs.

One place builds the runner's command and environment so that a fix here reaches every DAG
already deployed (generated DAG files import this module instead of copying code).

Rules this module enforces, and why:

* Secrets never reach the command line. The rendered ``bash_command`` is shown in the UI and
  written to the task log, so the MySQL password (and a Pulsar token) travel only through
  ``env`` as ``PULSAR2MYSQL_MYSQL_PASSWORD`` / ``PULSAR2MYSQL_PULSAR_TOKEN``, templated from
  an Airflow Connection; Airflow masks connection passwords in logs and redacts ``*PASSWORD*``
  and ``*TOKEN*`` keys of rendered fields.
* Nothing rendered at run time is pasted into the shell. The window (which may come from
  ``dag_run.conf``, i.e. from whoever triggers the DAG) and the connection values are passed as
  environment variables, which the shell never re-parses; the command itself is built once,
  at parse time, from constants quoted with :func:`shlex.quote`.
* The window is ``[data_interval_start, data_interval_end)`` in epoch **milliseconds**, the
  unit the runner reads (InLong's own task sent seconds: don't).
* The task fails when the runner fails: the runner's exit code is the task's, so Airflow's
  retries and alerts work. Re-running a window is safe (the runner checkpoints exactly once).
* The runner's last stdout line is its JSON summary; BashOperator pushes it to XCom.

Works with Airflow 3 (``airflow.sdk`` and the standard provider) and Airflow 2.10+.
"""

from __future__ import annotations

import shlex
from datetime import timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

try:  # Airflow 3, or Airflow 2.10 with apache-airflow-providers-standard
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2.10 without the standard provider
    from airflow.operators.bash import BashOperator

try:
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

try:  # Airflow 3
    from airflow.sdk import task
except ImportError:  # Airflow 2.10
    from airflow.decorators import task

__all__ = [
    "DAG",
    "BashOperator",
    "CronDataIntervalTimetable",
    "DeltaDataIntervalTimetable",
    "DEFAULT_MYSQL_CONN_ID",
    "DEFAULT_TASK_ARGS",
    "SECRET_OPTIONS",
    "runner_command",
    "mysql_env",
    "pulsar_token_env",
    "window_env",
    "partition_groups",
    "group_job_id",
    "add_up_summaries",
    "sync_task",
]

DEFAULT_MYSQL_CONN_ID = "pulsar2mysql_mysql"

# Retries are safe (the runner is idempotent per window) and cover the usual transient causes:
# broker or database restarts (exit 3/4) and an overlapping run holding the job lock (exit 6).
DEFAULT_TASK_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    # On timeout Airflow sends SIGTERM; the runner finishes its batch in flight and exits 130.
    "execution_timeout": timedelta(hours=1),
}

# Options that must never be given on the command line (see the module docstring).
SECRET_OPTIONS = frozenset({"mysql_password", "pulsar_token", "mysql_url"})

# The binary: PULSAR2MYSQL_BIN from the worker's environment, else `pulsar2mysql` on PATH.
# Resolved by bash at run time so one DAG file works on workers with different layouts.
RUNNER = '"${PULSAR2MYSQL_BIN:-pulsar2mysql}"'

# A Connection without a password renders an empty variable, which would be sent as an empty
# password (MySQL then refuses a password-less account): unset such variables instead.
_DROP_EMPTY_SECRETS = " ".join(
    f'[ -n "${{{name}:-}}" ] || unset {name};'
    for name in ("PULSAR2MYSQL_MYSQL_PASSWORD", "PULSAR2MYSQL_PULSAR_TOKEN")
)


def _flag(name: str, value) -> list[str]:
    """`--name value` for the runner; True is a bare switch, None/False/[] are left out."""
    option = "--" + name.replace("_", "-")
    if value is None or value is False or value == []:
        return []
    if value is True:
        return [option]
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return [option, shlex.quote(str(value))]


def runner_command(**options) -> str:
    """The shell command running ``pulsar2mysql run`` with the given options.

    Option names are the runner's (``topic``, ``table``, ``config``, ``job_id``, ``mode``,
    ``columns``, ``delimiter``, ``partitions``...). The command ``exec``s the runner so that
    Airflow's SIGTERM (timeout, mark-failed) reaches it directly and its exit code is the
    task's. Secret options are refused: pass them through :func:`mysql_env` /
    :func:`pulsar_token_env`.
    """
    secret = SECRET_OPTIONS.intersection(options)
    if secret:
        raise ValueError(
            f"{sorted(secret)} must not be on the command line; "
            "use a Connection (mysql_conn_id / pulsar_token_conn_id) or the worker environment"
        )
    parts = [_DROP_EMPTY_SECRETS, "exec", RUNNER, "run"]
    for name, value in options.items():
        parts += _flag(name, value)
    return " ".join(parts)


def _conn(conn_id: str) -> str:
    """Jinja expression for a Connection, on Airflow 2 and 3.

    ``attr`` goes through the context's ConnectionAccessor, which fails the task with
    Airflow's own "The conn_id `...` isn't defined" when the Connection is missing, and works
    for ids that are not Python identifiers.
    """
    return f"(conn | attr({conn_id!r}))"


def mysql_env(conn_id: str) -> dict[str, str]:
    """Environment for the runner's MySQL settings, templated from a MySQL Connection.

    Host, port, schema (database) and login go into ``PULSAR2MYSQL_MYSQL_URL``; the password
    only into ``PULSAR2MYSQL_MYSQL_PASSWORD``. TLS comes from the Connection's extra, in the
    MySQL provider's form (``{"ssl_mode": "VERIFY_IDENTITY", "ssl": {"ca": ..., "cert": ...,
    "key": ...}}``) or flat (``ssl_ca``, ``ssl_cert``, ``ssl_key``), into
    ``PULSAR2MYSQL_MYSQL_SSL_*``; what the extra leaves out stays the runner's default.
    """
    c = _conn(conn_id)
    url = (
        f"{{% set c = {c} %}}"
        "mysql://{% if c.login %}{{ c.login | urlencode }}@{% endif %}"
        "{{ c.host or '127.0.0.1' }}:{{ c.port or 3306 }}/{{ c.schema or '' }}"
    )
    env = {
        "PULSAR2MYSQL_MYSQL_URL": url,
        "PULSAR2MYSQL_MYSQL_PASSWORD": f"{{{{ {c}.password or '' }}}}",
        "PULSAR2MYSQL_MYSQL_SSL_MODE": f"{{{{ {c}.extra_dejson.get('ssl_mode') or '' }}}}",
    }
    for key in ("ca", "cert", "key"):
        env[f"PULSAR2MYSQL_MYSQL_SSL_{key.upper()}"] = (
            f"{{% set x = {c}.extra_dejson %}}"
            f"{{{{ (x.get('ssl') or {{}}).get('{key}') or x.get('ssl_{key}') or '' }}}}"
        )
    return env


def pulsar_token_env(conn_id: str) -> dict[str, str]:
    """``PULSAR2MYSQL_PULSAR_TOKEN`` from the password of a Connection (any type)."""
    return {"PULSAR2MYSQL_PULSAR_TOKEN": f"{{{{ {_conn(conn_id)}.password or '' }}}}"}


# The scheduled window in epoch milliseconds; `round` before `int` so that float seconds like
# 1700000000.123 * 1000 do not become ...122.
_INTERVAL_MS = "(data_interval_{edge}.timestamp() * 1000) | round | int"


def window_env(start=None, end=None, allow_conf: bool = True, widen_first=None) -> dict[str, str]:
    """``PULSAR2MYSQL_FROM`` / ``_TO`` for the window the run covers.

    Default: the run's data interval, ``[data_interval_start, data_interval_end)`` in ms.
    Fixed ``start``/``end`` (anything the runner accepts: ms, RFC 3339, ``id:L:E``,
    ``earliest``/``latest``) replace it. With ``allow_conf``, a manual run or backfill may pass
    ``{"from": ..., "to": ...}`` in ``dag_run.conf``; the runner validates the values (a
    10-digit seconds value is refused) and, passed through the environment, they cannot
    inject shell syntax.

    ``widen_first=(start_ms, before_ms)``: a run whose interval starts after ``start_ms`` and
    before ``before_ms`` starts its window at ``start_ms`` instead (a cron DAG's first interval
    begins at the first tick after its start date; this covers the time before that tick).
    """
    env = {}
    for key, edge, fixed in (("from", "start", start), ("to", "end", end)):
        default = repr(str(fixed)) if fixed is not None else _INTERVAL_MS.format(edge=edge)
        if key == "from" and fixed is None and widen_first is not None:
            lo, hi = (int(v) for v in widen_first)
            default = f"({lo} if {lo} < ({default}) < {hi} else ({default}))"
        expr = f"(dag_run.conf or {{}}).get({key!r}) or {default}" if allow_conf else default
        env[f"PULSAR2MYSQL_{key.upper()}"] = f"{{{{ {expr} }}}}"
    return env


def partition_groups(partitions, partitions_per_task: int = 1) -> list[list[int]]:
    """The fan-out: ``partitions`` (a count N for partitions 0..N-1, or a list of indexes) cut
    into groups of ``partitions_per_task`` consecutive partitions, one mapped task each."""
    if isinstance(partitions, bool) or partitions_per_task < 1:
        raise ValueError("partitions is a count or a list; partitions_per_task is at least 1")
    indexes = range(partitions) if isinstance(partitions, int) else partitions
    ordered = sorted({int(p) for p in indexes})
    if any(p < 0 for p in ordered):
        raise ValueError(f"partition indexes start at 0: {ordered}")
    return [ordered[i : i + partitions_per_task] for i in range(0, len(ordered), partitions_per_task)]


def group_job_id(job_id: str, group: list[int]) -> str:
    """The job id of one mapped task: ``<job_id>.p<N>`` for one partition, ``<job_id>.p<A>-<B>``
    for consecutive partitions A..B (``.p0_2_5`` otherwise). Each task has its own job id, hence
    its own job lock and checkpoints: runs of one job id lock each other out whatever partitions
    they read (the runner's job lock is per job id), so tasks sharing one would run one by one."""
    if len(group) == 1:
        suffix = f"p{group[0]}"
    elif group == list(range(group[0], group[-1] + 1)):
        suffix = f"p{group[0]}-{group[-1]}"
    else:
        suffix = "p" + "_".join(str(p) for p in group)
    return f"{job_id}.{suffix}"


# Counters of the runner's summary that add up over the mapped tasks.
_SUMMED = ("records_read", "bytes_read", "rows_converted", "rows_written", "duplicates_skipped",
           "bad_records", "dead_lettered", "batches", "retries")


def add_up_summaries(summaries) -> dict:
    """One summary for a fanned-out window: the mapped tasks' JSON summaries (as pushed to XCom:
    strings or dicts) added up. Counters and bad records by reason are sums, ``range.partitions``
    lists every partition, the time span runs from the first start to the last end (so
    ``rows_per_sec`` is the window's whole throughput), ``outcome`` is ``success`` when any
    task wrote or read something (else ``nothing_to_do``), ``exit_code`` the largest."""
    import json
    from datetime import datetime

    parsed = [json.loads(s) if isinstance(s, (str, bytes)) else dict(s) for s in summaries]
    if not parsed:
        raise ValueError("no summaries to add up (no mapped task ran)")
    first = parsed[0]
    total = {
        "job_id": first["job_id"].rsplit(".p", 1)[0],
        "job_ids": [s["job_id"] for s in parsed],
        "tasks": len(parsed),
        "topic": first["topic"],
        "table": first["table"],
        "range": {
            "from": first["range"]["from"],
            "to": first["range"]["to"],
            "partitions": sorted(
                (p for s in parsed for p in s["range"].get("partitions", [])),
                key=lambda p: p.get("partition", -1) if isinstance(p, dict) else -1,
            ),
        },
    }
    for key in _SUMMED:
        total[key] = sum(int(s.get(key) or 0) for s in parsed)
    reasons: dict[str, int] = {}
    for s in parsed:
        for reason, n in (s.get("bad_records_by_reason") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + int(n)
    total["bad_records_by_reason"] = reasons
    total["started_at"] = min(s["started_at"] for s in parsed)
    total["ended_at"] = max(s["ended_at"] for s in parsed)
    try:
        span = (datetime.fromisoformat(total["ended_at"].replace("Z", "+00:00"))
                - datetime.fromisoformat(total["started_at"].replace("Z", "+00:00")))
        total["duration_ms"] = max(int(span.total_seconds() * 1000), 0)
    except ValueError:
        total["duration_ms"] = max(int(s.get("duration_ms") or 0) for s in parsed)
    total["rows_per_sec"] = (
        round(total["rows_written"] * 1000 / total["duration_ms"], 1) if total["duration_ms"] else 0.0
    )
    total["exit_code"] = max(int(s.get("exit_code") or 0) for s in parsed)
    if total["exit_code"] != 0:
        total["outcome"] = next(s["outcome"] for s in parsed if s.get("exit_code"))
    elif any(s.get("outcome") == "success" for s in parsed):
        total["outcome"] = "success"
    else:
        total["outcome"] = "nothing_to_do"
    return total


def sync_task(
    task_id: str,
    *,
    mysql_conn_id: str | None = DEFAULT_MYSQL_CONN_ID,
    pulsar_token_conn_id: str | None = None,
    start=None,
    end=None,
    allow_conf_window: bool = True,
    partitions=None,
    partitions_per_task: int = 1,
    widen_first=None,
    preamble: str = "",
    task_args: dict | None = None,
    **runner_options,
):
    """A BashOperator running ``pulsar2mysql run`` over the run's window (see module doc).

    ``mysql_conn_id=None`` leaves MySQL settings to the worker's environment
    (``PULSAR2MYSQL_MYSQL_URL`` / ``PULSAR2MYSQL_MYSQL_PASSWORD``). ``widen_first``: see
    :func:`window_env`. ``preamble`` is shell run before the runner (constant text only).
    Retries and timeout come from the DAG's ``default_args`` (use :data:`DEFAULT_TASK_ARGS`,
    edited as you like); ``task_args`` are extra BashOperator arguments for this task only.

    **Fan-out**: ``partitions`` (the topic's partition count, or a list of partition indexes)
    maps the window out over :func:`partition_groups` of ``partitions_per_task`` partitions:
    one mapped task per group, every one over the same window, each with its own job id
    (:func:`group_job_id`), so its own checkpoints and job lock; a task that fails is retried
    alone and resumes after its own last commit. A task ``<task_id>_summary`` then adds the
    tasks' JSON summaries up (:func:`add_up_summaries`) and pushes the total to XCom; it is
    what this function returns then, so ``sync_task(...) >> next`` waits for every partition.
    Keep the grouping fixed for a job: a task's checkpoints belong to its job id, so a window
    re-run with other groups would be read again from its start.
    """
    env = window_env(start, end, allow_conf_window, widen_first)
    if mysql_conn_id:
        env.update(mysql_env(mysql_conn_id))
    if pulsar_token_conn_id:
        env.update(pulsar_token_env(pulsar_token_conn_id))
    args = dict(task_args or {})

    def command(**extra) -> str:
        return preamble + runner_command(**runner_options, **extra)

    if not partitions:
        return BashOperator(
            task_id=task_id, bash_command=command(), env=env, append_env=True, **args
        )
    job_id = runner_options.pop("job_id", None)
    if not job_id:
        raise ValueError("partitions fan-out needs job_id (each task gets <job_id>.p<N>)")
    commands = [
        command(partitions=group, job_id=group_job_id(job_id, group))
        for group in partition_groups(partitions, partitions_per_task)
    ]
    mapped = BashOperator.partial(task_id=task_id, env=env, append_env=True, **args).expand(
        bash_command=commands
    )

    @task(task_id=f"{task_id}_summary")
    def add_up(summaries):
        return add_up_summaries(summaries)

    return add_up(mapped.output)
