//! `vigil db copy`: a SQLite database's whole history moved into an empty PostgreSQL one — runs
//! with their task instances, results and logs, the scheduler's DAG state, the model registry
//! and the outbox — keeping ids and timestamps, in one PostgreSQL transaction (a failed copy
//! leaves the target empty), then verified table by table: the same rows and the same
//! contents, read back from both sides. Tables move a page at a time, so memory stays bounded
//! by a page whatever the history's size.
//!
//! The daemons table is not copied: it describes the processes serving the old database.
//! The column lists below are the schema's; a migration that adds a column adds it here, and
//! the round-trip test fails until it does.

use std::fmt::Write as _;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, AssertSqlSafe, Row};

use crate::store::{PgStore, QueryContext, SqliteStore, StoreError};

#[derive(Clone, Copy)]
enum Ty {
    Int,
    Real,
    Text,
    Time,
    Bool,
    Bytes,
}

/// A table: its name, the column that orders it, and its columns with their types.
struct Table {
    name: &'static str,
    order: &'static str,
    columns: &'static [(&'static str, Ty)],
    /// Has a `BIGSERIAL id` whose sequence must continue after the copied ids.
    serial: bool,
}

use Ty::*;

/// In an order that satisfies the foreign keys and the registry's triggers; `models` goes in
/// without its production pointer, which is set once the versions exist.
const TABLES: &[Table] = &[
    Table {
        name: "dag_sources",
        order: "sha256",
        columns: &[("sha256", Text), ("source", Text)],
        serial: false,
    },
    Table {
        name: "dag_runs",
        order: "id",
        columns: &[
            ("id", Int),
            ("dag_id", Text),
            ("logical_date", Time),
            ("run_type", Text),
            ("state", Text),
            ("conf", Text),
            ("dag_file", Text),
            ("dag_source", Text),
            ("dag_sha256", Text),
            ("queued_at", Time),
            ("started_at", Time),
            ("ended_at", Time),
            ("owner", Text),
            ("heartbeat_at", Time),
            ("data_interval_start", Time),
            ("note", Text),
            ("cancel_requested", Text),
            ("max_active_tasks", Int),
            ("idempotency_key", Text),
        ],
        serial: true,
    },
    Table {
        name: "task_instances",
        order: "run_id, task_id",
        columns: &[
            ("run_id", Int),
            ("task_id", Text),
            ("state", Text),
            ("attempt", Int),
            ("max_attempts", Int),
            ("started_at", Time),
            ("ended_at", Time),
            ("next_retry_at", Time),
            ("error", Text),
            ("updated_at", Time),
            ("heartbeat_at", Time),
            ("note", Text),
            ("worker", Text),
        ],
        serial: false,
    },
    Table {
        name: "xcoms",
        order: "run_id, task_id, attempt",
        columns: &[
            ("run_id", Int),
            ("task_id", Text),
            ("attempt", Int),
            ("value", Text),
            ("created_at", Time),
        ],
        serial: false,
    },
    Table {
        name: "task_logs",
        order: "run_id, task_id, attempt, seq",
        columns: &[
            ("run_id", Int),
            ("task_id", Text),
            ("attempt", Int),
            ("seq", Int),
            ("ts", Time),
            ("level", Text),
            ("message", Text),
        ],
        serial: false,
    },
    Table {
        name: "dags",
        order: "dag_id",
        columns: &[
            ("dag_id", Text),
            ("paused", Bool),
            ("last_tick", Time),
            ("first_seen", Time),
            ("updated_at", Time),
        ],
        serial: false,
    },
    Table {
        name: "models",
        order: "name",
        columns: &[("name", Text), ("created_at", Time), ("updated_at", Time)],
        serial: false,
    },
    Table {
        name: "model_versions",
        order: "model, version",
        columns: &[
            ("model", Text),
            ("version", Text),
            ("metrics", Text),
            ("artifact_path", Text),
            ("artifact_sha256", Text),
            ("artifact_size", Int),
            ("artifact_bytes", Bytes),
            ("source", Text),
            ("notes", Text),
            ("created_at", Time),
        ],
        serial: false,
    },
    Table {
        name: "model_deployments",
        order: "id",
        columns: &[
            ("id", Int),
            ("model", Text),
            ("from_version", Text),
            ("to_version", Text),
            ("reason", Text),
            ("actor", Text),
            ("at", Time),
        ],
        serial: true,
    },
    Table {
        name: "model_predictions",
        order: "id",
        columns: &[
            ("id", Int),
            ("model", Text),
            ("version", Text),
            ("row_key", Text),
            ("predicted", Real),
            ("actual", Real),
            ("at", Time),
        ],
        serial: true,
    },
    Table {
        name: "model_alerts",
        order: "id",
        columns: &[
            ("id", Int),
            ("model", Text),
            ("kind", Text),
            ("verdict", Text),
            ("message", Text),
            ("details", Text),
            ("dry_run", Bool),
            ("at", Time),
        ],
        serial: true,
    },
    Table {
        name: "outbox",
        order: "id",
        columns: &[
            ("id", Int),
            ("kind", Text),
            ("subject", Text),
            ("body", Text),
            ("payload", Text),
            ("state", Text),
            ("attempts", Int),
            ("created_at", Time),
            ("channel", Text),
            ("recipients", Text),
            ("html", Text),
            ("next_attempt_at", Time),
            ("last_error", Text),
            ("sent_at", Time),
            ("lease_owner", Text),
            ("lease_until", Time),
        ],
        serial: true,
    },
];

