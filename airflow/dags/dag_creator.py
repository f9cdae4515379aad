"""Airflow DAG ``dag_creator``: InLong Manager triggers it with a group's schedule as ``conf``;
it writes ``inlong_offline_task_<groupId>.py`` (a task DAG that runs pulsar2mysql) into the
dags folder. A drop-in for InLong's own dag_creator: same DAG id, same conf.

conf (InLong's DAGRunConf; null keys are present): ``inlong_group_id``, ``start_time`` and
``end_time`` (epoch ms), ``boundary_type`` ("time"), ``connection_id``, ``timezone``, and
``cron_expr`` (Quartz or Airflow cron) or ``seconds_interval`` ("0" = once).

An invalid conf fails the run with the reason in its task log (no retries: it would fail the
same way); InLong Manager never sees this, it only checks that the trigger was accepted.
Registering a group again (the Manager's update) rewrites its file with the new schedule; of two
registrations the one triggered later wins, whatever order the runs execute in (the Manager
triggers twice within half a second at approval). A conf with ``start_time == end_time`` is what
the Manager sends after a group delete failed inside InLong: the run ends (its task skipped, the
run green) with a line saying the group stays registered as it was. See pulsar2mysql_inlong.py
for the details.
"""

import pendulum

from pulsar2mysql_airflow import DAG

try:
    from airflow.sdk import task
except ImportError:  # Airflow 2.10
    from airflow.decorators import task


with DAG(
    dag_id="dag_creator",
    description="InLong Manager: create or update an inlong_offline_task_<groupId> DAG",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    # Runs one at a time, in trigger order; register() also keeps the later registration if an
    # executor runs them out of order.
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["inlong", "pulsar2mysql"],
) as dag:

    @task(task_id="create_task_dag", retries=0)
    def create_task_dag(**context):
        from airflow.exceptions import AirflowSkipException

        from pulsar2mysql_inlong import DeleteEcho, InvalidConf, register, registration_time_ms, spec_from_conf

        conf = context["dag_run"].conf
        try:
            spec = spec_from_conf(conf)
        except DeleteEcho as e:
            print(f"NOT A REGISTRATION: {e}")
            raise AirflowSkipException(str(e)) from None
        except InvalidConf as e:
            # InLong Manager only checks that the trigger was accepted: this log line and the
            # failed run are the only trace of a refused group.
            group = (conf or {}).get("inlong_group_id") if isinstance(conf, dict) else None
            print(f"REFUSED InLong group {group!r}: {e}; no task DAG was written or changed")
            raise
        path = register(spec, registration_time_ms(context["dag_run"]))
        if path is None:
            return None
        print(f"wrote {path} for InLong group {spec['group_id']}: {spec['schedule']}")
        return str(path)

    create_task_dag()
