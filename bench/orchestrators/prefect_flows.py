"""The benchmark's two DAGs as Prefect flows: `chain3` (t0 -> t1 -> t2) and `fan200` (start ->
198 tasks -> end). Every task returns a value its downstream task receives. Run by
bench/orchestrators.py as `python prefect_flows.py chain3|fan200`."""

import sys

from prefect import flow, task


@task
def step(i, upstream=None):
    return i


@flow
def chain3():
    a = step(0)
    b = step(1, a)
    step(2, b)


@flow
def fan200():
    start = step.submit(0)
    middle = [step.submit(i, start) for i in range(1, 199)]
    step.submit(199, middle).result()


if __name__ == "__main__":
    {"chain3": chain3, "fan200": fan200}[sys.argv[1]]()
