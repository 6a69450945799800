//! Runs, task instances, results and logs on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};

use super::{Abort, PgStore, Tx, finish, guard, now};
use crate::state::{LogLine, RunState};
use crate::store::rows::{Decode, LogRow, OutputRow, RunRow, TaskRow, decode_all};
use crate::store::{
    Batch, Cleanup, LogRecord, NewRun, QueryContext, RunFilter, RunId, RunRecord, RunStore,
    StoreError, StoredOutput, TaskInstance, describe_conflict,
};

/// The results of a run's tasks as they stand: each task's current attempt, while it is
/// `success`. Append `AND ...` (the run id is `$1`).
const CURRENT_OUTPUTS: &str = "SELECT x.* FROM xcoms x JOIN task_instances t \
     ON t.run_id = x.run_id AND t.task_id = x.task_id AND t.attempt = x.attempt \
     WHERE x.run_id = $1 AND t.state = 'success'";

/// A run with its DAG source resolved. Append `WHERE ...`.
const SELECT_RUNS: &str = "SELECT dag_runs.*, COALESCE(dag_sources.source, dag_runs.dag_source) AS resolved_source \
     FROM dag_runs LEFT JOIN dag_sources ON dag_sources.sha256 = dag_runs.dag_sha256";

/// Removes DAG sources no run points at any more. A source that a run being created has just
/// locked (its upsert below) is skipped, not deleted under it.
const DROP_UNUSED_SOURCES: &str = "DELETE FROM dag_sources WHERE sha256 IN ( \
     SELECT sha256 FROM dag_sources s \
     WHERE NOT EXISTS (SELECT 1 FROM dag_runs r WHERE r.dag_sha256 = s.sha256) \
     FOR UPDATE SKIP LOCKED)";

/// Inserts an attempt's log lines numbered from `first`; see the SQLite store's `push_logs`
/// for `guard` and why a line already stored is kept.
async fn push_logs<'c, E: sqlx::PgExecutor<'c>>(
    db: E,
    (run_id, task_id, attempt): (RunId, &str, u32),
    first: usize,
    lines: &[LogLine],
    guard: bool,
) -> Result<(), sqlx::Error> {
    let seq: Vec<i64> = (0..lines.len()).map(|i| (first + i) as i64).collect();
    let ts: Vec<DateTime<Utc>> = lines.iter().map(|l| l.ts).collect();
    let level: Vec<&str> = lines.iter().map(|l| l.level.as_str()).collect();
    let message: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    sqlx::query(
        "INSERT INTO task_logs (run_id, task_id, attempt, seq, ts, level, message)
         SELECT $1, $2, $3, u.seq, u.ts, u.level, u.message
         FROM UNNEST($4::bigint[], $5::timestamptz[], $6::text[], $7::text[]) AS u(seq, ts, level, message)
         WHERE NOT $8 OR EXISTS (SELECT 1 FROM task_instances t
                                 WHERE t.run_id = $1 AND t.task_id = $2 AND t.attempt = $3
                                   AND t.state = 'running')
         ON CONFLICT DO NOTHING",
    )
    .bind(run_id)
    .bind(task_id)
    .bind(i64::from(attempt))
    .bind(seq)
    .bind(ts)
    .bind(level)
    .bind(message)
    .bind(guard)
    .execute(db)
    .await?;
    Ok(())
}

