//! Who executes a run proves it is alive by heartbeating its runs; a run whose owner went
//! silent (or, on the same host, whose process no longer exists: `state::owner`) may be taken
//! over. This is what keeps a task from ever running twice in parallel while no run stays
//! `running` forever.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Heartbeats `owner`'s runs every `interval` until `stop` is cancelled; a daemon (`limits`
/// given) also refreshes its `vigil daemons` record with the slots in use. A failed heartbeat
/// is logged and retried at the next interval: a late heartbeat only risks a takeover, which
/// the conditional updates make safe.
pub async fn heartbeat_loop(
    store: Arc<dyn Store>,
    owner: String,
    interval: Duration,
    stop: CancellationToken,
    limits: Option<Arc<crate::run::Limits>>,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = store.heartbeat(&owner).await {
            tracing::warn!(error = %crate::state::Chain(&e), "heartbeat failed");
        }
        if let Some(limits) = &limits {
            let in_use = u32::try_from(limits.in_use()).unwrap_or(u32::MAX);
            if let Err(e) = store.report(&owner, in_use).await {
                tracing::warn!(error = %crate::state::Chain(&e), "heartbeat failed");
            }
        }
    }
}
