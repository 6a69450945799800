//! Waking a service that waits in `select!` (the scheduler, the outbox worker) from inside the
//! same process: a trigger through the API, a run that ended, a reloaded folder.

use std::sync::Arc;

use tokio::sync::Notify;

/// A wake-up handle; clones wake the same waiter. A wake-up sent while nobody waits is kept
/// (one permit), so the waiter never misses the last one.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn new() -> Self {
        Wake::default()
    }

    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next wake-up (or at once if one is pending).
    pub async fn woken(&self) {
        self.0.notified().await
    }
}
