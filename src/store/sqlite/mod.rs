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
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, ConnectOptions, QueryBuilder, Row, Sqlite};

use crate::state::LogLine;
use crate::state::{RunState, TaskState};
use crate::store::{
    Batch, Cleanup, DagState, LogRecord, NewRun, QueryContext, RunFilter, RunId, RunRecord,
    RunType, Store, StoreError, StoredOutput, TaskInstance,
};

pub(crate) mod lock;
mod models;
mod outbox;

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

#[derive(Debug)]
struct Writer {
    conn: SqliteConnection,
    /// Set while a script runs. Still set when the next commit takes the lock means the last
    /// script was cancelled halfway, possibly inside an open transaction: roll it back first.
    dirty: bool,
}

/// The message of the guard trigger; a script error carrying it means "stale update".
const STALE: &str = "vigil: stale update";

/// Created on the writer connection only (TEMP objects are per connection).
const GUARD_SQL: &str = "
CREATE TEMP VIEW IF NOT EXISTS vigil_guard (changed) AS SELECT 0;
CREATE TEMP TRIGGER IF NOT EXISTS vigil_guard_check INSTEAD OF INSERT ON vigil_guard
WHEN NEW.changed = 0 BEGIN SELECT RAISE(ROLLBACK, 'vigil: stale update'); END;
";

/// A transaction as multi-statement SQL with its arguments, bound in order. Use only
/// anonymous `?` parameters: sqlx numbers `?NNN` across the whole multi-statement text, not
/// per statement, so `?1` in a later statement would bind the script's first argument. Long
/// scripts are cut into parts: SQLite copies the rest of the text each time it prepares a
/// statement, so one part of n statements costs O(n²).
struct Script {
    parts: Vec<Part>,
}

struct Part {
    sql: String,
    args: SqliteArguments,
    statements: usize,
}

/// Rows per multi-row INSERT, well under SQLite's limit of bound variables.
const INSERT_CHUNK: usize = 500;

/// Statements per part: one round trip each, and no quadratic prepare.
const PART_STATEMENTS: usize = 128;
/// Parts this small repeat (a chain step is the same few statements every time), so their
/// prepared statements are worth caching; big ones vary and would only fill the cache.
const CACHED_STATEMENTS: usize = 16;

impl Part {
    fn new() -> Part {
        Part {
            sql: String::new(),
            args: SqliteArguments::default(),
            statements: 0,
        }
    }
}

impl Script {
    fn new() -> Script {
        let mut script = Script {
            parts: vec![Part::new()],
        };
        script.stmt("BEGIN IMMEDIATE");
        script
    }

    /// Appends a statement; bind its arguments right after.
    fn stmt(&mut self, sql: &str) -> &mut Script {
        if self
            .parts
            .last()
            .is_some_and(|p| p.statements >= PART_STATEMENTS)
        {
            self.parts.push(Part::new());
        }
        if let Some(part) = self.parts.last_mut() {
            part.sql.push_str(sql);
            part.sql.push_str(";\n");
            part.statements += 1;
        }
        self
    }