/// One value of any column, as both databases hand it over.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Time(Option<DateTime<Utc>>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    /// One row of `t`, in its column order, from either database.
    fn row<R: Row>(row: &R, t: &Table) -> Result<Vec<Value>, sqlx::Error>
    where
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
    {
        t.columns
            .iter()
            .map(|&(column, ty)| {
                Ok(match ty {
                    Int => Value::Int(row.try_get(column)?),
                    Real => Value::Real(row.try_get(column)?),
                    Text => Value::Text(row.try_get(column)?),
                    Time => Value::Time(row.try_get(column)?),
                    Bool => Value::Bool(row.try_get(column)?),
                    Bytes => Value::Bytes(row.try_get(column)?),
                })
            })
            .collect()
    }

    fn bind(self, args: &mut PgArguments) -> Result<(), StoreError> {
        let added = match self {
            Value::Int(v) => args.add(v),
            Value::Real(v) => args.add(v),
            Value::Text(v) => args.add(v),
            Value::Time(v) => args.add(v),
            Value::Bool(v) => args.add(v),
            Value::Bytes(v) => args.add(v),
        };
        added.map_err(|e| crate::store::rows::corrupt("copy argument", e))
    }

    /// The value as both sides must agree on it: timestamps to the microsecond (PostgreSQL's
    /// precision; SQLite keeps what it was given).
    fn canonical(&self, out: &mut String) {
        let _ = match self {
            Value::Int(v) => write!(out, "{v:?}"),
            Value::Real(v) => write!(out, "{:?}", v.map(f64::to_bits)),
            Value::Text(v) => write!(out, "{v:?}"),
            Value::Time(v) => write!(out, "{:?}", v.map(|t| t.trunc_subsecs(6))),
            Value::Bool(v) => write!(out, "{v:?}"),
            Value::Bytes(v) => write!(out, "{v:?}"),
        };
        out.push('\u{1f}');
    }
}

/// What was copied, per table.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    pub tables: Vec<CopiedTable>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopiedTable {
    pub table: &'static str,
    pub rows: u64,
    /// SHA-256 of the table's rows in key order, the same read back from both sides.
    pub sha256: String,
}

/// Rows per page read and per INSERT: well under PostgreSQL's 65,535 bound parameters at 17
/// columns.
const BATCH: usize = 1_000;

fn select(t: &Table) -> String {
    let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        t.name,
        t.order
    )
}

/// A running SHA-256 over rows in key order, the same on both sides.
struct Digest {
    hasher: sha2::Sha256,
    rows: u64,
}

impl Digest {
    fn new() -> Digest {
        Digest {
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            rows: 0,
        }
    }

    fn add(&mut self, row: &[Value]) {
        let mut text = String::new();
        for v in row {
            v.canonical(&mut text);
        }
        text.push('\u{1e}');
        sha2::Digest::update(&mut self.hasher, text.as_bytes());
        self.rows += 1;
    }

    fn hex(self) -> String {
        sha2::Digest::finalize(self.hasher)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One page of `t` in key order: memory stays bounded by a page, whatever the history's size.
fn page(t: &Table, offset: u64) -> String {
    format!("{} LIMIT {BATCH} OFFSET {offset}", select(t))
}

/// Inserts `rows` of `t` as one statement.
async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    t: &Table,
    rows: Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", t.name, columns.join(", "));
    let mut args = PgArguments::default();
    let mut n = 0;
    for (i, row) in rows.into_iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for (j, v) in row.into_iter().enumerate() {
            n += 1;
            let _ = write!(sql, "{}${n}", if j == 0 { "" } else { ", " });
            v.bind(&mut args)?;
        }
        sql.push(')');
    }
    sqlx::query_with(AssertSqlSafe(sql), args)
        .execute(&mut **tx)
        .await
        .doing("writing the target database")?;
    Ok(())
}

