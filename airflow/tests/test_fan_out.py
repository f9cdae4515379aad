"""Scale-out: one window of a 16-partition topic fanned out over mapped tasks.

* On a real Airflow 2.10 (the Airflow InLong Manager drives) with a parallel executor: a
  scheduler with the LocalExecutor (parallelism 8) on a PostgreSQL metadata database
  (scripts/postgres.sh; a parallel executor cannot use sqlite, and Airflow supports PostgreSQL
  and MySQL 8, not MariaDB). The example DAG with ``PARTITIONS = 16`` maps one task per
  partition over the same window; partition 5's first attempt is failed after its runner
  committed (a worker lost at the end); only that task is retried, its retry writes nothing,
  every record lands exactly once, the tasks ran concurrently (overlapping start/end times from
  Airflow's task instances) but never more of them than the ``pulsar2mysql`` pool allows, and
  ``sync_summary`` adds the summaries up.
* Without Airflow: what the runner's job lock does with two runs of one job id on disjoint
  ``--partitions`` subsets (the second is refused, exit 6, while the first holds the lock), and
  that the per-task job ids the DAG gives them run side by side.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.request
from datetime import timedelta

import pytest

from conftest import (
    AIRFLOW_MAJOR, MYSQL, PRODUCER, PULSAR_URL, RUNNER, VENV_BIN, Database, kill_group, mysql, unique,
    wait_for,
)

PARTITIONS = 16
RECORDS = 3200  # 200 per partition
FAILING_PARTITION = 5
POOL_SLOTS = 12  # the pulsar2mysql pool: 4 tasks of 3 MySQL connections each
ADMIN_URL = os.environ.get("PULSAR_ADMIN_URL", "http://127.0.0.1:8080")


def partitioned_topic(partitions: int) -> str:
    name = unique("p2m_fan")
    req = urllib.request.Request(
        f"{ADMIN_URL}/admin/v2/persistent/public/default/{name}/partitions",
        data=str(partitions).encode(), method="PUT", headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=30).close()
    return f"persistent://public/default/{name}"


def produce_unbatched(topic: str, count: int) -> tuple[int, int]:
    """``i|msg-i`` for i in 0..count, one message per entry: the producer's round robin spreads
    them over every partition. Returns epoch ms just before and just after."""
    before = int(time.time() * 1000)
    subprocess.run([PRODUCER, "--url", PULSAR_URL, "--topic", topic, "--count", str(count), "--batch", "1"],
                   check=True, timeout=180, capture_output=True)
    time.sleep(0.05)
    return before, int(time.time() * 1000) + 1


def run_runner(*args, job_id: str, db: Database, topic: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PULSAR2MYSQL_MYSQL_PASSWORD=db.password)
    cmd = [RUNNER, "run", "--pulsar-url", PULSAR_URL, "--topic", topic, "--table", "sink_table",
           "--mysql-url", f"mysql://{db.user}@{MYSQL.hostname}:{MYSQL.port or 3306}/{db.name}",
           "--job-id", job_id, *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def summary_of(proc: subprocess.Popen, timeout=120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    assert lines, f"no summary; stderr:\n{err[-3000:]}"
    return json.loads(lines[-1])


def job_lock_name(job_id: str) -> str:
    """The runner's GET_LOCK name for a job id (src/sink/checkpoint.rs, lock_name)."""
    import hashlib

    return "pulsar2mysql:" + hashlib.sha256(job_id.encode()).hexdigest()[:32]


