//! Limits under load: `max_active_tasks` and `parallelism` queue work and never wedge it.
//! Every test here checks both sides of a limit: it held (never more running than allowed)
//! and the work behind it finished.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil::state::RunState;

use crate::util::{Engine, Project, wait_for_secs};

/// Runs of several DAGs competing for a small `parallelism` and their own
/// `max_active_tasks`, executed concurrently in one process: every run finishes, and the
/// limits hold at every moment the store records.
#[tokio::test(flavor = "current_thread")]
async fn many_runs_competing_for_small_limits_all_finish() {
    let e = Engine::new().await;
    let executor = e.executor(2);
    let mut dags = Vec::new();
    for (name, max) in [("a", 1), ("b", 2), ("c", 1)] {
        dags.push((
            name,
            e.dag(&format!(
                "id = \"{name}\"\nmax_active_tasks = {max}\n\
             [tasks.one]\ntype = \"sleep\"\nconfig = {{ duration = \"5ms\" }}\n\
             [tasks.two]\ntype = \"sleep\"\nconfig = {{ duration = \"5ms\" }}\n\
             [tasks.three]\ntype = \"noop\"\ndepends_on = [\"one\", \"two\"]\n"
            )),
        ));
    }
    let mut set = tokio::task::JoinSet::new();
    let mut runs = Vec::new();
    for round in 0..12 {
        for (_, dag) in &dags {
            let run = e
                .create_at(
                    dag,
                    chrono::Utc::now() + chrono::Duration::seconds(round * 10),
                )
                .await;
            runs.push(run.id);
            let executor = executor.clone();
            let dag = dag.clone();
            set.spawn(async move { executor.execute(dag, run, None).await });
        }
    }
    // Sample the store while the runs compete, one consistent snapshot per query: stored
    // states never exceed the limits.
    let url = format!("sqlite://{}", e.dir.path().join("vigil.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let watcher = tokio::spawn(async move {
        let mut peak_total = 0;
        let mut peak_per_dag: BTreeMap<String, i64> = BTreeMap::new();
        for _ in 0..300 {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT r.dag_id, COUNT(*) FROM task_instances t JOIN dag_runs r ON r.id = t.run_id \
                 WHERE t.state = 'running' GROUP BY r.dag_id",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            peak_total = peak_total.max(rows.iter().map(|(_, n)| n).sum::<i64>());
            for (d, n) in rows {
                let p = peak_per_dag.entry(d).or_default();
                *p = (*p).max(n);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (peak_total, peak_per_dag)
    });
    let mut finished = 0;
    while let Some(joined) = set.join_next().await {
        assert_eq!(joined.unwrap().unwrap(), RunState::Success);
        finished += 1;
    }
    assert_eq!(finished, 36, "every run finishes");
    let (peak_total, peak_per_dag) = watcher.await.unwrap();
    assert!(peak_total <= 2, "parallelism 2 held: {peak_total}");
    assert!(
        peak_per_dag.get("a").copied().unwrap_or(0) <= 1,
        "{peak_per_dag:?}"
    );
    assert!(
        peak_per_dag.get("c").copied().unwrap_or(0) <= 1,
        "{peak_per_dag:?}"
    );
    assert!(peak_total >= 1, "the watcher saw tasks running");
}

fn sleeper(max_active_tasks: u32) -> String {
    format!(
        "max_active_tasks = {max_active_tasks}\n[tasks.nap]\ntype = \"sleep\"\nconfig = {{ duration = \"1s\" }}\n"
    )
}

fn all_succeeded(p: &Project, n: usize) -> bool {
    let runs = p.runs();
    runs.len() == n && runs.iter().all(|r| r["state"] == "success")
}

/// The defect as it was seen: three manual runs of a DAG with `max_active_tasks = 1` under a
/// running daemon; the first succeeded and the others stayed `running` forever.
#[test]
fn runs_waiting_for_a_dag_slot_finish_under_the_daemon() {
    let p = Project::new();
    p.write("dags/one.toml", &sleeper(1));
    let d = p.daemon(&[]);
    for n in 1..=3 {
        p.vigil(&[
            "dags",
            "trigger",
            "one",
            "--logical-date",
            &format!("2034-01-0{n}"),
        ])
        .expect(0);
    }
    wait_for_secs("three runs to succeed", 60, || all_succeeded(&p, 3));
    // The limit held: the three one-second tasks ran one after the other.
    let mut spans: Vec<(String, String)> = (1..=3)
        .map(|id| {
            let shown = p
                .vigil(&["runs", "show", &id.to_string(), "--json"])
                .expect(0)
                .json();
            let t = &shown["tasks"][0];
            (
                t["started_at"].as_str().unwrap().to_string(),
                t["ended_at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "tasks overlapped: {spans:?}");
    }
    assert_eq!(d.terminate(), 0);
}

/// The same with `VIGIL_PARALLELISM=1` and three DAGs competing for the one global slot.
#[test]
fn runs_of_several_dags_waiting_for_the_global_slot_finish() {
    let p = Project::new();
    for name in ["x", "y", "z"] {
        p.write(&format!("dags/{name}.toml"), &sleeper(4));
    }
    p.write(
        "config/vigil.toml",
        "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n[executor]\nparallelism = 1\n",
    );
    let d = p.daemon(&[]);
    for name in ["x", "y", "z"] {
        for n in 1..=2 {
            p.vigil(&[
                "dags",
                "trigger",
                name,
                "--logical-date",
                &format!("2034-01-0{n}"),
            ])
            .expect(0);
        }
    }
    wait_for_secs("six runs to succeed", 90, || all_succeeded(&p, 6));
    assert_eq!(d.terminate(), 0);
}

/// Many concurrent triggers of short tasks under the default limits all finish (the
/// defect stalled after 32 tasks, the default parallelism).
#[test]
fn a_burst_of_triggers_beyond_parallelism_all_finish() {
    let p = Project::new();
    p.write(
        "dags/burst.toml",
        "max_active_runs = 100\nmax_active_tasks = 100\n[tasks.nap]\ntype = \"sleep\"\nconfig = { duration = \"300ms\" }\n",
    );
    p.write(
        "config/vigil.toml",
        "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n[executor]\nparallelism = 4\n",
    );
    let d = p.daemon(&[]);
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let dir = p.path().to_path_buf();
            std::thread::spawn(move || {
                let day =
                    chrono::NaiveDate::from_ymd_opt(2034, 1, 1).unwrap() + chrono::Days::new(i);
                let status = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                    .current_dir(dir)
                    .args(["dags", "trigger", "burst", "--logical-date"])
                    .arg(day.to_string())
                    .env_remove("VIGIL_CONFIG")
                    .output()
                    .unwrap();
                assert!(status.status.success(), "{status:?}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    wait_for_secs("forty runs to succeed", 120, || all_succeeded(&p, 40));
    assert_eq!(d.terminate(), 0);
}
