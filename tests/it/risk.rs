//! `vigil risk` through the real binary. So far: the deployment-history simulator.

use crate::util::Project;

#[test]
fn simulate_writes_the_same_files_for_the_same_seed() {
    let p = Project::new();
    p.vigil(&[
        "risk", "simulate", "--rows", "300", "--seed", "7", "--out", "a",
    ])
    .expect(0);
    p.vigil(&[
        "risk", "simulate", "--rows", "300", "--seed", "7", "--out", "b",
    ])
    .expect(0);
    let other = p
        .vigil(&[
            "risk", "simulate", "--rows", "300", "--seed", "8", "--out", "c", "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(other["rows"], 300);
    let read = |f: &str| std::fs::read_to_string(p.path().join(f)).expect("csv written");
    assert_eq!(read("a/deployments.csv"), read("b/deployments.csv"));
    assert_eq!(read("a/new_deployments.csv"), read("b/new_deployments.csv"));
    assert_ne!(read("a/deployments.csv"), read("c/deployments.csv"));

    let history = read("a/deployments.csv");
    let mut lines = history.lines();
    assert_eq!(
        lines.next(),
        Some(
            "deployment_id,service,timestamp,latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures,rolled_back"
        )
    );
    assert_eq!(lines.count(), 300);
    let candidates = read("a/new_deployments.csv");
    assert!(
        candidates
            .lines()
            .next()
            .is_some_and(|h| !h.contains("rolled_back"))
    );
    assert!(candidates.contains("\nnew_risky,") && candidates.contains("\nnew_safe,"));

    let bad = p
        .vigil(&["risk", "simulate", "--rows", "3", "--out", "d"])
        .expect(1);
    assert!(
        bad.stderr().contains("--rows must be at least 10"),
        "{}",
        bad.stderr()
    );
}
