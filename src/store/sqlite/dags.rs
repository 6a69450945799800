//! The scheduler's per-DAG state on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::SqliteStore;
use super::script::Script;
use crate::store::rows::{DagRow, Decode, corrupt, decode_all};
use crate::store::{DagState, DagStore, QueryContext, StoreError};

#[async_trait]
impl DagStore for SqliteStore {
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
        let row = rows
            .first()
            .ok_or_else(|| corrupt("dags", "row missing after insert"))?;
        DagRow::from_row(row)
            .doing("reading a DAG's state")?
            .decode()
    }
    async fn dag_states(&self) -> Result<Vec<DagState>, StoreError> {
        decode_all(
            sqlx::query_as::<_, DagRow>("SELECT * FROM dags ORDER BY dag_id")
                .fetch_all(&self.pool)
                .await
                .doing("reading DAG states")?,
        )
    }
    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<(), StoreError> {
        let now = self.clock();
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
            .bind(self.clock())?
            .bind(dag_id.to_string())?
            .bind(tick)?;
        self.run_script(script)
            .await
            .doing("recording a schedule tick")?;
        Ok(())
    }
}
