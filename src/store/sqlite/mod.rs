//! The SQLite store: one file in WAL mode.
//!
//! Durability is a setting. With `synchronous = NORMAL` (the default) a commit survives a
//! crash of the vigil process, and after a power loss the database is consistent but the last
//! commits may be missing; `FULL` syncs every commit to disk (about 4 ms on a typical cloud
//! disk, which would cap the executor at a few hundred transitions per second). The executor
//! groups the transitions that happen together into one transaction either way.
//!
//! Writes go through one dedicated connection and each commit is **one round trip**: a
//! single multi-statement script `BEGIN IMMEDIATE; ...; COMMIT`. sqlx runs SQLite on a worker
//! thread per connection, and every statement awaited separately costs a thread hand-off
//! (about 130 µs on a 2-core VM); a script pays it once. Conditional updates are checked inside
//! the script: after each one, `INSERT INTO vigil_guard VALUES (changes())` fires a trigger
//! that rolls the whole transaction back when the update matched nothing.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use crate::store::{QueryContext, Store, StoreError};

mod claims;
mod dags;
pub(crate) mod lock;
mod outbox;
mod queue;
mod registry;
mod runs;
mod script;
mod stats;

use script::{GUARD_SQL, Script, Writer};

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Safe against a crash of the process (WAL, `synchronous=NORMAL`).
    #[default]
    Normal,
    /// Also safe against power loss: every commit is synced (`synchronous=FULL`).
    Full,
}

