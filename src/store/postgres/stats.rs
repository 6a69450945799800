//! Counts for `/metrics` on PostgreSQL.

use async_trait::async_trait;

use super::PgStore;
use crate::store::stats::{
    FAILED_DELIVERIES, OUTBOX, RUNS, StatsStore, Summary, SummaryRows, TASKS,
};
use crate::store::{QueryContext, StoreError};

/// Each DAG's latest scheduled run that started, and how late.
const LATENESS: &str = "SELECT DISTINCT ON (dag_id) dag_id,
         extract(epoch FROM started_at - logical_date)::float8
     FROM dag_runs WHERE run_type = 'scheduled' AND started_at IS NOT NULL
     ORDER BY dag_id, logical_date DESC";

#[async_trait]
impl StatsStore for PgStore {
    async fn summary(&self) -> Result<Summary, StoreError> {
        let doing = "counting runs, tasks and messages";
        let pool = &self.pool;
        SummaryRows {
            runs: sqlx::query_as(RUNS).fetch_all(pool).await.doing(doing)?,
            tasks: sqlx::query_as(TASKS).fetch_all(pool).await.doing(doing)?,
            lateness: sqlx::query_as(LATENESS)
                .fetch_all(pool)
                .await
                .doing(doing)?,
            outbox: sqlx::query_as(OUTBOX).fetch_all(pool).await.doing(doing)?,
            failed_deliveries: sqlx::query_scalar(FAILED_DELIVERIES)
                .fetch_one(pool)
                .await
                .doing(doing)?,
        }
        .decode()
    }
}
