"""Airflow DAG ``dag_cleaner``: removes InLong task DAGs. A drop-in for InLong's own.

* Triggered with ``{"inlong_group_id": "<id>"}`` (InLong Manager does so when a group is
  unregistered, with the id sent as ``inlong_offline_task_inlong_offline_task_<groupId>``, then
  DELETEs the DAG through the API without waiting): removes that group's file, any number of
  leading ``inlong_offline_task_`` prefixes stripped; a file already gone is fine.
* Scheduled every 20 minutes, or triggered without a group id: removes the files of groups
  whose ``end_time`` passed more than ``[pulsar2mysql] cleanup_grace_seconds`` ago.

On Airflow 2 the removed DAGs are then deleted from Airflow's database too: the Manager's
DELETE comes before the file is gone, so Airflow would re-parse the file and bring the DAG
back (see ``forget_dags`` in pulsar2mysql_inlong.py).

The groups' Pushgateway metrics (job ``inlong_<groupId>`` and its fan-out ids) are deleted
too, when the workers push to one (``PULSAR2MYSQL_PUSHGATEWAY_URL`` or ``[pulsar2mysql]
pushgateway_url``): a group left there keeps its last success timestamp and would make the
"no success for two hours" alert fire forever. Also when its file was already gone, so a
cleaner run repeated for a group removed earlier still clears its metrics.
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
    # InLong Manager unpauses dag_cleaner only at its own start-up: if this file is parsed later,
    # nothing would ever unpause it.
    is_paused_upon_creation=False,
    tags=["inlong", "pulsar2mysql"],
) as dag:

    # Retries: deleting a DAG waits for its running task; each retry finds the file already
    # gone and finishes the deletion.
    @task(task_id="clean_task_dags", retries=2, retry_delay=timedelta(minutes=1))
    def clean_task_dags(**context):
        from airflow.exceptions import AirflowFailException

        from pulsar2mysql_inlong import (
            TASK_PREFIX, InvalidConf, cleaner_group_id, forget_dags, remove_expired, remove_group, task_dag_id,
        )

        value = (context["dag_run"].conf or {}).get("inlong_group_id")
        if value:
            try:
                group_id = cleaner_group_id(value)
            except InvalidConf as e:  # no retry: it would be refused the same way
                raise AirflowFailException(f"REFUSED: {e}; nothing was removed") from None
            removed = remove_group(group_id)
            print(f"group {group_id}: " + ("task DAG file removed" if removed else "no task DAG file (already removed)"))
            dag_ids = [task_dag_id(group_id)]
        else:
            removed = remove_expired()
            print(f"expired task DAG files removed: {removed or 'none'}")
            dag_ids = [name[: -len(".py")] for name in removed]
        forget_dags(dag_ids, files_removed=bool(removed))
        forget_metrics([dag_id[len(TASK_PREFIX):] for dag_id in dag_ids])
        return dag_ids

    def forget_metrics(group_ids):
        from pulsar2mysql_airflow import delete_metric_groups, pushgateway_url
        from pulsar2mysql_inlong import job_id

        if not pushgateway_url():
            print("no Pushgateway configured (PULSAR2MYSQL_PUSHGATEWAY_URL): no metrics to delete")
            return
        failed = []
        for group_id in group_ids:
            try:
                deleted = delete_metric_groups(job_id(group_id))
                print(f"group {group_id}: Pushgateway groups deleted: {deleted or 'none'}")
            except OSError as e:
                failed.append(f"{group_id}: {e}")
        if failed:  # retried: the file and the DAG are gone already, only this is left to do
            raise RuntimeError("could not delete Pushgateway metrics of " + "; ".join(failed))

    clean_task_dags()
