"""Out of one machine's executor: one window of a 16-partition topic fanned out over two
Celery workers on Airflow 2.10's CeleryExecutor.

Redis (scripts/redis.sh, Debian's redis-server) is the broker; PostgreSQL (scripts/postgres.sh)
the metadata database and the result backend. Two ``airflow celery worker`` processes, each
with its own ``PULSAR2MYSQL_BIN`` (a wrapper that records which worker ran which partition)
and working directory: worker A serves only the dedicated queue ``pulsar2mysql`` the sync
tasks are routed to, worker B that queue and ``default`` (``sync_summary``). The first task
worker A runs is left hanging after its runner committed, and worker A is then killed with
SIGKILL, its task's processes with it (a machine lost mid-task): the scheduler finds the task
a zombie and retries it, on worker B. Checked: every record once, both workers ran sync tasks,
every task lost with worker A was retried on B (the hung one's retry wrote nothing), and
``sync_summary`` is the sum of the tasks' summaries.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from conftest import AIRFLOW_MAJOR, VENV_BIN, Database, kill_group, kill_processes_using, wait_for
from test_fan_out import Postgres, partitioned_topic, produce_unbatched

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(AIRFLOW_MAJOR != 2, reason="the Celery run is on Airflow 2.10 (InLong's Airflow)"),
]

PARTITIONS = 16
RECORDS = 3200
POOL_SLOTS = 24  # 8 sync tasks at once (3 slots each), 4 per worker

# The worker's runner: the real one, then its partitions noted in the worker's own file. On
# worker A the first task, once its runner has committed, hangs (until SIGKILL) instead of
# ending: the worker is lost mid-task.
WRAPPER = """#!/bin/sh
out=$("{runner}" "$@"); rc=$?
printf '%s\\n' "$out"
parts=$(printf '%s\\n' "$*" | sed -n 's/.*--partitions \\([0-9,]*\\).*/\\1/p')
echo "$parts $rc" >>"{here}/ran"
if [ "{hang}" = yes ] && mkdir "{here}/hung" 2>/dev/null; then
    printf '%s\\n' "$out" | tail -n 1 >"{here}/hung/summary.json"
    echo "$parts" >"{here}/hung/partitions"
    sleep 600
