"""Airflow DAG file for InLong groups registered in Airflow's database: one task DAG per group.

With ``[pulsar2mysql] registry = database`` (``AIRFLOW__PULSAR2MYSQL__REGISTRY=database``),
``dag_creator`` writes no file: it stores each group's schedule in the Airflow Variable
``pulsar2mysql_inlong_registrations``, and this file builds every registered group's
``inlong_offline_task_<groupId>`` DAG from it. For a dags folder Airflow's components cannot
write: mounted read-only (the project's docker/compose.yaml), synced by git-sync, or baked
into the KubernetesExecutor's image. With the default ``registry = files`` it defines nothing.
"""

from pulsar2mysql_inlong import registered_dags

for _dag_id, _dag in registered_dags().items():
    globals()[_dag_id] = _dag
