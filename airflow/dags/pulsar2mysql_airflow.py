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
  Exit 2 (configuration) and 5 (bad-record limit) fail at once, without retries: a retry would
  fail the same way, and the alert should not wait for the whole backoff.
* Windows of one job run strictly in order: the runner chains each window to where the
  previous one stopped, so a scheduled window refuses to start while the previous run's sync
  has not succeeded (see :class:`Pulsar2MySQLOperator`).
* The runner's last stdout line is its JSON summary; the task pushes it to XCom as a dict.
* The sync tasks take slots of one Airflow pool (``pulsar2mysql``), one per MySQL connection
  the runner may open, so many groups cannot open more connections than the pool has slots.

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

try:  # Airflow 3: the exceptions the task runner acts on
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 2.10
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

__all__ = [
    "DAG",
    "BashOperator",
    "CronDataIntervalTimetable",
    "DeltaDataIntervalTimetable",
    "DEFAULT_MYSQL_CONN_ID",
    "DEFAULT_TASK_ARGS",
    "DEFAULT_POOL",
    "MIN_INTERVAL_SECONDS",
    "NO_RETRY_EXIT_CODES",
    "pool_slots",
    "refuse_after_a_failed_window",
    "previous_task_instance",
    "SECRET_OPTIONS",
    "Pulsar2MySQLOperator",
    "summary_from_output",
    "floor_interval",
    "pushgateway_url",
    "delete_metric_groups",
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
# Exit 2 and 5 are never retried (NO_RETRY_EXIT_CODES), whatever `retries` says.
DEFAULT_TASK_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    # On timeout Airflow sends SIGTERM; the runner finishes its batch in flight and exits 130.
    "execution_timeout": timedelta(hours=1),
}

# Exit codes a retry cannot fix: the task fails at once (AirflowFailException) with this reason.
NO_RETRY_EXIT_CODES = {
    2: "a configuration or schema error (flags, table, mapping, credentials the server refused)",
    5: "the bad-record limit (a bad record under --on-bad-record fail, or more than --max-bad-records)",
}

# The Airflow pool every sync task takes slots of (create it: `airflow pools set pulsar2mysql
# <MySQL connections you allow> "pulsar2mysql"`); a task in a pool that does not exist is never
# scheduled, so the README's install steps create it.
DEFAULT_POOL = "pulsar2mysql"



def pool_slots(writers=None) -> int:
    """Slots of :data:`DEFAULT_POOL` a sync task takes: the most MySQL connections the runner
    opens, one per write stream (``writers``, default 1), one for the job lock, one for
    checkpoints."""
    return int(writers or 1) + 2


# The shortest fixed interval a DAG runs at (InLong's Quartz `*/1 * * * * ?` is 1 s, which
# Airflow cannot start a run for every time): see `floor_interval`.
MIN_INTERVAL_SECONDS = 60

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
_INTERVAL_MS = "((data_interval_{edge}.timestamp() * 1000) | round | int)"
# An Airflow 3 run triggered with `logical_date: null` has no data interval: the names are not
# even defined (StrictUndefined), so test before use. Such a run renders an empty window, which
# the operator refuses with a sentence (see Pulsar2MySQLOperator).
_HAS_INTERVAL = "(data_interval_{edge} is defined and data_interval_{edge})"


