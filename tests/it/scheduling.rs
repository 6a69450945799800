//! The scheduler's decisions with time as an input: `Scheduler::step(now)` driven with the
//! instants a test means, on a real SQLite store, instead of a daemon and the wall clock. What
//! needs real processes (signals, the file watcher, kill -9) stays in `daemon.rs`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, TimeZone, Utc};
use vigil::dag::DagSet;
use vigil::run::{Executor, Limits};
use vigil::schedule::{Role, Scheduler, SchedulerSettings};
use vigil::state::Wake;
use vigil::store::{RunFilter, RunRecord, RunType};

use crate::util::Engine;

/// A scheduler over the DAG files `dags` (name, source) in the engine's folder.
fn scheduler(e: &Engine, dags: &[(&str, &str)]) -> Scheduler {
    scheduler_as(e, dags, Role::Both)
}

/// [`scheduler`] in a given role.
fn scheduler_as(e: &Engine, dags: &[(&str, &str)], role: Role) -> Scheduler {
    let folder = e.dir.path().join("dags");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, src) in dags {
        std::fs::write(folder.join(format!("{name}.toml")), src).unwrap();
    }
    let set = DagSet::load_folder(&folder, &e.registry).unwrap();
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let executor = Executor::new(
        e.store.clone(),
        e.registry.clone(),
        Arc::new(Limits::new(4)),
    );
    Scheduler::new(
        e.store.clone(),
        e.registry.clone(),
        executor,
        SchedulerSettings {
            owner: vigil::state::owner::current(),
            folder,
            lease: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(1),
            notify: Default::default(),
            role,
        },
        Wake::new(),
        set,
    )
}

