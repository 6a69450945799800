//! Claims and heartbeats on SQLite, judged by this host's clock.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::script::Script;
use crate::store::claims::stale_before;
use crate::store::rows::{DaemonRow, decode_all};
use crate::store::{ClaimStore, DaemonRecord, QueryContext, RunId, StoreError};

/// A queued run's claim, while its DAG has room: `?1` owner, `?2` now, `?3` run, `?4` stale
/// before, `?5` a dead owner to replace, `?6` max_active_runs.
const CLAIM_QUEUED: &str = "
UPDATE dag_runs SET owner = ?1, heartbeat_at = ?2
WHERE id = ?3 AND state = 'queued'
  AND (owner IS NULL OR owner = ?1 OR owner = ?5 OR heartbeat_at IS NULL OR heartbeat_at < ?4)
  AND (SELECT count(*) FROM dag_runs o WHERE o.dag_id = dag_runs.dag_id AND o.id <> ?3
       AND (o.state = 'running'
            OR (o.state = 'queued' AND o.owner IS NOT NULL AND o.heartbeat_at >= ?4))) < ?6";

#[async_trait]
impl ClaimStore for SqliteStore {
    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(self.clock())
    }

    async fn claim_run(
        &self,
        run_id: RunId,
        owner: &str,
        lease: Duration,
        dead: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = self.clock();
        let mut w = self.writer.lock().await;
        let changed = sqlx::query(
            "UPDATE dag_runs SET owner = ?1, heartbeat_at = ?2
             WHERE id = ?3 AND state IN ('queued', 'running')
               AND (owner IS NULL OR owner = ?1 OR owner = ?5 OR heartbeat_at IS NULL OR heartbeat_at < ?4)",
        )
        .bind(owner)
        .bind(now)
        .bind(run_id)
        .bind(stale_before(now, lease))
        .bind(dead)
        .execute(&mut w.conn)
        .await
        .doing("claiming a run")?
        .rows_affected();
        Ok(changed == 1)
    }
    /// One statement on the one writer: the count and the claim cannot be split.
    async fn claim_queued_run(
        &self,
        run_id: RunId,
        owner: &str,
        lease: Duration,
        dead: Option<&str>,
        max_active_runs: u32,
    ) -> Result<bool, StoreError> {
        let now = self.clock();
        let mut w = self.writer.lock().await;
        let changed = sqlx::query(CLAIM_QUEUED)
            .bind(owner)
            .bind(now)
            .bind(run_id)
            .bind(stale_before(now, lease))
            .bind(dead)
            .bind(i64::from(max_active_runs))
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
    async fn heartbeat(&self, owner: &str) -> Result<(), StoreError> {
        let at = self.clock();
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
                 WHERE state = 'running' AND (worker = ? OR (worker IS NULL
                     AND run_id IN (SELECT id FROM dag_runs WHERE owner = ?)))",
            )
            .bind(at)?
            .bind(owner.to_string())?
            .bind(owner.to_string())?;
        self.run_script(script)
            .await
            .doing("recording a heartbeat")?;
        Ok(())
    }

    async fn announce(&self, d: &DaemonRecord) -> Result<(), StoreError> {
        let now = self.clock();
        let mut script = Script::new();
        script
            .stmt(
                "INSERT OR REPLACE INTO daemons (owner, role, host, pid, version, slots, slots_in_use, started_at, heartbeat_at)
                 VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            )
            .bind(d.owner.clone())?
            .bind(d.role.clone())?
            .bind(d.host.clone())?
            .bind(d.pid)?
            .bind(d.version.clone())?
            .bind(i64::from(d.slots))?
            .bind(now)?
            .bind(now)?;
        self.run_script(script).await.doing("announcing a daemon")?;
        Ok(())
    }
    async fn report(&self, owner: &str, slots_in_use: u32) -> Result<(), StoreError> {
        let mut script = Script::new();
        script
            .stmt("UPDATE daemons SET heartbeat_at = ?, slots_in_use = ? WHERE owner = ?")
            .bind(self.clock())?
            .bind(i64::from(slots_in_use))?
            .bind(owner.to_string())?;
        self.run_script(script).await.doing("reporting a daemon")?;
        Ok(())
    }
    async fn leave(&self, owner: &str) -> Result<(), StoreError> {
        let mut script = Script::new();
        script
            .stmt("DELETE FROM daemons WHERE owner = ?")
            .bind(owner.to_string())?;
        self.run_script(script).await.doing("removing a daemon")?;
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
        let mut w = self.writer.lock().await;
        Ok(sqlx::query("DELETE FROM daemons WHERE heartbeat_at < ?")
            .bind(before)
            .execute(&mut w.conn)
            .await
            .doing("forgetting dead daemons")?
            .rows_affected())
    }
}
