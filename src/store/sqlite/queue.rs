//! The task queue on SQLite: one writer, so a claim is one statement and needs no lock of its
//! own. The daemon does not use it (it executes its runs' tasks itself); the conformance suite
//! holds it to the same behaviour as PostgreSQL's.

use std::time::Duration;

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::claims::stale_before;
use crate::store::queue::{Held, Signal, TaskLease, TaskQueue};
use crate::store::rows::{HeldRow, LeaseRow, TaskRow, decode_all};
use crate::store::{QueryContext, RunId, StoreError, TaskInstance};

/// As `postgres::queue::CLAIM` (SQLite has no `LATERAL`: a window takes each run's first
/// tasks), with the clock bound as `?3`.
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
    ORDER BY r.id LIMIT ?2),
candidates AS (
    SELECT run_id, dag_id, room, task_id, updated_at FROM (
        SELECT runs.id AS run_id, runs.dag_id, runs.room, q.task_id, q.updated_at,
               row_number() OVER (PARTITION BY q.run_id ORDER BY q.updated_at, q.task_id) AS nth
        FROM runs JOIN task_instances q ON q.run_id = runs.id AND q.state = 'queued')
    WHERE nth <= ?2),
picked AS (
    SELECT run_id, task_id FROM (
        SELECT c.*, row_number() OVER (PARTITION BY dag_id ORDER BY run_id, updated_at, task_id) AS k
        FROM candidates c) ranked
    WHERE k <= room
    ORDER BY run_id, updated_at, task_id LIMIT ?2)
UPDATE task_instances
SET state = 'running', attempt = attempt + 1, started_at = ?3, ended_at = NULL,
    next_retry_at = NULL, error = NULL, updated_at = ?3, heartbeat_at = ?3, worker = ?1
WHERE (run_id, task_id) IN (SELECT run_id, task_id FROM picked)
RETURNING *";

#[async_trait]
impl TaskQueue for SqliteStore {
    async fn claim_tasks(&self, worker: &str, max: u32) -> Result<Vec<TaskInstance>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock();
        let mut w = self.writer.lock().await;
        let rows: Vec<TaskRow> = sqlx::query_as(CLAIM)
            .bind(worker)
            .bind(i64::from(max))
            .bind(now)
            .fetch_all(&mut w.conn)
            .await
            .doing("claiming tasks")?;
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
                "SELECT task_id, attempt, worker, coalesce(heartbeat_at < ?2, 1) AS expired
                 FROM task_instances WHERE run_id = ?1 AND state = 'running' ORDER BY task_id",
            )
            .bind(run_id)
            .bind(stale_before(self.clock(), lease))
            .fetch_all(&self.pool)
            .await
            .doing("reading task leases")?,
        )
    }

    async fn held_by(&self, worker: &str) -> Result<Vec<Held>, StoreError> {
        decode_all(
            sqlx::query_as::<_, HeldRow>(
                "SELECT run_id, task_id, attempt FROM task_instances
                 WHERE worker = ? AND state = 'running'",
            )
            .bind(worker)
            .fetch_all(&self.pool)
            .await
            .doing("reading claimed tasks")?,
        )
    }

    /// One daemon serves a SQLite file and routes its own signals in process.
    async fn signal(&self, _signal: Signal) -> Result<(), StoreError> {
        Ok(())
    }
}