/// Every run of `dag`, oldest first.
async fn runs_of(e: &Engine, dag: &str) -> Vec<RunRecord> {
    let mut runs = e
        .store
        .runs(&RunFilter {
            dag_id: Some(dag.into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    runs.reverse();
    runs
}

fn dates(runs: &[RunRecord]) -> Vec<DateTime<Utc>> {
    runs.iter().map(|r| r.logical_date).collect()
}

/// A whole second with room after it, so `t0 + n s` ticks are predictable.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> ChronoDuration {
    ChronoDuration::seconds(n)
}

const EVERY_SECOND: &str = "schedule = \"* * * * * *\"\nstart_date = \"2030-01-01T12:00:00Z\"\n[tasks.a]\ntype = \"noop\"\n";

#[tokio::test]
async fn each_due_tick_makes_one_scheduled_run_at_the_tick_and_no_more() {
    let e = Engine::new().await;
    let mut s = scheduler(&e, &[("tick", EVERY_SECOND)]);
    s.step(t0() + ChronoDuration::milliseconds(1500))
        .await
        .unwrap();
    // Stepping again at the same instant (a wake-up, a restart) adds nothing.
    s.step(t0() + ChronoDuration::milliseconds(1500))
        .await
        .unwrap();
    let runs = runs_of(&e, "tick").await;
    assert_eq!(dates(&runs), [t0() + secs(1)], "the latest due tick only");
    assert_eq!(runs[0].run_type, RunType::Scheduled);
    assert_eq!(
        runs[0].data_interval_start,
        t0(),
        "a scheduled run covers the interval since the previous tick"
    );
    s.step(t0() + secs(2)).await.unwrap();
    s.step(t0() + ChronoDuration::milliseconds(3100))
        .await
        .unwrap();
    let runs = runs_of(&e, "tick").await;
    assert_eq!(
        dates(&runs),
        [t0() + secs(1), t0() + secs(2), t0() + secs(3)]
    );
}

#[tokio::test]
async fn a_paused_dag_gets_no_runs_and_unpausing_runs_only_the_latest_tick() {
    let e = Engine::new().await;
    let mut s = scheduler(&e, &[("tick", EVERY_SECOND)]);
    s.step(t0() + secs(1)).await.unwrap();
    assert_eq!(runs_of(&e, "tick").await.len(), 1);
    e.store.set_paused("tick", true).await.unwrap();
    for n in 2..=10 {
        s.step(t0() + secs(n)).await.unwrap();
    }
    assert_eq!(runs_of(&e, "tick").await.len(), 1, "no runs while paused");
    e.store.set_paused("tick", false).await.unwrap();
    s.step(t0() + secs(20)).await.unwrap();
    let runs = runs_of(&e, "tick").await;
    assert_eq!(
        dates(&runs),
        [t0() + secs(1), t0() + secs(20)],
        "catchup is off: the paused ticks are not made up"
    );
}

#[tokio::test]
async fn a_dag_that_ships_paused_waits_for_unpause() {
    let e = Engine::new().await;
    let quiet = EVERY_SECOND.replace("[tasks.a]", "paused = true\n[tasks.a]");
    let mut s = scheduler(&e, &[("quiet", &quiet)]);
    for n in 1..=5 {
        s.step(t0() + secs(n)).await.unwrap();
    }
    assert!(runs_of(&e, "quiet").await.is_empty());
    assert!(
        e.store
            .dag_state("quiet", t0(), false)
            .await
            .unwrap()
            .paused
    );
    e.store.set_paused("quiet", false).await.unwrap();
    s.step(t0() + secs(6)).await.unwrap();
    assert_eq!(dates(&runs_of(&e, "quiet").await), [t0() + secs(6)]);
}

/// Seeds the scheduler state as if the daemon had last run five hours before `now`.
async fn five_hours_down(e: &Engine, dag: &str, now: DateTime<Utc>) -> DateTime<Utc> {
    let last = now.duration_trunc(ChronoDuration::hours(1)).unwrap() - ChronoDuration::hours(5);
    e.store
        .dag_state(dag, last - ChronoDuration::days(1), false)
        .await
        .unwrap();
    e.store.set_last_tick(dag, last).await.unwrap();
    last
}

#[tokio::test]
async fn after_downtime_without_catchup_only_the_latest_tick_runs() {
    let e = Engine::new().await;
    let mut s = scheduler(
        &e,
        &[(
            "hourly",
            "schedule = \"@hourly\"\n[tasks.a]\ntype = \"noop\"\n",
        )],
    );
    let now = t0() + ChronoDuration::minutes(30);
    let last = five_hours_down(&e, "hourly", now).await;
    s.step(now).await.unwrap();
    s.step(now + secs(1)).await.unwrap();
    assert_eq!(
        dates(&runs_of(&e, "hourly").await),
        [last + ChronoDuration::hours(5)]
    );
}

#[tokio::test]
async fn after_downtime_catchup_creates_missed_ticks_oldest_first_within_max_active_runs() {
    let e = Engine::new().await;
    let mut s = scheduler(
        &e,
        &[(
            "hourly",
            "schedule = \"@hourly\"\ncatchup = true\nmax_active_runs = 2\n[tasks.a]\ntype = \"noop\"\n",
        )],
    );
    let now = t0() + ChronoDuration::minutes(30);
    let last = five_hours_down(&e, "hourly", now).await;
    s.step(now).await.unwrap();
    // No run has finished yet (nothing here joins them): only max_active_runs exist.
    let first = runs_of(&e, "hourly").await;
    assert_eq!(
        dates(&first),
        [
            last + ChronoDuration::hours(1),
            last + ChronoDuration::hours(2)
        ]
    );
    // As runs finish, the next steps create the rest, oldest first.
    for _ in 0..200 {
        if runs_of(&e, "hourly").await.len() == 5 {
            break;
        }
        while !e.store.unfinished_runs().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.step(now).await.unwrap();
    }
    let expected: Vec<_> = (1..=5).map(|h| last + ChronoDuration::hours(h)).collect();
    assert_eq!(dates(&runs_of(&e, "hourly").await), expected);
}

/// A scheduler-only daemon creates the due runs and owns them (decides what is ready); a
/// worker-only one creates no scheduled run and owns none: it only executes the task
/// instances it claims (`run::worker`, exercised through the binary in `postgres.rs`).
#[tokio::test]
async fn roles_split_creating_and_owning_runs_from_executing_tasks() {
    let e = Engine::new().await;
    let mut worker = scheduler_as(&e, &[("tick", EVERY_SECOND)], Role::Worker);
    worker.step(t0() + secs(2)).await.unwrap();
    assert!(
        runs_of(&e, "tick").await.is_empty(),
        "a worker made a scheduled run"
    );
    // A run someone queued stays unowned for a worker.
    let now = Utc::now();
    let queued = e
        .store
        .create_run(&vigil::store::NewRun {
            dag_id: "tick".into(),
            logical_date: now,
            data_interval_start: now,
            run_type: vigil::store::RunType::Manual,
            state: vigil::state::RunState::Queued,
            conf: serde_json::json!({}),
            dag_file: "dags/tick.toml".into(),
            dag_source: "[tasks.t]\ntype = \"noop\"\n".into(),
            tasks: vec![("t".into(), 1)],
            max_active_tasks: 16,
            idempotency_key: None,
            owner: None,
        })
        .await
        .unwrap();
    worker.step(t0() + secs(2)).await.unwrap();
    let run = e.store.run(queued.id).await.unwrap().unwrap();
    assert!(run.owner.is_none(), "a worker took a run: {run:?}");

    let mut sched = scheduler_as(&e, &[("tick", EVERY_SECOND)], Role::Scheduler);
    sched.step(t0() + secs(2)).await.unwrap();
    let runs = runs_of(&e, "tick").await;
    assert!(
        runs.iter().any(|r| r.logical_date == t0() + secs(2)),
        "{runs:?}"
    );
    let me = vigil::state::owner::current();
    assert!(
        runs.iter().all(|r| r.owner.as_deref() == Some(me.as_str())),
        "the scheduler owns every run: {runs:?}"
    );
}
