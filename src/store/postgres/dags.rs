//! The scheduler's per-DAG state on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::store::rows::{DagRow, Decode, decode_all};
use crate::store::{DagState, DagStore, QueryContext, StoreError};

#[async_trait]
impl DagStore for PgStore {
    async fn dag_state(
        &self,
        dag_id: &str,
        now: DateTime<Utc>,
        paused_if_new: bool,
    ) -> Result<DagState, StoreError> {
        // The no-op update makes RETURNING give the row whether or not it was new.
        sqlx::query_as::<_, DagRow>(
            "INSERT INTO dags (dag_id, paused, first_seen, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (dag_id) DO UPDATE SET dag_id = EXCLUDED.dag_id
             RETURNING *",
        )
        .bind(dag_id)
        .bind(paused_if_new)
        .bind(now)
        .fetch_one(&self.pool)
        .await
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
        sqlx::query(
            "INSERT INTO dags (dag_id, paused, first_seen, updated_at) VALUES ($1, $2, now(), now())
             ON CONFLICT (dag_id) DO UPDATE SET paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at",
        )
        .bind(dag_id)
        .bind(paused)
        .execute(&self.pool)
        .await
        .doing("pausing a DAG")?;
        Ok(())
    }

    async fn set_last_tick(&self, dag_id: &str, tick: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE dags SET last_tick = $1, updated_at = now()
             WHERE dag_id = $2 AND (last_tick IS NULL OR last_tick < $1)",
        )
        .bind(tick)
        .bind(dag_id)
        .execute(&self.pool)
        .await
        .doing("recording a schedule tick")?;
        Ok(())
    }
}
