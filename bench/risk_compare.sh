#!/usr/bin/env bash
# vigil's risk model beside scikit-learn's RandomForestClassifier + GridSearchCV, on two data
# sets — vigil's own simulator and another team's export (bench/team_history.py: other column
# names, two categorical features, a text outcome) — at the sizes given (default 2000 200000).
# Same file, same time-ordered hold-out, same 9-point grid (trees {50,100,200} × depth
# {none,5,10}, min samples 2), same 5 stratified folds. Prints one JSON object per run and a
# Markdown table at the end. See bench/README.md.
#
#   bench/risk_compare.sh            # 2,000 and 200,000 rows (about 20 minutes on 2 cores)
#   bench/risk_compare.sh 2000       # one size
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000 200000)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$root/.venv/bin/python" ]; then
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/pip" install -q -r "$root/bench/requirements.txt"
fi
(cd "$root" && cargo build --release -q)
vigil="$root/target/release/vigil"

team_spec=(--features p95_latency_ms,error_pct,cpu_usage,memory_usage,diff_lines,canary_failed_checks
           --categorical service,region --label outcome --positive rolled_back)
results="$work/results.jsonl"

for rows in "${sizes[@]}"; do
  for data in simulator team; do
    dir="$work/$data-$rows"
    mkdir -p "$dir"
    if [ "$data" = simulator ]; then
      "$vigil" risk simulate --rows "$rows" --out "$dir" > /dev/null
      file="$dir/deployments.csv"
      vigil_spec=()
      sk_spec=()
    else
      python3 "$root/bench/team_history.py" --rows "$rows" --out "$dir"
      file="$dir/history.csv"
      vigil_spec=("${team_spec[@]}" --id-column deploy_id --time-column deployed_at --group-column service)
      sk_spec=("${team_spec[@]}" --time-column deployed_at)
    fi
    "$vigil" --database "sqlite://$dir/vigil.db" risk train --data "$file" --out "$dir/models" \
      --grid min_samples=2 "${vigil_spec[@]}" --json 2> /dev/null |
      python3 -c '
import json, sys
d = json.load(sys.stdin)
m, s = d["metrics"], d["search"]
best = max(s["scored"], key=lambda r: r["mean_f1"])
print(json.dumps({"tool": "vigil", "data": sys.argv[1], "rows": int(sys.argv[2]),
  "search_seconds": round(s["seconds"], 2), "best": {k: best[k] for k in ("trees", "max_depth")},
  "holdout_f1": round(m["f1"], 4), "holdout_roc_auc": round(m["roc_auc"], 4),
  "holdout_brier": round(m["brier"], 4)}))' "$data" "$rows" | tee -a "$results"
    "$root/.venv/bin/python" "$root/bench/risk_sklearn.py" "$file" --min-samples 2 "${sk_spec[@]}" |
      python3 -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps({"tool": "scikit-learn", "data": sys.argv[1], "rows": int(sys.argv[2]),
  "search_seconds": d["search_seconds"], "best": {"trees": d["best"]["n_estimators"], "max_depth": d["best"]["max_depth"]},
  "holdout_f1": d["holdout_f1"], "holdout_roc_auc": d["holdout_roc_auc"], "holdout_brier": d["holdout_brier"]}))' "$data" "$rows" | tee -a "$results"
  done
done

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| data | rows | search: scikit-learn | search: vigil | × | F1 sklearn / vigil | ROC AUC sklearn / vigil | Brier sklearn / vigil |")
print("|---|---|---|---|---|---|---|---|")
for v in (r for r in rows if r["tool"] == "vigil"):
    s = next(r for r in rows if r["tool"] == "scikit-learn" and r["data"] == v["data"] and r["rows"] == v["rows"])
    print(f"| {v['data']} | {v['rows']:,} | {s['search_seconds']} s | {v['search_seconds']} s "
          f"| {s['search_seconds'] / max(v['search_seconds'], 1e-9):.0f} "
          f"| {s['holdout_f1']:.3f} / {v['holdout_f1']:.3f} | {s['holdout_roc_auc']:.3f} / {v['holdout_roc_auc']:.3f} "
          f"| {s['holdout_brier']:.4f} / {v['holdout_brier']:.4f} |")
EOF
