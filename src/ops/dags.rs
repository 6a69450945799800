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
use crate::schedule::cron::{next_after, previous_before};
use crate::state::{NotifySpec, RunState};
use crate::store::{NewRun, RunFilter, RunRecord, RunType, Store};
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
    /// When its schedule fires next (from now; also for a paused DAG), if it has a schedule
    /// and has not passed its `end_date`.
    pub next_run: Option<DateTime<Utc>>,
    /// The states of its latest runs, newest first (at most [`LAST_RUNS`]; empty where no
    /// database was read).
    pub last_runs: Vec<RunState>,
}

/// How many of a DAG's latest runs lists show.
pub const LAST_RUNS: u32 = 5;

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
            next_run: next_runs(dag, Utc::now(), 1)
                .first()
                .map(|f| f.logical_date),
            last_runs: Vec::new(),
        }
    }
}

/// One coming scheduled run of a DAG. vigil creates a scheduled run at its tick: the logical
/// date is the tick, and the run covers the data interval from the previous tick up to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FireTime {
    pub logical_date: DateTime<Utc>,
    /// The same instant in the DAG's time zone, with its offset (RFC 3339).
    pub local: String,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
}

/// The next `n` fire times of `dag` strictly after `after`, within its `start_date` and
/// `end_date`. None for a DAG without a schedule.
pub fn next_runs(dag: &Dag, after: DateTime<Utc>, n: usize) -> Vec<FireTime> {
    let Some(schedule) = &dag.schedule else {
        return Vec::new();
    };
    let mut from = match dag.start_date {
        // A tick at the start date itself counts.
        Some(start) if start > after => start - chrono::Duration::microseconds(1),
        _ => after,
    };
    let mut out = Vec::with_capacity(n.min(1000));
    while out.len() < n {
        let Some(tick) = next_after(&schedule.cron, dag.timezone, from) else {
            break;
        };
        if dag.end_date.is_some_and(|end| tick > end) {
            break;
        }
        out.push(FireTime {
            logical_date: tick,
            local: tick.with_timezone(&dag.timezone).to_rfc3339(),
            data_interval_start: previous_before(&schedule.cron, dag.timezone, tick)
                .unwrap_or(tick),
            data_interval_end: tick,
        });
        from = tick;
    }
    out
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
    let mut dags = Vec::with_capacity(set.dags.len());
    for d in set.dags.values() {
        let mut summary = DagSummary::of(d, paused.get(&d.id).copied().unwrap_or(false));
        summary.last_runs = last_runs(store, &d.id).await?;
        dags.push(summary);
    }
    Ok(DagList {
        dags,
        errors: set
            .errors
            .iter()
            .flat_map(|e| e.diagnostics.iter().cloned())
            .collect(),
        broken: set.errors.clone(),
    })
}

async fn last_runs(store: &dyn Store, dag_id: &str) -> Result<Vec<RunState>, OpsError> {
    Ok(store
        .runs(&RunFilter {
            dag_id: Some(dag_id.to_string()),
            limit: Some(LAST_RUNS),
            ..RunFilter::default()
        })
        .await?
        .into_iter()
        .map(|r| r.state)
        .collect())
}

/// Runs a grid shows when the caller does not say, and the most it shows.
pub const GRID_RUNS: u32 = 25;
pub const MAX_GRID_RUNS: u32 = 100;

/// A DAG's latest runs × its tasks, like Airflow's grid view: the web page's DAG view.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    pub dag_id: String,
    /// The rows: the DAG's tasks in dependency order, then any task only older runs had.
    pub tasks: Vec<String>,
    /// The columns, oldest first.
    pub runs: Vec<GridRun>,
}

