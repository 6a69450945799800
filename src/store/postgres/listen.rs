//! Wake-ups through the database: a daemon `LISTEN`s on [`WAKE_CHANNEL`] and any vigil process
//! (a trigger, a pause, another daemon) `NOTIFY`s it, on whichever host it runs.
//!
//! The listening connection names its daemon (`application_name = 'vigil daemon pid@host'`),
//! which is how [`Store::wake_daemons`](crate::store::Store::wake_daemons) tells whether any
//! daemon is there to hear.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::WAKE_CHANNEL;
use crate::store::{Signal, StoreError};

/// Prefix of the listening connections' `application_name`.
pub(crate) const DAEMON_APPLICATION: &str = "vigil daemon ";

pub struct Listener {
    options: PgConnectOptions,
    listener: Option<PgListener>,
    /// Whether the last attempt failed, so a long outage logs once, not every second.
    failing: bool,
}

impl Listener {
    /// Prepares to listen on `url` as daemon `owner`; connects on first use, so a server
    /// that is down delays wake-ups (the daemon still polls) instead of the start.
    pub fn new(url: &str, owner: &str) -> Result<Listener, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| StoreError::Open {
                url: super::redact(url),
                source,
            })?
            .application_name(&format!("{DAEMON_APPLICATION}{owner}"));
        Ok(Listener {
            options,
            listener: None,
            failing: false,
        })
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(WAKE_CHANNEL).await?;
        Ok(listener)
    }

    /// Resolves at the next `NOTIFY`, with what it says. A lost connection is opened again
    /// (signals sent meanwhile are lost; the daemon's poll intervals bound the delay).
    pub async fn woken(&mut self) -> Signal {
        loop {
            let listener = match self.listener.as_mut() {
                Some(l) => l,
                None => match self.connect().await {
                    Ok(l) => {
                        if self.failing {
                            tracing::info!("listening for wake-ups on the database again");
                        }
                        self.failing = false;
                        self.listener.insert(l)
                    }
                    Err(e) => {
                        if !self.failing {
                            tracing::warn!(error = %e, "cannot listen for wake-ups on the database; retrying every second (runs start at the next poll meanwhile)");
                        }
                        self.failing = true;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            match listener.recv().await {
                Ok(n) => return Signal::parse(n.payload()),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the wake-up connection to the database");
                    self.listener = None;
                    self.failing = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
