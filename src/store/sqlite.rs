//! The SQLite store: one file in WAL mode.
//!
//! Durability is a setting. With `synchronous = NORMAL` (the default) a commit survives a
//! crash of the vigil process, and after a power loss the database is consistent but the last
//! commits may be missing; `FULL` syncs every commit to disk (about 4 ms on a typical cloud
//! disk, which would cap the executor at a few hundred transitions per second). The executor
//! groups the transitions that happen together into one transaction either way.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use crate::state::{RunState, TaskState};
use crate::store::{
    Batch, LogRecord, NewRun, QueryContext, RunFilter, RunId, RunRecord, RunType, Store,
    StoreError, StoredOutput, TaskInstance,
};
use crate::task::{LogLevel, LogLine};

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

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Rows per multi-row INSERT, well under SQLite's limit of bound variables.
const INSERT_CHUNK: usize = 500;

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
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection.
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(SqliteStore { pool })
    }

    /// The underlying pool, for maintenance commands and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front, so two writers queue on the busy
    /// timeout instead of failing when a read transaction tries to upgrade.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("starting a write transaction")
    }
}

fn corrupt(what: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn json_col(row: &SqliteRow, col: &str) -> Result<serde_json::Value, StoreError> {
    let text: String = row.try_get(col).doing("reading a row")?;
    serde_json::from_str(&text).map_err(|e| corrupt(col, e))
}

fn run_from_row(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let state: String = row.try_get("state").doing("reading a run")?;
    let run_type: String = row.try_get("run_type").doing("reading a run")?;
    Ok(RunRecord {
        id: row.try_get("id").doing("reading a run")?,
        dag_id: row.try_get("dag_id").doing("reading a run")?,
        logical_date: row.try_get("logical_date").doing("reading a run")?,
        run_type: RunType::parse(&run_type)
            .ok_or_else(|| corrupt("dag_runs.run_type", &run_type))?,
        state: state.parse().map_err(|e| corrupt("dag_runs.state", e))?,
        conf: json_col(row, "conf")?,
        dag_file: row.try_get("dag_file").doing("reading a run")?,
        dag_source: row.try_get("dag_source").doing("reading a run")?,
        queued_at: row.try_get("queued_at").doing("reading a run")?,
        started_at: row.try_get("started_at").doing("reading a run")?,
        ended_at: row.try_get("ended_at").doing("reading a run")?,
    })
}

fn task_from_row(row: &SqliteRow) -> Result<TaskInstance, StoreError> {
    let state: String = row.try_get("state").doing("reading a task instance")?;
    Ok(TaskInstance {
        run_id: row.try_get("run_id").doing("reading a task instance")?,
        task_id: row.try_get("task_id").doing("reading a task instance")?,
        state: state
            .parse::<TaskState>()
            .map_err(|e| corrupt("task_instances.state", e))?,
        attempt: row.try_get("attempt").doing("reading a task instance")?,
        max_attempts: row
            .try_get("max_attempts")
            .doing("reading a task instance")?,
        started_at: row.try_get("started_at").doing("reading a task instance")?,
        ended_at: row.try_get("ended_at").doing("reading a task instance")?,
        next_retry_at: row
            .try_get("next_retry_at")
            .doing("reading a task instance")?,
        error: row.try_get("error").doing("reading a task instance")?,
        updated_at: row.try_get("updated_at").doing("reading a task instance")?,
    })
}

async fn insert_logs(
    tx: &mut Transaction<'static, Sqlite>,
    run_id: RunId,
    task_id: &str,
    attempt: u32,
    lines: &[LogLine],
) -> Result<(), StoreError> {
    // TODO-correctness: seq restarts at 0 per write; fine while an attempt's log is written
    // once, at its end.
    for (chunk_no, chunk) in lines.chunks(INSERT_CHUNK).enumerate() {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO task_logs (run_id, task_id, attempt, seq, ts, level, message) ",
        );
        qb.push_values(chunk.iter().enumerate(), |mut b, (i, line)| {
            b.push_bind(run_id)
                .push_bind(task_id)
                .push_bind(attempt)
                .push_bind((chunk_no * INSERT_CHUNK + i) as i64)
                .push_bind(line.ts)
                .push_bind(line.level.as_str())
                .push_bind(line.message.as_str());
        });
        qb.build()
            .execute(&mut **tx)
            .await
            .doing("writing task logs")?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, new: &NewRun) -> Result<RunRecord, StoreError> {
        let now = Utc::now();
        let conf = new.conf.to_string();
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO dag_runs (dag_id, logical_date, run_type, state, conf, dag_file, dag_source, queued_at, started_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.dag_id)
        .bind(new.logical_date)
        .bind(new.run_type.as_str())
        .bind(new.state.as_str())
        .bind(&conf)
        .bind(&new.dag_file)
        .bind(&new.dag_source)
        .bind(now)
        .bind((new.state == RunState::Running).then_some(now))
        .execute(&mut *tx)
        .await;
        let id = match inserted {
            Ok(r) => r.last_insert_rowid(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                drop(tx);
                let existing: i64 = sqlx::query_scalar(
                    "SELECT id FROM dag_runs WHERE dag_id = ? AND logical_date = ?",
                )
                .bind(&new.dag_id)
                .bind(new.logical_date)
                .fetch_one(&self.pool)
                .await
                .doing("looking up an existing run")?;
                return Err(StoreError::RunExists {
                    dag_id: new.dag_id.clone(),
                    logical_date: new.logical_date.to_rfc3339(),
                    existing,
                });
            }
            Err(e) => return Err(e).doing("creating a run"),
        };
        for chunk in new.tasks.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO task_instances (run_id, task_id, state, attempt, max_attempts, updated_at) ",
            );
            qb.push_values(chunk, |mut b, (task_id, max_attempts)| {
                b.push_bind(id)
                    .push_bind(task_id.as_str())
                    .push_bind(TaskState::Scheduled.as_str())
                    .push_bind(0u32)
                    .push_bind(*max_attempts)
                    .push_bind(now);
            });
            qb.build()
                .execute(&mut *tx)
                .await
                .doing("creating task instances")?;
        }
        tx.commit().await.doing("committing a new run")?;
        Ok(RunRecord {
            id,
            dag_id: new.dag_id.clone(),
            logical_date: new.logical_date,
            run_type: new.run_type,
            state: new.state,
            conf: new.conf.clone(),
            dag_file: new.dag_file.clone(),
            dag_source: new.dag_source.clone(),
            queued_at: now,
            started_at: (new.state == RunState::Running).then_some(now),
            ended_at: None,
        })
    }

    async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for t in &batch.tasks {
            let to = &t.to;
            let changed = sqlx::query(
                "UPDATE task_instances
                 SET state = ?, attempt = ?, started_at = ?, ended_at = ?, next_retry_at = ?,
                     error = ?, updated_at = ?
                 WHERE run_id = ? AND task_id = ? AND state = ? AND attempt = ?",
            )
            .bind(to.state.as_str())
            .bind(to.attempt)
            .bind(to.started_at)
            .bind(to.ended_at)
            .bind(to.next_retry_at)
            .bind(to.error.as_deref())
            .bind(to.updated_at)
            .bind(batch.run_id)
            .bind(&to.task_id)
            .bind(t.expect_state.as_str())
            .bind(t.expect_attempt)
            .execute(&mut *tx)
            .await
            .doing("updating a task instance")?
            .rows_affected();
            if changed == 0 {
                // Dropping the transaction rolls back everything written so far.
                return Err(StoreError::Conflict {
                    run_id: batch.run_id,
                    what: format!(
                        "task `{}` is no longer {} at attempt {}",
                        to.task_id, t.expect_state, t.expect_attempt
                    ),
                });
            }
            if t.clear_output {
                sqlx::query("DELETE FROM xcoms WHERE run_id = ? AND task_id = ?")
                    .bind(batch.run_id)
                    .bind(&to.task_id)
                    .execute(&mut *tx)
                    .await
                    .doing("clearing a task result")?;
            }
            if let Some(output) = &t.output {
                sqlx::query(
                    "INSERT OR REPLACE INTO xcoms (run_id, task_id, attempt, value, created_at)
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(batch.run_id)
                .bind(&to.task_id)
                .bind(to.attempt)
                .bind(output.to_string())
                .bind(to.updated_at)
                .execute(&mut *tx)
                .await
                .doing("storing a task result")?;
            }
            if !t.logs.is_empty() {
                insert_logs(&mut tx, batch.run_id, &to.task_id, t.logs_attempt, &t.logs).await?;
            }
        }
        if let Some(run) = &batch.run {
            // Every variant binds (new state, time, run id, expected state).
            let query = match run.to {
                RunState::Running => sqlx::query(
                    "UPDATE dag_runs SET state = ?1, started_at = coalesce(started_at, ?2)
                     WHERE id = ?3 AND state = ?4",
                ),
                RunState::Queued => sqlx::query(
                    "UPDATE dag_runs SET state = ?1, queued_at = ?2, started_at = NULL, ended_at = NULL
                     WHERE id = ?3 AND state = ?4",
                ),
                RunState::Success | RunState::Failed => sqlx::query(
                    "UPDATE dag_runs SET state = ?1, ended_at = ?2 WHERE id = ?3 AND state = ?4",
                ),
            };
            let changed = query
                .bind(run.to.as_str())
                .bind(run.at)
                .bind(batch.run_id)
                .bind(run.expect.as_str())
                .execute(&mut *tx)
                .await
                .doing("updating a run")?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::Conflict {
                    run_id: batch.run_id,
                    what: format!("run is no longer {}", run.expect),
                });
            }
        }
        tx.commit().await.doing("committing state changes")
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        sqlx::query("SELECT * FROM dag_runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading a run")?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM dag_runs WHERE 1 = 1");
        if let Some(dag) = &filter.dag_id {
            qb.push(" AND dag_id = ").push_bind(dag.as_str());
        }
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.unwrap_or(100)));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .doing("listing runs")?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn task_instances(&self, run_id: RunId) -> Result<Vec<TaskInstance>, StoreError> {
        sqlx::query("SELECT * FROM task_instances WHERE run_id = ?")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .doing("reading task instances")?
            .iter()
            .map(task_from_row)
            .collect()
    }

    async fn output(
        &self,
        run_id: RunId,
        task_id: &str,
    ) -> Result<Option<StoredOutput>, StoreError> {
        sqlx::query("SELECT * FROM xcoms WHERE run_id = ? AND task_id = ?")
            .bind(run_id)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading a task result")?
            .as_ref()
            .map(output_from_row)
            .transpose()
    }

    async fn outputs(&self, run_id: RunId) -> Result<Vec<StoredOutput>, StoreError> {
        sqlx::query("SELECT * FROM xcoms WHERE run_id = ?")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .doing("reading task results")?
            .iter()
            .map(output_from_row)
            .collect()
    }

    async fn logs(
        &self,
        run_id: RunId,
        task_id: &str,
        attempt: Option<u32>,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM task_logs WHERE run_id = ? AND task_id = ? AND (? IS NULL OR attempt = ?)
             ORDER BY attempt, seq",
        )
        .bind(run_id)
        .bind(task_id)
        .bind(attempt)
        .bind(attempt)
        .fetch_all(&self.pool)
        .await
        .doing("reading task logs")?;
        rows.iter()
            .map(|row| {
                let level: String = row.try_get("level").doing("reading task logs")?;
                let ts: DateTime<Utc> = row.try_get("ts").doing("reading task logs")?;
                Ok(LogRecord {
                    attempt: row.try_get("attempt").doing("reading task logs")?,
                    seq: row.try_get("seq").doing("reading task logs")?,
                    line: LogLine {
                        ts,
                        level: LogLevel::parse(&level),
                        message: row.try_get("message").doing("reading task logs")?,
                    },
                })
            })
            .collect()
    }

    async fn count_runs(&self, state: RunState) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_runs WHERE state = ?")
            .bind(state.as_str())
            .fetch_one(&self.pool)
            .await
            .doing("counting runs")?;
        Ok(n.max(0) as u64)
    }
}

fn output_from_row(row: &SqliteRow) -> Result<StoredOutput, StoreError> {
    Ok(StoredOutput {
        task_id: row.try_get("task_id").doing("reading a task result")?,
        attempt: row.try_get("attempt").doing("reading a task result")?,
        value: json_col(row, "value")?,
        created_at: row.try_get("created_at").doing("reading a task result")?,
    })
}
