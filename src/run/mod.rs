//! Executing DAG runs: what runs next (trigger rules), retries, timeouts and limits. Nothing
//! here knows about cron; the scheduler decides *when* a run exists, this decides *what* it
//! does.

mod executor;
mod limits;
pub mod trigger;

pub use executor::{ExecError, Executor, Observer, RunEvent};
pub use limits::Limits;
