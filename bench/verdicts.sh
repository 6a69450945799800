#!/usr/bin/env bash
# The degradation verdicts' error rates by simulation: A/A false-DEGRADED rate and power at
# 1×, 2× and 4× the floor for RMSE, MAE, R² and accuracy, paired and unpaired, at 30, 50, 200
# and 1,000 labelled rows; and hours to rollback under hourly checks — the percentile
# bootstrap with two DEGRADED checks in a row (vigil before) beside the t-interval with the
# sequential test (now). Prints Markdown tables (docs/model-rollback.md publishes them) and the
# result as JSON. Seeded: the same REPS gives the same tables.
#
#   bench/verdicts.sh          # 2,000 comparisons a cell (about 7 minutes on 2 cores)
#   REPS=400 bench/verdicts.sh # quicker, wider Monte Carlo margins
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q
if [ -n "${REPS:-}" ]; then
  exec target/release/vigil bench --scenario verdicts --size "$REPS"
fi
exec target/release/vigil bench --scenario verdicts
