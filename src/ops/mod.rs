//! The application layer: one function per use case, returning plain data. The CLI parses,
//! calls one of these and prints; the HTTP API deserializes, calls the same function and
//! serializes. Nothing above this layer holds a use case of its own.
//!
//! - [`dags`]: list, find, show, validate, trigger, pause.
//! - [`registry`]: the model registry's operations (status, history, compare, check with its
//!   guarded rollback, rollback, promote).
//! - [`risk`]: train and register the rollback-risk model, load the version to use.
//! - [`runs`]: list runs (filters, cursor paging), show one with its tasks, results, logs.
//! - [`outbox`]: list (secrets cut off), retry, deliver what is due.
//! - [`daemons`]: the daemons serving the database, live or silent.
//! - [`db`]: copy a SQLite history into PostgreSQL.
//!
//! The records returned are the JSON shape of `--json` output and of the API: fields are
//! added, never renamed or removed.

pub mod backfill;
pub mod daemons;
pub mod dags;
pub mod db;
pub mod outbox;
pub mod registry;
pub mod risk;
pub mod runs;

use std::path::PathBuf;

use crate::dag::{ConfError, FileErrors, FolderError};
use crate::state::{ErrorKind, Kind, Wake};
use crate::store::{Store, StoreError};

/// Who is told to look at the database after a change (a trigger, a pause).
#[derive(Debug, Clone)]
pub enum Waker {
    /// The daemon runs in this process: wake its scheduler directly.
    InProcess(Wake),
    /// Another process: ask the store, which knows how its daemons are reached.
    Daemons,
}

impl Waker {
    /// Wakes, and says who was woken (`None`: nobody runs on this database).
    pub async fn wake(&self, store: &dyn Store) -> Option<String> {
        match self {
            Waker::InProcess(wake) => {
                wake.wake();
                Some("this process".into())
            }
            Waker::Daemons => store.wake_daemons().await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("DAG `{id}` did not load:\n{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    DagBroken { id: String, errors: Vec<FileErrors> },
    #[error(
        "no DAG `{id}` in {}; known DAGs: {}{}",
        folder.display(),
        if known.is_empty() { "(none)".to_string() } else { known.join(", ") },
        if *broken_files == 0 { String::new() } else { format!(" ({broken_files} file(s) failed to load)") }
    )]
    NoSuchDag {
        id: String,
        folder: PathBuf,
        known: Vec<String>,
        broken_files: usize,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no such {what} `{name}`; there are: {}", known.join(", "))]
    NoSuchName {
        what: &'static str,
        name: String,
        known: Vec<&'static str>,
    },
    #[error("no run {0}")]
    NoSuchRun(crate::store::RunId),
    #[error("run {run_id} has no task `{task_id}`; its tasks: {}", known.join(", "))]
    NoSuchTask {
        run_id: crate::store::RunId,
        task_id: String,
        known: Vec<String>,
    },
    #[error("task `{task_id}` has no result in run {run_id} (it has not succeeded)")]
    NoResult {
        run_id: crate::store::RunId,
        task_id: String,
    },
    #[error("run {run_id} is {state}; wait for it to finish (or cancel it) first")]
    RunNotFinished {
        run_id: crate::store::RunId,
        state: crate::state::RunState,
    },
    #[error("there is no message {0} in the outbox")]
    NoSuchMessage(i64),
    #[error("message {id} was already sent{}; it is not sent twice", sent_at.map(|t| format!(" at {}", t.to_rfc3339())).unwrap_or_default())]
    AlreadySent {
        id: i64,
        sent_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error("no version of model `{0}` is registered; train one first")]
    NoVersions(String),
    #[error(transparent)]
    Ml(#[from] crate::ml::MlError),
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Kind for OpsError {
    fn kind(&self) -> ErrorKind {
        match self {
            OpsError::DagBroken { .. } | OpsError::Invalid(_) | OpsError::Conf(_) => {
                ErrorKind::Invalid
            }
            OpsError::NoSuchDag { .. }
            | OpsError::NoVersions(_)
            | OpsError::NoSuchRun(_)
            | OpsError::NoSuchTask { .. }
            | OpsError::NoResult { .. }
            | OpsError::NoSuchMessage(_)
            | OpsError::NoSuchName { .. } => ErrorKind::NotFound,
            OpsError::AlreadySent { .. } | OpsError::RunNotFinished { .. } => ErrorKind::Conflict,
            OpsError::Notify(e) => e.kind(),
            OpsError::Ml(e) => e.kind(),
            OpsError::Folder(_) => ErrorKind::Unavailable,
            OpsError::Store(e) => e.kind(),
        }
    }
}
