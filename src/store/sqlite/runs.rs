//! Runs, task instances, results and logs on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};

use super::SqliteStore;
use super::script::{INSERT_CHUNK, Script, is_stale};
use crate::state::{LogLine, RunState};
use crate::store::rows::{Decode, LogRow, OutputRow, RunRow, TaskRow, corrupt, decode_all};
use crate::store::{
    Batch, Cleanup, LogRecord, NewRun, QueryContext, RunFilter, RunId, RunRecord, RunStore,
    StoreError, StoredOutput, TaskInstance, describe_conflict,
};

/// The results of a run's tasks as they stand: each task's current attempt, while it is
/// `success`. Append `AND ...`.
const CURRENT_OUTPUTS: &str = "SELECT x.* FROM xcoms x JOIN task_instances t \
     ON t.run_id = x.run_id AND t.task_id = x.task_id AND t.attempt = x.attempt \
     WHERE x.run_id = ? AND t.state = 'success'";

/// A run with its DAG source resolved (shared in `dag_sources`, or the run's own copy for runs
/// created before sources were shared). Append `WHERE ...`.
const SELECT_RUNS: &str = "SELECT dag_runs.*, COALESCE(dag_sources.source, dag_runs.dag_source) AS resolved_source \
     FROM dag_runs LEFT JOIN dag_sources ON dag_sources.sha256 = dag_runs.dag_sha256";

