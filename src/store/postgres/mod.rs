//! The PostgreSQL store: one database shared by any number of vigil processes, on one host or
//! many.
//!
//! Every write is one transaction on a pooled connection. Conditional updates are checked in
//! Rust (a guarded statement that changed no row rolls the transaction back and becomes
//! [`StoreError::Conflict`]); bulk inserts bind whole columns as arrays (`UNNEST`), so a
//! 10,000-task run is one statement. Timestamps and leases come from the database server's
//! clock (`now()`, the transaction's start), so hosts whose clocks disagree still agree on
//! who holds a lease.
//!
//! Rows decode through the same structs as SQLite's (`store/rows.rs`); the schema keeps
//! SQLite's column names and plain types for that (`migrations/postgres`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Postgres, Transaction};

use crate::store::{QueryContext, Store, StoreError};

mod claims;
mod dags;
pub(crate) mod listen;
mod outbox;
mod queue;
mod registry;
mod runs;
mod stats;

/// Connections per process: enough for the executor's writes, the outbox sender and readers
/// at once; several daemons on one server each open their own (see docs/deployment.md).
const MAX_CONNECTIONS: u32 = 8;

/// The advisory lock held while retention sweeps, so one daemon sweeps at a time ("vigil"
/// retention, as bytes).
const RETENTION_LOCK: i64 = 0x7669_6769_6c5f_7274;

/// The advisory lock held while claiming tasks, so that claims by several daemons count each
/// other's ("vigil" claims, as bytes).
const CLAIM_LOCK: i64 = 0x7669_6769_6c5f_636c;

/// The channel `vigil` processes wake the daemons on (`LISTEN`/`NOTIFY`).
pub const WAKE_CHANNEL: &str = "vigil_wake";

#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    /// `host:port/database`, without credentials.
    identity: String,
}

/// A write transaction.
type Tx = Transaction<'static, Postgres>;

/// Why a transaction did not commit: a guarded statement found its row changed, or the
/// database failed.
enum Abort {
    Stale,
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for Abort {
    fn from(e: sqlx::Error) -> Abort {
        Abort::Sql(e)
    }
}

/// Fails a transaction unless the guarded statement changed a row.
fn guard(done: PgQueryResult) -> Result<(), Abort> {
    if done.rows_affected() == 0 {
        Err(Abort::Stale)
    } else {
        Ok(())
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and applies the
    /// migrations (sqlx holds an advisory lock while it does, so daemons starting together
    /// migrate once). A server that is not up yet is waited for, with a log line, up to
    /// `wait`.
    pub async fn open(url: &str, wait: Duration) -> Result<PgStore, StoreError> {
        let open_err = |source| StoreError::Open {
            url: redact(url),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(open_err)?
            .application_name(&format!("vigil {}", crate::state::owner::current()));
        let identity = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        // One plain connection first: it fails at once while the server is down, where the
        // pool would sit out its whole acquire timeout before saying anything.
        let started = std::time::Instant::now();
        loop {
            match <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await {
                Ok(probe) => {
                    let _ = sqlx::Connection::close(probe).await;
                    break;
                }
                Err(e) if is_unreachable(&e) && started.elapsed() < wait => {
                    tracing::warn!(
                        database = %identity,
                        error = %e,
                        "PostgreSQL is not reachable yet; retrying in 1 s"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(open_err(e)),
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // Long enough to ride out a database restart without failing a commit.
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(PgStore { pool, identity })
    }

    /// The pool, for `store::copy` (which writes every table as it is).
    pub(in crate::store) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }
}

/// How often a write is tried again after PostgreSQL aborted it as a deadlock's victim.
const TRANSIENT_TRIES: u32 = 5;

/// Whether PostgreSQL aborted a transaction that would succeed if run again: a deadlock's
/// victim (40P01) or a serialization failure (40001).
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Whether connecting failed because the server is not there (yet), as opposed to refusing us.
fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57P03"))
}

/// `url` with its password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an unparsable PostgreSQL URL)".into(),
    }
}

/// The time by the database server's clock.
async fn now(tx: &mut Tx) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut **tx)
        .await
}

/// Commits `tx`, or explains why not: a stale guard becomes `on_stale`'s conflict.
async fn finish<T>(
    tx: Tx,
    result: Result<T, Abort>,
    doing: &'static str,
) -> Result<Result<T, ()>, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.doing(doing)?;
            Ok(Ok(value))
        }
        Err(Abort::Stale) => {
            tx.rollback().await.doing(doing)?;
            Ok(Err(()))
        }
        Err(Abort::Sql(e)) => {
            // Dropping the transaction rolls it back.
            drop(tx);
            Err(StoreError::Query { doing, source: e })
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn identity(&self) -> &str {
        &self.identity
    }

    async fn wake_daemons(&self) -> Option<String> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WAKE_CHANNEL)
            .execute(&self.pool)
            .await
            .ok()?;
        let daemons: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT substr(application_name, length($1) + 1) FROM pg_stat_activity
             WHERE datname = current_database() AND starts_with(application_name, $1)",
        )
        .bind(listen::DAEMON_APPLICATION)
        .fetch_all(&self.pool)
        .await
        .ok()?;
        (!daemons.is_empty()).then(|| daemons.join(", "))
    }
}
