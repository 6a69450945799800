//! Task-level claims: the queue several daemons share on PostgreSQL.
//!
//! A run's owner decides what is ready and commits it `queued`; whichever daemon has a free
//! slot claims it here (`running`, the next attempt, `worker` = that daemon), runs the attempt
//! and commits its end through [`RunStore::commit`](crate::store::RunStore::commit), fenced by
//! the state and attempt it claimed. While the attempt runs, the worker's heartbeat renews the
//! task instance's `heartbeat_at`; an attempt whose heartbeat is older than the lease (by the
//! store's clock) is the owner's to retry. SQLite implements the same queue for the
//! conformance suite; its daemon executes the tasks of its own runs without it.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::{RunId, StoreError, TaskInstance};

/// A running attempt as the owner of its run judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    pub task_id: String,
    pub attempt: u32,
    /// The daemon that claimed it; `None` for an attempt its run's owner started itself.
    pub worker: Option<String>,
    /// Whether its heartbeat is older than the lease.
    pub expired: bool,
}

/// A running attempt a worker holds, by its run, task and attempt.
pub type Held = (RunId, String, u32);

/// What one vigil process tells the daemons serving the same database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Look at the database now: a trigger, a pause, a run to start.
    Look,
    /// Tasks were queued: workers with free slots may claim them.
    Queued,
    /// An attempt of this run ended: its owner decides what follows.
    Ended(RunId),
}

impl Signal {
    /// As a `NOTIFY` payload (`''` stays [`Signal::Look`], which older callers send).
    pub fn payload(self) -> String {
        match self {
            Signal::Look => String::new(),
            Signal::Queued => "queued".into(),
            Signal::Ended(run) => format!("ended {run}"),
        }
    }

    /// Reads a payload; anything unknown is a plain [`Signal::Look`].
    pub fn parse(payload: &str) -> Signal {
        match payload.split_once(' ') {
            Some(("ended", id)) => id.parse().map_or(Signal::Look, Signal::Ended),
            _ if payload == "queued" => Signal::Queued,
            _ => Signal::Look,
        }
    }
}

#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Claims up to `max` queued task instances of running runs for `worker`: each becomes
    /// `running` at its next attempt, stamped by the store's clock. Oldest run first; a DAG's
    /// `max_active_tasks` (as its run recorded it) is counted across every run and daemon, and
    /// a run someone asked to cancel gives out nothing. Returns the claimed rows as they are
    /// now, by run and task id.
    async fn claim_tasks(&self, worker: &str, max: u32) -> Result<Vec<TaskInstance>, StoreError>;

    /// The running attempts of a run, with whether each one's heartbeat is older than `lease`.
    async fn task_leases(
        &self,
        run_id: RunId,
        lease: Duration,
    ) -> Result<Vec<TaskLease>, StoreError>;

    /// The attempts `worker` still holds: those it claimed that nobody has since ended or
    /// taken back. A worker cancels any attempt of its own that is missing.
    async fn held_by(&self, worker: &str) -> Result<Vec<Held>, StoreError>;

    /// Tells the daemons serving this database (none but this process on SQLite, where it
    /// does nothing).
    async fn signal(&self, signal: Signal) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn signals_survive_their_payload_and_unknown_payloads_mean_look() {
        for s in [Signal::Look, Signal::Queued, Signal::Ended(42)] {
            assert_eq!(Signal::parse(&s.payload()), s);
        }
        assert_eq!(Signal::parse("ended x"), Signal::Look);
        assert_eq!(Signal::parse("whatever"), Signal::Look);
    }
}
