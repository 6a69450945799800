//! Spreading a run's tasks over every daemon on a shared database.
//!
//! On PostgreSQL a run's owner does not start its tasks: it commits them `queued` and signals
//! the workers (this process's in process, the others' by `NOTIFY`); whichever worker has a
//! free slot claims them (`run::worker`). When an attempt ends, its worker signals the run's
//! owner the same way, and the owner decides what follows. A [`Dispatch`] is this process's
//! switchboard for those signals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dag::Dag;
use crate::state::Wake;
use crate::store::{RunId, RunRecord, Signal};

/// What the owner of a run lends this process's worker: the run with its DAG version parsed
/// and its params resolved, so the worker's first attempt of it neither reads nor parses.
#[derive(Debug, Clone)]
pub(super) struct Lent {
    pub run: RunRecord,
    pub dag: Arc<Dag>,
    pub params: Arc<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug)]
struct Owner {
    wake: Wake,
    lent: Lent,
}

/// Shared by the scheduler's run owners and the worker of one daemon; cheap to clone.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// Wakes this process's worker: tasks were queued.
    pub work: Wake,
    /// The runs this process owns, each woken when one of its attempts ends. A `std` mutex,
    /// held only to look up, insert or remove.
    owners: Arc<Mutex<HashMap<RunId, Owner>>>,
    /// How long an attempt's heartbeat may be silent before its owner takes it back.
    pub lease: Duration,
    /// How often owners and workers look without being told: a `NOTIFY` is lost when the
    /// listening connection drops, and an expired lease sends no signal at all.
    pub poll: Duration,
}

impl Dispatch {
    pub fn new(lease: Duration, poll: Duration) -> Dispatch {
        Dispatch {
            work: Wake::new(),
            owners: Arc::default(),
            lease,
            poll: poll.max(Duration::from_millis(100)),
        }
    }

    /// Delivers a signal from another process; `Look` is the scheduler's, woken through
    /// `scheduler`.
    pub fn route(&self, signal: Signal, scheduler: &Wake) {
        match signal {
            Signal::Look => scheduler.wake(),
            Signal::Queued => self.work.wake(),
            Signal::Ended(run) => {
                self.wake_owner(run);
            }
        }
    }

    /// Wakes the owner of `run` if it is in this process; false when it is not.
    pub fn wake_owner(&self, run: RunId) -> bool {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        match owners.get(&run) {
            Some(o) => {
                o.wake.wake();
                true
            }
            None => false,
        }
    }

    /// Registers this process as the owner of `lent.run` until the returned guard is dropped.
    pub(super) fn own(&self, lent: Lent) -> Owned {
        let (run, wake) = (lent.run.id, Wake::new());
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                run,
                Owner {
                    wake: wake.clone(),
                    lent,
                },
            );
        Owned {
            run,
            wake,
            owners: self.owners.clone(),
        }
    }

    /// What the owner of `run` lends, if it is in this process.
    pub(super) fn lent(&self, run: RunId) -> Option<Lent> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.get(&run).map(|o| o.lent.clone())
    }
}

/// A run this process owns; woken when one of its attempts ends.
pub(super) struct Owned {
    run: RunId,
    pub wake: Wake,
    owners: Arc<Mutex<HashMap<RunId, Owner>>>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.run);
    }
}