def test_one_job_id_on_disjoint_partitions_is_locked_out_per_task_job_ids_are_not(db: Database):
    """The runner's job lock is per job id (GET_LOCK), whatever --partitions says: while a run
    of job ``fan`` holds it (here a session of the test stands in for that run, holding the
    same lock), a run of ``fan`` on other partitions stops at once with exit 6, before writing
    anything. Disjoint subsets therefore need their own job ids, which is what the fan-out DAG
    gives each mapped task (<job>.p<N>): those run while ``fan`` is held, each on its own
    checkpoints, and every record lands once."""
    topic = partitioned_topic(4)
    produce_unbatched(topic, 400)
    holder = subprocess.Popen(
        ["mysql", "-h", MYSQL.hostname or "127.0.0.1", "-P", str(MYSQL.port or 3306), "-u", MYSQL.username or "root",
         "--unbuffered", "--batch", "--skip-column-names"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ, MYSQL_PWD=MYSQL.password or ""),
    )
    try:
        holder.stdin.write(f"SELECT GET_LOCK('{job_lock_name('fan')}', 10);\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "1"

        same_job = summary_of(run_runner("--partitions", "2,3", job_id="fan", db=db, topic=topic))
        assert same_job["exit_code"] == 6 and same_job["outcome"] == "locked", same_job
        assert db.rows() == []
        own_job = summary_of(run_runner("--partitions", "2,3", job_id="fan.p2-3", db=db, topic=topic))
        assert own_job["exit_code"] == 0 and own_job["rows_written"] > 0, own_job
    finally:
        holder.stdin.close()  # the session ends: its lock is released
        holder.wait(timeout=30)
    first = summary_of(run_runner("--partitions", "0,1", job_id="fan", db=db, topic=topic))
    assert first["exit_code"] == 0, first
    assert first["rows_written"] + own_job["rows_written"] == 400
    assert db.rows() == [(i, f"msg-{i}") for i in range(400)]
    # Re-runs of both (an Airflow retry) write nothing: each has its own checkpoints.
    for parts, job in (("0,1", "fan"), ("2,3", "fan.p2-3")):
        again = summary_of(run_runner("--partitions", parts, job_id=job, db=db, topic=topic))
        assert again["exit_code"] == 0 and again["rows_written"] == 0, again


# --- on a real Airflow with the LocalExecutor ------------------------------------------------


class Postgres:
    """A database of its own on the PostgreSQL of scripts/postgres.sh."""

    def __init__(self, base_url: str):
        import psycopg2  # in the Airflow 2.10 venv (airflow/requirements-2.10.txt)

        self.psycopg2 = psycopg2
        self.base = base_url.rstrip("/")
        self.name = unique("p2m_af")
        self._admin(f'CREATE DATABASE "{self.name}"')
        self.url = f"{self.base}/{self.name}"

    def _connect(self, database: str):
        from urllib.parse import urlparse

        u = urlparse(self.base.replace("postgresql+psycopg2", "postgresql"))
        return self.psycopg2.connect(host=u.hostname, port=u.port, user=u.username, password=u.password,
                                     dbname=database)

    def _admin(self, sql: str):
        conn = self._connect("postgres")
        conn.autocommit = True
        with conn.cursor() as c:
            c.execute(sql)
        conn.close()

    def query(self, sql: str, *params):
        conn = self._connect(self.name)
        try:
            with conn.cursor() as c:
                c.execute(sql, params)
                return c.fetchall()
        finally:
            conn.close()

    def drop(self):
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


WRAPPER = """#!/bin/sh
# The real runner; partition {p}'s first attempt then fails as if its worker were lost after
# the runner committed (the retry must write nothing).
out=$("{runner}" "$@"); rc=$?
printf '%s\\n' "$out"
case " $* " in
  *" --partitions {p} "*) if mkdir "{mark}" 2>/dev/null; then
      printf '%s\\n' "$out" | tail -n 1 >"{mark}/summary.json"
      echo "injected failure after the runner's exit $rc" >&2; exit 1; fi ;;
esac
exit $rc
"""


def overlap(intervals) -> int:
    """The most intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


@pytest.mark.slow
@pytest.mark.skipif(AIRFLOW_MAJOR != 2, reason="the LocalExecutor run is on Airflow 2.10 (InLong's Airflow)")
def test_fan_out_on_local_executor(airflow_home, db: Database, monkeypatch, tmp_path):
    pg_url = os.environ.get("P2M_POSTGRES_URL")
    if not pg_url:
        pytest.fail("P2M_POSTGRES_URL is not set: airflow/run-tests.sh starts scripts/postgres.sh")
    pg = Postgres(pg_url)
    try:
        _fan_out(airflow_home, db, monkeypatch, tmp_path, pg)
    finally:
        pg.drop()


def _fan_out(airflow_home, db, monkeypatch, tmp_path, pg):
    topic = partitioned_topic(PARTITIONS)
    start, end = produce_unbatched(topic, RECORDS)

    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", pg.url)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    home = airflow_home("pulsar2mysql_example.py")
    dag_file = home.dags / "pulsar2mysql_example.py"
    text = dag_file.read_text()
    for old, new in (
        ('TOPIC = "persistent://public/default/test"', f"TOPIC = {topic!r}"),
        ("PARTITIONS = 0\n", f"PARTITIONS = {PARTITIONS}\n"),
        # Triggered only (a scheduled run would sync another window), retried at once.
        ("schedule=CronDataIntervalTimetable(SCHEDULE, timezone=TIMEZONE),", "schedule=None,"),
        ("default_args=DEFAULT_TASK_ARGS,",
         'default_args={**DEFAULT_TASK_ARGS, "retries": 1, "retry_delay": __import__("datetime").timedelta(seconds=1),'
         ' "retry_exponential_backoff": False, "execution_timeout": __import__("datetime").timedelta(seconds=120)},'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    dag_file.write_text(text)

    mark = tmp_path / "failed-once"
    wrapper = tmp_path / "pulsar2mysql-wrapper"
    wrapper.write_text(WRAPPER.format(runner=home.env["PULSAR2MYSQL_BIN"], p=FAILING_PARTITION, mark=mark))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    home.env.update({
        "PULSAR2MYSQL_BIN": str(wrapper),
        "AIRFLOW_CONN_PULSAR2MYSQL_MYSQL": db.conn_uri(),
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
    })
    # The pool the sync tasks take 3 slots of (MySQL connections: 1 writer + lock + checkpoints):
    # 12 slots let at most 4 of them run at once, whatever the executor's parallelism (8).
    home.airflow("pools", "set", "pulsar2mysql", str(POOL_SLOTS), "MySQL connections of pulsar2mysql tasks")
    log = home.root / "scheduler.log"
    scheduler = subprocess.Popen([str(VENV_BIN / "airflow"), "scheduler"], env=home.env, cwd=home.root,
                                 stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def tail() -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-60:])

    dag_id = "pulsar2mysql_example"
    try:
        wait_for("the DAG to be parsed", lambda: pg.query("SELECT 1 FROM dag WHERE dag_id = %s", dag_id), 120, tail)
        home.airflow("dags", "trigger", dag_id, "-r", "fan_out", "-c", json.dumps({"from": start, "to": end}))
        state = wait_for("the fanned-out run to end", lambda: next(
            (s for (s,) in pg.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = 'fan_out'", dag_id)
             if s in ("success", "failed")), None), 300, tail)
    finally:
        kill_group(scheduler)
        scheduler.wait(timeout=30)

    tis = pg.query("SELECT map_index, state, try_number, start_date, end_date FROM task_instance"
                   " WHERE dag_id = %s AND run_id = 'fan_out' AND task_id = 'sync' ORDER BY map_index", dag_id)
    timeline = "\n".join(f"  p{m:<2} {s:8} try {t}  {b.time()} -> {e.time()}" for m, s, t, b, e in tis)
    print(f"mapped tasks (LocalExecutor, parallelism 8):\n{timeline}")
    assert state == "success", f"{timeline}\n{tail()}"
    assert [m for m, *_ in tis] == list(range(PARTITIONS))
    assert all(s == "success" for _, s, *_ in tis), timeline

    # Exactly once: every record of the window, once.
    assert db.rows() == [(i, f"msg-{i}") for i in range(RECORDS)]

    # Only the failed task was retried: one earlier try, of partition 5, in the history.
    history = pg.query("SELECT map_index, state, try_number FROM task_instance_history"
                       " WHERE dag_id = %s AND run_id = 'fan_out' AND task_id = 'sync'", dag_id)
    assert [(m, s) for m, s, _ in history] == [(FAILING_PARTITION, "failed")], history
    tries = {m: t for m, _, t, _, _ in tis}
    assert tries.pop(FAILING_PARTITION) == 2 and set(tries.values()) == {1}, tis

    # Concurrency: the mapped tasks overlapped in time, but no more of them than the pool
    # allows (3 slots each), although the executor would run 8.
    most = overlap([(b, e) for *_, b, e in tis])
    print(f"most mapped tasks running at once: {most} (pool: {POOL_SLOTS} slots, 3 per task)")
    assert 2 <= most <= POOL_SLOTS // 3, timeline

    # The summary task added the per-partition summaries up. Partition 5's first attempt wrote
    # its rows (then "lost its worker"); its retry found them committed and wrote nothing.
    first_try = json.loads((mark / "summary.json").read_text())
    assert first_try["exit_code"] == 0 and first_try["rows_written"] > 0, first_try
    (value,) = pg.query("SELECT value FROM xcom WHERE dag_id = %s AND run_id = 'fan_out' AND task_id = 'sync_summary'"
                        " AND key = 'return_value'", dag_id)[0]
    total = json.loads(bytes(value))
    print(f"sync_summary: {json.dumps({k: total[k] for k in ('tasks', 'records_read', 'rows_written', 'duration_ms', 'rows_per_sec', 'outcome')})}")
    assert total["tasks"] == PARTITIONS and total["outcome"] == "success" and total["exit_code"] == 0
    assert [p["partition"] for p in total["range"]["partitions"]] == list(range(PARTITIONS))
    assert total["job_ids"] == [f"{dag_id}.p{p}" for p in range(PARTITIONS)]
    assert total["rows_written"] + first_try["rows_written"] == RECORDS, (total, first_try)
    assert total["range"]["from"] == str(start) and total["range"]["to"] == str(end)
