//! A daemon's presence on its database: the backend's single-host habits made explicit, so
//! nothing outside `store/` knows which database is used.
//!
//! SQLite: one daemon per database file (an OS lock on the file, see `sqlite::lock`), and
//! other processes wake it with `SIGUSR1` sent to the pid its lock file names
//! ([`Store::wake_daemons`](crate::store::Store::wake_daemons)). A backend shared by several
//! daemons needs no lock and wakes them through the database itself.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::store::sqlite::lock::OwnerLock;
use crate::store::{StoreError, sqlite_path};

/// Held for the daemon's lifetime: dropping it lets another daemon in.
#[derive(Debug)]
pub struct Presence {
    _lock: Option<OwnerLock>,
    wakeups: Option<Signal>,
}

impl Presence {
    /// Enters the database `url` as its daemon, or says who is there already.
    pub fn enter(url: &str) -> Result<Presence, StoreError> {
        let Some(path) = sqlite_path(url) else {
            return Ok(Presence {
                _lock: None,
                wakeups: None,
            });
        };
        // Listen for SIGUSR1 before the lock file names this pid: others signal that pid, and
        // the signal's default action would end the process.
        let wakeups = signal(SignalKind::user_defined1()).map_err(StoreError::Signals)?;
        Ok(Presence {
            _lock: Some(OwnerLock::acquire(&path)?),
            wakeups: Some(wakeups),
        })
    }

    /// Resolves when another process asks this daemon to look at the database now.
    ///
    /// # Cancel safety
    /// Safe to use in `select!`: a wake-up that arrives while it is not polled is kept.
    pub async fn woken(&mut self) {
        match self.wakeups.as_mut() {
            Some(s) => {
                if s.recv().await.is_none() {
                    std::future::pending::<()>().await
                }
            }
            None => std::future::pending().await,
        }
    }
}
