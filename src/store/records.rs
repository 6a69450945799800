//! The shapes the store reads and writes.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::state::LogLine;
use crate::state::{RunState, TaskState};
use crate::store::RunId;
use crate::store::outbox::Notification;

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    Manual,
    Scheduled,
    /// `vigil dags test`: run in the foreground of a CLI process.
    Test,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Manual => "manual",
            RunType::Scheduled => "scheduled",
            RunType::Test => "test",
        }
    }
}

impl std::str::FromStr for RunType {
    type Err = crate::state::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::state::parse_name(
            "run type",
            s,
            &[RunType::Manual, RunType::Scheduled, RunType::Test],
            RunType::as_str,
        )
    }
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    /// Where the data interval the run covers starts (it ends at the logical date): the
    /// previous tick for a scheduled run, the logical date for a manual one.
    pub data_interval_start: DateTime<Utc>,
    pub run_type: RunType,
    pub state: RunState,
    pub conf: serde_json::Value,
    pub dag_file: String,
    pub dag_source: String,
    /// `(task id, max attempts)` for every task of the DAG.
    pub tasks: Vec<(String, u32)>,
    /// The DAG's `max_active_tasks`: on PostgreSQL, daemons claiming its tasks count it
    /// across every run of the DAG.
    pub max_active_tasks: u32,
    /// A client's key for this request (the API's `Idempotency-Key`): a second run with the
    /// same DAG and key is refused like one at a taken logical date.
    pub idempotency_key: Option<String>,
    /// The process that will execute the run, when it is created by the one executing it
    /// (`vigil dags test`); `None` leaves it for a daemon to claim.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub run_type: RunType,
    pub state: RunState,
    pub conf: serde_json::Value,
    pub dag_file: String,
    #[serde(skip)]
    pub dag_source: String,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The process executing the run (`pid@host`), if any.
    pub owner: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Why a person changed its state by hand (`vigil runs mark`), if one did.
    pub note: Option<String>,
    /// A cancel asked for and not yet carried out (who asked, and when).
    pub cancel_requested: Option<String>,
}

/// A daemon serving the database, as it announced itself (`vigil daemons`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonRecord {
    /// `pid@host`, as runs name their owner.
    pub owner: String,
    /// What it does: `scheduler+worker` (the only role today).
    pub role: String,
    pub host: String,
    pub pid: i64,
    /// The vigil version it runs.
    pub version: String,
    /// Tasks it runs at once (`executor.parallelism`), and how many run now.
    pub slots: u32,
    pub slots_in_use: u32,
    pub started_at: DateTime<Utc>,
    /// By the store's clock.
    pub heartbeat_at: DateTime<Utc>,
}

/// What the scheduler remembers about a DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DagState {
    pub dag_id: String,
    pub paused: bool,
    /// The newest cron tick a scheduled run was created for.
    pub last_tick: Option<DateTime<Utc>>,
    /// When the scheduler first saw the DAG; earlier ticks are not missed ticks.
    pub first_seen: DateTime<Utc>,
}

/// What a retention cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cleanup {
    pub runs: u64,
    pub task_instances: u64,
    pub results: u64,
    pub log_lines: u64,
}

/// A task instance as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInstance {
    pub run_id: RunId,
    pub task_id: String,
    pub state: TaskState,
    /// The attempt running or last run; 0 before the first.
    pub attempt: u32,
    pub max_attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Why a person changed it by hand (`vigil tasks mark`), if one did.
    pub note: Option<String>,
    /// The daemon whose worker claimed the attempt running or last run (`pid@host`), on a
    /// shared database; `None` when the run's own executor ran it.
    pub worker: Option<String>,
}

/// One conditional change of a task instance: applied only if the row still has
/// `expect_state` and `expect_attempt`.
#[derive(Debug, Clone)]
pub struct TaskTransition {
    pub expect_state: TaskState,
    pub expect_attempt: u32,
    /// The whole new row (run_id and task_id name the row).
    pub to: TaskInstance,
    /// The result to store with a success, in the same transaction. Earlier attempts' results
    /// stay in history; only the current attempt's is read as the task's result.
    pub output: Option<serde_json::Value>,
    /// Log lines of an attempt that just ended, which attempt that was (a step can end one
    /// attempt and start the next), and the number of the first line (the lines before it were
    /// written while the attempt ran, see `RunStore::append_logs`).
    pub logs: Vec<LogLine>,
    pub logs_attempt: u32,
    pub logs_from: usize,
}

impl TaskTransition {
    /// `from` becomes `to`, conditional on `from`'s state and attempt, with no result or log.
    pub fn change(from: &TaskInstance, to: TaskInstance) -> TaskTransition {
        TaskTransition {
            expect_state: from.state,
            expect_attempt: from.attempt,
            logs_attempt: from.attempt,
            to,
            output: None,
            logs: Vec::new(),
            logs_from: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunTransition {
    pub expect: RunState,
    pub to: RunState,
    pub at: DateTime<Utc>,
    /// Why, when a person made the change (`vigil runs mark`); kept with the run.
    pub note: Option<String>,
}

/// Everything one step of the executor writes, committed together.
#[derive(Debug, Clone)]
pub struct Batch {
    pub run_id: RunId,
    pub run: Option<RunTransition>,
    pub tasks: Vec<TaskTransition>,
    /// Messages about this step's events (a failure, a retry, the run failing), queued in the
    /// outbox in the same transaction.
    pub notifications: Vec<Notification>,
}

impl Batch {
    pub fn new(run_id: RunId) -> Self {
        Batch {
            run_id,
            run: None,
            tasks: Vec::new(),
            notifications: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.run.is_none() && self.tasks.is_empty() && self.notifications.is_empty()
    }
}

/// Which runs to list, newest first. Paging is by cursor: `before` is the id of the last run of
/// the previous page, so a page stays right while new runs arrive.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<String>,
    pub state: Option<RunState>,
    /// Only runs with an id below this one.
    pub before: Option<RunId>,
    /// At most this many (100 when unset).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredOutput {
    pub task_id: String,
    pub attempt: u32,
    pub value: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogRecord {
    pub attempt: u32,
    pub seq: u32,
    #[serde(flatten)]
    pub line: LogLine,
}