    fn bind<'q, T: sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>>(
        &mut self,
        value: T,
    ) -> Result<&mut Script, StoreError> {
        if let Some(part) = self.parts.last_mut() {
            part.args.add(value).map_err(|e| StoreError::Corrupt {
                what: "query argument".into(),
                detail: e.to_string(),
            })?;
        }
        Ok(self)
    }

    /// Fails the whole script (rolling back) unless the previous statement changed a row.
    fn guard(&mut self) -> &mut Script {
        self.stmt("INSERT INTO vigil_guard (changed) VALUES (changes())")
    }
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
        let mut conn = options.connect().await.map_err(open_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .map_err(StoreError::Migrate)?;
        sqlx::raw_sql(GUARD_SQL)
            .execute(&mut conn)
            .await
            .doing("creating the write guard")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        Ok(SqliteStore {
            pool,
            writer: tokio::sync::Mutex::new(Writer { conn, dirty: false }),
            identity,
        })
    }

    /// The underlying pool, for maintenance commands and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `script` (which began with `BEGIN IMMEDIATE`) to its `COMMIT` in one round trip,
    /// returning the rows its statements produced. On any error the transaction is rolled
    /// back before the writer is released.
    async fn run_script(&self, mut script: Script) -> Result<Vec<SqliteRow>, sqlx::Error> {
        script.stmt("COMMIT");
        let mut w = self.writer.lock().await;
        if w.dirty {
            // Cancelled halfway last time. "No transaction is active" is fine here.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut w.conn).await;
        }
        w.dirty = true;
        let mut rows = Vec::new();
        for part in script.parts {
            let cached = part.statements <= CACHED_STATEMENTS;
            let result = sqlx::query_with(AssertSqlSafe(part.sql), part.args)
                .persistent(cached)
                .fetch_all(&mut w.conn)
                .await;
            match result {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => {
                    // The guard already rolled back; any other error may have left the
                    // transaction open.
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut w.conn).await;
                    w.dirty = false;
                    return Err(e);
                }
            }
        }
        w.dirty = false;
        Ok(rows)
    }

    /// Says which expected state a stale batch got wrong, by reading the current rows.
    async fn describe_conflict(&self, batch: &Batch) -> String {
        let Ok(current) = self.task_instances(batch.run_id).await else {
            return "the run changed while this batch was written".into();
        };
        for t in &batch.tasks {
            let now = current.iter().find(|c| c.task_id == t.to.task_id);
            if now.is_none_or(|c| c.state != t.expect_state || c.attempt != t.expect_attempt) {
                return format!(
                    "task `{}` is no longer {} at attempt {}",
                    t.to.task_id, t.expect_state, t.expect_attempt
                );
            }
        }
        if let Some(run) = &batch.run {
            return format!("run is no longer {}", run.expect);
        }
        "the run changed while this batch was written".into()
    }
}

fn is_stale(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains(STALE))
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

/// A run with its DAG source resolved (shared in `dag_sources`, or the run's own copy for runs
/// created before sources were shared). Append `WHERE ...`.
const SELECT_RUNS: &str = "SELECT dag_runs.*, COALESCE(dag_sources.source, dag_runs.dag_source) AS resolved_source \
     FROM dag_runs LEFT JOIN dag_sources ON dag_sources.sha256 = dag_runs.dag_sha256";

fn run_from_row(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let state: String = row.try_get("state").doing("reading a run")?;
    let run_type: String = row.try_get("run_type").doing("reading a run")?;
    let logical_date: DateTime<Utc> = row.try_get("logical_date").doing("reading a run")?;
    Ok(RunRecord {
        id: row.try_get("id").doing("reading a run")?,
        dag_id: row.try_get("dag_id").doing("reading a run")?,
        logical_date,
        data_interval_start: row
            .try_get::<Option<DateTime<Utc>>, _>("data_interval_start")
            .doing("reading a run")?
            .unwrap_or(logical_date),
        run_type: RunType::parse(&run_type)
            .ok_or_else(|| corrupt("dag_runs.run_type", &run_type))?,
        state: state.parse().map_err(|e| corrupt("dag_runs.state", e))?,
        conf: json_col(row, "conf")?,
        dag_file: row.try_get("dag_file").doing("reading a run")?,
        dag_source: row.try_get("resolved_source").doing("reading a run")?,
        queued_at: row.try_get("queued_at").doing("reading a run")?,
        started_at: row.try_get("started_at").doing("reading a run")?,
        ended_at: row.try_get("ended_at").doing("reading a run")?,
        owner: row.try_get("owner").doing("reading a run")?,
        heartbeat_at: row.try_get("heartbeat_at").doing("reading a run")?,
    })
}

