"""Example Airflow DAG: every interval, move what was published to a Pulsar topic during that
interval into a MySQL table, exactly once. Copy this file next to pulsar2mysql_airflow.py in
your dags folder and edit the constants below.

* Each run syncs ``[data_interval_start, data_interval_end)`` in epoch milliseconds.
* A manual run or backfill can pass its own window:
  ``airflow dags trigger pulsar2mysql_example -c '{"from": 1700000000000, "to": 1700000300000}'``
  (``from``/``to`` take anything the runner does: ms, RFC 3339, ``id:L:E``, earliest/latest).
* MySQL host, port, database, user and password come from the Connection ``MYSQL_CONN_ID``
  (``airflow connections add pulsar2mysql_mysql --conn-uri 'mysql://user:pw@host:3306/db'``);
  the password reaches the runner through its environment only, never the command line or log.
* The binary is ``$PULSAR2MYSQL_BIN`` on the worker, else ``pulsar2mysql`` on its PATH.
* The task fails with the runner (its exit code), retries with backoff (re-running a window
  never duplicates rows) except on exit 2 (configuration) and 5 (bad records), which fail at
  once, and pushes the runner's JSON summary to XCom (``return_value``) as a dict.
* Windows run in order: a window refuses to start while the previous one has not succeeded;
  after fixing it, clear it with the runs after it ("Future").
* The sync tasks take slots of the Airflow pool ``pulsar2mysql`` (create it:
  ``airflow pools set pulsar2mysql 48 "MySQL connections of pulsar2mysql tasks"``).
* Scale-out: ``PARTITIONS = 16`` (the topic's partition count) fans each window out into one
  mapped task per partition (``PARTITIONS_PER_TASK`` partitions per task), all over the same
  window, each with its own job id ``<DAG_ID>.p<N>`` (own checkpoints and lock), retried alone;
  ``sync_summary`` adds their summaries up. Keep the grouping fixed once a job has run.
"""

import pendulum

from pulsar2mysql_airflow import DAG, DEFAULT_TASK_ARGS, CronDataIntervalTimetable, sync_task

# --- edit these ----------------------------------------------------------------------------
DAG_ID = "pulsar2mysql_example"
TOPIC = "persistent://public/default/test"
TABLE = "sink_table"  # or "database.table"; the database defaults to the Connection's schema
MYSQL_CONN_ID = "pulsar2mysql_mysql"
PULSAR_URL = None  # None: the runner's default or $PULSAR2MYSQL_PULSAR_URL on the worker
SCHEDULE = "*/5 * * * *"  # Airflow (5-field) cron; each run covers the interval that just ended
TIMEZONE = "UTC"  # the cron's timezone
START_DATE = pendulum.datetime(2025, 1, 1, tz=TIMEZONE)
CATCHUP = False  # True: also sync every interval since START_DATE
RUNNER_OPTIONS = {
    # any `pulsar2mysql run` option except secrets, e.g.:
    # "columns": "id,name", "delimiter": "124", "mode": "upsert", "on_bad_record": "dead-letter",
}
# Fan-out over workers: the topic's partition count (or a list of indexes); 0 = one task reads
# every partition. PARTITIONS_PER_TASK partitions go to each mapped task.
PARTITIONS = 0
PARTITIONS_PER_TASK = 1
# -------------------------------------------------------------------------------------------

with DAG(
    dag_id=DAG_ID,
    description=f"Pulsar {TOPIC} -> MySQL {TABLE}, one window per interval",
    # Explicit data-interval timetable: Airflow 3 turns a bare cron string into a trigger
    # timetable whose runs have an empty interval.
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone=TIMEZONE),
    start_date=START_DATE,
    catchup=CATCHUP,  # on the DAG: Airflow ignores it in default_args
    max_active_runs=1,  # runs of one job id share the runner's lock: no point in overlapping
    default_args=DEFAULT_TASK_ARGS,
    tags=["pulsar2mysql"],
) as dag:
    sync_task(
        "sync",
        topic=TOPIC,
        table=TABLE,
        pulsar_url=PULSAR_URL,
        job_id=DAG_ID,
        mysql_conn_id=MYSQL_CONN_ID,
        partitions=PARTITIONS,
        partitions_per_task=PARTITIONS_PER_TASK,
        **RUNNER_OPTIONS,
    )
