//! One attempt of one task, as it runs on its own tokio task: render the config (off the
//! runtime), run the task under its timeout, catch a panic, and hand back the result with the
//! log lines the attempt wrote.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::dag::{Dag, TaskSpec};
use crate::state::{LogLine, TaskState};
use crate::task::template::{RenderContext, RunVars, TaskVars};
use crate::task::{ErasedTask, TaskContext, TaskError};

/// The result of one attempt, sent back from its spawned future.
pub(super) struct Finished {
    pub index: usize,
    pub attempt: u32,
    pub result: Result<serde_json::Value, TaskError>,
    pub logs: Vec<LogLine>,
    pub duration: Duration,
}

/// Everything an attempt needs, moved onto its tokio task.
pub(super) struct Attempt {
    /// The task's index in the DAG (topological order).
    pub index: usize,
    pub attempt: u32,
    /// `None` when the binary has no such task type (a DAG version from another build).
    pub task: Option<Arc<dyn ErasedTask>>,
    pub dag: Arc<Dag>,
    pub ctx: Arc<TaskContext>,
    pub run_vars: Arc<RunVars>,
    pub params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// The upstream results (and states) the config's templates read.
    pub reads: Vec<(String, Option<Arc<serde_json::Value>>, TaskState)>,
}

impl Attempt {
    pub async fn run(self) -> Finished {
        let started = Instant::now();
        let (index, attempt, ctx) = (self.index, self.attempt, self.ctx.clone());
        let timeout = self.dag.tasks[index].timeout;
        let work = crate::task::capture::scope(ctx.log_sink(), self.work());
        let guarded = AssertUnwindSafe(work).catch_unwind();
        let outcome = match timeout {
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    ctx.cancellation_token().cancel();
                    Ok(Err(TaskError::failed(format!(
                        "timed out after {}",
                        humantime::format_duration(limit)
                    ))))
                }
            },
            None => guarded.await,
        };
        let result = outcome.unwrap_or_else(|panic| {
            Err(TaskError::failed(format!(
                "task panicked: {}",
                panic_message(&panic)
            )))
        });
        Finished {
            index,
            attempt,
            result,
            logs: ctx.take_log(),
            duration: started.elapsed(),
        }
    }

    /// Renders the config and runs the task.
    async fn work(self) -> Result<serde_json::Value, TaskError> {
        let spec = &self.dag.tasks[self.index];
        let Some(task) = &self.task else {
            return Err(TaskError::fatal(format!(
                "task type `{}` is not registered in this vigil binary",
                spec.task_type
            )));
        };
        let config = if spec.config.is_static() {
            spec.config.source()
        } else {
            // Off the scheduler's thread: a render is budgeted, but even a budgeted one must
            // not hold up other runs, signals or the timeout around this attempt.
            let (dag, index) = (self.dag.clone(), self.index);
            let (params, run_vars, reads) =
                (self.params.clone(), self.run_vars.clone(), self.reads);
            tokio::task::spawn_blocking(move || {
                render_config(&dag.tasks[index], &params, &run_vars, &reads)
            })
            .await
            .map_err(|e| TaskError::failed(format!("rendering the config stopped: {e}")))??
        };
        task.run_json(&self.ctx, config).await
    }
}

/// Renders task `spec`'s config for one attempt; a template error is fatal (retrying cannot
/// change it).
fn render_config(
    spec: &TaskSpec,
    params: &serde_json::Map<String, serde_json::Value>,
    run: &RunVars,
    reads: &[(String, Option<Arc<serde_json::Value>>, TaskState)],
) -> Result<serde_json::Value, TaskError> {
    let null = serde_json::Value::Null;
    spec.config
        .render(&RenderContext {
            params,
            run,
            tasks: reads
                .iter()
                .map(|(id, out, state)| {
                    let output = out.as_deref().unwrap_or(&null);
                    (
                        id.as_str(),
                        TaskVars {
                            output,
                            state: state.as_str(),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        })
        .map_err(|e| TaskError::fatal(e.to_string()))
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}
