//! Ending a cancelled run: what the daemon does once the executor has stopped it (or at once,
//! for a run nobody executes). The run ends `failed` with a note saying who cancelled it;
//! attempts that were running or waiting to retry end `failed` ("cancelled"), tasks that never
//! started end `skipped`, so nothing downstream starts.

use chrono::Utc;

use crate::state::{RunState, TaskState};
use crate::store::{Batch, RunId, RunStore, RunTransition, StoreError, TaskTransition};

pub async fn end_cancelled(
    store: &dyn RunStore,
    run_id: RunId,
    by: &str,
) -> Result<(), StoreError> {
    let Some(run) = store.run(run_id).await? else {
        return Ok(());
    };
    if run.state.is_terminal() {
        return Ok(());
    }
    let now = Utc::now();
    let mut batch = Batch::new(run_id);
    for ti in store.task_instances(run_id).await? {
        if ti.state.is_terminal() {
            continue;
        }
        let mut to = ti.clone();
        to.updated_at = now;
        to.ended_at = Some(now);
        to.next_retry_at = None;
        if ti.attempt > 0 {
            to.state = TaskState::Failed;
            to.error = Some(format!("cancelled: {by}"));
        } else {
            to.state = TaskState::Skipped;
        }
        batch.tasks.push(TaskTransition::change(&ti, to));
    }
    batch.run = Some(RunTransition {
        expect: run.state,
        to: RunState::Failed,
        at: now,
        note: Some(format!("cancelled: {by}")),
    });
    store.commit(&batch).await
}
