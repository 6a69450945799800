"""A second deployment history, unlike vigil's simulator: another team's export.

Different column names (`deploy_id`, `deployed_at`, `p95_latency_ms`, `error_pct`, ...), two
categorical features (`service`, `region`) that carry real signal, an outcome column that says
`rolled_back` or `kept`, and optionally empty cells. Used by the scikit-learn comparison
(bench/README.md) and by the worked example in docs/risk.md. Python's standard library only,
so it runs anywhere Python 3 does; the same seed writes the same files.

    python3 bench/team_history.py --rows 2000 --out team
    # team/history.csv (labelled) and team/candidates.csv (10 undecided deployments)
"""

import argparse
import csv
import datetime as dt
import math
import os
import random

# Service: (p95 latency baseline in ms, log-odds of a rollback on top of the rest).
SERVICES = {
    "checkout": (240.0, 0.9),
    "payments": (310.0, 0.7),
    "search": (120.0, -0.6),
    "catalog": (150.0, -0.3),
    "accounts": (180.0, 0.0),
    "notifications": (90.0, -0.9),
    "recommendations": (400.0, 0.4),
    "gateway": (60.0, 0.2),
}
# Region: (share of deployments, log-odds).
REGIONS = {"eu-west": (0.35, 0.0), "us-east": (0.35, 0.1), "us-west": (0.2, -0.1), "ap-south": (0.1, 0.6)}
COLUMNS = [
    "deploy_id", "deployed_at", "service", "region", "p95_latency_ms", "error_pct",
    "cpu_usage", "memory_usage", "diff_lines", "canary_failed_checks",
]


def deployment(rng, i, at, service=None, region=None):
    service = service or rng.choice(list(SERVICES))
    region = region or rng.choices(list(REGIONS), [w for w, _ in REGIONS.values()])[0]
    base, service_risk = SERVICES[service]
    troubled = rng.random() < 0.25
    latency = base * math.exp(rng.gauss(0.35 if troubled else 0.0, 0.25))
    error = min(100.0, rng.expovariate(1 / (2.5 if troubled else 0.8)))
    cpu = min(99.0, max(5.0, rng.gauss(55 + (12 if troubled else 0), 14)))
    memory = min(99.0, max(10.0, rng.gauss(62, 13)))
    diff = int(math.exp(rng.gauss(5.0, 1.3)))
    failed = min(6, int(rng.expovariate(1 / (1.2 if troubled else 0.3))))
    row = {
        "deploy_id": f"dep-{i:07d}",
        "deployed_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "service": service,
        "region": region,
        "p95_latency_ms": round(latency, 1),
        "error_pct": round(error, 3),
        "cpu_usage": round(cpu, 1),
        "memory_usage": round(memory, 1),
        "diff_lines": diff,
        "canary_failed_checks": failed,
    }
    z = (
        -3.6
        + service_risk
        + REGIONS[region][1]
        + 3.5 * math.log(latency / base)
        + 0.5 * error
        + 0.6 * failed
        + (1.8 if memory > 80 and diff > 500 else 0.0)
        + 0.04 * max(0.0, cpu - 70)
        + rng.gauss(0, 0.3)
    )
    return row, rng.random() < 1 / (1 + math.exp(-z))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--out", default="team")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--gaps", type=float, default=0.0, help="share of feature cells left empty")
    a = p.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    start = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    step = 365 * 86400 / max(a.rows, 1)
    numeric = COLUMNS[4:]
    with open(os.path.join(a.out, "history.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS + ["outcome"])
        w.writeheader()
        for i in range(a.rows):
            at = start + dt.timedelta(seconds=i * step + rng.uniform(0, step * 0.9))
            row, rolled_back = deployment(rng, i, at)
            for c in numeric + ["service", "region"]:
                if a.gaps and rng.random() < a.gaps:
                    row[c] = ""
            row["outcome"] = "rolled_back" if rolled_back else "kept"
            w.writerow(row)
    later = start + dt.timedelta(days=366)
    with open(os.path.join(a.out, "candidates.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for k in range(8):
            row, _ = deployment(rng, a.rows + k, later + dt.timedelta(hours=k))
            w.writerow(row)
        # Two the history never saw: a new service, and a latency far past any seen.
        row, _ = deployment(rng, a.rows + 8, later + dt.timedelta(hours=8), service="accounts")
        row["service"] = "ledger"
        w.writerow(row)
        row, _ = deployment(rng, a.rows + 9, later + dt.timedelta(hours=9), service="checkout")
        row.update(p95_latency_ms=25000.0, error_pct=9.5, canary_failed_checks=5)
        w.writerow(row)


if __name__ == "__main__":
    main()
