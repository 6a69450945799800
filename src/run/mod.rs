//! Executing DAG runs: what runs next (trigger rules), retries, timeouts and limits. Nothing
//! here knows about cron; the scheduler decides *when* a run exists, this decides *what* it
//! does.

mod attempt;
pub mod cancel;
pub mod dispatch;
mod executor;
mod limits;
mod messages;
pub mod owner;
pub mod rules;
mod task_test;
pub mod worker;

pub use dispatch::Dispatch;
pub use executor::{ExecError, Executor, Observer, RunEvent, RunUpdate, Stop, UpdateObserver};
pub use limits::Limits;
pub use task_test::TaskTest;
pub use worker::Worker;

use chrono::{DateTime, Utc};

use crate::dag::{ConfError, Dag, resolve_params};
use crate::state::RunState;
use crate::store::{NewRun, RunType};

/// The run to create for `dag` with `conf`, after checking `conf` against the DAG's params
/// (unknown keys and wrong types are refused before anything is written). It covers the data
/// interval from its logical date to itself; the scheduler sets where a scheduled run's
/// interval starts ([`NewRun::data_interval_start`]), because only it knows cron.
pub fn plan_run(
    dag: &Dag,
    conf: serde_json::Value,
    run_type: RunType,
    logical_date: DateTime<Utc>,
    state: RunState,
    owner: Option<String>,
) -> Result<NewRun, ConfError> {
    resolve_params(dag, &conf)?;
    Ok(NewRun {
        dag_id: dag.id.clone(),
        logical_date,
        data_interval_start: logical_date,
        run_type,
        state,
        conf: if conf.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            conf
        },
        dag_file: dag.file.display().to_string(),
        dag_source: dag.source.clone(),
        tasks: dag
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.retry.max_attempts()))
            .collect(),
        max_active_tasks: dag.max_active_tasks,
        idempotency_key: None,
        owner,
    })
}
