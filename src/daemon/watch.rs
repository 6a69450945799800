//! Watching the DAG folder with the `notify` crate (file-system events; not vigil's own
//! `notify` module, which tells people about runs).

use std::path::Path;

use ::notify::{Event, RecommendedWatcher, RecursiveMode, Watcher, recommended_watcher};
use tokio::sync::mpsc;

use crate::daemon::DaemonError;

/// What can go wrong watching; named here so the file-watcher crate stays in this file.
pub type WatchError = ::notify::Error;

/// Watches `dags`; each change sends `()`. Dropping the watcher stops it.
pub fn folder(
    dags: &Path,
    changed: mpsc::UnboundedSender<()>,
) -> Result<RecommendedWatcher, DaemonError> {
    let error = |source| DaemonError::Watch {
        path: dags.to_path_buf(),
        source,
    };
    let mut watcher = recommended_watcher(move |event: ::notify::Result<Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            let _ = changed.send(());
        }
    })
    .map_err(error)?;
    watcher
        .watch(dags, RecursiveMode::NonRecursive)
        .map_err(error)?;
    Ok(watcher)
}
