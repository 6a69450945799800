//! Counts for `/metrics`: what the database holds, by DAG and state, read in a few grouped
//! queries per scrape (no per-run work).

use async_trait::async_trait;
use serde::Serialize;

use crate::state::{RunState, TaskState};
use crate::store::{OutboxState, StoreError};

/// The database at one instant, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `(dag_id, state, runs)`.
    pub runs: Vec<(String, RunState, u64)>,
    /// `(dag_id, state, task instances)`.
    pub tasks: Vec<(String, TaskState, u64)>,
    /// `(dag_id, seconds)`: how late each DAG's latest scheduled run started after its tick.
    pub lateness: Vec<(String, f64)>,
    /// `(state, messages)`.
    pub outbox: Vec<(OutboxState, u64)>,
    /// Delivery attempts that failed, over the messages on record.
    pub failed_deliveries: u64,
}

/// Raw rows as both backends select them, decoded here once.
pub(crate) struct SummaryRows {
    pub runs: Vec<(String, String, i64)>,
    pub tasks: Vec<(String, String, i64)>,
    pub lateness: Vec<(String, f64)>,
    pub outbox: Vec<(String, i64)>,
    pub failed_deliveries: Option<i64>,
}

impl SummaryRows {
    pub fn decode(self) -> Result<Summary, StoreError> {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let parse = |column: &str, text: &str| -> Result<(), StoreError> {
            Err(crate::store::rows::corrupt(
                column,
                format!("unknown state `{text}`"),
            ))
        };
        let mut summary = Summary {
            lateness: self.lateness,
            failed_deliveries: n(self.failed_deliveries.unwrap_or(0)),
            ..Summary::default()
        };
        for (dag, state, count) in self.runs {
            match state.parse::<RunState>() {
                Ok(s) => summary.runs.push((dag, s, n(count))),
                Err(_) => parse("dag_runs.state", &state)?,
            }
        }
        for (dag, state, count) in self.tasks {
            match state.parse::<TaskState>() {
                Ok(s) => summary.tasks.push((dag, s, n(count))),
                Err(_) => parse("task_instances.state", &state)?,
            }
        }
        for (state, count) in self.outbox {
            match state.parse::<OutboxState>() {
                Ok(s) => summary.outbox.push((s, n(count))),
                Err(_) => parse("outbox.state", &state)?,
            }
        }
        Ok(summary)
    }
}

#[async_trait]
pub trait StatsStore: Send + Sync {
    async fn summary(&self) -> Result<Summary, StoreError>;
}

/// The queries, the same text on both backends (only standard SQL).
pub(crate) const RUNS: &str =
    "SELECT dag_id, state, count(*) FROM dag_runs GROUP BY dag_id, state ORDER BY dag_id, state";
pub(crate) const TASKS: &str = "SELECT r.dag_id, t.state, count(*) FROM task_instances t \
     JOIN dag_runs r ON r.id = t.run_id GROUP BY r.dag_id, t.state ORDER BY r.dag_id, t.state";
pub(crate) const OUTBOX: &str = "SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state";
/// Cast: PostgreSQL sums BIGINT into NUMERIC.
pub(crate) const FAILED_DELIVERIES: &str = "SELECT CAST(sum(CASE WHEN state = 'sent' THEN attempts - 1 ELSE attempts END) AS BIGINT) FROM outbox";
