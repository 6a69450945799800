//! Who executes a run, judged by one clock.
//!
//! Leases compare heartbeats written by one daemon with the time another one reads them. With
//! several hosts their clocks disagree, so the store, not the caller, owns the clock leases are
//! judged by: this host's for SQLite (one host by construction), the database server's for
//! PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::{DaemonRecord, RunId, StoreError};

#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// The time by the clock this store judges leases with.
    async fn now(&self) -> Result<DateTime<Utc>, StoreError>;

    /// Makes `owner` the executor of a queued or running run, if nobody else holds it: its
    /// owner is unset, is `owner` itself, is `dead` (a process known to be gone), or last
    /// heartbeat more than `lease` ago (by [`ClaimStore::now`]; a zero lease takes over from
    /// any other owner). Returns whether the claim succeeded.
    ///
    /// `dead` names the owner to replace rather than waiving the lease, so that two daemons
    /// that both see a dead owner cannot both take its run: the second finds the first there.
    async fn claim_run(
        &self,
        run_id: RunId,
        owner: &str,
        lease: Duration,
        dead: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// [`ClaimStore::claim_run`] for a *queued* run, only while its DAG has fewer than
    /// `max_active_runs` other active runs: running, or queued and held by an owner that
    /// heartbeat within `lease` (about to start). Judged under a lock per DAG, so daemons
    /// starting runs of one DAG at the same instant cannot pass the limit together.
    async fn claim_queued_run(
        &self,
        run_id: RunId,
        owner: &str,
        lease: Duration,
        dead: Option<&str>,
        max_active_runs: u32,
    ) -> Result<bool, StoreError>;

    /// Gives up ownership of a run (it stays as it is, for the next owner to resume).
    async fn release_run(&self, run_id: RunId, owner: &str) -> Result<(), StoreError>;

    /// Proves `owner` alive: stamps its runs and their running task instances with
    /// [`ClaimStore::now`].
    async fn heartbeat(&self, owner: &str) -> Result<(), StoreError>;

    /// Records a daemon starting (its `started_at` and `heartbeat_at` by
    /// [`ClaimStore::now`]), replacing an earlier record of the same owner.
    async fn announce(&self, daemon: &DaemonRecord) -> Result<(), StoreError>;

    /// Refreshes a daemon's heartbeat and the slots it has in use.
    async fn report(&self, owner: &str, slots_in_use: u32) -> Result<(), StoreError>;

    /// Removes a daemon that stops cleanly.
    async fn leave(&self, owner: &str) -> Result<(), StoreError>;

    /// Every daemon that announced itself and has not left, freshest heartbeat first (those
    /// that died stay until `forget_before` their last heartbeat is passed to
    /// [`ClaimStore::forget_daemons`]).
    async fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError>;

    /// Removes records of daemons silent since before `before` (dead ones).
    async fn forget_daemons(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Heartbeats stamped before this are stale under `lease`.
pub fn stale_before(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