#[derive(Debug)]
pub struct SqliteStore {
    /// Readers. WAL lets them read while the writer writes.
    pool: SqlitePool,
    /// The one connection that writes. A tokio mutex: it is held across the script's await.
    writer: tokio::sync::Mutex<Writer>,
    /// The canonical path of the database file.
    identity: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`, `sqlite:PATH`,
    /// `sqlite::memory:` or a plain path) and applies migrations.
    pub async fn open(url: &str, synchronous: Synchronous) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            url: url.to_string(),
            source,
        };
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(open_err)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let in_memory = url.contains(":memory:");
        if !in_memory
            && let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        if !in_memory {
            refuse_read_only_dir(options.get_filename())?;
        }
        // Looked at read-only first, before WAL mode is set: a file that is not vigil's is
        // left exactly as it was.
        if !in_memory && options.get_filename().is_file() {
            refuse_foreign(options.clone().read_only(true), url).await?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if in_memory {
            // One in-memory database per connection would split readers from the writer.
            return Err(StoreError::UnsupportedUrl {
                url: url.to_string(),
                why: "an in-memory database would not be shared by vigil's connections",
            });
        }
        let file = options.get_filename().to_path_buf();
        crate::store::create_private_file(&file).map_err(|source| StoreError::CreateFile {
            path: file.clone(),
            source,
        })?;
        let identity = std::fs::canonicalize(&file)
            .unwrap_or(file)
            .display()
            .to_string();
        let pool = while_busy(|| {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.clone())
        })
        .await
        .map_err(open_err)?;
        // Through the pool: a `&SqlitePool` migrates from any task (a connection borrowed
        // mutably makes the future not `Send`, sqlx's `Acquire` being too specific).
        migrate(&pool).await?;
        let mut conn = while_busy(|| options.connect()).await.map_err(open_err)?;
        sqlx::raw_sql(GUARD_SQL)
            .execute(&mut conn)
            .await
            .doing("creating the write guard")?;
        Ok(SqliteStore {
            pool,
            writer: tokio::sync::Mutex::new(Writer { conn, dirty: false }),
            identity,
        })
    }

    /// The value of a SQLite setting (`synchronous`, `journal_mode`, ...) as the store's
    /// connections see it, for diagnostics and tests.
    pub async fn pragma(&self, name: &str) -> Result<String, StoreError> {
        if !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(StoreError::Invalid(format!(
                "`{name}` is not a pragma name"
            )));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(&self.pool)
            .await
            .doing("reading a setting")?;
        use sqlx::{Row, ValueRef};
        let raw = row.try_get_raw(0).doing("reading a setting")?;
        if raw.is_null() {
            return Ok(String::new());
        }
        match row.try_get::<i64, _>(0) {
            Ok(n) => Ok(n.to_string()),
            Err(_) => row.try_get::<String, _>(0).doing("reading a setting"),
        }
    }

    /// The readers' pool, for `store::copy` (which reads every table as it is).
    pub(in crate::store) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `script` (which began with `BEGIN IMMEDIATE`) to its `COMMIT` in one round trip,
    /// returning the rows its statements produced. On any error the transaction is rolled
    /// back before the writer is released.
    async fn run_script(&self, script: Script) -> Result<Vec<SqliteRow>, sqlx::Error> {
        self.writer.lock().await.run(script).await
    }

    /// The clock of every timestamp this store writes and of its leases: one host's, since a
    /// SQLite file is served by one host.
    fn clock(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Runs `attempt` again while SQLite answers "busy": switching a new file to WAL needs a lock
/// that another process opening it at the same moment may hold, and SQLite reports that at
/// once instead of waiting out the busy timeout.
async fn while_busy<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(sqlx::Error::Database(e))
                if tries < MIGRATE_TRIES && matches!(e.code().as_deref(), Some("5" | "6")) =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}

/// Refuses a database whose directory cannot be written, saying so: SQLite's own error for it
/// ("unable to open database file") names neither the directory nor the cause. vigil writes
/// the database, its WAL and its lock file there, reads included (WAL readers write `-shm`).
fn refuse_read_only_dir(file: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: access(2) reads the NUL-terminated path and nothing else.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    match source.raw_os_error() {
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => Err(StoreError::ReadOnly {
            path: dir.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// How often opening retries migrations another process is applying at the same moment.
const MIGRATE_TRIES: u32 = 20;

/// Refuses a SQLite file that holds another program's tables: migrating would add vigil's
/// tables to someone else's database (a `database.url` pointing at the wrong file).
async fn refuse_foreign(options: SqliteConnectOptions, url: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let open_err = |source| StoreError::Open {
        url: url.to_string(),
        source,
    };
    let mut conn = while_busy(|| options.connect()).await.map_err(open_err)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(open_err)?;
    let _ = conn.close().await;
    if tables.is_empty() || tables.iter().any(|t| t == "_sqlx_migrations") {
        return Ok(());
    }
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    Err(StoreError::Invalid(format!(
        "{url} is another program's SQLite database (its tables: {}{}); give vigil a file of its own",
        shown.join(", "),
        if tables.len() > 5 { ", …" } else { "" }
    )))
}

/// Applies the migrations. sqlx takes no lock for SQLite, so two processes opening a new
/// file together (a daemon starting while `vigil dags trigger` runs) can both try the same
/// migration; each runs in a transaction, so the loser's attempt is rolled back and it only
/// has to look again once the winner is done.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let migrator = sqlx::migrate!("./migrations/sqlite");
    let mut tries = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(
                sqlx::migrate::MigrateError::Execute(_)
                | sqlx::migrate::MigrateError::ExecuteMigration(..),
            ) if tries < MIGRATE_TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25 * u64::from(tries))).await;
            }
            Err(e) => return Err(StoreError::Migrate(e)),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn identity(&self) -> &str {
        &self.identity
    }

    async fn wake_daemons(&self) -> Option<String> {
        let holder = lock::OwnerLock::holder(std::path::Path::new(&self.identity))?;
        // SAFETY: kill(2) sends a signal and touches no memory. SIGUSR1 asks the daemon to look
        // at the database now; a process that is not a vigil daemon would not hold the lock.
        let rc = unsafe { libc::kill(holder.pid, libc::SIGUSR1) };
        (rc == 0).then(|| format!("pid {}", holder.pid))
    }
}
