//! What a running task can see and do: who it is, its parameters, its upstream results, its
//! log, and a cancellation signal.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::state::{LogLevel, LogLine};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::store::ModelStore;
use crate::task::TaskError;

/// Per-attempt context handed to [`crate::task::Task::run`].
#[derive(Debug)]
pub struct TaskContext {
    pub dag_id: String,
    pub run_id: i64,
    pub task_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    pub logical_date: DateTime<Utc>,
    /// The folder of the DAG file; the default working directory of `command` tasks.
    pub dag_folder: PathBuf,
    /// The run's parameters: the DAG's defaults overridden by the trigger's conf.
    pub params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Results of the direct upstream tasks that produced one.
    upstream: BTreeMap<String, Arc<serde_json::Value>>,
    cancel: CancellationToken,
    /// The model registry, for tasks that work on it. Only the registry: a task cannot commit
    /// state transitions or claim runs.
    store: Option<Arc<dyn ModelStore>>,
    alerts: crate::state::Audience,
    /// Shared with the tracing capture of this attempt. A `std` mutex: it is held only to push
    /// or take lines, never across an `.await`.
    log: crate::task::capture::AttemptLog,
    limits: OutputLimits,
    /// Marks the processes this attempt starts, so they can be found after a crash.
    attempt_key: String,
}

/// What one attempt may produce. Output beyond these is dropped or refused, never buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes of a result a task reads from a process (a `command` task's stdout).
    pub max_result_bytes: usize,
    /// Bytes of log lines kept per attempt.
    pub max_log_bytes: usize,
    /// How long a cancelled process gets after SIGTERM before SIGKILL.
    pub kill_grace: std::time::Duration,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            max_result_bytes: 1 << 20,
            max_log_bytes: 4 << 20,
            kill_grace: std::time::Duration::from_secs(5),
        }
    }
}

impl TaskContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dag_id: String,
        run_id: i64,
        task_id: String,
        attempt: u32,
        logical_date: DateTime<Utc>,
        dag_folder: PathBuf,
        params: Arc<serde_json::Map<String, serde_json::Value>>,
        upstream: BTreeMap<String, Arc<serde_json::Value>>,
        cancel: CancellationToken,
    ) -> Self {
        TaskContext {
            dag_id,
            run_id,
            task_id,
            attempt,
            logical_date,
            dag_folder,
            params,
            upstream,
            cancel,
            store: None,
            alerts: Default::default(),
            log: Arc::new(std::sync::Mutex::new(crate::task::capture::LogBuffer::new(
                OutputLimits::default().max_log_bytes,
            ))),
            limits: OutputLimits::default(),
            attempt_key: String::new(),
        }
    }

    /// The output budget of this attempt (the executor passes `[executor]`'s).
    pub fn with_limits(mut self, limits: OutputLimits) -> Self {
        self.log = Arc::new(std::sync::Mutex::new(crate::task::capture::LogBuffer::new(
            limits.max_log_bytes,
        )));
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> OutputLimits {
        self.limits
    }

    /// The key that marks this attempt's processes (see [`crate::task::process`]).
    pub fn with_attempt_key(mut self, key: String) -> Self {
        self.attempt_key = key;
        self
    }

    pub fn attempt_key(&self) -> &str {
        &self.attempt_key
    }

    /// Who hears about alerts this task raises (model verdicts, rollbacks): the task's
    /// `email_on_failure` and `webhook_on_failure`, else its DAG's, else the config's.
    pub fn with_alerts(mut self, audience: crate::state::Audience) -> Self {
        self.alerts = audience;
        self
    }

    /// A path from a task's config: relative ones are relative to the DAG's folder, so a DAG
    /// means the same files whichever directory the daemon was started in.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        // `join` keeps an absolute path as it is.
        self.dag_folder.join(path)
    }

    pub fn alert_audience(&self) -> &crate::state::Audience {
        &self.alerts
    }

    /// Gives the task access to the store (the executor does this for every attempt).
    pub fn with_store(mut self, store: Arc<dyn ModelStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The store, for model-registry tasks.
    pub fn store(&self) -> Result<&Arc<dyn ModelStore>, TaskError> {
        self.store
            .as_ref()
            .ok_or_else(|| TaskError::fatal("this task needs the store, but none was given"))
    }

    /// The result of direct upstream task `task_id`, deserialized into `T`.
    pub fn upstream<T: DeserializeOwned>(&self, task_id: &str) -> Result<T, TaskError> {
        let value = self.upstream.get(task_id).ok_or_else(|| {
            TaskError::fatal(format!(
                "task `{}` has no result from upstream task `{task_id}`; direct upstream results: {}",
                self.task_id,
                self.upstream_ids().join(", ")
            ))
        })?;
        serde_path_to_error::deserialize(value.as_ref()).map_err(|e| {
            TaskError::fatal(format!(
                "result of upstream task `{task_id}` does not have the expected shape at `{}`: {}",
                e.path(),
                e.inner()
            ))
        })
    }

    /// All direct upstream results, by task id.
    pub fn upstream_results(&self) -> &BTreeMap<String, Arc<serde_json::Value>> {
        &self.upstream
    }

    fn upstream_ids(&self) -> Vec<&str> {
        self.upstream.keys().map(String::as_str).collect()
    }

    /// Appends a line to this attempt's log (shown by `vigil tasks logs`).
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        let line = LogLine {
            ts: Utc::now(),
            level,
            message: message.into(),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }

    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.log(LogLevel::Warn, message);
    }

    /// Resolves when the attempt is cancelled (timeout or shutdown). Long-running work that
    /// is not a plain `.await` (blocking loops, child processes) should watch this.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub(crate) fn log_sink(&self) -> crate::task::capture::AttemptLog {
        self.log.clone()
    }

    /// The lines not yet in the store, and the number of the first.
    pub(crate) fn unstored_log(&self) -> (usize, Vec<LogLine>) {
        self.log
            .lock()
            .map(|l| l.unstored())
            .unwrap_or_else(|_| (0, Vec::new()))
    }

    /// Records that the log's lines before `upto` are in the store.
    pub(crate) fn mark_log_stored(&self, upto: usize) {
        if let Ok(mut log) = self.log.lock() {
            log.mark_stored(upto);
        }
    }

    /// The attempt's whole log, and how many of its first lines were already stored.
    pub(crate) fn take_log(&self) -> (Vec<LogLine>, usize) {
        self.log.lock().map(|mut l| l.take()).unwrap_or_default()
    }
}
