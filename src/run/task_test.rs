//! One task run in the foreground, recording nothing: `vigil tasks test`. The attempt is the
//! executor's own (config rendered, timeout, panic caught, log captured), with upstream results
//! taken from an earlier run when asked; no run, state, result or log is written. The task
//! itself still does what it does (a `command` runs, a `model.rollback` rolls back), as
//! Airflow's `tasks test` does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::dag::{Dag, resolve_params};
use crate::run::attempt::Attempt;
use crate::run::{ExecError, Executor};
use crate::state::{LogLine, TaskState};
use crate::store::{RunRecord, RunType};
use crate::task::TaskContext;
use crate::task::template::RunVars;

/// What one tested task did.
#[derive(Debug, Clone, Serialize)]
pub struct TaskTest {
    pub dag_id: String,
    pub task_id: String,
    pub state: TaskState,
    /// The result, when it succeeded.
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub log: Vec<LogLine>,
    pub duration_ms: f64,
}

impl Executor {
    /// Runs task `task_id` of `dag` once with `conf` at `logical_date`; `upstream` holds the
    /// results its templates may read (from an earlier run), by task id.
    pub async fn test_task(
        &self,
        dag: Arc<Dag>,
        task_id: &str,
        conf: serde_json::Value,
        logical_date: DateTime<Utc>,
        upstream: BTreeMap<String, serde_json::Value>,
    ) -> Result<TaskTest, ExecError> {
        let mismatch = |detail: String| ExecError::Mismatch {
            run_id: 0,
            dag_id: dag.id.clone(),
            detail,
        };
        let index = dag
            .graph
            .index_of(task_id)
            .ok_or_else(|| mismatch(format!("the DAG has no task `{task_id}`")))?;
        let params = Arc::new(resolve_params(&dag, &conf).map_err(|e| mismatch(e.to_string()))?);
        let spec = &dag.tasks[index];
        let run_vars = RunVars::of(&RunRecord {
            id: 0,
            dag_id: dag.id.clone(),
            logical_date,
            data_interval_start: logical_date,
            run_type: RunType::Test,
            state: crate::state::RunState::Running,
            conf,
            dag_file: dag.file.display().to_string(),
            dag_source: String::new(),
            queued_at: logical_date,
            started_at: None,
            ended_at: None,
            owner: None,
            heartbeat_at: None,
            note: None,
            cancel_requested: None,
        });
        let upstream: BTreeMap<String, Arc<serde_json::Value>> = upstream
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        let reads = spec
            .config
            .reads_tasks()
            .iter()
            .map(|id| {
                let out = upstream.get(id).cloned();
                let state = if out.is_some() {
                    TaskState::Success
                } else {
                    TaskState::Scheduled
                };
                (id.clone(), out, state)
            })
            .collect();
        let alerts = spec.notify.or(&dag.notify).alert_audience();
        let ctx = TaskContext::new(
            dag.id.clone(),
            0,
            task_id.to_string(),
            1,
            logical_date,
            dag.file
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
            params.clone(),
            upstream,
            CancellationToken::new(),
        )
        .with_store(self.store.clone() as Arc<dyn crate::store::ModelStore>)
        .with_alerts(alerts)
        .with_limits(self.output);
        let finished = Attempt {
            index,
            attempt: 1,
            task: self.registry.get(&spec.task_type).cloned(),
            dag: dag.clone(),
            ctx: Arc::new(ctx),
            run_vars: Arc::new(run_vars),
            params,
            reads,
            log_store: None,
        }
        .run()
        .await;
        let (state, output, error) = match finished.result {
            Ok(v) => (TaskState::Success, Some(v), None),
            Err(crate::task::TaskError::Skip(why)) => (TaskState::Skipped, None, Some(why)),
            Err(e) => (TaskState::Failed, None, Some(e.to_string())),
        };
        Ok(TaskTest {
            dag_id: dag.id.clone(),
            task_id: task_id.to_string(),
            state,
            output,
            error,
            log: finished.logs,
            duration_ms: duration_ms(finished.duration),
        })
    }
}

fn duration_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
