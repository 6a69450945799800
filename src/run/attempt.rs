//! One attempt of one task, as it runs on its own tokio task: render the config (off the
//! runtime), run the task under its timeout, catch a panic, and hand back the result with the
//! log lines the attempt wrote.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::dag::{Dag, RetryPolicy, TaskSpec};
use crate::run::executor::Executor;
use crate::state::failpoint::crash_point;
use crate::state::{Audience, LogLine, TaskState};
use crate::store::RunStore;
use crate::task::template::{RenderContext, RunVars, TaskVars};
use crate::task::{ErasedTask, TaskContext, TaskError, process};

/// What the end of an attempt makes of its task: the same rule whether the run's owner ran
/// the attempt or a worker on another daemon did.
pub(super) struct Outcome {
    pub state: TaskState,
    pub error: Option<String>,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// What a success returned (`null` included, which stores no result).
    pub value: Option<serde_json::Value>,
}

impl Outcome {
    /// Attempt `attempt` of `max_attempts` ended with `result` at `now`.
    pub fn of(
        retry: &RetryPolicy,
        attempt: u32,
        max_attempts: u32,
        result: Result<serde_json::Value, TaskError>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let (state, error, next_retry_at, value) = match result {
            Ok(value) => (TaskState::Success, None, None, Some(value)),
            Err(TaskError::Skip(reason)) => (TaskState::Skipped, Some(reason), None, None),
            Err(TaskError::Failed(message)) if attempt < max_attempts => {
                let at = now
                    + chrono::Duration::from_std(retry.delay_after(attempt))
                        .unwrap_or(chrono::Duration::MAX);
                (TaskState::UpForRetry, Some(message), Some(at), None)
            }
            Err(TaskError::Failed(message) | TaskError::Fatal(message)) => {
                (TaskState::Failed, Some(message), None, None)
            }
        };
        Outcome {
            state,
            error,
            next_retry_at,
            value,
        }
    }

    /// The result to store: like Airflow, a task that returns nothing (null) stores none.
    pub fn stored(&self) -> Option<serde_json::Value> {
        self.value.clone().filter(|v| !v.is_null())
    }
}

/// The run an attempt belongs to, as both the owner and a worker hold it.
pub(super) struct RunScope<'a> {
    pub dag: &'a Arc<Dag>,
    pub run_id: i64,
    pub logical_date: DateTime<Utc>,
    pub params: &'a Arc<serde_json::Map<String, serde_json::Value>>,
    pub run_vars: &'a Arc<RunVars>,
}

/// What an attempt sees of the other tasks of its run: their results and states.
pub(super) trait Upstream {
    fn output(&self, i: usize) -> Option<Arc<serde_json::Value>>;
    fn state(&self, i: usize) -> TaskState;
}

/// The result of one attempt, sent back from its spawned future.
pub(super) struct Finished {
    pub index: usize,
    pub attempt: u32,
    pub result: Result<serde_json::Value, TaskError>,
    /// The attempt's whole log (the failure mail quotes its tail) ...
    pub logs: Vec<LogLine>,
    /// ... of which the first `logs_stored` lines were written while it ran.
    pub logs_stored: usize,
    pub duration: Duration,
}

impl Finished {
    /// Attempt `attempt` of task `index`, ended by the loss of whatever ran it.
    pub fn interrupted(index: usize, attempt: u32, message: String) -> Finished {
        Finished {
            index,
            attempt,
            result: Err(TaskError::failed(message)),
            logs: Vec::new(),
            logs_stored: 0,
            duration: Duration::ZERO,
        }
    }

    /// The number of the first log line not yet stored, and the lines from it on: what the
    /// attempt's end writes.
    pub fn unstored_logs(&self) -> (usize, Vec<LogLine>) {
        let from = self.logs_stored.min(self.logs.len());
        (from, self.logs[from..].to_vec())
    }
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
    /// Where the log goes while the attempt runs (none for `vigil tasks test`, which has no run).
    pub log_store: Option<Arc<dyn RunStore>>,
}

