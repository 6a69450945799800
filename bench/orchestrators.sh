#!/usr/bin/env bash
# vigil beside Airflow and Prefect: per-task overhead on the same 3-task and 200-task DAGs
# (bench/orchestrators.py says how). Builds vigil in release mode and installs the pinned
# Airflow and Prefect into their own virtual environments (.venv-airflow, .venv-prefect) when
# missing. `bench/orchestrators.sh [REPS] [JSON-OUT]`; about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-3}"
json="${2:-}"
for tool in airflow prefect; do
    if [ ! -x ".venv-$tool/bin/python" ]; then
        python3 -m venv ".venv-$tool"
        ".venv-$tool/bin/pip" install -q -r "bench/requirements-$tool.txt"
    fi
done
cargo build --locked --release -q
python3 bench/orchestrators.py --vigil target/release/vigil \
    --airflow-venv .venv-airflow --prefect-venv .venv-prefect --reps "$reps" ${json:+--json "$json"}
