//! Runs, task instances, results, logs and retention.

use chrono::Utc;
use serde_json::json;
use vigil::state::{LogLevel, LogLine, RunState, TaskState};
use vigil::store::{Batch, RunFilter, RunTransition, Store, StoreError};

use super::{create, instance, new_run, transition};

pub async fn a_run_reads_back_as_created_with_scheduled_task_instances(store: &dyn Store) {
    let when = Utc::now();
    let new = new_run("d", when, &["a", "b"]);
    let created = store.create_run(&new).await.unwrap();
    let read = store.run(created.id).await.unwrap().expect("the run");
    assert_eq!(read.dag_id, "d");
    assert_eq!(
        read.logical_date.timestamp_micros(),
        when.timestamp_micros()
    );
    assert_eq!(
        read.data_interval_start.timestamp_micros(),
        new.data_interval_start.timestamp_micros()
    );
    assert_eq!(read.run_type, vigil::store::RunType::Scheduled);
    assert_eq!(read.state, RunState::Queued);
    assert_eq!(read.conf, json!({"n": 1}));
    assert_eq!(read.dag_source, "# d\n");
    assert_eq!(read.owner, None);
    let mut tasks = store.task_instances(created.id).await.unwrap();
    tasks.sort_by(|x, y| x.task_id.cmp(&y.task_id));
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        assert_eq!(
            (t.state, t.attempt, t.max_attempts),
            (TaskState::Scheduled, 0, 3)
        );
    }
    assert!(store.run(created.id + 1000).await.unwrap().is_none());
    assert_eq!(store.count_runs(RunState::Queued).await.unwrap(), 1);
    let unfinished = store.unfinished_runs().await.unwrap();
    assert_eq!(
        unfinished.iter().map(|r| r.id).collect::<Vec<_>>(),
        [created.id]
    );
}

pub async fn one_run_per_dag_and_logical_date(store: &dyn Store) {
    let when = Utc::now();
    let first = store.create_run(&new_run("d", when, &["a"])).await.unwrap();
    match store.create_run(&new_run("d", when, &["a"])).await {
        Err(StoreError::RunExists { existing, .. }) => assert_eq!(existing, first.id),
        other => panic!("expected RunExists, got {other:?}"),
    }
    // Nothing of the refused run was written; another DAG may use the same date.
    assert_eq!(store.count_runs(RunState::Queued).await.unwrap(), 1);
    store.create_run(&new_run("e", when, &["a"])).await.unwrap();
}