fn dag_state_from_row(row: &SqliteRow) -> Result<DagState, StoreError> {
    Ok(DagState {
        dag_id: row.try_get("dag_id").doing("reading a DAG's state")?,
        paused: row.try_get("paused").doing("reading a DAG's state")?,
        last_tick: row.try_get("last_tick").doing("reading a DAG's state")?,
        first_seen: row.try_get("first_seen").doing("reading a DAG's state")?,
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

fn push_logs(
    script: &mut Script,
    run_id: RunId,
    task_id: &str,
    attempt: u32,
    lines: &[LogLine],
) -> Result<(), StoreError> {
    // TODO-correctness: seq restarts at 0 per write; fine while an attempt's log is written
    // once, at its end.
    for (chunk_no, chunk) in lines.chunks(INSERT_CHUNK).enumerate() {
        let mut sql = String::from(
            "INSERT INTO task_logs (run_id, task_id, attempt, seq, ts, level, message) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?, ?, ?)"
            });
        }
        script.stmt(&sql);
        for (i, line) in chunk.iter().enumerate() {
            script
                .bind(run_id)?
                .bind(task_id.to_string())?
                .bind(attempt)?
                .bind((chunk_no * INSERT_CHUNK + i) as i64)?
                .bind(line.ts)?
                .bind(line.level.as_str())?
                .bind(line.message.clone())?;
        }
    }
    Ok(())
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

    async fn create_run(&self, new: &NewRun) -> Result<RunRecord, StoreError> {
        let now = Utc::now();
        let started_at = (new.state == RunState::Running).then_some(now);
        let sha = crate::state::sha256_hex(new.dag_source.as_bytes());
        let mut script = Script::new();
        script
            .stmt("INSERT OR IGNORE INTO dag_sources (sha256, source) VALUES (?, ?)")
            .bind(sha.clone())?
            .bind(new.dag_source.clone())?;
        script
            .stmt(
                "INSERT INTO dag_runs (dag_id, logical_date, data_interval_start, run_type, state, conf, dag_file, dag_source, dag_sha256, queued_at, started_at, owner, heartbeat_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?)",
            )
            .bind(new.dag_id.clone())?
            .bind(new.logical_date)?
            .bind(new.data_interval_start)?
            .bind(new.run_type.as_str())?
            .bind(new.state.as_str())?
            .bind(new.conf.to_string())?
            .bind(new.dag_file.clone())?
            .bind(sha)?
            .bind(now)?
            .bind(started_at)?
            .bind(new.owner.clone())?
            .bind(new.owner.as_ref().map(|_| now))?;
        // Task instances refer to the run by last_insert_rowid(), which inserts into the
        // WITHOUT ROWID task table leave unchanged.
        for chunk in new.tasks.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO task_instances (run_id, task_id, state, attempt, max_attempts, updated_at) VALUES ",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 {
                    "(last_insert_rowid(), ?, 'scheduled', 0, ?, ?)"
                } else {
                    ", (last_insert_rowid(), ?, 'scheduled', 0, ?, ?)"
                });
            }
            script.stmt(&sql);
            for (task_id, max_attempts) in chunk {
                script
                    .bind(task_id.clone())?
                    .bind(*max_attempts)?
                    .bind(now)?;
            }
        }
        script.stmt("SELECT last_insert_rowid()");
        let rows = match self.run_script(script).await {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
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
        let id: i64 = rows
            .first()
            .ok_or_else(|| corrupt("new run id", "no row returned"))?
            .try_get(0)
            .doing("reading the new run id")?;
        Ok(RunRecord {
            id,
            dag_id: new.dag_id.clone(),
            logical_date: new.logical_date,
            data_interval_start: new.data_interval_start,
            run_type: new.run_type,
            state: new.state,
            conf: new.conf.clone(),
            dag_file: new.dag_file.clone(),
            dag_source: new.dag_source.clone(),
            queued_at: now,
            started_at,
            ended_at: None,
            owner: new.owner.clone(),
            heartbeat_at: new.owner.as_ref().map(|_| now),
        })
    }

    async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut script = Script::new();
        for t in &batch.tasks {
            let to = &t.to;
            script
                .stmt(
                    "UPDATE task_instances
                     SET state = ?, attempt = ?, max_attempts = ?, started_at = ?, ended_at = ?,
                         next_retry_at = ?, error = ?, updated_at = ?
                     WHERE run_id = ? AND task_id = ? AND state = ? AND attempt = ?",
                )
                .bind(to.state.as_str())?
                .bind(to.attempt)?
                .bind(to.max_attempts)?
                .bind(to.started_at)?
                .bind(to.ended_at)?
                .bind(to.next_retry_at)?
                .bind(to.error.clone())?
                .bind(to.updated_at)?
                .bind(batch.run_id)?
                .bind(to.task_id.clone())?
                .bind(t.expect_state.as_str())?
                .bind(t.expect_attempt)?;
            script.guard();
            if t.clear_output {
                script
                    .stmt("DELETE FROM xcoms WHERE run_id = ? AND task_id = ?")
                    .bind(batch.run_id)?
                    .bind(to.task_id.clone())?;
            }
            if let Some(output) = &t.output {
                script
                    .stmt(
                        "INSERT OR REPLACE INTO xcoms (run_id, task_id, attempt, value, created_at)
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(batch.run_id)?
                    .bind(to.task_id.clone())?
                    .bind(to.attempt)?
                    .bind(output.to_string())?
                    .bind(to.updated_at)?;
            }
            if !t.logs.is_empty() {
                push_logs(
                    &mut script,
                    batch.run_id,
                    &to.task_id,
                    t.logs_attempt,
                    &t.logs,
                )?;
            }
        }
        if let Some(run) = &batch.run {
            // Every variant binds (new state, time, run id, expected state).
            script.stmt(match run.to {
                RunState::Running => {
                    "UPDATE dag_runs SET state = ?, started_at = coalesce(started_at, ?)
                     WHERE id = ? AND state = ?"
                }
                RunState::Queued => {
                    "UPDATE dag_runs SET state = ?, queued_at = ?, started_at = NULL, ended_at = NULL
                     WHERE id = ? AND state = ?"
                }
                RunState::Success | RunState::Failed => {
                    "UPDATE dag_runs SET state = ?, ended_at = ? WHERE id = ? AND state = ?"
                }
            });
            script
                .bind(run.to.as_str())?
                .bind(run.at)?
                .bind(batch.run_id)?
                .bind(run.expect.as_str())?;
            script.guard();
        }
        let now = Utc::now();
        for n in &batch.notifications {
            outbox::push_notification(&mut script, n, now)?;
        }
        match self.run_script(script).await {
            Ok(_) => Ok(()),
            Err(e) if is_stale(&e) => Err(StoreError::Conflict {
                run_id: batch.run_id,
                what: self.describe_conflict(batch).await,
            }),
            Err(e) => Err(e).doing("committing state changes"),
        }
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "{SELECT_RUNS} WHERE dag_runs.id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a run")?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!("{SELECT_RUNS} WHERE 1 = 1"));
        if let Some(dag) = &filter.dag_id {
            qb.push(" AND dag_id = ").push_bind(dag.as_str());
        }
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        qb.push(" ORDER BY dag_runs.id DESC LIMIT ")
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
                        level: level.parse().map_err(|e| corrupt("task_logs.level", e))?,
                        message: row.try_get("message").doing("reading task logs")?,
                    },
                })
            })
            .collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "{SELECT_RUNS} WHERE state IN ('queued', 'running') ORDER BY queued_at, dag_runs.id"
        )))
        .fetch_all(&self.pool)
        .await
        .doing("listing unfinished runs")?
        .iter()
        .map(run_from_row)
        .collect()
    }

    async fn claim_run(
        &self,
        run_id: RunId,
        owner: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer.lock().await;
        let changed = sqlx::query(
            "UPDATE dag_runs SET owner = ?1, heartbeat_at = ?2
             WHERE id = ?3 AND state IN ('queued', 'running')
               AND (owner IS NULL OR owner = ?1 OR heartbeat_at IS NULL OR heartbeat_at < ?4)",
        )
        .bind(owner)
        .bind(Utc::now())
        .bind(run_id)
        .bind(stale_before)
        .execute(&mut w.conn)
        .await
        .doing("claiming a run")?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn release_run(&self, run_id: RunId, owner: &str) -> Result<(), StoreError> {
        let mut w = self.writer.lock().await;
        sqlx::query("UPDATE dag_runs SET owner = NULL WHERE id = ? AND owner = ?")
            .bind(run_id)
            .bind(owner)
            .execute(&mut w.conn)
            .await
            .doing("releasing a run")?;
        Ok(())
    }

    async fn heartbeat(&self, owner: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut script = Script::new();
        script
            .stmt(
                "UPDATE dag_runs SET heartbeat_at = ? WHERE owner = ? AND state IN ('queued', 'running')",
            )
            .bind(at)?
            .bind(owner.to_string())?;
        script
            .stmt(
                "UPDATE task_instances SET heartbeat_at = ?
                 WHERE state = 'running' AND run_id IN (SELECT id FROM dag_runs WHERE owner = ?)",
            )
            .bind(at)?
            .bind(owner.to_string())?;
        self.run_script(script)
            .await
            .doing("recording a heartbeat")?;
        Ok(())
    }

    async fn dag_state(
        &self,
        dag_id: &str,
        now: DateTime<Utc>,
        paused_if_new: bool,
    ) -> Result<DagState, StoreError> {
        let mut script = Script::new();
        script
            .stmt(
                "INSERT OR IGNORE INTO dags (dag_id, paused, first_seen, updated_at) VALUES (?, ?, ?, ?)",
            )
            .bind(dag_id.to_string())?
            .bind(paused_if_new)?
            .bind(now)?
            .bind(now)?;
        script
            .stmt("SELECT * FROM dags WHERE dag_id = ?")
            .bind(dag_id.to_string())?;
        let rows = self
            .run_script(script)
            .await
            .doing("reading a DAG's state")?;
        rows.first()
            .map(dag_state_from_row)
            .unwrap_or_else(|| Err(corrupt("dags", "row missing after insert")))
    }

    async fn dag_states(&self) -> Result<Vec<DagState>, StoreError> {
        sqlx::query("SELECT * FROM dags ORDER BY dag_id")
            .fetch_all(&self.pool)
            .await
            .doing("reading DAG states")?
            .iter()
            .map(dag_state_from_row)
            .collect()
    }

    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut script = Script::new();
        script
            .stmt(
                "INSERT INTO dags (dag_id, paused, first_seen, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (dag_id) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
            )
            .bind(dag_id.to_string())?
            .bind(paused)?
            .bind(now)?
            .bind(now)?;
        self.run_script(script).await.doing("pausing a DAG")?;
        Ok(())
    }

    async fn set_last_tick(&self, dag_id: &str, tick: DateTime<Utc>) -> Result<(), StoreError> {
        let mut script = Script::new();
        script
            .stmt(
                "UPDATE dags SET last_tick = ?, updated_at = ?
                 WHERE dag_id = ? AND (last_tick IS NULL OR last_tick < ?)",
            )
            .bind(tick)?
            .bind(Utc::now())?
            .bind(dag_id.to_string())?
            .bind(tick)?;
        self.run_script(script)
            .await
            .doing("recording a schedule tick")?;
        Ok(())
    }

    async fn cleanup(&self, before: DateTime<Utc>) -> Result<Cleanup, StoreError> {
        // Count first, then delete; task instances, results and logs go with their run
        // (ON DELETE CASCADE), in the same transaction.
        const DONE: &str = "state IN ('success', 'failed') AND ended_at < ?";
        let mut script = Script::new();
        script
            .stmt(&format!(
                "SELECT (SELECT count(*) FROM dag_runs WHERE {DONE}),
                        (SELECT count(*) FROM task_instances WHERE run_id IN (SELECT id FROM dag_runs WHERE {DONE})),
                        (SELECT count(*) FROM xcoms WHERE run_id IN (SELECT id FROM dag_runs WHERE {DONE})),
                        (SELECT count(*) FROM task_logs WHERE run_id IN (SELECT id FROM dag_runs WHERE {DONE}))"
            ))
            .bind(before)?
            .bind(before)?
            .bind(before)?
            .bind(before)?;
        script
            .stmt(&format!("DELETE FROM dag_runs WHERE {DONE}"))
            .bind(before)?;
        script.stmt(
            "DELETE FROM dag_sources WHERE sha256 NOT IN (SELECT dag_sha256 FROM dag_runs WHERE dag_sha256 IS NOT NULL)",
        );
        let rows = self.run_script(script).await.doing("removing old runs")?;
        let row = rows
            .first()
            .ok_or_else(|| corrupt("cleanup", "no counts"))?;
        let count = |i: usize| -> Result<u64, StoreError> {
            let n: i64 = row.try_get(i).doing("counting removed rows")?;
            Ok(n.max(0) as u64)
        };
        Ok(Cleanup {
            runs: count(0)?,
            task_instances: count(1)?,
            results: count(2)?,
            log_lines: count(3)?,
        })
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