def window_env(start=None, end=None, allow_conf: bool = True, widen_first=None) -> dict[str, str]:
    """``PULSAR2MYSQL_FROM`` / ``_TO`` for the window the run covers.

    Default: the run's data interval, ``[data_interval_start, data_interval_end)`` in ms.
    Fixed ``start``/``end`` (anything the runner accepts: ms, RFC 3339, ``id:L:E``,
    ``earliest``/``latest``) replace it. With ``allow_conf``, a manual run or backfill may pass
    ``{"from": ..., "to": ...}`` in ``dag_run.conf``; the runner validates the values (a
    10-digit seconds value is refused) and, passed through the environment, they cannot
    inject shell syntax. A run without a data interval and without a conf window renders
    empty values (refused by :class:`Pulsar2MySQLOperator` with the reason).

    ``widen_first=(start_ms, before_ms)``: a run whose interval starts after ``start_ms`` and
    before ``before_ms`` starts its window at ``start_ms`` instead (a cron DAG's first interval
    begins at the first tick after its start date; this covers the time before that tick).
    """
    env = {}
    for key, edge, fixed in (("from", "start", start), ("to", "end", end)):
        has = _HAS_INTERVAL.format(edge=edge)
        ms = _INTERVAL_MS.format(edge=edge)
        if fixed is not None:
            default = repr(str(fixed))
        elif key == "from" and widen_first is not None:
            lo, hi = (int(v) for v in widen_first)
            default = f"(({lo} if {lo} < {ms} < {hi} else {ms}) if {has} else '')"
        else:
            default = f"({ms} if {has} else '')"
        expr = f"(dag_run.conf or {{}}).get({key!r}) or {default}" if allow_conf else default
        env[f"PULSAR2MYSQL_{key.upper()}"] = f"{{{{ {expr} }}}}"
    return env


def floor_interval(seconds) -> int:
    """The interval a fixed-interval schedule of ``seconds`` runs at: at least
    :data:`MIN_INTERVAL_SECONDS`.

    InLong's Quartz ``*/1 * * * * ?`` is a 1-second schedule; with ``catchup`` Airflow would
    create a run per second since the start date, far more than it can start (each run costs
    seconds of scheduling and task start-up), and the backlog would only grow. At the floor,
    each run syncs a minute (the windows still cover the group's whole range, one after the
    other), so an hour of backlog is 60 runs.
    """
    return max(int(seconds), MIN_INTERVAL_SECONDS) if int(seconds) > 0 else int(seconds)


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


# --- the operator ----------------------------------------------------------------------------


def summary_from_output(output):
    """The runner's JSON summary (its last stdout line) as a dict, for XCom; any other output
    (a command that printed something else last) is kept as it was."""
    import json

    if not isinstance(output, (str, bytes)):
        return output
    try:
        value = json.loads(output)
    except ValueError:
        return output
    return value if isinstance(value, dict) else output


_NO_WINDOW = (
    "this run has no window: it has no data interval (an Airflow 3 run triggered with "
    "logical_date null) and its conf names none; trigger it with conf "
    '{"from": <epoch ms>, "to": <epoch ms>} or with a logical_date'
)


