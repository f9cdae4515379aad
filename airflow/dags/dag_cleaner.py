"""Airflow DAG ``dag_cleaner``: removes InLong task DAG files. A drop-in for InLong's own.

* Triggered with ``{"inlong_group_id": "<id>"}`` (InLong Manager does so when a group is
  unregistered, then deletes the DAG through the API): removes that group's file; a file
  already gone is fine.
* Scheduled every 20 minutes, or triggered without a group id: removes the files of groups
  whose ``end_time`` passed more than ``[pulsar2mysql] cleanup_grace_seconds`` ago.
"""

from datetime import timedelta

import pendulum

from pulsar2mysql_airflow import DAG

try:
    from airflow.sdk import task
except ImportError:  # Airflow 2.10
    from airflow.decorators import task


with DAG(
    dag_id="dag_cleaner",
    description="InLong Manager: remove inlong_offline_task_<groupId> DAGs",
    schedule=timedelta(minutes=20),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["inlong", "pulsar2mysql"],
) as dag:

    @task(task_id="clean_task_dags", retries=0)
    def clean_task_dags(**context):
        from pulsar2mysql_inlong import remove_expired, remove_group

        group_id = (context["dag_run"].conf or {}).get("inlong_group_id")
        if group_id:
            removed = [group_id] if remove_group(group_id) else []
            print(f"group {group_id}: " + ("task DAG removed" if removed else "no task DAG (already removed)"))
        else:
            removed = remove_expired()
            print(f"expired task DAGs removed: {removed or 'none'}")
        return removed

    clean_task_dags()
