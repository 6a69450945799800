"""scikit-learn's side of the risk-model benchmark (see bench/README.md).

Same file, same time-ordered hold-out (latest 20 %), same features, same grid and the same
5-fold stratified cross-validation on F1 as `vigil risk train`; prints one JSON object with
the search's wall time and the refitted best model's hold-out F1, ROC AUC and Brier score.
The columns default to vigil's simulator; `--features`, `--categorical`, `--label`,
`--positive` and `--time-column` read another export, as `vigil risk train`'s flags do.
Categorical columns go through scikit-learn's `TargetEncoder` (cross-fitted, inside the
pipeline, so each fold learns it from its own training rows) — the nearest scikit-learn has
to vigil's smoothed rollback share.

    python -m venv .venv && .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/risk_sklearn.py data/risk/deployments.csv --n-jobs 2
"""

import argparse
import json
import time

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import TargetEncoder

FEATURES = "latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures"


def depth(v):
    return None if v == "none" else int(v)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--trees", default="50,100,200")
    p.add_argument("--depth", default="none,5,10")
    p.add_argument("--min-samples", default="2,10")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--features", default=FEATURES)
    p.add_argument("--categorical", default="")
    p.add_argument("--label", default="rolled_back")
    p.add_argument("--positive", default="1")
    p.add_argument("--time-column", default="timestamp")
    a = p.parse_args()

    numeric = a.features.split(",")
    categorical = [c for c in a.categorical.split(",") if c]
    df = pd.read_csv(a.data, parse_dates=[a.time_column], dtype={a.label: str})
    df = df.reset_index().sort_values([a.time_column, "index"], kind="stable")
    cut = round((1 - a.holdout) * len(df))
    train, hold = df.iloc[:cut], df.iloc[cut:]
    columns = numeric + categorical
    x, y = train[columns], (train[a.label] == a.positive).to_numpy().astype(int)
    xh, yh = hold[columns], (hold[a.label] == a.positive).to_numpy().astype(int)

    def forest(**params):
        rf = RandomForestClassifier(random_state=a.seed, **params)
        if not categorical:
            return rf
        encode = ColumnTransformer(
            [("categories", TargetEncoder(target_type="binary", random_state=a.seed), categorical)],
            remainder="passthrough",
        )
        return Pipeline([("encode", encode), ("rf", rf)])

    prefix = "rf__" if categorical else ""
    grid = {
        prefix + "n_estimators": [int(t) for t in a.trees.split(",")],
        prefix + "max_depth": [depth(d) for d in a.depth.split(",")],
        prefix + "min_samples_split": [int(m) for m in a.min_samples.split(",")],
    }
    search = GridSearchCV(
        forest(),
        grid,
        scoring="f1",
        cv=StratifiedKFold(a.folds, shuffle=True, random_state=a.seed),
        n_jobs=a.n_jobs,
        refit=False,
    )
    t0 = time.perf_counter()
    search.fit(x, y)
    search_s = time.perf_counter() - t0

    best = {k.removeprefix(prefix): v for k, v in search.best_params_.items()}
    t0 = time.perf_counter()
    model = forest(n_jobs=a.n_jobs, **best).fit(x, y)
    refit_s = time.perf_counter() - t0
    proba = model.predict_proba(xh)[:, 1]
    t0 = time.perf_counter()
    model.predict_proba(xh)
    score_s = time.perf_counter() - t0
    print(json.dumps({
        "rows": len(df),
        "grid_points": len(search.cv_results_["params"]),
        "folds": a.folds,
        "n_jobs": a.n_jobs,
        "search_seconds": round(search_s, 2),
        "refit_seconds": round(refit_s, 2),
        "best": {k: v for k, v in best.items()},
        "cv_f1": round(float(search.best_score_), 4),
        "holdout_f1": round(float(f1_score(yh, proba > 0.5)), 4),
        "holdout_roc_auc": round(float(roc_auc_score(yh, proba)), 4),
        "holdout_brier": round(float(brier_score_loss(yh, proba)), 4),
        "score_rows_per_second": round(len(xh) / score_s),
    }))


if __name__ == "__main__":
    main()