class Pulsar2MySQLOperator(BashOperator):
    """BashOperator for ``pulsar2mysql run``, thin on purpose. What it adds, and why:

    * exit codes a retry cannot fix (:data:`NO_RETRY_EXIT_CODES`: 2 configuration, 5 bad-record
      limit) raise ``AirflowFailException``, so the task fails at once instead of after every
      retry and its backoff; 3, 4, 6 and 130 stay ordinary failures that Airflow retries;
    * the summary goes to XCom as a dict (:func:`summary_from_output`);
    * a run with no window at all (see :func:`window_env`) fails with a sentence, never a
      template error or a runner started without bounds;
    * **windows in order** (:func:`refuse_after_a_failed_window`, shared with InLong's sync
      task): a run whose window comes from its data interval refuses to start
      (``AirflowFailException``, the runner is not started) unless this task's instance (same
      map index) in the previous run succeeded. The runner chains a job's windows by position:
      if window N+1 ran after N failed, a late record at N's boundary would be read by neither.
      Why not ``depends_on_past``: its waiting run keeps its slot of ``max_active_runs``, so
      once N is cleared it can never start (seen on Airflow 3.3). Refused runs end at once;
      after fixing N, clear it *with the runs after it* (the UI's Clear with "Future", or
      ``airflow tasks clear <dag> -s <N's logical date> -y``): they run in order. A run whose
      conf names its window (a manual re-sync) is not held back;
    * ``prune_metrics_of=<job_id>``: after a success, the Pushgateway groups of that job's other
      groupings (``<job_id>.p<N>``, from an earlier fan-out) are deleted, so they do not alert
      forever (:func:`delete_metric_groups`).
    """

    def __init__(self, *, prune_metrics_of: str | None = None, in_order: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.prune_metrics_of = prune_metrics_of
        self.in_order = in_order

    def _exit_code(self, error: BaseException):
        proc = getattr(self.subprocess_hook, "sub_process", None)
        code = getattr(proc, "returncode", None)
        if code is None:  # another BashOperator layout: its message names the code
            import re

            found = re.search(r"exit code (\d+)", str(error))
            code = int(found.group(1)) if found else None
        return code

    def execute(self, context):
        env = self.env or {}
        if any(not str(env.get(k, "x")).strip() for k in ("PULSAR2MYSQL_FROM", "PULSAR2MYSQL_TO")):
            raise AirflowFailException(_NO_WINDOW)
        if self.in_order:
            refuse_after_a_failed_window(context)
        try:
            output = super().execute(context)
        except AirflowSkipException:
            raise
        except AirflowFailException:
            raise
        except AirflowException as e:
            code = self._exit_code(e)
            if code in NO_RETRY_EXIT_CODES:
                raise AirflowFailException(
                    f"pulsar2mysql exited with {code}, {NO_RETRY_EXIT_CODES[code]}: a retry would fail "
                    "the same way, so the task fails now; fix it, then clear the task"
                ) from e
            raise
        if self.prune_metrics_of:
            try:
                delete_metric_groups(self.prune_metrics_of, keep=[self.prune_metrics_of])
            except OSError as e:  # the sync succeeded; stale metrics are not worth failing it
                self.log.warning("could not prune the Pushgateway groups of %s: %s", self.prune_metrics_of, e)
        return summary_from_output(output)


def refuse_after_a_failed_window(context) -> None:
    """Raises ``AirflowFailException`` (no retries, the runner is not started) unless this
    task's instance (same map index) in the previous run succeeded; a run whose conf names its
    window (a manual re-sync) is not held back. One check for every sync task (the operator's
    and InLong's): the runner chains a job's windows by position, so window N+1 must not run
    after N failed, or a late record at N's boundary would be read by neither."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("from") or conf.get("to"):
        return
    previous = previous_task_instance(context.get("ti"))
    if previous is None:
        return  # the job's first window
    state = str(getattr(previous, "state", None) or "none").rsplit(".", 1)[-1].lower()
    if state in ("success", "skipped"):
        return
    logical = getattr(previous, "logical_date", None) or getattr(previous, "execution_date", None)
    raise AirflowFailException(
        f"not started: the previous window of this task (run {previous.run_id}, logical date "
        f"{logical}) is {state}, not success. Windows are chained, so this one must wait for it: "
        "fix its cause, then clear that run together with the runs after it (Clear with "
        "'Future', or `airflow tasks clear <dag_id> -s <its logical date> -y`)"
    )


def previous_task_instance(ti):
    """This task's instance (same map index) in the run before ``ti``'s, or None: Airflow 3's
    Task SDK asks the API server; Airflow 2 reads the database.

    A mapped task that never expanded in that run (its upstream failed: an InLong group's
    ``dataflow`` task with the Manager down) has only its unexpanded instance (map index -1,
    ``upstream_failed``); that one is the previous window then, not an older run's instance."""
    if ti is None:
        return None
    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    try:  # Airflow 3 (Task SDK): the latest instance with an earlier logical date
        previous = ti.get_previous_ti(map_index=map_index)
    except TypeError:  # Airflow 2.10: no map_index there, so through the previous run
        run = ti.get_previous_dagrun()
        if run is None:
            return None
        previous = run.get_task_instance(ti.task_id, map_index=map_index)
        if previous is None and map_index >= 0:
            previous = run.get_task_instance(ti.task_id, map_index=-1)
        return previous
    if map_index >= 0:
        unexpanded = ti.get_previous_ti(map_index=-1)
        if unexpanded is not None and (
            previous is None or _later(getattr(unexpanded, "logical_date", None), getattr(previous, "logical_date", None))
        ):
            return unexpanded
    return previous


def _later(a, b) -> bool:
    """a after b, for logical dates that may be missing (a run without one is never later)."""
    return a is not None and (b is None or a > b)


# --- Pushgateway groups --------------------------------------------------------------------

# The runner pushes to the group job="pulsar2mysql", job_id=<job id> (README "Metrics").
_PUSH_JOB = "pulsar2mysql"


def pushgateway_url() -> str | None:
    """The Pushgateway the runners push to: ``PULSAR2MYSQL_PUSHGATEWAY_URL`` (the worker
    environment the runner reads too), else ``[pulsar2mysql] pushgateway_url``; None: none."""
    import os

    url = os.environ.get("PULSAR2MYSQL_PUSHGATEWAY_URL", "").strip()
    if not url:
        try:
            from airflow.configuration import conf

            url = (conf.get("pulsar2mysql", "pushgateway_url", fallback="") or "").strip()
        except Exception:  # noqa: BLE001 - no Airflow config: no Pushgateway
            url = ""
    return url or None


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    if u.password is None:
        return url
    return urlunsplit(u._replace(netloc=f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")))


def _pushgateway(url: str, method: str, path: str) -> bytes:
    """One request to the Pushgateway; basic auth from the URL's user info (never logged)."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit, urlunsplit

    u = urlsplit(url)
    base = urlunsplit(u._replace(netloc=u.hostname + (f":{u.port}" if u.port else ""))).rstrip("/")
    req = urllib.request.Request(base + path, method=method)
    if u.username:
        token = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
        req.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise OSError(f"Pushgateway {_redact(url)}: {method} {path} answered {e.code}") from None
    except urllib.error.URLError as e:
        raise OSError(f"Pushgateway {_redact(url)}: {e.reason}") from None


def metric_group_job_ids(url: str) -> list[str]:
    """The job ids of every ``job="pulsar2mysql"`` group the Pushgateway holds."""
    import json

    data = json.loads(_pushgateway(url, "GET", "/api/v1/metrics")).get("data") or []
    ids = {g.get("labels", {}).get("job_id") for g in data if g.get("labels", {}).get("job") == _PUSH_JOB}
    return sorted(i for i in ids if i is not None)


def _family(job_id: str):
    """``job_id`` and its fan-out ids (:func:`group_job_id`), and nothing else."""
    import re

    return re.compile(re.escape(job_id) + r"(?:\.p\d+(?:-\d+|(?:_\d+)+)?)?")


def delete_metric_groups(job_id: str, keep=(), url: str | None = None, log=print) -> list[str]:
    """Deletes the Pushgateway groups of ``job_id`` and of its fan-out ids (``<job_id>.p<N>``,
    ``.p<A>-<B>``...), except ``keep``; returns the job ids deleted. Why: the runner's groups
    stay in the Pushgateway until deleted, so the alerts on them (last success too old) would
    fire forever for a deleted group or a fan-out grouping no longer used. No Pushgateway
    configured (:func:`pushgateway_url`): nothing to do. Raises OSError when it cannot answer."""
    import base64

    url = url or pushgateway_url()
    if not url:
        return []
    family = _family(job_id)
    doomed = [j for j in metric_group_job_ids(url) if family.fullmatch(j) and j not in set(keep)]
    for j in doomed:
        encoded = base64.urlsafe_b64encode(j.encode()).decode()
        _pushgateway(url, "DELETE", f"/metrics/job/{_PUSH_JOB}/job_id@base64/{encoded}")
        log(f"Pushgateway group of job {j} deleted")
    return doomed


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
    pool: str | None = DEFAULT_POOL,
    preamble: str = "",
    task_args: dict | None = None,
    **runner_options,
):
    """A :class:`Pulsar2MySQLOperator` running ``pulsar2mysql run`` over the run's window (see
    module doc).

    ``mysql_conn_id=None`` leaves MySQL settings to the worker's environment
    (``PULSAR2MYSQL_MYSQL_URL`` / ``PULSAR2MYSQL_MYSQL_PASSWORD``). ``widen_first``: see
    :func:`window_env`. ``preamble`` is shell run before the runner
    (constant text only). Retries and timeout come from the DAG's ``default_args`` (use
    :data:`DEFAULT_TASK_ARGS`, edited as you like); ``task_args`` are extra operator arguments
    for this task only.

    **Order**: ``in_order=True`` (:class:`Pulsar2MySQLOperator`): a scheduled window refuses to
    start until the previous run's sync succeeded; after fixing a failed window N, clear N *and
    the runs after it* (the UI's "Future", or ``airflow tasks clear <dag> -s <N's logical
    date> -y``): they run in order.

    **Pool**: every sync task takes ``writers + 2`` slots (the most MySQL connections the
    runner's pool opens: one per write stream, one for the job lock, one for checkpoints) of
    the Airflow pool ``pool`` (:data:`DEFAULT_POOL`), which must exist; ``pool=None``: Airflow's
    default pool.

    **Fan-out**: ``partitions`` (the topic's partition count, or a list of partition indexes)
    maps the window out over :func:`partition_groups` of ``partitions_per_task`` partitions:
    one mapped task per group, every one over the same window, each with its own job id
    (:func:`group_job_id`), so its own checkpoints and job lock; a task that fails is retried
    alone and resumes after its own last commit. A task ``<task_id>_summary`` then adds the
    tasks' JSON summaries up (:func:`add_up_summaries`), deletes the Pushgateway groups of
    other groupings of the job (:func:`delete_metric_groups`) and pushes the total to XCom; it
    is what this function returns then, so ``sync_task(...) >> next`` waits for every
    partition. Keep the grouping fixed for a job: a task's checkpoints belong to its job id, so
    a window re-run with other groups would be read again from its start.
    """
    env = window_env(start, end, allow_conf_window, widen_first)
    if mysql_conn_id:
        env.update(mysql_env(mysql_conn_id))
    if pulsar_token_conn_id:
        env.update(pulsar_token_env(pulsar_token_conn_id))
    args = dict(task_args or {})
    if pool:
        args.setdefault("pool", pool)
        args.setdefault("pool_slots", pool_slots(runner_options.get("writers")))

    def command(**extra) -> str:
        return preamble + runner_command(**runner_options, **extra)

    if not partitions:
        return Pulsar2MySQLOperator(
            task_id=task_id, bash_command=command(), env=env, append_env=True,
            prune_metrics_of=runner_options.get("job_id"), **args
        )
    job_id = runner_options.pop("job_id", None)
    if not job_id:
        raise ValueError("partitions fan-out needs job_id (each task gets <job_id>.p<N>)")
    commands = [
        command(partitions=group, job_id=group_job_id(job_id, group))
        for group in partition_groups(partitions, partitions_per_task)
    ]
    job_ids = [group_job_id(job_id, group) for group in partition_groups(partitions, partitions_per_task)]
    mapped = Pulsar2MySQLOperator.partial(task_id=task_id, env=env, append_env=True, **args).expand(
        bash_command=commands
    )

    @task(task_id=f"{task_id}_summary")
    def add_up(summaries):
        total = add_up_summaries(summaries)
        try:
            delete_metric_groups(job_id, keep=job_ids)
        except OSError as e:  # the window is synced; stale metrics are not worth failing it
            print(f"WARNING: could not prune the Pushgateway groups of {job_id}: {e}")
        return total

    return add_up(mapped.output)