pub async fn runs_list_newest_first_with_filters_and_cursor_paging(store: &dyn Store) {
    let t0 = Utc::now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let dag = if i % 2 == 0 { "even" } else { "odd" };
        let run = store
            .create_run(&new_run(dag, t0 + chrono::Duration::minutes(i), &["a"]))
            .await
            .unwrap();
        ids.push(run.id);
    }
    let all = store.runs(&RunFilter::default()).await.unwrap();
    let listed: Vec<_> = all.iter().map(|r| r.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);

    let even = store
        .runs(&RunFilter {
            dag_id: Some("even".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(even.len(), 3);
    assert!(even.iter().all(|r| r.dag_id == "even"));

    let page1 = store
        .runs(&RunFilter {
            limit: Some(2),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let page2 = store
        .runs(&RunFilter {
            limit: Some(2),
            before: page1.last().map(|r| r.id),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let paged: Vec<_> = page1.iter().chain(&page2).map(|r| r.id).collect();
    assert_eq!(paged, newest_first[..4]);

    let failed = store
        .runs(&RunFilter {
            state: Some(RunState::Failed),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty());
}

pub async fn a_stale_batch_changes_nothing_and_says_what_changed(store: &dyn Store) {
    let run = create(store, "d", &["a", "b"]).await;
    let a0 = instance(store, run.id, "a").await;
    let b0 = instance(store, run.id, "b").await;
    let mut first = Batch::new(run.id);
    first.tasks.push(transition(&a0, TaskState::Queued, 0));
    store.commit(&first).await.unwrap();

    // A writer that still believes `a` is scheduled; its batch also touches `b`, stores a
    // result and log lines, and queues a notification.
    let mut stale = Batch::new(run.id);
    stale.tasks.push(transition(&b0, TaskState::Queued, 0));
    let mut t = transition(&a0, TaskState::Success, 1);
    t.output = Some(json!(1));
    t.logs = vec![LogLine {
        ts: Utc::now(),
        level: LogLevel::Info,
        message: "stale".into(),
    }];
    stale.tasks.push(t);
    stale
        .notifications
        .push(super::outbox::notification("stale"));
    let err = store.commit(&stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("task `a` is no longer scheduled at attempt 0"),
        "{err}"
    );
    assert_eq!(instance(store, run.id, "a").await.state, TaskState::Queued);
    assert_eq!(
        instance(store, run.id, "b").await.state,
        TaskState::Scheduled
    );
    assert!(store.output(run.id, "a").await.unwrap().is_none());
    assert!(
        store
            .logs(run.id, "a", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.outbox(None).await.unwrap().is_empty());
}

pub async fn run_state_changes_are_conditional(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    let mut b = Batch::new(run.id);
    b.run = Some(RunTransition {
        expect: RunState::Running,
        to: RunState::Success,
        at: Utc::now(),
        note: None,
    });
    let err = store.commit(&b).await.unwrap_err();
    assert!(
        err.to_string().contains("run is no longer running"),
        "{err}"
    );
    assert_eq!(
        store.run(run.id).await.unwrap().unwrap().state,
        RunState::Queued
    );

    for (expect, to) in [
        (RunState::Queued, RunState::Running),
        (RunState::Running, RunState::Failed),
    ] {
        let mut b = Batch::new(run.id);
        b.run = Some(RunTransition {
            expect,
            to,
            at: Utc::now(),
            note: None,
        });
        store.commit(&b).await.unwrap();
    }
    let done = store.run(run.id).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Failed);
    assert!(done.started_at.is_some() && done.ended_at.is_some());
    assert!(store.unfinished_runs().await.unwrap().is_empty());
}

pub async fn a_result_commits_with_its_success_and_a_new_attempt_hides_it_into_history(
    store: &dyn Store,
) {
    let run = create(store, "d", &["a", "b"]).await;
    let a0 = instance(store, run.id, "a").await;
    let mut t = transition(&a0, TaskState::Success, 1);
    t.output = Some(json!({"rows": 3}));
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    store.commit(&b).await.unwrap();
    let out = store.output(run.id, "a").await.unwrap().expect("result");
    assert_eq!((out.value, out.attempt), (json!({"rows": 3}), 1));
    assert_eq!(store.outputs(run.id).await.unwrap().len(), 1);
    assert!(store.output(run.id, "b").await.unwrap().is_none());

    // A new attempt (a retry, a cleared task) must not read the old result, which stays in
    // the task's history.
    let a1 = instance(store, run.id, "a").await;
    let mut b = Batch::new(run.id);
    b.tasks.push(transition(&a1, TaskState::Running, 2));
    store.commit(&b).await.unwrap();
    assert!(store.output(run.id, "a").await.unwrap().is_none());
    assert!(store.outputs(run.id).await.unwrap().is_empty());
    let a2 = instance(store, run.id, "a").await;
    let mut t = transition(&a2, TaskState::Success, 2);
    t.output = Some(json!({"rows": 4}));
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    store.commit(&b).await.unwrap();
    let now = store.output(run.id, "a").await.unwrap().expect("result");
    assert_eq!((now.value, now.attempt), (json!({"rows": 4}), 2));
    let history: Vec<_> = store
        .output_history(run.id, "a")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.attempt, o.value))
        .collect();
    assert_eq!(history, [(1, json!({"rows": 3})), (2, json!({"rows": 4}))]);
}

pub async fn only_a_finished_run_is_deleted_with_everything_it_owns(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    assert_eq!(
        store.delete_run(run.id).await.unwrap(),
        Some(RunState::Queued)
    );
    assert!(
        store.run(run.id).await.unwrap().is_some(),
        "unfinished: kept"
    );
    let a0 = instance(store, run.id, "a").await;
    let mut t = transition(&a0, TaskState::Success, 1);
    t.output = Some(json!(1));
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    b.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Success,
        at: Utc::now(),
        note: None,
    });
    store.commit(&b).await.unwrap();
    assert_eq!(
        store.delete_run(run.id).await.unwrap(),
        Some(RunState::Success)
    );
    assert!(store.run(run.id).await.unwrap().is_none());
    assert!(store.task_instances(run.id).await.unwrap().is_empty());
    assert!(store.output_history(run.id, "a").await.unwrap().is_empty());
    assert_eq!(store.delete_run(run.id).await.unwrap(), None);
}

pub async fn log_lines_keep_their_attempt_and_order(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    let line = |m: &str, level| LogLine {
        ts: Utc::now(),
        level,
        message: m.into(),
    };
    let a0 = instance(store, run.id, "a").await;
    let mut t = transition(&a0, TaskState::UpForRetry, 1);
    t.logs = vec![line("one", LogLevel::Info), line("two", LogLevel::Error)];
    t.logs_attempt = 1;
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    store.commit(&b).await.unwrap();
    let a1 = instance(store, run.id, "a").await;
    let mut t = transition(&a1, TaskState::Success, 2);
    t.logs = (0..600)
        .map(|i| line(&format!("l{i}"), LogLevel::Debug))
        .collect();
    t.logs_attempt = 2;
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    store.commit(&b).await.unwrap();

    let all = store.logs(run.id, "a", None, None).await.unwrap();
    assert_eq!(all.len(), 602);
    assert_eq!(
        (
            all[0].attempt,
            all[0].line.message.as_str(),
            all[1].line.level
        ),
        (1, "one", LogLevel::Error)
    );
    let second = store.logs(run.id, "a", Some(2), None).await.unwrap();
    let messages: Vec<_> = second.iter().map(|l| l.line.message.clone()).collect();
    let expected: Vec<_> = (0..600).map(|i| format!("l{i}")).collect();
    assert_eq!(
        messages, expected,
        "one attempt's lines in the order written"
    );
}

pub async fn a_running_attempt_appends_its_log_only_while_it_holds_the_task(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    let line = |m: &str| LogLine {
        ts: Utc::now(),
        level: LogLevel::Info,
        message: m.into(),
    };
    let messages = |lines: Vec<vigil::store::LogRecord>| -> Vec<(u32, String)> {
        lines.into_iter().map(|l| (l.seq, l.line.message)).collect()
    };
    // Not running yet: nothing is written.
    store
        .append_logs((run.id, "a", 1), 0, &[line("too early")])
        .await
        .unwrap();
    assert!(
        store
            .logs(run.id, "a", None, None)
            .await
            .unwrap()
            .is_empty()
    );

    let a0 = instance(store, run.id, "a").await;
    let mut b = Batch::new(run.id);
    b.tasks.push(transition(&a0, TaskState::Running, 1));
    store.commit(&b).await.unwrap();
    store
        .append_logs((run.id, "a", 1), 0, &[line("one"), line("two")])
        .await
        .unwrap();
    // A write repeated after an unclear end changes nothing and is no error.
    store
        .append_logs((run.id, "a", 1), 0, &[line("one"), line("two")])
        .await
        .unwrap();
    // Another attempt does not hold the task.
    store
        .append_logs((run.id, "a", 2), 0, &[line("stale")])
        .await
        .unwrap();
    assert_eq!(
        messages(store.logs(run.id, "a", None, None).await.unwrap()),
        vec![(0, "one".to_string()), (1, "two".to_string())]
    );

    // The end writes the rest, numbered on from the lines already stored.
    let a1 = instance(store, run.id, "a").await;
    let mut t = transition(&a1, TaskState::Success, 1);
    t.logs = vec![line("three")];
    t.logs_from = 2;
    let mut b = Batch::new(run.id);
    b.tasks.push(t);
    store.commit(&b).await.unwrap();
    assert_eq!(
        messages(store.logs(run.id, "a", Some(1), Some(0)).await.unwrap()),
        vec![(1, "two".to_string()), (2, "three".to_string())],
        "only the lines after the one asked for"
    );
    // Ended: a late write from the attempt is refused.
    store
        .append_logs((run.id, "a", 1), 3, &[line("late")])
        .await
        .unwrap();
    assert_eq!(store.logs(run.id, "a", None, None).await.unwrap().len(), 3);
}

pub async fn retention_removes_old_finished_runs_with_everything_they_own(store: &dyn Store) {
    let old = create(store, "d", &["a"]).await;
    let a0 = instance(store, old.id, "a").await;
    let mut t = transition(&a0, TaskState::Success, 1);
    t.output = Some(json!(1));
    t.logs = vec![LogLine {
        ts: Utc::now(),
        level: LogLevel::Info,
        message: "x".into(),
    }];
    let mut b = Batch::new(old.id);
    b.tasks.push(t);
    b.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Success,
        at: Utc::now(),
        note: None,
    });
    store.commit(&b).await.unwrap();
    let unfinished = create(store, "e", &["a"]).await;

    let removed = store
        .cleanup(Utc::now() + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        (
            removed.runs,
            removed.task_instances,
            removed.results,
            removed.log_lines
        ),
        (1, 1, 1, 1)
    );
    assert!(store.run(old.id).await.unwrap().is_none());
    assert!(
        store
            .logs(old.id, "a", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.run(unfinished.id).await.unwrap().is_some());
    let again = store
        .cleanup(Utc::now() + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(again.runs, 0);
}

pub async fn a_cancel_request_is_kept_only_for_an_unfinished_run(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    assert!(store.request_cancel(run.id, "ops").await.unwrap());
    assert_eq!(
        store
            .run(run.id)
            .await
            .unwrap()
            .unwrap()
            .cancel_requested
            .as_deref(),
        Some("ops")
    );
    let mut b = Batch::new(run.id);
    b.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Failed,
        at: Utc::now(),
        note: Some("cancelled: ops".into()),
    });
    store.commit(&b).await.unwrap();
    let ended = store.run(run.id).await.unwrap().unwrap();
    assert_eq!(ended.note.as_deref(), Some("cancelled: ops"));
    assert!(!store.request_cancel(run.id, "late").await.unwrap());
    assert!(!store.request_cancel(run.id + 100, "nobody").await.unwrap());
}

pub async fn the_summary_counts_runs_tasks_and_lateness_by_dag(store: &dyn Store) {
    assert_eq!(
        store.summary().await.unwrap(),
        vigil::store::Summary::default()
    );
    let tick = Utc::now() - chrono::Duration::seconds(90);
    let late = store
        .create_run(&new_run("d", tick, &["a", "b"]))
        .await
        .unwrap();
    create(store, "d", &["a", "b"]).await;
    create(store, "e", &["x"]).await;
    // The scheduled run starts now, 90 s after its tick.
    let mut batch = Batch::new(late.id);
    batch.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Running,
        at: Utc::now(),
        note: None,
    });
    let a = instance(store, late.id, "a").await;
    batch.tasks.push(transition(&a, TaskState::Queued, 0));
    store.commit(&batch).await.unwrap();
    let s = store.summary().await.unwrap();
    assert_eq!(
        s.runs,
        [
            ("d".to_string(), RunState::Queued, 1),
            ("d".to_string(), RunState::Running, 1),
            ("e".to_string(), RunState::Queued, 1)
        ]
    );
    assert!(
        s.tasks.contains(&("d".to_string(), TaskState::Queued, 1)),
        "{s:?}"
    );
    assert!(
        s.tasks
            .contains(&("d".to_string(), TaskState::Scheduled, 3)),
        "{s:?}"
    );
    assert!(
        s.tasks
            .contains(&("e".to_string(), TaskState::Scheduled, 1)),
        "{s:?}"
    );
    assert_eq!(s.lateness.len(), 1, "{s:?}");
    assert_eq!(s.lateness[0].0, "d");
    assert!((89.0..200.0).contains(&s.lateness[0].1), "{s:?}");
    assert!(s.outbox.is_empty());
    assert_eq!(s.failed_deliveries, 0);
}