impl PgStore {
    async fn create_run_in(
        &self,
        tx: &mut Tx,
        new: &NewRun,
    ) -> Result<(RunId, DateTime<Utc>), sqlx::Error> {
        let now = now(tx).await?;
        let sha = crate::state::sha256_hex(new.dag_source.as_bytes());
        // An upsert, not DO NOTHING: it locks the row until the run that points at it commits,
        // so a concurrent retention sweep cannot delete it in between.
        sqlx::query(
            "INSERT INTO dag_sources (sha256, source) VALUES ($1, $2)
             ON CONFLICT (sha256) DO UPDATE SET source = EXCLUDED.source",
        )
        .bind(&sha)
        .bind(&new.dag_source)
        .execute(&mut **tx)
        .await?;
        let started_at = (new.state == RunState::Running).then_some(now);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO dag_runs (dag_id, logical_date, data_interval_start, run_type, state, conf,
                 dag_file, dag_sha256, queued_at, started_at, owner, heartbeat_at, max_active_tasks,
                 idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(&new.dag_id)
        .bind(new.logical_date)
        .bind(new.data_interval_start)
        .bind(new.run_type.as_str())
        .bind(new.state.as_str())
        .bind(new.conf.to_string())
        .bind(&new.dag_file)
        .bind(&sha)
        .bind(now)
        .bind(started_at)
        .bind(&new.owner)
        .bind(new.owner.as_ref().map(|_| now))
        .bind(i64::from(new.max_active_tasks))
        .bind(&new.idempotency_key)
        .fetch_one(&mut **tx)
        .await?;
        let task_ids: Vec<&str> = new.tasks.iter().map(|(t, _)| t.as_str()).collect();
        let max_attempts: Vec<i64> = new.tasks.iter().map(|(_, m)| i64::from(*m)).collect();
        sqlx::query(
            "INSERT INTO task_instances (run_id, task_id, state, attempt, max_attempts, updated_at)
             SELECT $1, u.task_id, 'scheduled', 0, u.max_attempts, $2
             FROM UNNEST($3::text[], $4::bigint[]) AS u(task_id, max_attempts)",
        )
        .bind(id)
        .bind(now)
        .bind(task_ids)
        .bind(max_attempts)
        .execute(&mut **tx)
        .await?;
        Ok((id, now))
    }

    async fn commit_in(&self, tx: &mut Tx, batch: &Batch) -> Result<(), Abort> {
        for t in &batch.tasks {
            let to = &t.to;
            guard(
                sqlx::query(
                    "UPDATE task_instances
                     SET state = $1, attempt = $2, max_attempts = $3, started_at = $4, ended_at = $5,
                         next_retry_at = $6, error = $7, updated_at = $8, note = $9,
                         worker = $14
                     WHERE run_id = $10 AND task_id = $11 AND state = $12 AND attempt = $13",
                )
                .bind(to.state.as_str())
                .bind(i64::from(to.attempt))
                .bind(i64::from(to.max_attempts))
                .bind(to.started_at)
                .bind(to.ended_at)
                .bind(to.next_retry_at)
                .bind(&to.error)
                .bind(to.updated_at)
                .bind(&to.note)
                .bind(batch.run_id)
                .bind(&to.task_id)
                .bind(t.expect_state.as_str())
                .bind(i64::from(t.expect_attempt))
                .bind(&to.worker)
                .execute(&mut **tx)
                .await?,
            )?;
            // The transaction is open and has written a row.
            crate::state::failpoint::crash_point("store.inside_commit");
            if let Some(output) = &t.output {
                sqlx::query(
                    "INSERT INTO xcoms (run_id, task_id, attempt, value, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (run_id, task_id, attempt)
                     DO UPDATE SET value = EXCLUDED.value, created_at = EXCLUDED.created_at",
                )
                .bind(batch.run_id)
                .bind(&to.task_id)
                .bind(i64::from(to.attempt))
                .bind(output.to_string())
                .bind(to.updated_at)
                .execute(&mut **tx)
                .await?;
            }
            if !t.logs.is_empty() {
                push_logs(
                    &mut **tx,
                    (batch.run_id, &to.task_id, t.logs_attempt),
                    t.logs_from,
                    &t.logs,
                    false,
                )
                .await?;
            }
        }
        if let Some(run) = &batch.run {
            // Every variant binds (new state, note, time, run id, expected state); a note
            // replaces the last one, none keeps it.
            let sql = match run.to {
                RunState::Running => {
                    "UPDATE dag_runs SET state = $1, note = coalesce($2, note), started_at = coalesce(started_at, $3)
                     WHERE id = $4 AND state = $5"
                }
                RunState::Queued => {
                    "UPDATE dag_runs SET state = $1, note = coalesce($2, note), queued_at = $3, started_at = NULL, ended_at = NULL
                     WHERE id = $4 AND state = $5"
                }
                RunState::Success | RunState::Failed => {
                    "UPDATE dag_runs SET state = $1, note = coalesce($2, note), ended_at = $3 WHERE id = $4 AND state = $5"
                }
            };
            guard(
                sqlx::query(sql)
                    .bind(run.to.as_str())
                    .bind(&run.note)
                    .bind(run.at)
                    .bind(batch.run_id)
                    .bind(run.expect.as_str())
                    .execute(&mut **tx)
                    .await?,
            )?;
        }
        if !batch.notifications.is_empty() {
            let at = now(tx).await?;
            for n in &batch.notifications {
                super::outbox::push_notification(tx, n, at).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RunStore for PgStore {
    async fn create_run(&self, new: &NewRun) -> Result<RunRecord, StoreError> {
        let mut tx = self.begin().await.doing("creating a run")?;
        let (id, now) = match self.create_run_in(&mut tx, new).await {
            Ok(created) => created,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                drop(tx);
                let existing: i64 = sqlx::query_scalar(
                    "SELECT id FROM dag_runs WHERE dag_id = $1 AND (logical_date = $2 OR idempotency_key = $3)
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
        tx.commit().await.doing("creating a run")?;
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
            started_at: (new.state == RunState::Running).then_some(now),
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
        let mut tries = 0;
        loop {
            let mut tx = self.begin().await.doing("committing state changes")?;
            let result = self.commit_in(&mut tx, batch).await;
            match finish(tx, result, "committing state changes").await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(())) => {
                    let current = self.task_instances(batch.run_id).await.ok();
                    return Err(StoreError::Conflict {
                        run_id: batch.run_id,
                        what: describe_conflict(batch, current.as_deref()),
                    });
                }
                // Chosen as a deadlock's victim: nothing was written, so write it again.
                Err(StoreError::Query { source, .. })
                    if super::is_transient(&source) && tries < super::TRANSIENT_TRIES =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        sqlx::query_as::<_, RunRow>(AssertSqlSafe(format!(
            "{SELECT_RUNS} WHERE dag_runs.id = $1"
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
            "{SELECT_RUNS} WHERE dag_runs.dag_id = $1 AND dag_runs.idempotency_key = $2"
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
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("{SELECT_RUNS} WHERE 1 = 1"));
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
            sqlx::query_as::<_, TaskRow>("SELECT * FROM task_instances WHERE run_id = $1")
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
            "{CURRENT_OUTPUTS} AND x.task_id = $2"
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
                "SELECT * FROM xcoms WHERE run_id = $1 AND task_id = $2 ORDER BY attempt",
            )
            .bind(run_id)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .doing("reading a task's results")?,
        )
    }

    async fn request_cancel(&self, run_id: RunId, by: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE dag_runs SET cancel_requested = $1 WHERE id = $2 AND state IN ('queued', 'running')",
        )
        .bind(by)
        .bind(run_id)
        .execute(&self.pool)
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
            let mut tx = self.begin().await.doing("deleting a run")?;
            sqlx::query("DELETE FROM dag_runs WHERE id = $1 AND state IN ('success', 'failed')")
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .doing("deleting a run")?;
            sqlx::query(DROP_UNUSED_SOURCES)
                .execute(&mut *tx)
                .await
                .doing("deleting a run")?;
            tx.commit().await.doing("deleting a run")?;
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
        push_logs(&self.pool, (run_id, task_id, attempt), first, lines, true)
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
        decode_all(
            sqlx::query_as::<_, LogRow>(
                "SELECT * FROM task_logs
                 WHERE run_id = $1 AND task_id = $2 AND ($3::bigint IS NULL OR attempt = $3)
                   AND ($4::bigint IS NULL OR seq > $4)
                 ORDER BY attempt, seq",
            )
            .bind(run_id)
            .bind(task_id)
            .bind(attempt.map(i64::from))
            .bind(after.map(|a| a as i64))
            .fetch_all(&self.pool)
            .await
            .doing("reading task logs")?,
        )
    }

    async fn count_runs(&self, state: RunState) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_runs WHERE state = $1")
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
        const DONE: &str = "state IN ('success', 'failed') AND ended_at < $1";
        let mut tx = self.begin().await.doing("removing old runs")?;
        // One daemon at a time: the others find the lock taken and leave the sweep to it.
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(super::RETENTION_LOCK)
            .fetch_one(&mut *tx)
            .await
            .doing("removing old runs")?;
        if !mine {
            return Ok(Cleanup::default());
        }
        let (runs, tasks, results, logs): (i64, i64, i64, i64) =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT (SELECT count(*) FROM dag_runs WHERE {DONE}),
                        (SELECT count(*) FROM task_instances WHERE run_id IN (SELECT id FROM dag_runs WHERE {DONE})),
                        (SELECT count(*) FROM xcoms WHERE run_id IN (SELECT id FROM dag_runs WHERE {DONE})),
                        (SELECT count(*) FROM task_logs WHERE run_id IN (SELECT id FROM dag_runs WHERE {DONE}))"
            )))
            .bind(before)
            .fetch_one(&mut *tx)
            .await
            .doing("removing old runs")?;
        sqlx::query(AssertSqlSafe(format!("DELETE FROM dag_runs WHERE {DONE}")))
            .bind(before)
            .execute(&mut *tx)
            .await
            .doing("removing old runs")?;
        sqlx::query(DROP_UNUSED_SOURCES)
            .execute(&mut *tx)
            .await
            .doing("removing old runs")?;
        tx.commit().await.doing("removing old runs")?;
        let count = |n: i64| n.max(0) as u64;
        Ok(Cleanup {
            runs: count(runs),
            task_instances: count(tasks),
            results: count(results),
            log_lines: count(logs),
        })
    }
}
