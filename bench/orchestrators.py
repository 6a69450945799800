"""Per-task overhead of vigil, Airflow and Prefect on the same two DAGs, in one invocation.

`chain3` is three tasks in a line; `fan200` is one task, 198 after it in parallel, and one
after those. Every task does nothing but return a value its downstream task receives (an
XCom / a task result), so what is measured is the orchestrator. Each tool runs one DAG run in
one process, its local way: `vigil dags test` (embedded SQLite), `airflow dags test` (SQLite
metadata database, migrated before timing), a Prefect flow run from Python against a
Prefect server started before timing. Wall time of the whole command, median of --reps after one untimed warm-up run.
The marginal per-task overhead, (T200 - T3) / 197, cancels each tool's fixed start-up cost.

Run through bench/orchestrators.sh, which builds vigil and installs Airflow and Prefect.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent / "orchestrators"


def vigil_dags(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chain = []
    for i in range(3):
        chain.append(f'[tasks.t{i}]\ntype = "noop"\n')
        if i > 0:
            chain.append(f'depends_on = ["t{i-1}"]\nconfig = {{ output = "{{{{ tasks.t{i-1}.output }}}}" }}\n')
        else:
            chain.append("config = { output = 0 }\n")
    (folder / "chain3.toml").write_text("\n".join(chain))
    fan = ['[tasks.start]\ntype = "noop"\nconfig = { output = 0 }\n']
    for i in range(1, 199):
        fan.append(
            f'[tasks.t{i}]\ntype = "noop"\ndepends_on = ["start"]\n'
            f'config = {{ output = "{{{{ tasks.start.output }}}}" }}\n'
        )
    middle = ", ".join(f'"t{i}"' for i in range(1, 199))
    fan.append(f'[tasks.end]\ntype = "noop"\ndepends_on = [{middle}]\nconfig = {{ output = 199 }}\n')
    (folder / "fan200.toml").write_text("\n".join(fan))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, seconds: int = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"the Prefect server did not answer {url} within {seconds} s")


def timed(cmd, env, cwd, reps, must_say=None):
    """Median wall seconds of `cmd` over `reps` runs, after one warm-up; fails loudly."""
    times = []
    for rep in range(reps + 1):
        start = time.perf_counter()
        out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        took = time.perf_counter() - start
        if out.returncode != 0 or (must_say and must_say not in out.stdout + out.stderr):
            sys.exit(f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        if rep > 0:
            times.append(took)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--airflow-venv", required=True)
    ap.add_argument("--prefect-venv", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    args.vigil = str(Path(args.vigil).resolve())
    args.airflow_venv = str(Path(args.airflow_venv).absolute())
    args.prefect_venv = str(Path(args.prefect_venv).absolute())

    work = Path(tempfile.mkdtemp(prefix="vigil-orch-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PREFECT", "VIGIL_"))}
    results = {}
    try:
        # vigil
        vdir = work / "vigil"
        vigil_dags(vdir / "dags")
        venv = dict(base_env)
        results["vigil"] = {
            dag: timed(
                [args.vigil, "--database", f"sqlite://{vdir}/vigil.db", "--dags", str(vdir / "dags"), "dags", "test", dag],
                venv, vdir, args.reps)
            for dag in ("chain3", "fan200")
        }
        # Airflow
        adir = work / "airflow"
        (adir / "dags").mkdir(parents=True)
        shutil.copy(HERE / "airflow_dags.py", adir / "dags")
        aenv = dict(base_env,
                    AIRFLOW_HOME=str(adir),
                    AIRFLOW__CORE__DAGS_FOLDER=str(adir / "dags"),
                    AIRFLOW__CORE__LOAD_EXAMPLES="False",
                    AIRFLOW__CORE__UNIT_TEST_MODE="False")
        airflow = str(Path(args.airflow_venv) / "bin" / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=aenv, cwd=adir, check=True, capture_output=True)
        # `airflow dags test` exits 0 even when a task fails: the run's end is checked too.
        results["airflow"] = {dag: timed([airflow, "dags", "test", dag], aenv, adir, args.reps, "state=success")
                              for dag in ("chain3", "fan200")}
        # Prefect
        pdir = work / "prefect"
        pdir.mkdir()
        penv = dict(base_env, PREFECT_HOME=str(pdir), PREFECT_LOGGING_LEVEL="WARNING",
                    # No network here: no telemetry.
                    PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
        # A standing Prefect server, started before timing (as Airflow's database is migrated
        # before timing): Prefect's recommended setup, and without it every flow would also
        # pay for starting a temporary one.
        port = free_port()
        server = subprocess.Popen(
            [str(Path(args.prefect_venv) / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=penv, cwd=pdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/health")
            penv["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
            python = str(Path(args.prefect_venv) / "bin" / "python")
            results["prefect"] = {dag: timed([python, str(HERE / "prefect_flows.py"), dag], penv, pdir, args.reps)
                                  for dag in ("chain3", "fan200")}
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    v = results["vigil"]
    v_marginal = (v["fan200"] - v["chain3"]) / 197
    for tool, t in results.items():
        marginal = (t["fan200"] - t["chain3"]) / 197
        rows.append({
            "tool": tool,
            "chain3_s": round(t["chain3"], 3),
            "fan200_s": round(t["fan200"], 3),
            "per_task_ms": round(marginal * 1000, 2),
            "chain3_x_vigil": round(t["chain3"] / v["chain3"], 1),
            "fan200_x_vigil": round(t["fan200"] / v["fan200"], 1),
            "per_task_x_vigil": round(marginal / v_marginal, 1) if v_marginal > 0 else None,
        })
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; median of {args.reps} runs after a warm-up")
    print()
    print("| tool | 3-task DAG | 200-task DAG | per task (marginal) | 3-task × vigil | 200-task × vigil | per task × vigil |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['chain3_s']:.3f} s | {r['fan200_s']:.3f} s | {r['per_task_ms']:.2f} ms | "
              f"{r['chain3_x_vigil']} | {r['fan200_x_vigil']} | {r['per_task_x_vigil']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"reps": args.reps, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