/// Copies everything from `from` into `to`, which must hold no runs, models or messages yet.
pub async fn sqlite_to_postgres(from: &SqliteStore, to: &PgStore) -> Result<Copied, StoreError> {
    let source = from.pool();
    let target = to.pool();
    let held: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM dag_runs) + (SELECT count(*) FROM models) + (SELECT count(*) FROM outbox)",
    )
    .fetch_one(target)
    .await
    .doing("looking into the target database")?;
    if held > 0 {
        return Err(StoreError::Invalid(format!(
            "the target database already holds {held} run(s), model(s) or message(s); copy into an empty database"
        )));
    }
    let production: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, production_version FROM models ORDER BY name")
            .fetch_all(source)
            .await
            .doing("reading the source database")?;

    let mut tx = target.begin().await.doing("copying")?;
    let mut read = Vec::new();
    for t in TABLES {
        let mut digest = Digest::new();
        loop {
            let rows: Vec<SqliteRow> = sqlx::query(AssertSqlSafe(page(t, digest.rows)))
                .fetch_all(source)
                .await
                .doing("reading the source database")?;
            if rows.is_empty() {
                break;
            }
            let values = rows
                .iter()
                .map(|row| Value::row(row, t))
                .collect::<Result<Vec<_>, _>>()
                .doing("reading the source database")?;
            values.iter().for_each(|row| digest.add(row));
            insert(&mut tx, t, values).await?;
        }
        if t.serial {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), coalesce((SELECT max(id) FROM {0}), 0) + 1, false)",
                t.name
            )))
            .execute(&mut *tx)
            .await
            .doing("writing the target database")?;
        }
        read.push(digest);
    }
    for (name, version) in &production {
        sqlx::query("UPDATE models SET production_version = $1 WHERE name = $2")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .doing("writing the target database")?;
    }
    // Verify inside the transaction: a mismatch rolls everything back.
    let mut tables = Vec::new();
    for (t, want) in TABLES.iter().zip(read) {
        let mut back = Digest::new();
        loop {
            let rows = sqlx::query(AssertSqlSafe(page(t, back.rows)))
                .fetch_all(&mut *tx)
                .await
                .doing("verifying the copy")?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                back.add(&Value::row(row, t).doing("verifying the copy")?);
            }
        }
        let rows = want.rows;
        let (written, want, got) = (back.rows, want.hex(), back.hex());
        if written != rows || want != got {
            return Err(StoreError::Invalid(format!(
                "the copy of table {} does not match its source ({rows} rows read, {written} written); nothing was copied",
                t.name,
            )));
        }
        tables.push(CopiedTable {
            table: t.name,
            rows,
            sha256: want,
        });
    }
    let pointers_match: i64 =
        sqlx::query_scalar("SELECT count(*) FROM models WHERE production_version IS NOT NULL")
            .fetch_one(&mut *tx)
            .await
            .doing("verifying the copy")?;
    let want_pointers = production.iter().filter(|(_, v)| v.is_some()).count() as i64;
    if pointers_match != want_pointers {
        return Err(StoreError::Invalid(
            "the production pointers did not copy; nothing was copied".into(),
        ));
    }
    tx.commit().await.doing("copying")?;
    Ok(Copied { tables })
}

/// Opens `from` (a SQLite URL; its file must exist) and `to` (a PostgreSQL URL) and copies.
pub async fn copy(from: &str, to: &str) -> Result<Copied, StoreError> {
    if crate::store::is_postgres(from) || !crate::store::is_postgres(to) {
        return Err(StoreError::Invalid(format!(
            "`db copy` copies a SQLite database into a PostgreSQL one (--from sqlite://PATH --to postgres://...); got --from {} --to {}",
            crate::store::display_url(from),
            crate::store::display_url(to)
        )));
    }
    match crate::store::sqlite_path(from) {
        Some(path) if path.is_file() => {}
        _ => {
            return Err(StoreError::Invalid(format!(
                "there is no SQLite database at {from}; give the file the daemon uses (database.url)"
            )));
        }
    }
    let source = SqliteStore::open(from, crate::store::Synchronous::Normal).await?;
    let target = PgStore::open(to, std::time::Duration::from_secs(10)).await?;
    sqlite_to_postgres(&source, &target).await
}
