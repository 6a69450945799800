//! The shared task queue on PostgreSQL: claims counted under one advisory lock and taken with
//! `FOR UPDATE SKIP LOCKED`, leases judged by the server's clock, signals by `NOTIFY`.

use std::time::Duration;

use async_trait::async_trait;

use super::{CLAIM_LOCK, PgStore, WAKE_CHANNEL};
use crate::store::queue::{Held, Signal, TaskLease, TaskQueue};
use crate::store::rows::{HeldRow, LeaseRow, TaskRow, decode_all};
use crate::store::{QueryContext, RunId, StoreError, TaskInstance};

/// Picks the queued instances a claim of `$2` may take, oldest run first, each DAG within its
/// `max_active_tasks` less what already runs anywhere, then locks and starts them. Only the
/// head of the queue is looked at — the oldest `$2` runs with room and queued tasks, and at
/// most `$2` tasks of each (`task_instances_queued`, in claim order) — so a claim costs the
/// same with ten or ten thousand tasks waiting, whatever the planner's statistics say. Rows an
/// owner is writing this instant are skipped, not waited for. The start is stamped when the
/// claim is made (`clock_timestamp()`), not when its transaction began waiting for the lock.
const CLAIM: &str = "
WITH busy AS (
    SELECT r.dag_id, count(*) AS n FROM task_instances t JOIN dag_runs r ON r.id = t.run_id
    WHERE t.state = 'running' GROUP BY r.dag_id),
runs AS (
    SELECT r.id, r.dag_id, r.max_active_tasks - coalesce(busy.n, 0) AS room
    FROM dag_runs r LEFT JOIN busy ON busy.dag_id = r.dag_id
    WHERE r.state = 'running' AND r.cancel_requested IS NULL
      AND r.max_active_tasks > coalesce(busy.n, 0)
      AND EXISTS (SELECT 1 FROM task_instances q WHERE q.run_id = r.id AND q.state = 'queued')
    ORDER BY r.id LIMIT $2),
candidates AS (
    SELECT runs.id AS run_id, runs.dag_id, runs.room, t.task_id, t.updated_at
    FROM runs CROSS JOIN LATERAL (
        SELECT q.task_id, q.updated_at FROM task_instances q
        WHERE q.run_id = runs.id AND q.state = 'queued'
        ORDER BY q.updated_at, q.task_id LIMIT $2) t),
picked AS (
    SELECT run_id, task_id FROM (
        SELECT c.*, row_number() OVER (PARTITION BY dag_id ORDER BY run_id, updated_at, task_id) AS k
        FROM candidates c) ranked
    WHERE k <= room
    ORDER BY run_id, updated_at, task_id LIMIT $2),
locked AS (
    SELECT run_id, task_id FROM task_instances
    WHERE (run_id, task_id) IN (SELECT run_id, task_id FROM picked) AND state = 'queued'
    FOR UPDATE SKIP LOCKED)
UPDATE task_instances t
SET state = 'running', attempt = t.attempt + 1, started_at = clock_timestamp(), ended_at = NULL,
    next_retry_at = NULL, error = NULL, updated_at = clock_timestamp(),
    heartbeat_at = clock_timestamp(), worker = $1
FROM locked WHERE t.run_id = locked.run_id AND t.task_id = locked.task_id
RETURNING t.*";

fn micros(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl TaskQueue for PgStore {
    async fn claim_tasks(&self, worker: &str, max: u32) -> Result<Vec<TaskInstance>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await.doing("claiming tasks")?;
        // Claims one at a time across daemons, so each counts what the one before it started
        // (its commit is visible before its lock is released).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await
            .doing("claiming tasks")?;
        let rows: Vec<TaskRow> = sqlx::query_as(CLAIM)
            .bind(worker)
            .bind(i64::from(max))
            .fetch_all(&mut *tx)
            .await
            .doing("claiming tasks")?;
        tx.commit().await.doing("claiming tasks")?;
        let mut claimed = decode_all(rows)?;
        claimed.sort_by(|a, b| (a.run_id, &a.task_id).cmp(&(b.run_id, &b.task_id)));
        Ok(claimed)
    }

    async fn task_leases(
        &self,
        run_id: RunId,
        lease: Duration,
    ) -> Result<Vec<TaskLease>, StoreError> {
        decode_all(
            sqlx::query_as::<_, LeaseRow>(
                "SELECT task_id, attempt, worker,
                        coalesce(heartbeat_at < now() - $2::bigint * interval '1 microsecond', true)
                        AND pg_postmaster_start_time() < now() - $2::bigint * interval '1 microsecond'
                        AS expired
                 FROM task_instances WHERE run_id = $1 AND state = 'running' ORDER BY task_id",
            )
            .bind(run_id)
            .bind(micros(lease))
            .fetch_all(&self.pool)
            .await
            .doing("reading task leases")?,
        )
    }

    async fn held_by(&self, worker: &str) -> Result<Vec<Held>, StoreError> {
        decode_all(
            sqlx::query_as::<_, HeldRow>(
                "SELECT run_id, task_id, attempt FROM task_instances
                 WHERE worker = $1 AND state = 'running'",
            )
            .bind(worker)
            .fetch_all(&self.pool)
            .await
            .doing("reading claimed tasks")?,
        )
    }

    async fn signal(&self, signal: Signal) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(signal.payload())
            .execute(&self.pool)
            .await
            .doing("signalling the daemons")?;
        Ok(())
    }
}
