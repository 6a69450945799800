#!/usr/bin/env bash
# Crash torture at a chosen size: `scripts/torture.sh [RUNS] [SEED]` (default 1000 runs per
# store). Runs tests/it/torture.rs — the daemon on SQLite, then three daemons on PostgreSQL,
# killed with -9 at random moments and at the `failpoints` crash points — and prints each
# store's report line. CI runs the same tests at 200 runs.
# Needs PostgreSQL's server binaries (initdb, pg_ctl) for the second store, as `.ci/run` does.
set -euo pipefail
cd "$(dirname "$0")/.."
export VIGIL_TORTURE_RUNS="${1:-1000}"
[ -n "${2:-}" ] && export VIGIL_TORTURE_SEED="$2"
export VIGIL_TEST_POSTGRES=required
log=$(mktemp)
status=0
cargo test --locked --test it torture:: -- --nocapture --test-threads 1 >"$log" 2>&1 || status=$?
grep -E '^(torture|the tortured project)' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "torture failed (full output: $log)" >&2
    grep -E 'panicked|^  left|^ right' "$log" >&2 || true
    exit "$status"
fi
rm -f "$log"
