//! DAG use cases: list (with paused state and load errors), find (with an explanation), show,
//! validate, trigger, pause. The CLI and the API call these and only print or serialize what
//! they return.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::dag::{Dag, DagSet, Diagnostic, FileErrors};
use crate::ops::{OpsError, Waker};
use crate::run::plan_run;
use crate::state::{NotifySpec, RunState};
use crate::store::{RunRecord, RunType, Store};
use crate::task::Registry;

/// A DAG as lists show it. This is the stable shape of `dags list --json` and of the API: add
/// fields, never rename or remove them.
#[derive(Debug, Clone, Serialize)]
pub struct DagSummary {
    pub id: String,
    pub description: String,
    pub file: String,
    pub schedule: Option<String>,
    pub timezone: String,
    pub tasks: usize,
    pub tags: Vec<String>,
    /// Paused in the database, or — for a DAG no daemon has seen yet — as its file says.
    pub paused: bool,
}

impl DagSummary {
    fn of(dag: &Dag, paused: bool) -> Self {
        DagSummary {
            id: dag.id.clone(),
            description: dag.description.clone(),
            file: dag.file.display().to_string(),
            schedule: dag.schedule.as_ref().map(|s| s.expression.clone()),
            timezone: dag.timezone.name().to_string(),
            tasks: dag.tasks.len(),
            tags: dag.tags.clone(),
            paused,
        }
    }
}

/// The DAG folder as it loads now.
#[derive(Debug, Clone, Serialize)]
pub struct DagList {
    pub dags: Vec<DagSummary>,
    /// Every error of every file that failed to load.
    pub errors: Vec<Diagnostic>,
    /// The files that failed, each with its errors, for people.
    #[serde(skip)]
    pub broken: Vec<FileErrors>,
}

/// Loads the DAG folder (CPU work: call it off the async runtime when it may be large).
pub fn load(folder: &Path, registry: &Registry) -> Result<DagSet, OpsError> {
    Ok(DagSet::load_folder(folder, registry)?)
}

/// Whether each DAG is paused: the database's word where a daemon has seen the DAG, the file's
/// `paused` where not (a DAG is registered with its file's setting when first seen).
async fn paused_states(store: &dyn Store, set: &DagSet) -> Result<HashMap<String, bool>, OpsError> {
    let mut paused: HashMap<String, bool> = set
        .dags
        .values()
        .map(|d| (d.id.clone(), d.paused))
        .collect();
    for s in store.dag_states().await? {
        paused.insert(s.dag_id, s.paused);
    }
    Ok(paused)
}

/// Every DAG of `set` with its paused state, and the files that failed to load.
pub async fn list(store: &dyn Store, set: &DagSet) -> Result<DagList, OpsError> {
    let paused = paused_states(store, set).await?;
    Ok(DagList {
        dags: set
            .dags
            .values()
            .map(|d| DagSummary::of(d, paused.get(&d.id).copied().unwrap_or(false)))
            .collect(),
        errors: set
            .errors
            .iter()
            .flat_map(|e| e.diagnostics.iter().cloned())
            .collect(),
        broken: set.errors.clone(),
    })
}

/// The DAG `id` of `set`, or an error that explains why it is not there: its file failed to
/// load, or there is no such DAG (with the known ones, for a typo).
pub fn find(set: &DagSet, folder: &Path, id: &str) -> Result<Arc<Dag>, OpsError> {
    if let Some(dag) = set.get(id) {
        return Ok(dag.clone());
    }
    let broken: Vec<FileErrors> = set
        .errors
        .iter()
        .filter(|e| e.file.file_stem().is_some_and(|s| s == id))
        .cloned()
        .collect();
    if !broken.is_empty() {
        return Err(OpsError::DagBroken {
            id: id.to_string(),
            errors: broken,
        });
    }
    Err(OpsError::NoSuchDag {
        id: id.to_string(),
        folder: folder.to_path_buf(),
        known: set.dags.keys().cloned().collect(),
        broken_files: set.errors.len(),
    })
}

/// One task of a DAG, as `dags show` and the API describe it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDetail {
    pub id: String,
    #[serde(rename = "type")]
    pub task_type: String,
    pub depends_on: Vec<String>,
    pub trigger_rule: String,
    pub retries: u32,
    pub retry_delay_secs: f64,
    pub retry_backoff: crate::dag::Backoff,
    pub max_retry_delay_secs: f64,
    pub timeout_secs: Option<f64>,
    pub config: serde_json::Value,
}

/// A DAG with its tasks and edges.
#[derive(Debug, Clone, Serialize)]
pub struct DagDetail {
    pub dag: DagSummary,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
    /// Webhook URLs cut to their host: Slack-style URLs carry their secret in the path.
    pub notify: NotifySpec,
    pub tasks: Vec<TaskDetail>,
    pub edges: Vec<(String, String)>,
}

