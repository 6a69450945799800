//! The store conformance suite: what every backend must guarantee, written once against
//! `dyn Store` and instantiated per backend by [`conformance!`]: one line per backend at the
//! bottom, with its opener. The PostgreSQL cases run on the tests' private server (`crate::pg`)
//! and pass without running on a machine without PostgreSQL.
//!
//! Cases build their records directly (no DAG files, no executor), so a failure points at the
//! store and nothing else.

mod claims;
mod dags;
pub mod outbox;
mod queue;
pub mod registry;
mod runs;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use vigil::state::{RunState, TaskState};
use vigil::store::{NewRun, RunRecord, RunType, Store, TaskInstance, TaskTransition};

/// A store under test with whatever keeps it alive (a temporary directory, a database).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// A fresh, empty SQLite store in a temporary directory.
pub async fn open_sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
        .await
        .expect("open store");
    Fixture {
        store,
        _keep: Box::new(dir),
    }
}

// The cases, re-exported flat so the macro can name them.
use claims::*;
use dags::*;
use outbox::*;
use queue::*;
use registry::*;
use runs::*;

/// A fresh, empty PostgreSQL store in a database of its own on the tests' private server
/// (`crate::pg`); `None` when PostgreSQL is not installed.
pub async fn open_postgres() -> Option<Fixture> {
    let url = crate::pg::fresh_database().await?;
    let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
        .await
        .expect("open store");
    Some(Fixture {
        store,
        _keep: Box::new(()),
    })
}

/// One `#[tokio::test]` per case, for a backend opened by `$open` (an async fn returning an
/// `Option<Fixture>`: `None` skips the backend on a machine without it).
macro_rules! cases {
    ($backend:ident, $open:path, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                #[allow(non_snake_case)]
                async fn $case() {
                    if let Some(f) = $open().await {
                        super::$case(f.store.as_ref()).await;
                    }
                }
            )*
        }
    };
}

/// Every case, for one backend.
macro_rules! conformance {
    ($backend:ident, $open:path) => {
        cases!(
            $backend,
            $open,
            [
                a_run_reads_back_as_created_with_scheduled_task_instances,
                one_run_per_dag_and_logical_date,
                runs_list_newest_first_with_filters_and_cursor_paging,
                a_stale_batch_changes_nothing_and_says_what_changed,
                run_state_changes_are_conditional,
                a_result_commits_with_its_success_and_a_new_attempt_hides_it_into_history,
                only_a_finished_run_is_deleted_with_everything_it_owns,
                a_cancel_request_is_kept_only_for_an_unfinished_run,
                log_lines_keep_their_attempt_and_order,
                a_running_attempt_appends_its_log_only_while_it_holds_the_task,
                retention_removes_old_finished_runs_with_everything_they_own,
                the_summary_counts_runs_tasks_and_lateness_by_dag,
                a_run_held_by_a_live_owner_cannot_be_claimed_until_its_lease_runs_out,
                a_stale_holder_writing_after_a_takeover_changes_nothing,
                a_dead_owner_is_replaced_once_not_by_every_daemon_that_sees_it,
                queued_runs_are_claimed_within_max_active_runs_even_all_at_once,
                heartbeats_stamp_runs_with_the_stores_clock,
                daemons_announce_report_and_leave_by_the_stores_clock,
                queued_tasks_are_claimed_once_oldest_run_first_within_the_dags_limit,
                a_claimed_attempt_is_held_under_lease_and_a_stale_worker_changes_nothing,
                workers_claiming_at_once_never_share_a_task_or_pass_the_limit,
                a_dag_state_is_created_once_and_keeps_its_pause,
                the_last_tick_never_moves_backwards,
                versions_get_timestamp_ids_checksums_and_are_never_replaced,
                version_ids_that_could_mislead_are_refused_and_ordinary_ones_pass,
                production_moves_only_by_compare_and_set_with_its_event_alert_and_mail,
                two_concurrent_rollbacks_leave_one_production_version_and_one_change,
                predictions_need_a_known_version_and_retention_keeps_the_registry,
                a_notification_becomes_one_email_and_one_post_per_webhook_with_its_event,
                a_claimed_delivery_is_held_under_lease_and_finished_only_by_its_holder,
                transient_and_permanent_outcomes_and_requeue,
            ]
        );
    };
}

async fn sqlite_fixture() -> Option<Fixture> {
    Some(open_sqlite().await)
}

conformance!(sqlite, super::sqlite_fixture);
conformance!(postgres, super::open_postgres);

/// A new run of `dag` at `when` with one task instance per id.
pub fn new_run(dag: &str, when: DateTime<Utc>, tasks: &[&str]) -> NewRun {
    NewRun {
        dag_id: dag.into(),
        logical_date: when,
        data_interval_start: when - chrono::Duration::hours(1),
        run_type: RunType::Scheduled,
        state: RunState::Queued,
        conf: json!({"n": 1}),
        dag_file: format!("dags/{dag}.toml"),
        dag_source: format!("# {dag}\n"),
        tasks: tasks.iter().map(|t| (t.to_string(), 3)).collect(),
        max_active_tasks: 16,
        idempotency_key: None,
        owner: None,
    }
}

pub async fn create(store: &dyn Store, dag: &str, tasks: &[&str]) -> RunRecord {
    store
        .create_run(&new_run(dag, Utc::now(), tasks))
        .await
        .expect("create run")
}

pub async fn instance(store: &dyn Store, run_id: i64, task: &str) -> TaskInstance {
    store
        .task_instances(run_id)
        .await
        .expect("task instances")
        .into_iter()
        .find(|t| t.task_id == task)
        .expect("task instance")
}

/// `from` moved to `state` at `attempt`, conditional on `from` as it was.
pub fn transition(from: &TaskInstance, state: TaskState, attempt: u32) -> TaskTransition {
    let mut to = from.clone();
    to.state = state;
    to.attempt = attempt;
    to.updated_at = Utc::now();
    TaskTransition {
        expect_state: from.state,
        expect_attempt: from.attempt,
        to,
        output: None,
        logs: vec![],
        logs_attempt: attempt,
        logs_from: 0,
    }
}