fi
exit $rc
"""


def test_fan_out_over_two_celery_workers_survives_a_killed_worker(airflow_home, db: Database, monkeypatch, tmp_path):
    pg_url = os.environ.get("P2M_POSTGRES_URL")
    redis_url = os.environ.get("P2M_REDIS_URL")
    if not pg_url or not redis_url:
        pytest.fail("P2M_POSTGRES_URL / P2M_REDIS_URL are not set: airflow/run-tests.sh starts "
                    "scripts/postgres.sh and scripts/redis.sh")
    pg = Postgres(pg_url)
    try:
        _celery(airflow_home, db, monkeypatch, tmp_path, pg, redis_url)
    finally:
        pg.drop()


def _celery(airflow_home, db, monkeypatch, tmp_path, pg, redis_url):
    topic = partitioned_topic(PARTITIONS)
    start, end = produce_unbatched(topic, RECORDS)

    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", pg.url)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    home = airflow_home("pulsar2mysql_example.py")
    dag_file = home.dags / "pulsar2mysql_example.py"
    text = dag_file.read_text()
    for old, new in (
        ('TOPIC = "persistent://public/default/test"', f"TOPIC = {topic!r}"),
        ("PARTITIONS = 0\n", f"PARTITIONS = {PARTITIONS}\n"),
        ("schedule=CronDataIntervalTimetable(SCHEDULE, timezone=TIMEZONE),", "schedule=None,"),
        ("default_args=DEFAULT_TASK_ARGS,",
         'default_args={**DEFAULT_TASK_ARGS, "retries": 2, "retry_delay": __import__("datetime").timedelta(seconds=1),'
         ' "retry_exponential_backoff": False, "execution_timeout": __import__("datetime").timedelta(seconds=300)},'),
        # The sync tasks go to the dedicated queue (README, "The same DAG on Celery").
        ("        partitions_per_task=PARTITIONS_PER_TASK,\n",
         '        partitions_per_task=PARTITIONS_PER_TASK,\n        task_args={"queue": "pulsar2mysql"},\n'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    dag_file.write_text(text)

    # Each test its own Redis database (0-15), so a leftover message of another run is not ours.
    broker = f"{redis_url}/{int(time.time()) % 16}"
    home.env.update({
        "AIRFLOW_CONN_PULSAR2MYSQL_MYSQL": db.conn_uri(),
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg.url.replace("postgresql+psycopg2", "postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
        # A killed worker's running task stops heartbeating: a zombie after 20 s, then retried.
        "AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD": "20",
        "AIRFLOW__SCHEDULER__ZOMBIE_DETECTION_INTERVAL": "3",
        # A task the killed worker had received but not yet started stays "queued" (its Celery
        # message unacknowledged until Redis' visibility timeout, 6 h): the scheduler sends it
        # again after task_queued_timeout (600 s by default).
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
    })
    home.airflow("pools", "set", "pulsar2mysql", str(POOL_SLOTS), "MySQL connections of pulsar2mysql tasks")

    procs, logs = {}, {}

    def launch(name: str, args: list[str], env: dict, cwd):
        logs[name] = home.root / f"{name}.log"
        procs[name] = subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=env, cwd=cwd,
                                       stdout=logs[name].open("w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)

    def tail() -> str:
        return "\n".join(f"--- {n} (last lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
                         for n, p in logs.items())

    workers = {}
    for name, queues, hang in (("worker_a", "pulsar2mysql", "yes"), ("worker_b", "default,pulsar2mysql", "no")):
        here = tmp_path / name
        here.mkdir()
        wrapper = here / "pulsar2mysql"
        wrapper.write_text(WRAPPER.format(runner=home.env["PULSAR2MYSQL_BIN"], here=here, hang=hang))
        wrapper.chmod(0o755)
        workers[name] = here
        env = {**home.env, "PULSAR2MYSQL_BIN": str(wrapper)}
        launch(name, ["celery", "worker", "-q", queues, "-c", "4", "-H", f"{name}@%h", "--skip-serve-logs",
                     "--pid", str(here / "worker.pid"), "--without-gossip", "--without-mingle"], env, here)
    launch("scheduler", ["scheduler"], home.env, home.root)

    dag_id = "pulsar2mysql_example"
    try:
        wait_for("the DAG to be parsed", lambda: pg.query("SELECT 1 FROM dag WHERE dag_id = %s", dag_id), 180, tail)
        home.airflow("dags", "trigger", dag_id, "-r", "celery", "-c", json.dumps({"from": start, "to": end}))
        hung = workers["worker_a"] / "hung"
        wait_for("worker A to be mid-task", lambda: (hung / "partitions").exists(), 300, tail)
        # SIGKILL: the worker, its pool processes, and the task's processes (in sessions of
        # their own, found by worker A's directory in their environment).
        kill_group(procs["worker_a"])
        kill_processes_using(workers["worker_a"])
        procs["worker_a"].wait(timeout=30)
        killed_at = time.time()
        state = wait_for("the run to end", lambda: next(
            (s for (s,) in pg.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = 'celery'", dag_id)
             if s in ("success", "failed")), None), 400, tail)
    finally:
        for p in procs.values():
            kill_group(p)
            p.wait(timeout=30)
        for here in workers.values():
            kill_processes_using(here)

    tis = pg.query("SELECT map_index, state, try_number, hostname, queue FROM task_instance"
                   " WHERE dag_id = %s AND run_id = 'celery' AND task_id = 'sync' ORDER BY map_index", dag_id)
    print("mapped tasks (CeleryExecutor, 2 workers):\n" + "\n".join(f"  p{m:<2} {s:8} try {t} queue {q}"
                                                                      for m, s, t, _, q in tis))
    assert state == "success", f"{tis}\n{tail()}"
    assert all(s == "success" for _, s, *_ in tis) and {q for *_, q in tis} == {"pulsar2mysql"}, tis
    requeued = pg.query("SELECT count(*) FROM log WHERE dag_id = %s AND event = 'stuck in queued reschedule'",
                        dag_id)[0][0]
    print(f"tasks sent again after being stuck in queued on the killed worker: {requeued}")

    # Exactly once.
    assert db.rows() == [(i, f"msg-{i}") for i in range(RECORDS)]

    # Both workers ran sync tasks; every task lost with worker A (the hung one, and any other it
    # was running) was retried, on B.
    ran = {name: [line.split() for line in (here / "ran").read_text().splitlines()]
           for name, here in workers.items() if (here / "ran").exists()}
    print(f"partitions run (partition, runner exit code): {ran}")
    assert ran.get("worker_a") and ran.get("worker_b"), ran
    killed = (hung / "partitions").read_text().strip()
    tries = {m: t for m, _, t, _, _ in tis}
    retried = sorted(m for m, t in tries.items() if t >= 2)
    assert int(killed) in retried, (killed, tis)
    ran_on_b = {parts for parts, rc in ran["worker_b"] if rc == "0"}
    assert all(str(m) in ran_on_b for m in retried), (retried, ran)
    print(f"worker A killed mid-task (partition {killed} hung after its commit); tasks lost with it and "
          f"retried on worker B: {retried}; the run ended {time.time() - killed_at:.0f}s after the kill at the latest")

    # sync_summary adds the tasks' summaries (their last tries) up; the hung task's retry found
    # its rows committed and wrote none.
    summaries = {m: json.loads(bytes(v)) for m, v in pg.query(
        "SELECT map_index, value FROM xcom WHERE dag_id = %s AND run_id = 'celery' AND task_id = 'sync'"
        " AND key = 'return_value'", dag_id)}
    assert sorted(summaries) == list(range(PARTITIONS)), sorted(summaries)
    first_try = json.loads((hung / "summary.json").read_text())
    assert first_try["exit_code"] == 0 and first_try["rows_written"] > 0, first_try
    assert summaries[int(killed)]["rows_written"] == 0, summaries[int(killed)]
    (value,) = pg.query("SELECT value FROM xcom WHERE dag_id = %s AND run_id = 'celery' AND task_id = 'sync_summary'"
                        " AND key = 'return_value'", dag_id)[0]
    total = json.loads(bytes(value))
    print(f"sync_summary: {json.dumps({k: total[k] for k in ('tasks', 'records_read', 'rows_written', 'outcome')})}")
    assert total["tasks"] == PARTITIONS and total["outcome"] == "success"
    assert [p["partition"] for p in total["range"]["partitions"]] == list(range(PARTITIONS))
    for key in ("records_read", "rows_written"):
        assert total[key] == sum(x[key] for x in summaries.values()), key
    assert total["rows_written"] + first_try["rows_written"] <= RECORDS
