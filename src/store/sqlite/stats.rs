//! Counts for `/metrics` on SQLite.

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::stats::{
    FAILED_DELIVERIES, OUTBOX, RUNS, StatsStore, Summary, SummaryRows, TASKS,
};
use crate::store::{QueryContext, StoreError};

/// Each DAG's latest scheduled run that started, and how late (timestamps are text here).
const LATENESS: &str = "SELECT dag_id, (julianday(started_at) - julianday(logical_date)) * 86400.0
     FROM dag_runs r WHERE run_type = 'scheduled' AND started_at IS NOT NULL
       AND logical_date = (SELECT max(logical_date) FROM dag_runs o
                           WHERE o.dag_id = r.dag_id AND o.run_type = 'scheduled' AND o.started_at IS NOT NULL)
     ORDER BY dag_id";

#[async_trait]
impl StatsStore for SqliteStore {
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
