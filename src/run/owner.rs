//! Who executes a run proves it is alive by heartbeating its runs; a run whose owner went
//! silent (or, on the same host, whose process no longer exists: `state::owner`) may be taken
//! over. This is what keeps a task from ever running twice in parallel while no run stays
//! `running` forever.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Heartbeats `owner`'s runs every `interval` until `stop` is cancelled. A failed heartbeat is
/// logged and retried at the next interval: a late heartbeat only risks a takeover, which the
/// conditional updates make safe.
pub async fn heartbeat_loop(
    store: Arc<dyn Store>,
    owner: String,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = store.heartbeat(&owner).await {
            tracing::warn!(error = %crate::state::Chain(&e), "heartbeat failed");
        }
    }
}