/// Inserts an attempt's log lines numbered from `first`. With `guard`, only while the attempt
/// still holds its task (running, at that attempt): lines written while it runs must not land
/// after another attempt took the task over. A line already stored (a write retried after an
/// unclear end) is kept, not an error.
fn push_logs(
    script: &mut Script,
    (run_id, task_id, attempt): (RunId, &str, u32),
    first: usize,
    lines: &[LogLine],
    guard: bool,
) -> Result<(), StoreError> {
    for (chunk_no, chunk) in lines.chunks(INSERT_CHUNK).enumerate() {
        let mut sql = String::from(
            "INSERT OR IGNORE INTO task_logs (run_id, task_id, attempt, seq, ts, level, message) SELECT * FROM (VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?, ?, ?)"
            });
        }
        sql.push(')');
        if guard {
            sql.push_str(
                " WHERE EXISTS (SELECT 1 FROM task_instances WHERE run_id = ? AND task_id = ? AND attempt = ? AND state = 'running')",
            );
        }
        script.stmt(&sql);
        for (i, line) in chunk.iter().enumerate() {
            script
                .bind(run_id)?
                .bind(task_id.to_string())?
                .bind(attempt)?
                .bind((first + chunk_no * INSERT_CHUNK + i) as i64)?
                .bind(line.ts)?
                .bind(line.level.as_str())?
                .bind(line.message.clone())?;
        }
        if guard {
            script
                .bind(run_id)?
                .bind(task_id.to_string())?
                .bind(attempt)?;
        }
    }
    Ok(())
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, new: &NewRun) -> Result<RunRecord, StoreError> {
        let now = self.clock();
        let started_at = (new.state == RunState::Running).then_some(now);
        let sha = crate::state::sha256_hex(new.dag_source.as_bytes());
        let mut script = Script::new();
        script
            .stmt("INSERT OR IGNORE INTO dag_sources (sha256, source) VALUES (?, ?)")
            .bind(sha.clone())?
            .bind(new.dag_source.clone())?;
        script
            .stmt(
                "INSERT INTO dag_runs (dag_id, logical_date, data_interval_start, run_type, state, conf, dag_file, dag_source, dag_sha256, queued_at, started_at, owner, heartbeat_at, max_active_tasks, idempotency_key)
                 VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)",
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
            .bind(new.owner.as_ref().map(|_| now))?
            .bind(new.max_active_tasks)?
            .bind(new.idempotency_key.clone())?;
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
                    "SELECT id FROM dag_runs WHERE dag_id = ? AND (logical_date = ? OR idempotency_key = ?)
                     ORDER BY id LIMIT 1",
                )
                .bind(&new.dag_id)
                .bind(new.logical_date)
                .bind(&new.idempotency_key)
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
            note: None,
            cancel_requested: None,
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
                         next_retry_at = ?, error = ?, updated_at = ?, note = ?,
                         worker = ?
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
                .bind(to.note.clone())?
                .bind(to.worker.clone())?
                .bind(batch.run_id)?
                .bind(to.task_id.clone())?
                .bind(t.expect_state.as_str())?
                .bind(t.expect_attempt)?;
            script.guard();
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
                    (batch.run_id, &to.task_id, t.logs_attempt),
                    t.logs_from,
                    &t.logs,
                    false,
                )?;
            }
        }
        if let Some(run) = &batch.run {
            // Every variant binds (new state, note, time, run id, expected state); a note
            // replaces the last one, none keeps it.
            script.stmt(match run.to {
                RunState::Running => {
                    "UPDATE dag_runs SET state = ?, note = coalesce(?, note), started_at = coalesce(started_at, ?)
                     WHERE id = ? AND state = ?"
                }
                RunState::Queued => {
                    "UPDATE dag_runs SET state = ?, note = coalesce(?, note), queued_at = ?, started_at = NULL, ended_at = NULL
                     WHERE id = ? AND state = ?"
                }
                RunState::Success | RunState::Failed => {
                    "UPDATE dag_runs SET state = ?, note = coalesce(?, note), ended_at = ? WHERE id = ? AND state = ?"
                }
            });
            script
                .bind(run.to.as_str())?
                .bind(run.note.clone())?
                .bind(run.at)?
                .bind(batch.run_id)?
                .bind(run.expect.as_str())?;
            script.guard();
        }
        let now = self.clock();
        for n in &batch.notifications {
            super::outbox::push_notification(&mut script, n, now)?;
        }
        match self.run_script(script).await {
            Ok(_) => Ok(()),
            Err(e) if is_stale(&e) => {
                let current = self.task_instances(batch.run_id).await.ok();
                Err(StoreError::Conflict {
                    run_id: batch.run_id,
                    what: describe_conflict(batch, current.as_deref()),
                })
            }
            Err(e) => Err(e).doing("committing state changes"),
        }
    }
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        sqlx::query_as::<_, RunRow>(AssertSqlSafe(format!(
            "{SELECT_RUNS} WHERE dag_runs.id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a run")?
        .map(RunRow::decode)
        .transpose()
    }
    async fn run_with_key(&self, dag_id: &str, key: &str) -> Result<Option<RunRecord>, StoreError> {
        sqlx::query_as::<_, RunRow>(AssertSqlSafe(format!(
            "{SELECT_RUNS} WHERE dag_runs.dag_id = ? AND dag_runs.idempotency_key = ?"
        )))
        .bind(dag_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a run")?
        .map(RunRow::decode)
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
        if let Some(before) = filter.before {
            qb.push(" AND dag_runs.id < ").push_bind(before);
        }
        qb.push(" ORDER BY dag_runs.id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.unwrap_or(100)));
        decode_all(
            qb.build_query_as::<RunRow>()
                .fetch_all(&self.pool)
                .await
                .doing("listing runs")?,
        )
    }
    async fn task_instances(&self, run_id: RunId) -> Result<Vec<TaskInstance>, StoreError> {
        decode_all(
            sqlx::query_as::<_, TaskRow>("SELECT * FROM task_instances WHERE run_id = ?")
                .bind(run_id)
                .fetch_all(&self.pool)
                .await
                .doing("reading task instances")?,
        )
    }
    async fn output(
        &self,
        run_id: RunId,
        task_id: &str,
    ) -> Result<Option<StoredOutput>, StoreError> {
        sqlx::query_as::<_, OutputRow>(AssertSqlSafe(format!(
            "{CURRENT_OUTPUTS} AND x.task_id = ?"
        )))
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a task result")?
        .map(OutputRow::decode)
        .transpose()
    }
    async fn outputs(&self, run_id: RunId) -> Result<Vec<StoredOutput>, StoreError> {
        decode_all(
            sqlx::query_as::<_, OutputRow>(CURRENT_OUTPUTS)
                .bind(run_id)
                .fetch_all(&self.pool)
                .await
                .doing("reading task results")?,
        )
    }
    async fn output_history(
        &self,
        run_id: RunId,
        task_id: &str,
    ) -> Result<Vec<StoredOutput>, StoreError> {
        decode_all(
            sqlx::query_as::<_, OutputRow>(
                "SELECT * FROM xcoms WHERE run_id = ? AND task_id = ? ORDER BY attempt",
            )
            .bind(run_id)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .doing("reading a task's results")?,
        )
    }

    async fn request_cancel(&self, run_id: RunId, by: &str) -> Result<bool, StoreError> {
        let mut w = self.writer.lock().await;
        let changed = sqlx::query(
            "UPDATE dag_runs SET cancel_requested = ? WHERE id = ? AND state IN ('queued', 'running')",
        )
        .bind(by)
        .bind(run_id)
        .execute(&mut w.conn)
        .await
        .doing("asking to cancel a run")?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn delete_run(&self, run_id: RunId) -> Result<Option<RunState>, StoreError> {
        let Some(run) = self.run(run_id).await? else {
            return Ok(None);
        };
        if run.state.is_terminal() {
            let mut script = Script::new();
            script
                .stmt("DELETE FROM dag_runs WHERE id = ? AND state IN ('success', 'failed')")
                .bind(run_id)?;
            script.stmt(
                "DELETE FROM dag_sources WHERE sha256 NOT IN (SELECT dag_sha256 FROM dag_runs WHERE dag_sha256 IS NOT NULL)",
            );
            self.run_script(script).await.doing("deleting a run")?;
        }
        Ok(Some(run.state))
    }

    async fn append_logs(
        &self,
        (run_id, task_id, attempt): (RunId, &str, u32),
        first: usize,
        lines: &[LogLine],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut script = Script::new();
        push_logs(&mut script, (run_id, task_id, attempt), first, lines, true)?;
        self.run_script(script)
            .await
            .doing("writing a running attempt's log")?;
        Ok(())
    }

    async fn logs(
        &self,
        run_id: RunId,
        task_id: &str,
        attempt: Option<u32>,
        after: Option<u64>,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let rows = sqlx::query_as::<_, LogRow>(
            "SELECT * FROM task_logs WHERE run_id = ? AND task_id = ? AND (? IS NULL OR attempt = ?)
             AND (? IS NULL OR seq > ?)
             ORDER BY attempt, seq",
        )
        .bind(run_id)
        .bind(task_id)
        .bind(attempt)
        .bind(attempt)
        .bind(after.map(|a| a as i64))
        .bind(after.map(|a| a as i64))
        .fetch_all(&self.pool)
        .await
        .doing("reading task logs")?;
        decode_all(rows)
    }
    async fn count_runs(&self, state: RunState) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_runs WHERE state = ?")
            .bind(state.as_str())
            .fetch_one(&self.pool)
            .await
            .doing("counting runs")?;
        Ok(n.max(0) as u64)
    }
    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        decode_all(
            sqlx::query_as::<_, RunRow>(AssertSqlSafe(format!(
                "{SELECT_RUNS} WHERE state IN ('queued', 'running') ORDER BY queued_at, dag_runs.id"
            )))
            .fetch_all(&self.pool)
            .await
            .doing("listing unfinished runs")?,
        )
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
}
