//! Runs, their task instances, results and logs: the executor's state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::state::{LogLine, RunState};
use crate::store::{
    Batch, Cleanup, LogRecord, NewRun, RunFilter, RunId, RunRecord, StoreError, StoredOutput,
    TaskInstance,
};

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a run and its task instances (all `scheduled`) in one transaction. Fails with
    /// [`StoreError::RunExists`] when the DAG already has a run for that logical date.
    async fn create_run(&self, new: &NewRun) -> Result<RunRecord, StoreError>;

    /// Writes a batch of transitions, results and log lines in one transaction. If any
    /// conditional update finds the row changed, nothing is written and
    /// [`StoreError::Conflict`] (worded by [`describe_conflict`]) is returned.
    async fn commit(&self, batch: &Batch) -> Result<(), StoreError>;

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError>;

    /// The run of `dag_id` created with idempotency key `key`, if any.
    async fn run_with_key(&self, dag_id: &str, key: &str) -> Result<Option<RunRecord>, StoreError>;

    /// Newest first.
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;

    async fn task_instances(&self, run_id: RunId) -> Result<Vec<TaskInstance>, StoreError>;

    async fn output(
        &self,
        run_id: RunId,
        task_id: &str,
    ) -> Result<Option<StoredOutput>, StoreError>;

    /// The current result of every task of a run (its current attempt's, while `success`), to
    /// resume it.
    async fn outputs(&self, run_id: RunId) -> Result<Vec<StoredOutput>, StoreError>;

    /// Every result a task ever produced in a run, by attempt (a cleared task keeps them).
    async fn output_history(
        &self,
        run_id: RunId,
        task_id: &str,
    ) -> Result<Vec<StoredOutput>, StoreError>;

    /// Records that `by` asks to cancel a queued or running run; the daemon executing it
    /// carries it out. False when the run is not unfinished (or does not exist).
    async fn request_cancel(&self, run_id: RunId, by: &str) -> Result<bool, StoreError>;

    /// Deletes a finished run with its task instances, results and logs. `Ok(None)`: no such
    /// run; `Ok(Some(state))`: the state it had — deleted only if that state is terminal.
    async fn delete_run(&self, run_id: RunId) -> Result<Option<RunState>, StoreError>;

    /// Appends lines of a running attempt's log, numbered from `first`, so the log can be
    /// followed while the attempt runs. Written only while that attempt still holds the task
    /// (running, at that attempt); otherwise nothing is written. The rest of the log comes
    /// with the attempt's end (`TaskTransition::logs`).
    async fn append_logs(
        &self,
        task: (RunId, &str, u32),
        first: usize,
        lines: &[LogLine],
    ) -> Result<(), StoreError>;

    /// Log lines of one task; of one attempt when `attempt` is given; only those numbered
    /// after `after` when it is given (to follow a log).
    async fn logs(
        &self,
        run_id: RunId,
        task_id: &str,
        attempt: Option<u32>,
        after: Option<u64>,
    ) -> Result<Vec<LogRecord>, StoreError>;

    /// Number of runs in `state`, for summaries and tests.
    async fn count_runs(&self, state: RunState) -> Result<u64, StoreError>;

    /// Runs that are queued or running, oldest first.
    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError>;

    /// Deletes finished runs that ended before `before`, with their task instances, results
    /// and logs. Never touches unfinished runs or the scheduler's DAG state.
    async fn cleanup(&self, before: DateTime<Utc>) -> Result<Cleanup, StoreError>;
}

/// Says which expectation of a stale `batch` no longer holds, given the run's task instances as
/// they are now (`None` when they could not be read).
pub fn describe_conflict(batch: &Batch, current: Option<&[TaskInstance]>) -> String {
    let Some(current) = current else {
        return "the run changed while this batch was written".into();
    };
    for t in &batch.tasks {
        let now = current.iter().find(|c| c.task_id == t.to.task_id);
        if now.is_none_or(|c| c.state != t.expect_state || c.attempt != t.expect_attempt) {
            return format!(
                "task `{}` is no longer {} at attempt {}",
                t.to.task_id, t.expect_state, t.expect_attempt
            );
        }
    }
    if let Some(run) = &batch.run {
        return format!("run is no longer {}", run.expect);
    }
    "the run changed while this batch was written".into()
}
