//! The daemons serving the database (`vigil daemons`): who they are, what they do, how busy,
//! and whether they are still alive by the lease their runs are judged by.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ops::OpsError;
use crate::store::{ClaimStore, DaemonRecord, stale_before};

/// A daemon as `vigil daemons` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonView {
    #[serde(flatten)]
    pub daemon: DaemonRecord,
    /// Heartbeat within the lease: its runs are its own. A daemon that is not live has died
    /// or is cut off; its runs go to another daemon.
    pub live: bool,
    /// Seconds since its last heartbeat, by the store's clock.
    pub silent_seconds: i64,
}

/// Every daemon that announced itself and has not left, live ones first.
pub async fn list(store: &dyn ClaimStore, lease: Duration) -> Result<Vec<DaemonView>, OpsError> {
    let now: DateTime<Utc> = store.now().await?;
    let stale = stale_before(now, lease);
    let mut views: Vec<DaemonView> = store
        .daemons()
        .await?
        .into_iter()
        .map(|daemon| DaemonView {
            live: daemon.heartbeat_at >= stale,
            silent_seconds: (now - daemon.heartbeat_at).num_seconds().max(0),
            daemon,
        })
        .collect();
    views.sort_by_key(|v| !v.live);
    Ok(views)
}
