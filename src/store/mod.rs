//! Durable state: runs, task instances, results and logs.
//!
//! One [`Store`] trait, implemented for SQLite ([`SqliteStore`]); a PostgreSQL implementation
//! will share it and the conformance tests. Queries are built at run time (not with sqlx's
//! compile-time macros), so a fresh machine builds with no database.
//!
//! Every change of a task's state goes through [`Store::commit`], which is conditional on the
//! state and attempt the writer believes current: a stale writer changes nothing and learns it
//! lost the race.

pub mod models;
pub mod outbox;
mod presence;
mod records;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use models::ModelStore;
pub use outbox::{Channel, Delivery, Notification, OutboxMessage, OutboxState, OutboxStore};
pub use presence::Presence;
pub use records::{
    Batch, Cleanup, DagState, LogRecord, NewRun, RunFilter, RunRecord, RunTransition, RunType,
    StoredOutput, TaskInstance, TaskTransition,
};
pub use sqlite::{SqliteStore, Synchronous};

use crate::state::RunState;

pub type RunId = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url} (check `database.url` in the config)")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the directory {} for the database", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the database file {} (check that its directory is writable)", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another vigil daemon owns {}: {holder}; stop it first, or give this one another database", database.display())]
    Owned { database: PathBuf, holder: String },
    #[error("cannot use the lock file {}", path.display())]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for wake-ups")]
    Signals(#[source] std::io::Error),
    #[error("database URL `{url}` is not supported: {why}; use sqlite://PATH")]
    UnsupportedUrl { url: String, why: &'static str },
    #[error("cannot apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(
        "a run of DAG `{dag_id}` for logical date {logical_date} already exists (run {existing})"
    )]
    RunExists {
        dag_id: String,
        logical_date: String,
        existing: RunId,
    },
    /// A conditional update matched nothing: someone else changed the row first. Nothing of the
    /// batch was written.
    #[error("stale update for run {run_id}: {what}")]
    Conflict { run_id: RunId, what: String },
    #[error(
        "model `{model}` already has a version `{version}`; versions are never replaced, register a new one"
    )]
    VersionExists { model: String, version: String },
    #[error("model `{model}` has no version `{version}`")]
    NoSuchVersion { model: String, version: String },
    /// Input the store refuses to record; the message says what and what to do.
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is invalid ({what}): {detail}")]
    Corrupt { what: String, detail: String },
    #[error("database error while {doing}")]
    Query {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl crate::state::Kind for StoreError {
    fn kind(&self) -> crate::state::ErrorKind {
        use crate::state::ErrorKind;
        match self {
            StoreError::Open { .. }
            | StoreError::CreateDir { .. }
            | StoreError::CreateFile { .. }
            | StoreError::LockFile { .. }
            | StoreError::Signals(_)
            | StoreError::Query { .. } => ErrorKind::Unavailable,
            StoreError::UnsupportedUrl { .. } | StoreError::Invalid(_) => ErrorKind::Invalid,
            StoreError::RunExists { .. }
            | StoreError::Conflict { .. }
            | StoreError::VersionExists { .. }
            | StoreError::Owned { .. } => ErrorKind::Conflict,
            StoreError::NoSuchVersion { .. } => ErrorKind::NotFound,
            StoreError::Migrate(_) | StoreError::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

/// Adds what was being done to a sqlx error.
pub(crate) trait QueryContext<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { doing, source })
    }
}

/// The state vigil keeps. Implementations must make [`Store::commit`] all-or-nothing.
#[async_trait]
pub trait Store: ModelStore + OutboxStore + Send + Sync + std::fmt::Debug {
    /// Names this database uniquely among those on this host (SQLite: the canonical path of
    /// its file), so that what one database's runs leave behind (processes of a crashed
    /// daemon) is never mistaken for another's.
    fn identity(&self) -> &str;

    /// Tells the daemons serving this database to look at it now (a run was triggered, a DAG
    /// paused); returns who was told, or `None` when no daemon runs. SQLite: `SIGUSR1` to the
    /// process its lock file names.
    async fn wake_daemons(&self) -> Option<String>;

    /// Creates a run and its task instances (all `scheduled`) in one transaction. Fails with
    /// [`StoreError::RunExists`] when the DAG already has a run for that logical date.
    async fn create_run(&self, new: &NewRun) -> Result<RunRecord, StoreError>;

    /// Writes a batch of transitions, results and log lines in one transaction. If any
    /// conditional update finds the row changed, nothing is written and
    /// [`StoreError::Conflict`] is returned.
    async fn commit(&self, batch: &Batch) -> Result<(), StoreError>;

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError>;

    /// Newest first.
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;

    async fn task_instances(&self, run_id: RunId) -> Result<Vec<TaskInstance>, StoreError>;

    async fn output(
        &self,
        run_id: RunId,
        task_id: &str,
    ) -> Result<Option<StoredOutput>, StoreError>;

    /// Every stored result of a run, to resume it.
    async fn outputs(&self, run_id: RunId) -> Result<Vec<StoredOutput>, StoreError>;

    /// Log lines of one task; of one attempt when `attempt` is given.
    async fn logs(
        &self,
        run_id: RunId,
        task_id: &str,
        attempt: Option<u32>,
    ) -> Result<Vec<LogRecord>, StoreError>;

    /// Number of runs in `state`, for summaries and tests.
    async fn count_runs(&self, state: RunState) -> Result<u64, StoreError>;

    /// Runs that are queued or running, oldest first.
    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError>;

    /// Makes `owner` the executor of a queued or running run, if nobody else holds it: its
    /// owner is unset, is `owner` itself, or last heartbeat before `stale_before`. Returns
    /// whether the claim succeeded.
    async fn claim_run(
        &self,
        run_id: RunId,
        owner: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives up ownership of a run (it stays as it is, for the next owner to resume).
    async fn release_run(&self, run_id: RunId, owner: &str) -> Result<(), StoreError>;

    /// Proves `owner` alive: stamps its runs and their running task instances.
    async fn heartbeat(&self, owner: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// The scheduler state of a DAG, created (first seen `now`, paused if `paused_if_new`) if
    /// it is new.
    async fn dag_state(
        &self,
        dag_id: &str,
        now: DateTime<Utc>,
        paused_if_new: bool,
    ) -> Result<DagState, StoreError>;

    /// Every DAG the scheduler has seen.
    async fn dag_states(&self) -> Result<Vec<DagState>, StoreError>;

    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<(), StoreError>;

    /// Records the newest tick a scheduled run exists for (never moves backwards).
    async fn set_last_tick(&self, dag_id: &str, tick: DateTime<Utc>) -> Result<(), StoreError>;

    /// Deletes finished runs that ended before `before`, with their task instances, results
    /// and logs. Never touches unfinished runs or the scheduler's DAG state.
    async fn cleanup(&self, before: DateTime<Utc>) -> Result<Cleanup, StoreError>;
}

/// The file of a SQLite database URL (`sqlite://PATH`, `sqlite:PATH` or a plain path).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    use std::str::FromStr;
    if url.starts_with("postgres") || url.contains(":memory:") {
        return None;
    }
    if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .ok()
            .map(|o| o.get_filename().to_path_buf())
    } else {
        Some(PathBuf::from(url))
    }
}

/// Creates the database file `path` readable by its owner only, if it does not exist yet. It
/// holds params, logs and webhook URLs; SQLite gives its WAL and shared-memory files the
/// same mode as the database file. An existing file keeps the mode its owner gave it.
pub fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens the store named by `url` and applies migrations.
pub async fn open(url: &str, synchronous: Synchronous) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Err(StoreError::UnsupportedUrl {
            url: url.to_string(),
            why: "PostgreSQL support is not built yet",
        });
    }
    Ok(Arc::new(SqliteStore::open(url, synchronous).await?))
}
