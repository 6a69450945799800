"""The benchmark's two DAGs for Airflow: `chain3` (t0 -> t1 -> t2) and `fan200` (start -> 198
tasks in parallel -> end). Every task is a TaskFlow function that returns a value (an XCom)
and reads its upstream's, as vigil's tasks do. Run by bench/orchestrators.py."""

from datetime import datetime

from airflow import DAG
from airflow.decorators import task


@task
def step(i, upstream=None):
    return i


def chain3():
    with DAG("chain3", start_date=datetime(2024, 1, 1), schedule=None, catchup=False) as dag:
        a = step.override(task_id="t0")(0)
        b = step.override(task_id="t1")(1, a)
        step.override(task_id="t2")(2, b)
    return dag


def fan200():
    with DAG("fan200", start_date=datetime(2024, 1, 1), schedule=None, catchup=False) as dag:
        start = step.override(task_id="start")(0)
        middle = [step.override(task_id=f"t{i}")(i, start) for i in range(1, 199)]
        step.override(task_id="end")(199, middle)
    return dag


chain3_dag = chain3()
fan200_dag = fan200()
