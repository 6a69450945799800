//! Durable state: runs, task instances, results and logs.
//!
//! One [`Store`] trait made of narrower capabilities (runs, claims, DAG state, registry,
//! outbox), implemented for SQLite ([`SqliteStore`]); a PostgreSQL implementation will share it
//! and the conformance tests (`tests/it/conformance.rs`). Everything that is not SQL lives in
//! this folder: the records, their decoding from rows (`rows.rs`), and policy such as splitting
//! a notification into deliveries or naming an automatic version; a backend folder holds only
//! SQL and transaction mechanics, one file per capability. Queries are built at run time (not with sqlx's
//! compile-time macros), so a fresh machine builds with no database.
//!
//! Every change of a task's state goes through [`RunStore::commit`], which is conditional on the
//! state and attempt the writer believes current: a stale writer changes nothing and learns it
//! lost the race.

mod claims;
pub mod copy;
mod dags;
pub mod outbox;
pub(crate) mod postgres;
mod presence;
pub mod queue;
mod records;
pub mod registry;
pub(crate) mod rows;
mod runs;
mod sqlite;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
pub use claims::{ClaimStore, stale_before};
pub use dags::DagStore;
pub use outbox::{Channel, Delivery, Notification, OutboxMessage, OutboxState, OutboxStore};
pub use postgres::{PgStore, redact as redact_url};
pub use presence::Presence;
pub use queue::{Signal, TaskLease, TaskQueue};
pub use records::{
    Batch, Cleanup, DaemonRecord, DagState, LogRecord, NewRun, RunFilter, RunRecord, RunTransition,
    RunType, StoredOutput, TaskInstance, TaskTransition,
};
pub use registry::ModelStore;
pub use runs::{RunStore, describe_conflict};
pub use sqlite::{SqliteStore, Synchronous};
pub use stats::{StatsStore, Summary};

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
    #[error("the database's directory {} is read-only; vigil writes its database, log and lock file there: make it writable, or point `database.url` elsewhere", path.display())]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another vigil daemon owns {}: {holder}; stop it first, or give this one another database", database.display())]
    Owned { database: PathBuf, holder: String },
    #[error("cannot use the lock file {} (the database's directory must be writable)", path.display())]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for wake-ups")]
    Signals(#[source] std::io::Error),
    #[error(
        "database URL `{url}` is not supported: {why}; use sqlite://PATH or postgres://USER@HOST/DATABASE"
    )]
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
            | StoreError::ReadOnly { .. }
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

/// The state vigil keeps: every capability a daemon needs, in one object. Consumers that need
/// less take the narrower trait ([`RunStore`], [`ModelStore`], ...), so what a piece of code
/// can touch shows in its signature.
#[async_trait]
pub trait Store:
    RunStore
    + ClaimStore
    + TaskQueue
    + DagStore
    + ModelStore
    + OutboxStore
    + StatsStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Names this database uniquely among those on this host (SQLite: the canonical path of
    /// its file), so that what one database's runs leave behind (processes of a crashed
    /// daemon) is never mistaken for another's.
    fn identity(&self) -> &str;

    /// Tells the daemons serving this database to look at it now (a run was triggered, a DAG
    /// paused); returns who was told, or `None` when no daemon runs. SQLite: `SIGUSR1` to the
    /// process its lock file names. PostgreSQL: `NOTIFY` to every daemon listening, named
    /// `pid@host, ...`.
    async fn wake_daemons(&self) -> Option<String>;
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

/// How long opening waits for a PostgreSQL server that is not up yet (a daemon started with
/// its database, or during a database restart).
const POSTGRES_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `url` as it may be shown or logged: a PostgreSQL password replaced by `***`.
pub fn display_url(url: &str) -> String {
    if is_postgres(url) {
        redact_url(url)
    } else {
        url.to_string()
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Opens the store named by `url` (`sqlite://PATH` or `postgres://...`) and applies
/// migrations.
pub async fn open(url: &str, synchronous: Synchronous) -> Result<Arc<dyn Store>, StoreError> {
    // Any other `scheme://` would otherwise be read as a SQLite path: `mysql://host/db` made
    // a file `mysql:/host/db` and ran on it.
    if let Some((scheme, _)) = url.split_once("://")
        && !matches!(scheme, "sqlite" | "postgres" | "postgresql")
    {
        return Err(StoreError::UnsupportedUrl {
            url: url.to_string(),
            why: "vigil stores its state in SQLite or PostgreSQL only",
        });
    }
    if is_postgres(url) {
        return Ok(Arc::new(PgStore::open(url, POSTGRES_WAIT).await?));
    }
    Ok(Arc::new(SqliteStore::open(url, synchronous).await?))
}