/// How often a running attempt's new log lines are written, so `vigil tasks logs`, the API and
/// the web page can follow it. One small write per running task per interval, and none when
/// it printed nothing.
const LOG_WRITE_INTERVAL: Duration = Duration::from_secs(1);

impl Attempt {
    /// Attempt `attempt` of task `i` of `scope`'s run, with the results it may read from
    /// `upstream`, ready to spawn.
    pub fn prepare(
        exec: &Executor,
        scope: &RunScope<'_>,
        (i, attempt): (usize, u32),
        upstream: &dyn Upstream,
        alerts: Audience,
        cancel: CancellationToken,
    ) -> Attempt {
        let (dag, store) = (scope.dag, &exec.store);
        let spec = &dag.tasks[i];
        let graph = &dag.graph;
        let results: BTreeMap<String, Arc<serde_json::Value>> = graph
            .upstream(i)
            .iter()
            .filter_map(|&u| Some((graph.id(u).to_string(), upstream.output(u)?)))
            .collect();
        // Only the results this task's templates read are handed to the renderer.
        let reads = spec
            .config
            .reads_tasks()
            .iter()
            .filter_map(|id| {
                let u = graph.index_of(id)?;
                Some((id.clone(), upstream.output(u), upstream.state(u)))
            })
            .collect();
        let ctx = TaskContext::new(
            dag.id.clone(),
            scope.run_id,
            spec.id.clone(),
            attempt,
            scope.logical_date,
            dag.file
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
            scope.params.clone(),
            results,
            cancel,
        )
        .with_store(store.clone() as Arc<dyn crate::store::ModelStore>)
        .with_alerts(alerts)
        .with_limits(exec.output)
        .with_attempt_key(process::attempt_key(
            store.identity(),
            scope.run_id,
            &spec.id,
            attempt,
        ));
        Attempt {
            index: i,
            attempt,
            task: exec.registry.get(&spec.task_type).cloned(),
            dag: dag.clone(),
            ctx: Arc::new(ctx),
            run_vars: scope.run_vars.clone(),
            params: scope.params.clone(),
            reads,
            log_store: Some(store.clone() as Arc<dyn RunStore>),
        }
    }

    pub async fn run(self) -> Finished {
        let started = Instant::now();
        let (index, attempt, ctx) = (self.index, self.attempt, self.ctx.clone());
        let timeout = self.dag.tasks[index].timeout;
        let log_store = self.log_store.clone();
        let work = crate::task::capture::scope(ctx.log_sink(), self.work());
        let guarded = AssertUnwindSafe(work).catch_unwind();
        let ended = CancellationToken::new();
        let work = async {
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
            ended.cancel();
            outcome
        };
        let follow = async {
            if let Some(store) = &log_store {
                write_log_while(store.as_ref(), &ctx, &ended).await;
            }
        };
        let (outcome, ()) = tokio::join!(work, follow);
        crash_point("attempt.after_task");
        let (logs, logs_stored) = ctx.take_log();
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
            logs,
            logs_stored,
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

/// Writes the attempt's new log lines every [`LOG_WRITE_INTERVAL`] until it has `ended`. A
/// failed write is left to the attempt's end, which writes every line not yet stored.
async fn write_log_while(store: &dyn RunStore, ctx: &TaskContext, ended: &CancellationToken) {
    // The first write is one interval in. Not `interval()` and its immediate first tick: a
    // timer due "now" still waits for the timer wheel's next millisecond, and every attempt
    // (a `noop` takes microseconds) paid that millisecond before its end was recorded.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + LOG_WRITE_INTERVAL,
        LOG_WRITE_INTERVAL,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ended.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (first, lines) = ctx.unstored_log();
        if lines.is_empty() {
            continue;
        }
        let task = (ctx.run_id, ctx.task_id.as_str(), ctx.attempt);
        match store.append_logs(task, first, &lines).await {
            Ok(()) => ctx.mark_log_stored(first + lines.len()),
            Err(e) => tracing::debug!(
                error = %crate::state::Chain(&e),
                "could not write a running attempt's log yet; its end writes it"
            ),
        }
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