/// The DAG `id` in detail.
pub async fn show(store: &dyn Store, dag: &Dag) -> Result<DagDetail, OpsError> {
    let paused = match store
        .dag_states()
        .await?
        .into_iter()
        .find(|s| s.dag_id == dag.id)
    {
        Some(s) => s.paused,
        None => dag.paused,
    };
    Ok(detail(dag, paused))
}

/// The detail of `dag` without a database (`dags show` before any daemon ran).
pub fn detail(dag: &Dag, paused: bool) -> DagDetail {
    DagDetail {
        dag: DagSummary::of(dag, paused),
        catchup: dag.catchup,
        max_active_runs: dag.max_active_runs,
        max_active_tasks: dag.max_active_tasks,
        params: dag.params.clone(),
        notify: redacted(&dag.notify),
        tasks: dag
            .tasks
            .iter()
            .map(|t| TaskDetail {
                id: t.id.clone(),
                task_type: t.task_type.clone(),
                depends_on: t.depends_on.clone(),
                trigger_rule: t.trigger_rule.as_str().to_string(),
                retries: t.retry.retries,
                retry_delay_secs: t.retry.delay.as_secs_f64(),
                retry_backoff: t.retry.backoff,
                max_retry_delay_secs: t.retry.max_delay.as_secs_f64(),
                timeout_secs: t.timeout.map(|d| d.as_secs_f64()),
                config: t.config.source(),
            })
            .collect(),
        edges: dag
            .graph
            .edges()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }
}

fn redacted(spec: &NotifySpec) -> NotifySpec {
    NotifySpec {
        webhook_on_failure: spec
            .webhook_on_failure
            .iter()
            .map(|u| crate::notify::webhook::redact(u))
            .collect(),
        ..spec.clone()
    }
}

/// What `validate` found.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub valid: Vec<DagSummary>,
    pub errors: Vec<Diagnostic>,
    #[serde(skip)]
    pub broken: Vec<FileErrors>,
}

impl Validation {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks DAG files and folders with every load-time check the daemon applies.
pub fn validate(paths: &[PathBuf], registry: &Registry) -> Result<Validation, OpsError> {
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        return Err(OpsError::Invalid(format!(
            "{} does not exist; give DAG files or folders",
            missing.display()
        )));
    }
    let set = DagSet::load_paths(paths, registry)?;
    Ok(Validation {
        valid: set
            .dags
            .values()
            .map(|d| DagSummary::of(d, d.paused))
            .collect(),
        errors: set
            .errors
            .iter()
            .flat_map(|e| e.diagnostics.iter().cloned())
            .collect(),
        broken: set.errors,
    })
}

/// A request for a run: params and a logical date (default: now).
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// A JSON object checked against the DAG's `[params]`; `null` means none.
    pub conf: serde_json::Value,
    pub logical_date: Option<DateTime<Utc>>,
}

impl RunRequest {
    /// The logical date asked for, or now (to the microsecond, as the database keeps it).
    pub fn logical_date(&self) -> DateTime<Utc> {
        self.logical_date
            .unwrap_or_else(|| Utc::now().trunc_subsecs(6))
    }
}

/// A queued run, and what will happen to it.
#[derive(Debug, Clone, Serialize)]
pub struct Triggered {
    pub run: RunRecord,
    /// The daemon told to start it (`None`: no daemon runs on this database).
    pub woke: Option<String>,
    /// The DAG is paused: the run waits until it is unpaused.
    pub paused: bool,
}

/// Queues a run of `dag` for a daemon (the conf checked first; nothing is written if it is
/// wrong) and wakes the daemon.
pub async fn trigger(
    store: &dyn Store,
    dag: &Dag,
    request: &RunRequest,
    waker: &Waker,
) -> Result<Triggered, OpsError> {
    let new = plan_run(
        dag,
        request.conf.clone(),
        RunType::Manual,
        request.logical_date(),
        RunState::Queued,
        None,
    )?;
    let run = store.create_run(&new).await?;
    let woke = waker.wake(store).await;
    let paused = store
        .dag_state(&dag.id, Utc::now(), dag.paused)
        .await?
        .paused;
    Ok(Triggered { run, woke, paused })
}

/// A DAG paused or unpaused.
#[derive(Debug, Clone, Serialize)]
pub struct Paused {
    pub dag_id: String,
    pub paused: bool,
    /// The daemon told to apply it now (`None`: one applies it when it starts).
    pub woke: Option<String>,
}

/// Pauses or unpauses the DAG `id`, which must be in `set` unless a daemon has seen it.
pub async fn set_paused(
    store: &dyn Store,
    set: &DagSet,
    folder: &Path,
    id: &str,
    paused: bool,
    waker: &Waker,
) -> Result<Paused, OpsError> {
    let known = store.dag_states().await?.iter().any(|s| s.dag_id == id);
    if !known {
        // Not seen by a daemon yet: it must at least be a DAG in the folder.
        find(set, folder, id)?;
    }
    store.set_paused(id, paused).await?;
    Ok(Paused {
        dag_id: id.to_string(),
        paused,
        woke: waker.wake(store).await,
    })
}
