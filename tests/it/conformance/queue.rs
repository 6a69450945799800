//! The task queue several daemons share: claims, limits across runs, leases and fencing.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use vigil::state::{RunState, TaskState};
use vigil::store::{Batch, RunRecord, RunTransition, Store, StoreError, TaskInstance};

use super::{instance, new_run, transition};

const LEASE: Duration = Duration::from_secs(3600);

/// A running run of `dag` whose tasks are all queued, as an owner leaves them for workers.
async fn queued_run(store: &dyn Store, dag: &str, tasks: &[&str], limit: u32) -> RunRecord {
    let new = vigil::store::NewRun {
        max_active_tasks: limit,
        ..new_run(dag, Utc::now(), tasks)
    };
    let run = store.create_run(&new).await.expect("create run");
    let mut batch = Batch::new(run.id);
    batch.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Running,
        at: Utc::now(),
        note: None,
    });
    for ti in store.task_instances(run.id).await.unwrap() {
        batch
            .tasks
            .push(transition(&ti, TaskState::Queued, ti.attempt));
    }
    store.commit(&batch).await.expect("queue the tasks");
    run
}

/// Ends a claimed attempt as its worker would.
async fn end(store: &dyn Store, ti: &TaskInstance, state: TaskState) -> Result<(), StoreError> {
    let mut batch = Batch::new(ti.run_id);
    let mut t = transition(ti, state, ti.attempt);
    t.output = (state == TaskState::Success).then(|| serde_json::json!({"by": ti.worker}));
    batch.tasks.push(t);
    store.commit(&batch).await
}

fn names(claimed: &[TaskInstance]) -> Vec<(i64, String)> {
    claimed
        .iter()
        .map(|t| (t.run_id, t.task_id.clone()))
        .collect()
}

pub async fn queued_tasks_are_claimed_once_oldest_run_first_within_the_dags_limit(
    store: &dyn Store,
) {
    let first = queued_run(store, "d", &["a", "b", "c"], 2).await;
    let second = queued_run(store, "d", &["x"], 2).await;
    // Queued but its run is not running: nothing to give out.
    let waiting = store
        .create_run(&new_run("e", Utc::now(), &["t"]))
        .await
        .unwrap();
    assert!(store.claim_tasks("w1", 0).await.unwrap().is_empty());

    let claimed = store.claim_tasks("w1", 10).await.unwrap();
    assert_eq!(
        names(&claimed),
        [(first.id, "a".to_string()), (first.id, "b".to_string())],
        "max_active_tasks = 2 counts across the DAG's runs"
    );
    for t in &claimed {
        assert_eq!(t.state, TaskState::Running);
        assert_eq!(t.attempt, 1);
        assert_eq!(t.worker.as_deref(), Some("w1"));
        assert!(t.started_at.is_some());
    }
    assert_eq!(claimed[0], instance(store, first.id, "a").await);
    assert!(
        store.claim_tasks("w2", 10).await.unwrap().is_empty(),
        "the DAG's two slots are taken, whoever asks"
    );
    end(store, &claimed[0], TaskState::Success).await.unwrap();
    let next = store.claim_tasks("w2", 10).await.unwrap();
    assert_eq!(names(&next), [(first.id, "c".to_string())]);
    end(store, &claimed[1], TaskState::Success).await.unwrap();
    let last = store.claim_tasks("w2", 10).await.unwrap();
    assert_eq!(names(&last), [(second.id, "x".to_string())]);
    assert!(store.claim_tasks("w3", 10).await.unwrap().is_empty());
    assert_eq!(
        instance(store, waiting.id, "t").await.state,
        TaskState::Scheduled
    );

    // A run someone asked to cancel gives out nothing more.
    let cancelled = queued_run(store, "f", &["t"], 16).await;
    assert!(store.request_cancel(cancelled.id, "ops").await.unwrap());
    assert!(store.claim_tasks("w1", 10).await.unwrap().is_empty());
    assert_eq!(
        instance(store, cancelled.id, "t").await.state,
        TaskState::Queued
    );
}

