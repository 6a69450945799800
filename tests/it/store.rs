//! The store's guarantees, on a real SQLite file: conditional updates, all-or-nothing batches,
//! results committed with their success, one run per logical date.

use chrono::Utc;
use serde_json::json;
use vigil::state::{RunState, TaskState};
use vigil::store::{Batch, StoreError, TaskInstance, TaskTransition};

use crate::util::Engine;

fn transition(
    from: &TaskInstance,
    state: TaskState,
    attempt: u32,
    output: Option<serde_json::Value>,
) -> TaskTransition {
    let mut to = from.clone();
    to.state = state;
    to.attempt = attempt;
    to.updated_at = Utc::now();
    TaskTransition {
        expect_state: from.state,
        expect_attempt: from.attempt,
        to,
        output,
        clear_output: false,
        logs: vec![],
        logs_attempt: attempt,
    }
}

async fn instance(engine: &Engine, run_id: i64, task: &str) -> TaskInstance {
    engine
        .store
        .task_instances(run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.task_id == task)
        .unwrap()
}

#[tokio::test]
async fn a_stale_conditional_update_changes_nothing() {
    let engine = Engine::new().await;
    let dag = engine.dag("[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\n");
    let run = engine.create(&dag, json!({})).await;
    let a0 = instance(&engine, run.id, "a").await;
    let b0 = instance(&engine, run.id, "b").await;

    // Writer 1 moves `a` to queued.
    let mut first = Batch::new(run.id);
    first
        .tasks
        .push(transition(&a0, TaskState::Queued, 0, None));
    engine.store.commit(&first).await.unwrap();

    // Writer 2 still believes `a` is scheduled; its batch also touches `b`.
    let mut stale = Batch::new(run.id);
    stale
        .tasks
        .push(transition(&b0, TaskState::Queued, 0, None));
    stale
        .tasks
        .push(transition(&a0, TaskState::Running, 1, None));
    let err = engine.store.commit(&stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("task `a` is no longer scheduled"),
        "{err}"
    );

    // Nothing of the stale batch was written, not even the part that matched.
    assert_eq!(
        instance(&engine, run.id, "a").await.state,
        TaskState::Queued
    );
    assert_eq!(
        instance(&engine, run.id, "b").await.state,
        TaskState::Scheduled
    );
}

#[tokio::test]
async fn a_result_is_committed_with_its_success_and_cleared_by_a_new_attempt() {
    let engine = Engine::new().await;
    let dag = engine.dag("[tasks.a]\ntype = \"noop\"\n");
    let run = engine.create(&dag, json!({})).await;
    let a0 = instance(&engine, run.id, "a").await;
    let mut b = Batch::new(run.id);
    b.tasks.push(transition(
        &a0,
        TaskState::Success,
        1,
        Some(json!({"rows": 3})),
    ));
    engine.store.commit(&b).await.unwrap();
    let out = engine.store.output(run.id, "a").await.unwrap().unwrap();
    assert_eq!((out.value.clone(), out.attempt), (json!({"rows": 3}), 1));

    // A new attempt (e.g. a rerun) must not be able to read the old result.
    let a1 = instance(&engine, run.id, "a").await;
    let mut t = transition(&a1, TaskState::Running, 2, None);
    t.clear_output = true;
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    engine.store.commit(&b).await.unwrap();
    assert!(engine.store.output(run.id, "a").await.unwrap().is_none());
}

#[tokio::test]
async fn one_run_per_dag_and_logical_date() {
    let engine = Engine::new().await;
    let dag = engine.dag("[tasks.a]\ntype = \"noop\"\n");
    let when = Utc::now();
    let new = vigil::run::plan_run(
        &dag,
        json!({}),
        vigil::store::RunType::Scheduled,
        when,
        RunState::Queued,
        None,
    )
    .unwrap();
    let first = engine.store.create_run(&new).await.unwrap();
    let err = engine.store.create_run(&new).await.unwrap_err();
    match err {
        StoreError::RunExists { existing, .. } => assert_eq!(existing, first.id),
        other => panic!("expected RunExists, got {other}"),
    }
    assert_eq!(engine.store.count_runs(RunState::Queued).await.unwrap(), 1);
    assert_eq!(
        engine.store.task_instances(first.id).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn run_state_changes_are_conditional_too() {
    let engine = Engine::new().await;
    let dag = engine.dag("[tasks.a]\ntype = \"noop\"\n");
    let run = engine.create(&dag, json!({})).await;
    let mut b = Batch::new(run.id);
    b.run = Some(vigil::store::RunTransition {
        expect: RunState::Running,
        to: RunState::Success,
        at: Utc::now(),
    });
    let err = engine.store.commit(&b).await.unwrap_err();
    assert!(
        err.to_string().contains("run is no longer running"),
        "{err}"
    );
    let stored = engine.store.run(run.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RunState::Queued);
}

#[tokio::test]
async fn the_stricter_durability_setting_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, expected) in [
        (vigil::store::Synchronous::Normal, "1"),
        (vigil::store::Synchronous::Full, "2"),
    ] {
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = vigil::store::SqliteStore::open(&url, setting)
            .await
            .unwrap();
        let level = store.pragma("synchronous").await.unwrap();
        assert_eq!(level, expected, "{setting:?}");
        let mode = store.pragma("journal_mode").await.unwrap();
        assert_eq!(mode, "wal");
    }
}

/// Runs of one DAG version share one stored copy of its source (a 1 MiB DAG once wrote
/// 1 MiB per run); each run still reads back the exact source it was created from, and
/// retention removes a source no run needs any more.
#[tokio::test]
async fn runs_share_one_copy_of_each_dag_source() {
    let e = Engine::new().await;
    let padding = format!("# {}\n", "x".repeat(100_000));
    let v1 = e.dag(&format!("{padding}[tasks.a]\ntype = \"noop\"\n"));
    let v2 = e.dag(&format!(
        "{padding}[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\n"
    ));
    let mut ids = Vec::new();
    for i in 0..5 {
        let dag = if i < 4 { &v1 } else { &v2 };
        let run = e
            .create_at(dag, chrono::Utc::now() + chrono::Duration::seconds(i))
            .await;
        ids.push(run.id);
    }
    let url = format!("sqlite://{}", e.dir.path().join("vigil.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (sources, bytes): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(length(source)) FROM dag_sources")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(sources, 2, "one row per distinct source");
    assert!(bytes < 250_000, "{bytes} bytes of sources for 5 runs");
    let copies: i64 = sqlx::query_scalar("SELECT sum(length(dag_source)) FROM dag_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(copies, 0);
    assert_eq!(
        e.store.run(ids[0]).await.unwrap().unwrap().dag_source,
        v1.source
    );
    assert_eq!(
        e.store.run(ids[4]).await.unwrap().unwrap().dag_source,
        v2.source
    );
    // Finished and old: retention removes the runs and the sources with them.
    for id in &ids {
        sqlx::query(
            "UPDATE dag_runs SET state = 'success', ended_at = '2000-01-01T00:00:00Z' WHERE id = ?",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    }
    e.store.cleanup(chrono::Utc::now()).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_sources")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
