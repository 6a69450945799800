//! Claims and heartbeats on PostgreSQL, judged by the database server's clock, so daemons on
//! hosts whose clocks disagree still agree on whose lease has run out.
//!
//! No lease runs out until the server has been up for a whole lease: while it was down nobody
//! could heartbeat, and judging the silence of an outage as death would take every run and
//! attempt away from daemons that are alive and reconnecting.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::store::rows::{DaemonRow, decode_all};
use crate::store::{ClaimStore, DaemonRecord, QueryContext, RunId, StoreError};

/// A lease as a PostgreSQL interval, in microseconds.
fn micros(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl ClaimStore for PgStore {
    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await
            .doing("reading the database clock")
    }

    async fn claim_run(
        &self,
        run_id: RunId,
        owner: &str,
        lease: Duration,
        dead: Option<&str>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE dag_runs SET owner = $1, heartbeat_at = now()
             WHERE id = $2 AND state IN ('queued', 'running')
               AND (owner IS NULL OR owner = $1 OR owner = $4 OR heartbeat_at IS NULL
                    OR (heartbeat_at < now() - $3::bigint * interval '1 microsecond'
                        AND pg_postmaster_start_time() < now() - $3::bigint * interval '1 microsecond'))",
        )
        .bind(owner)
        .bind(run_id)
        .bind(micros(lease))
        .bind(dead)
        .execute(&self.pool)
        .await
        .doing("claiming a run")?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn claim_queued_run(
        &self,
        run_id: RunId,
        owner: &str,
        lease: Duration,
        dead: Option<&str>,
        max_active_runs: u32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await.doing("claiming a run")?;
        // One claimer per DAG at a time; the next counts this one's run (committed before
        // the lock is released).
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('vigil start ' || dag_id, 0))
             FROM dag_runs WHERE id = $1",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .doing("claiming a run")?;
        let changed = sqlx::query(
            "UPDATE dag_runs SET owner = $1, heartbeat_at = now()
             WHERE id = $2 AND state = 'queued'
               AND (owner IS NULL OR owner = $1 OR owner = $4 OR heartbeat_at IS NULL
                    OR heartbeat_at < now() - $3::bigint * interval '1 microsecond')
               AND (SELECT count(*) FROM dag_runs o WHERE o.dag_id = dag_runs.dag_id AND o.id <> $2
                    AND (o.state = 'running'
                         OR (o.state = 'queued' AND o.owner IS NOT NULL
                             AND o.heartbeat_at >= now() - $3::bigint * interval '1 microsecond'))) < $5",
        )
        .bind(owner)
        .bind(run_id)
        .bind(micros(lease))
        .bind(dead)
        .bind(i64::from(max_active_runs))
        .execute(&mut *tx)
        .await
        .doing("claiming a run")?
        .rows_affected();
        tx.commit().await.doing("claiming a run")?;
        Ok(changed == 1)
    }

    async fn release_run(&self, run_id: RunId, owner: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE dag_runs SET owner = NULL WHERE id = $1 AND owner = $2")
            .bind(run_id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .doing("releasing a run")?;
        Ok(())
    }

    /// Rows an executor is writing at this instant are skipped (`SKIP LOCKED`) rather than
    /// waited for: a heartbeat never queues behind, or deadlocks with, a commit, and one
    /// skipped stamp is nothing next to a lease of several heartbeats.
    async fn heartbeat(&self, owner: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await.doing("recording a heartbeat")?;
        sqlx::query(
            "UPDATE dag_runs SET heartbeat_at = now() WHERE id IN (
                 SELECT id FROM dag_runs WHERE owner = $1 AND state IN ('queued', 'running')
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await
        .doing("recording a heartbeat")?;
        sqlx::query(
            "UPDATE task_instances SET heartbeat_at = now() WHERE (run_id, task_id) IN (
                 SELECT run_id, task_id FROM task_instances
                 WHERE state = 'running' AND (worker = $1 OR (worker IS NULL
                     AND run_id IN (SELECT id FROM dag_runs WHERE owner = $1)))
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await
        .doing("recording a heartbeat")?;
        tx.commit().await.doing("recording a heartbeat")?;
        Ok(())
    }

    async fn announce(&self, d: &DaemonRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO daemons (owner, role, host, pid, version, slots, slots_in_use, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $6, 0, now(), now())
             ON CONFLICT (owner) DO UPDATE SET role = EXCLUDED.role, host = EXCLUDED.host,
                 pid = EXCLUDED.pid, version = EXCLUDED.version, slots = EXCLUDED.slots,
                 slots_in_use = 0, started_at = now(), heartbeat_at = now()",
        )
        .bind(&d.owner)
        .bind(&d.role)
        .bind(&d.host)
        .bind(d.pid)
        .bind(&d.version)
        .bind(i64::from(d.slots))
        .execute(&self.pool)
        .await
        .doing("announcing a daemon")?;
        Ok(())
    }

    async fn report(&self, owner: &str, slots_in_use: u32) -> Result<(), StoreError> {
        sqlx::query("UPDATE daemons SET heartbeat_at = now(), slots_in_use = $1 WHERE owner = $2")
            .bind(i64::from(slots_in_use))
            .bind(owner)
            .execute(&self.pool)
            .await
            .doing("reporting a daemon")?;
        Ok(())
    }

    async fn leave(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM daemons WHERE owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await
            .doing("removing a daemon")?;
        Ok(())
    }

    async fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError> {
        decode_all(
            sqlx::query_as::<_, DaemonRow>(
                "SELECT * FROM daemons ORDER BY heartbeat_at DESC, owner",
            )
            .fetch_all(&self.pool)
            .await
            .doing("listing daemons")?,
        )
    }

    async fn forget_daemons(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM daemons WHERE heartbeat_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .doing("forgetting dead daemons")?
            .rows_affected())
    }
}