pub async fn a_claimed_attempt_is_held_under_lease_and_a_stale_worker_changes_nothing(
    store: &dyn Store,
) {
    let run = queued_run(store, "d", &["a"], 16).await;
    let claimed = store.claim_tasks("w1", 1).await.unwrap();
    let ti = claimed.first().expect("claimed").clone();
    assert_eq!(
        store.held_by("w1").await.unwrap(),
        [(run.id, "a".to_string(), 1)]
    );
    assert!(store.held_by("w2").await.unwrap().is_empty());
    let leases = store.task_leases(run.id, LEASE).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].worker.as_deref(), Some("w1"));
    assert!(!leases[0].expired, "{leases:?}");
    // Its worker's heartbeat keeps it; a lease of zero is already over.
    store.heartbeat("w1").await.unwrap();
    assert!(!store.task_leases(run.id, LEASE).await.unwrap()[0].expired);
    assert!(store.task_leases(run.id, Duration::ZERO).await.unwrap()[0].expired);

    // The run's owner takes the attempt back (its worker went silent)...
    let mut back = Batch::new(run.id);
    let mut retry = transition(&ti, TaskState::UpForRetry, 1);
    retry.to.error = Some("interrupted".into());
    back.tasks.push(retry);
    store.commit(&back).await.unwrap();
    assert!(store.held_by("w1").await.unwrap().is_empty());
    // ...and the worker, waking up, writes its success: nothing changes.
    let stale = end(store, &ti, TaskState::Success).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let now = instance(store, run.id, "a").await;
    assert_eq!(now.state, TaskState::UpForRetry);
    assert!(store.output(run.id, "a").await.unwrap().is_none());

    // Queued again, the next attempt goes to another worker; the old one is still fenced.
    let mut again = Batch::new(run.id);
    again
        .tasks
        .push(transition(&now, TaskState::Queued, now.attempt));
    store.commit(&again).await.unwrap();
    let second = store.claim_tasks("w2", 5).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].worker.as_deref(), Some("w2"));
    assert!(matches!(
        end(store, &ti, TaskState::Failed).await,
        Err(StoreError::Conflict { .. })
    ));
    end(store, &second[0], TaskState::Success).await.unwrap();
    let done = instance(store, run.id, "a").await;
    assert_eq!((done.state, done.attempt), (TaskState::Success, 2));
    assert_eq!(
        done.worker.as_deref(),
        Some("w2"),
        "the task shows who ran it"
    );
    assert!(store.task_leases(run.id, LEASE).await.unwrap().is_empty());
}

pub async fn workers_claiming_at_once_never_share_a_task_or_pass_the_limit(store: &dyn Store) {
    const TASKS: usize = 60;
    const LIMIT: usize = 8;
    let ids: Vec<String> = (0..TASKS).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let run = queued_run(store, "wide", &refs, LIMIT as u32).await;
    let worker = |name: String| async move {
        let mut mine = Vec::new();
        let mut idle = 0;
        while idle < 20 {
            let claimed = store.claim_tasks(&name, 3).await.unwrap();
            if claimed.is_empty() {
                idle += 1;
                tokio::task::yield_now().await;
                continue;
            }
            idle = 0;
            let running = store
                .task_instances(run.id)
                .await
                .unwrap()
                .iter()
                .filter(|t| t.state == TaskState::Running)
                .count();
            assert!(running <= LIMIT, "{running} running, limit {LIMIT}");
            for t in claimed {
                end(store, &t, TaskState::Success).await.unwrap();
                mine.push(t.task_id);
            }
        }
        mine
    };
    let (a, b, c) = tokio::join!(
        worker("w1".into()),
        worker("w2".into()),
        worker("w3".into())
    );
    let all: Vec<&String> = a.iter().chain(&b).chain(&c).collect();
    let unique: BTreeSet<&&String> = all.iter().collect();
    assert_eq!(all.len(), TASKS, "every task claimed, none twice");
    assert_eq!(unique.len(), TASKS);
    for ti in store.task_instances(run.id).await.unwrap() {
        assert_eq!((ti.state, ti.attempt), (TaskState::Success, 1));
    }
}