/// One column of a [`Grid`]: a run and its cells, one per row (`None` where the run has no
/// such task).
#[derive(Debug, Clone, Serialize)]
pub struct GridRun {
    pub run: crate::ops::runs::RunView,
    pub cells: Vec<Option<GridCell>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridCell {
    pub state: crate::state::TaskState,
    pub attempt: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// The grid of `dag`'s latest `limit` runs (1 to [`MAX_GRID_RUNS`]).
pub async fn grid(store: &dyn Store, dag: &Dag, limit: Option<u32>) -> Result<Grid, OpsError> {
    let limit = limit.unwrap_or(GRID_RUNS);
    if !(1..=MAX_GRID_RUNS).contains(&limit) {
        return Err(OpsError::Invalid(format!(
            "a grid shows 1 to {MAX_GRID_RUNS} runs, not {limit}"
        )));
    }
    let mut runs = store
        .runs(&RunFilter {
            dag_id: Some(dag.id.clone()),
            limit: Some(limit),
            ..RunFilter::default()
        })
        .await?;
    runs.reverse();
    let mut tasks: Vec<String> = dag.tasks.iter().map(|t| t.id.clone()).collect();
    let mut row: HashMap<String, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i))
        .collect();
    let mut columns = Vec::with_capacity(runs.len());
    for run in runs {
        let instances = store.task_instances(run.id).await?;
        let mut cells = Vec::with_capacity(instances.len());
        for ti in instances {
            let i = *row.entry(ti.task_id.clone()).or_insert_with(|| {
                tasks.push(ti.task_id.clone());
                tasks.len() - 1
            });
            let cell = GridCell {
                state: ti.state,
                attempt: ti.attempt,
                started_at: ti.started_at,
                ended_at: ti.ended_at,
            };
            cells.push((i, cell));
        }
        columns.push((run, cells));
    }
    let runs = columns
        .into_iter()
        .map(|(run, found)| {
            let mut cells = vec![None; tasks.len()];
            for (i, cell) in found {
                cells[i] = Some(cell);
            }
            GridRun {
                run: run.into(),
                cells,
            }
        })
        .collect();
    Ok(Grid {
        dag_id: dag.id.clone(),
        tasks,
        runs,
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
    /// Its next [`NEXT_RUNS`] fire times (none without a schedule).
    pub next_runs: Vec<FireTime>,
}

/// How many coming fire times a DAG's detail lists.
pub const NEXT_RUNS: usize = 5;

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
    let mut detail = detail(dag, paused);
    detail.dag.last_runs = last_runs(store, &dag.id).await?;
    Ok(detail)
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
        next_runs: next_runs(dag, Utc::now(), NEXT_RUNS),
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
    /// The run was created earlier by a request with the same idempotency key; nothing new
    /// was queued.
    pub existing: bool,
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
    trigger_once(store, dag, request, None, waker).await
}

/// [`trigger`], once per `key` when one is given: a retried request (same DAG, same key) gets
/// the run the first one created, and queues nothing.
pub async fn trigger_once(
    store: &dyn Store,
    dag: &Dag,
    request: &RunRequest,
    key: Option<String>,
    waker: &Waker,
) -> Result<Triggered, OpsError> {
    if let Some(run) = run_with_key(store, &dag.id, key.as_deref()).await? {
        return triggered(store, dag, run, true, waker).await;
    }
    let new = NewRun {
        idempotency_key: key.clone(),
        ..plan_run(
            dag,
            request.conf.clone(),
            RunType::Manual,
            request.logical_date(),
            RunState::Queued,
            None,
        )?
    };
    match store.create_run(&new).await {
        Ok(run) => triggered(store, dag, run, false, waker).await,
        // Two requests with one key at the same instant: the other one created it.
        Err(e @ crate::store::StoreError::RunExists { .. }) => {
            match run_with_key(store, &dag.id, key.as_deref()).await? {
                Some(run) => triggered(store, dag, run, true, waker).await,
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The run created with `key`, if there is a key and such a run.
async fn run_with_key(
    store: &dyn Store,
    dag_id: &str,
    key: Option<&str>,
) -> Result<Option<RunRecord>, OpsError> {
    match key {
        Some(k) => Ok(store.run_with_key(dag_id, k).await?),
        None => Ok(None),
    }
}

async fn triggered(
    store: &dyn Store,
    dag: &Dag,
    run: RunRecord,
    existing: bool,
    waker: &Waker,
) -> Result<Triggered, OpsError> {
    let woke = if existing {
        None
    } else {
        waker.wake(store).await
    };
    let paused = store
        .dag_state(&dag.id, Utc::now(), dag.paused)
        .await?
        .paused;
    Ok(Triggered {
        run,
        existing,
        woke,
        paused,
    })
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

/// Runs one task of `dag` in this process and records nothing (`vigil tasks test`). With
/// `upstream_from`, the results of that earlier run of the same DAG are what the task's
/// templates read.
pub async fn test_task(
    executor: &crate::run::Executor,
    dag: Arc<Dag>,
    task_id: &str,
    request: &RunRequest,
    upstream_from: Option<crate::store::RunId>,
) -> Result<crate::run::TaskTest, OpsError> {
    if dag.graph.index_of(task_id).is_none() {
        return Err(OpsError::Invalid(format!(
            "DAG `{}` has no task `{task_id}`; its tasks: {}",
            dag.id,
            dag.tasks
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    crate::dag::resolve_params(&dag, &request.conf)?;
    let mut upstream = std::collections::BTreeMap::new();
    if let Some(run_id) = upstream_from {
        let store = executor.store();
        let run = store
            .run(run_id)
            .await?
            .ok_or(OpsError::NoSuchRun(run_id))?;
        if run.dag_id != dag.id {
            return Err(OpsError::Invalid(format!(
                "run {run_id} is a run of `{}`, not of `{}`",
                run.dag_id, dag.id
            )));
        }
        for out in store.outputs(run_id).await? {
            upstream.insert(out.task_id, out.value);
        }
    }
    executor
        .test_task(
            dag,
            task_id,
            request.conf.clone(),
            request.logical_date(),
            upstream,
        )
        .await
        .map_err(|e| OpsError::Invalid(e.to_string()))
}
