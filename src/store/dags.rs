//! What the scheduler remembers about each DAG: paused, the newest tick, when first seen.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::{DagState, StoreError};

#[async_trait]
pub trait DagStore: Send + Sync {
    /// The scheduler state of a DAG, created (first seen `now`, paused if `paused_if_new`) if
    /// it is new.
    async fn dag_state(
        &self,
        dag_id: &str,
        now: DateTime<Utc>,
        paused_if_new: bool,
    ) -> Result<DagState, StoreError>;

    /// Every DAG the scheduler has seen.
    async fn dag_states(&self) -> Result<Vec<DagState>, StoreError>;

    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<(), StoreError>;

    /// Records the newest tick a scheduled run exists for (never moves backwards).
    async fn set_last_tick(&self, dag_id: &str, tick: DateTime<Utc>) -> Result<(), StoreError>;
}
