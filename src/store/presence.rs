//! A daemon's presence on its database: the backend's single-host habits made explicit, so
//! nothing outside `store/` knows which database is used.
//!
//! SQLite: one daemon per database file (an OS lock on the file, see `sqlite::lock`), and
//! other processes wake it with `SIGUSR1` sent to the pid its lock file names
//! ([`Store::wake_daemons`](crate::store::Store::wake_daemons)). PostgreSQL is shared by any
//! number of daemons: no lock, and wake-ups travel through the database (`LISTEN`/`NOTIFY`,
//! see `postgres::listen`).

use tokio::signal::unix::{SignalKind, signal};

use crate::store::postgres::listen::Listener;
use crate::store::sqlite::lock::OwnerLock;
use crate::store::{Signal, StoreError, is_postgres, sqlite_path};

/// Held for the daemon's lifetime: dropping it lets another daemon in.
pub struct Presence {
    _lock: Option<OwnerLock>,
    wakeups: Wakeups,
}

enum Wakeups {
    Signal(tokio::signal::unix::Signal),
    Listen(Box<Listener>),
    None,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("locked", &self._lock.is_some())
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// Enters the database `url` as daemon `owner`, or says who is there already.
    pub fn enter(url: &str, owner: &str) -> Result<Presence, StoreError> {
        if is_postgres(url) {
            return Ok(Presence {
                _lock: None,
                wakeups: Wakeups::Listen(Box::new(Listener::new(url, owner)?)),
            });
        }
        let Some(path) = sqlite_path(url) else {
            return Ok(Presence {
                _lock: None,
                wakeups: Wakeups::None,
            });
        };
        // Listen for SIGUSR1 before the lock file names this pid: others signal that pid, and
        // the signal's default action would end the process.
        let wakeups = signal(SignalKind::user_defined1()).map_err(StoreError::Signals)?;
        Ok(Presence {
            _lock: Some(OwnerLock::acquire(&path)?),
            wakeups: Wakeups::Signal(wakeups),
        })
    }

    /// Resolves when another process signals this daemon: look at the database now, tasks
    /// were queued, an attempt of a run ended.
    ///
    /// # Cancel safety
    /// Safe to use in `select!`: a wake-up that arrives while it is not polled is kept.
    pub async fn woken(&mut self) -> Signal {
        match &mut self.wakeups {
            Wakeups::Signal(s) => {
                if s.recv().await.is_none() {
                    std::future::pending::<()>().await
                }
                Signal::Look
            }
            Wakeups::Listen(l) => l.woken().await,
            Wakeups::None => std::future::pending().await,
        }
    }
}
