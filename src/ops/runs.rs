//! Run and task-instance use cases: list with filters and cursor paging, show one run with its
//! tasks in DAG order, a task's result, a task's log.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ops::OpsError;
use crate::state::{LogLine, RunState, TaskState};
use crate::store::{RunFilter, RunId, RunRecord, RunStore, RunType, StoredOutput, TaskInstance};
use crate::task::Registry;

/// Runs per page when the caller does not say.
pub const DEFAULT_PAGE: u32 = 50;
/// The most runs one page holds, so a request cannot ask for the whole table at once.
pub const MAX_PAGE: u32 = 1000;

/// A run as lists and details show it. The stable shape of `runs list --json` and of the API:
/// add fields, never rename or remove them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub id: RunId,
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub run_type: RunType,
    pub state: RunState,
    pub conf: serde_json::Value,
    pub dag_file: String,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The process executing the run (`pid@host`), if any.
    pub owner: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Why a person set its state by hand, if one did.
    pub note: Option<String>,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            id: r.id,
            dag_id: r.dag_id,
            logical_date: r.logical_date,
            data_interval_start: r.data_interval_start,
            run_type: r.run_type,
            state: r.state,
            conf: r.conf,
            dag_file: r.dag_file,
            queued_at: r.queued_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            owner: r.owner,
            heartbeat_at: r.heartbeat_at,
            note: r.note,
        }
    }
}

/// A task instance as details show it (stable like [`RunView`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub run_id: RunId,
    pub task_id: String,
    pub state: TaskState,
    /// The attempt running or last run; 0 before the first.
    pub attempt: u32,
    pub max_attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Why a person set its state by hand, if one did.
    pub note: Option<String>,
    /// The daemon that ran the attempt running or last run (`pid@host`), when several
    /// daemons share the database; `null` when the run's own executor ran it.
    pub worker: Option<String>,
}

impl From<TaskInstance> for TaskView {
    fn from(t: TaskInstance) -> Self {
        TaskView {
            run_id: t.run_id,
            task_id: t.task_id,
            state: t.state,
            attempt: t.attempt,
            max_attempts: t.max_attempts,
            started_at: t.started_at,
            ended_at: t.ended_at,
            next_retry_at: t.next_retry_at,
            error: t.error,
            updated_at: t.updated_at,
            note: t.note,
            worker: t.worker,
        }
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct RunPage {
    pub runs: Vec<RunView>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<RunId>,
}

/// One page of the runs `query` selects; its `limit` is the page size ([`DEFAULT_PAGE`] when
/// unset, at most [`MAX_PAGE`]) and its `before` the `next` of the previous page.
pub async fn list(store: &dyn RunStore, query: &RunFilter) -> Result<RunPage, OpsError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(OpsError::Invalid(format!(
            "a page holds 1 to {MAX_PAGE} runs, not {limit}"
        )));
    }
    // One more than asked tells whether another page follows.
    let mut runs = store
        .runs(&RunFilter {
            limit: Some(limit + 1),
            ..query.clone()
        })
        .await?;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next = if more {
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(RunPage {
        runs: runs.into_iter().map(RunView::from).collect(),
        next,
    })
}

/// A run with its task instances.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub run: RunView,
    /// In the order of the DAG the run was created from (when its stored copy still parses).
    pub tasks: Vec<TaskView>,
}

pub async fn show(
    store: &dyn RunStore,
    registry: &Registry,
    run_id: RunId,
) -> Result<RunDetail, OpsError> {
    let run = store
        .run(run_id)
        .await?
        .ok_or(OpsError::NoSuchRun(run_id))?;
    let mut tasks = store.task_instances(run_id).await?;
    if let Ok(dag) = crate::dag::parse_dag(
        std::path::Path::new(&run.dag_file),
        &run.dag_source,
        registry,
    ) {
        tasks.sort_by_key(|t| dag.graph.index_of(&t.task_id).unwrap_or(usize::MAX));
    }
    Ok(RunDetail {
        run: run.into(),
        tasks: tasks.into_iter().map(TaskView::from).collect(),
    })
}

/// The result a task produced in a run.
pub async fn result(
    store: &dyn RunStore,
    run_id: RunId,
    task_id: &str,
) -> Result<StoredOutput, OpsError> {
    check_task(store, run_id, task_id).await?;
    store
        .output(run_id, task_id)
        .await?
        .ok_or_else(|| OpsError::NoResult {
            run_id,
            task_id: task_id.to_string(),
        })
}

/// The result one attempt of a task produced (kept after the task was cleared).
pub async fn result_of_attempt(
    store: &dyn RunStore,
    run_id: RunId,
    task_id: &str,
    attempt: u32,
) -> Result<StoredOutput, OpsError> {
    check_task(store, run_id, task_id).await?;
    store
        .output_history(run_id, task_id)
        .await?
        .into_iter()
        .find(|o| o.attempt == attempt)
        .ok_or_else(|| {
            OpsError::Invalid(format!(
                "attempt {attempt} of task `{task_id}` in run {run_id} left no result"
            ))
        })
}

/// One stored log line with the attempt it belongs to (stable like [`RunView`]).
#[derive(Debug, Clone, Serialize)]
pub struct LogView {
    pub attempt: u32,
    pub seq: u32,
    #[serde(flatten)]
    pub line: LogLine,
}

/// A task's log in a run, of every attempt or of one, after line `after` when given.
pub async fn logs(
    store: &dyn RunStore,
    run_id: RunId,
    task_id: &str,
    attempt: Option<u32>,
    after: Option<u64>,
) -> Result<Vec<LogView>, OpsError> {
    check_task(store, run_id, task_id).await?;
    read_logs(store, run_id, task_id, attempt, after).await
}

/// The stored lines as [`LogView`]s, for a task known to exist.
async fn read_logs(
    store: &dyn RunStore,
    run_id: RunId,
    task_id: &str,
    attempt: Option<u32>,
    after: Option<u64>,
) -> Result<Vec<LogView>, OpsError> {
    Ok(store
        .logs(run_id, task_id, attempt, after)
        .await?
        .into_iter()
        .map(|l| LogView {
            attempt: l.attempt,
            seq: l.seq,
            line: l.line,
        })
        .collect())
}

/// The task's instance in the run; fails with what exists when the run or the task does not.
async fn check_task(
    store: &dyn RunStore,
    run_id: RunId,
    task_id: &str,
) -> Result<TaskInstance, OpsError> {
    if store.run(run_id).await?.is_none() {
        return Err(OpsError::NoSuchRun(run_id));
    }
    let mut tis = store.task_instances(run_id).await?;
    match tis.iter().position(|t| t.task_id == task_id) {
        Some(i) => Ok(tis.swap_remove(i)),
        None => Err(OpsError::NoSuchTask {
            run_id,
            task_id: task_id.to_string(),
            known: tis.into_iter().map(|t| t.task_id).collect(),
        }),
    }
}

/// Follows one attempt's log while it runs (`vigil tasks logs --follow`, the API's log stream):
/// each [`LogFollow::poll`] returns the lines stored since the last. A running attempt's lines
/// are stored every second; its end stores the rest together with its new state, so once a
/// poll sees the attempt over, it has read every line and there are no more to wait for.
#[derive(Debug, Clone)]
pub struct LogFollow {
    run_id: RunId,
    task_id: String,
    /// The attempt followed: the one asked for, or else the task's current (or first) attempt.
    attempt: Option<u32>,
    /// The last line returned.
    after: Option<u64>,
}

/// What one poll of a followed log found.
#[derive(Debug, Clone, Serialize)]
pub struct LogPoll {
    pub attempt: u32,
    pub lines: Vec<LogView>,
    /// The attempt is over (or will never run): no line will follow these.
    pub ended: bool,
}

impl LogFollow {
    pub fn new(run_id: RunId, task_id: &str, attempt: Option<u32>) -> LogFollow {
        LogFollow {
            run_id,
            task_id: task_id.to_string(),
            attempt,
            after: None,
        }
    }

    pub async fn poll(&mut self, store: &dyn RunStore) -> Result<LogPoll, OpsError> {
        // The state first: lines read after it are at least those it ended with.
        let ti = check_task(store, self.run_id, &self.task_id).await?;
        let attempt = *self.attempt.get_or_insert(ti.attempt.max(1));
        let ended = match ti.attempt.cmp(&attempt) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => ti.state != TaskState::Running,
            std::cmp::Ordering::Less => ti.state.is_terminal(),
        };
        // `check_task` above found the task: the lines are read without asking again.
        let lines = read_logs(store, self.run_id, &self.task_id, Some(attempt), self.after).await?;
        if let Some(last) = lines.last() {
            self.after = Some(u64::from(last.seq));
        }
        Ok(LogPoll {
            attempt,
            lines,
            ended,
        })
    }
}

/// Which task instances of a run to clear.
#[derive(Debug, Clone, Default)]
pub struct ClearRequest {
    /// The tasks named; empty means every task of the run (`runs rerun`).
    pub tasks: Vec<String>,
    /// Also every task downstream of those named.
    pub downstream: bool,
    /// Also every task upstream of those named.
    pub upstream: bool,
    /// Only those that ended `failed` or `upstream_failed`.
    pub failed_only: bool,
}

/// The run `run_id`, which must have finished (moves by hand on a run being executed would
/// race its executor).
async fn finished_run(store: &dyn RunStore, run_id: RunId) -> Result<RunRecord, OpsError> {
    let run = store
        .run(run_id)
        .await?
        .ok_or(OpsError::NoSuchRun(run_id))?;
    if !run.state.is_terminal() {
        return Err(OpsError::RunNotFinished {
            run_id,
            state: run.state,
        });
    }
    Ok(run)
}

/// The DAG version `run` was created from.
fn dag_of(run: &RunRecord, registry: &Registry) -> Result<crate::dag::Dag, OpsError> {
    crate::dag::parse_dag(
        std::path::Path::new(&run.dag_file),
        &run.dag_source,
        registry,
    )
    .map_err(|e| {
        OpsError::Invalid(format!(
            "run {}'s DAG version no longer loads:\n{e}",
            run.id
        ))
    })
}

/// What a clear did.
#[derive(Debug, Clone, Serialize)]
pub struct Cleared {
    pub run_id: RunId,
    /// The tasks that will run again, in DAG order.
    pub tasks: Vec<String>,
    /// The run's state before (a finished run is queued again).
    pub was: RunState,
    /// The daemon told to run it now (`None`: none runs on this database).
    pub woke: Option<String>,
}

/// Resets task instances of a finished run to `scheduled` so the daemon runs them again in the
/// same run, as Airflow's "clear" does. Each keeps its attempt count (its earlier attempts'
/// logs and results stay in history) and gets its full retries again; the run is queued
/// again. A run still queued or running is refused: cancel it or let it finish first.
pub async fn clear(
    store: &dyn crate::store::Store,
    registry: &Registry,
    run_id: RunId,
    request: &ClearRequest,
    waker: &crate::ops::Waker,
) -> Result<Cleared, OpsError> {
    let run = finished_run(store, run_id).await?;
    let dag = dag_of(&run, registry)?;
    let tis = store.task_instances(run_id).await?;
    let graph = &dag.graph;
    let mut chosen = std::collections::BTreeSet::new();
    if request.tasks.is_empty() {
        chosen.extend(0..graph.len());
    }
    for id in &request.tasks {
        let Some(i) = graph.index_of(id) else {
            return Err(OpsError::NoSuchTask {
                run_id,
                task_id: id.clone(),
                known: dag.tasks.iter().map(|t| t.id.clone()).collect(),
            });
        };
        chosen.insert(i);
        if request.downstream {
            chosen.extend(graph.descendants(i));
        }
        if request.upstream {
            chosen.extend(graph.ancestors(i));
        }
    }
    let now = chrono::Utc::now();
    let mut batch = crate::store::Batch::new(run_id);
    let mut cleared = Vec::new();
    for i in chosen {
        let Some(ti) = tis.iter().find(|t| t.task_id == graph.id(i)) else {
            continue;
        };
        let failed = matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed);
        if (request.failed_only && !failed) || (ti.state == TaskState::Scheduled) {
            continue;
        }
        let mut to = ti.clone();
        to.state = TaskState::Scheduled;
        to.max_attempts = ti.attempt + dag.tasks[i].retry.retries + 1;
        to.started_at = None;
        to.ended_at = None;
        to.next_retry_at = None;
        to.error = None;
        to.updated_at = now;
        batch
            .tasks
            .push(crate::store::TaskTransition::change(ti, to));
        cleared.push(ti.task_id.clone());
    }
    if cleared.is_empty() {
        return Err(OpsError::Invalid(format!(
            "nothing to clear in run {run_id}{}",
            if request.failed_only {
                " (no task failed)"
            } else {
                ""
            }
        )));
    }
    batch.run = Some(crate::store::RunTransition {
        expect: run.state,
        to: RunState::Queued,
        at: now,
        note: None,
    });
    store.commit(&batch).await?;
    let woke = waker.wake(store).await;
    Ok(Cleared {
        run_id,
        tasks: cleared,
        was: run.state,
        woke,
    })
}

/// Deletes a finished run with its task instances, results and logs.
pub async fn delete(store: &dyn RunStore, run_id: RunId) -> Result<RunState, OpsError> {
    match store.delete_run(run_id).await? {
        None => Err(OpsError::NoSuchRun(run_id)),
        Some(state) if !state.is_terminal() => Err(OpsError::RunNotFinished { run_id, state }),
        Some(state) => Ok(state),
    }
}

/// What a mark did.
#[derive(Debug, Clone, Serialize)]
pub struct Marked {
    pub run_id: RunId,
    /// The tasks set by hand, and downstream tasks reset to be decided again.
    pub marked: Vec<String>,
    pub reset: Vec<String>,
    /// The run's state now: queued again when downstream tasks must be decided.
    pub run_state: RunState,
    pub woke: Option<String>,
}

/// The note a mark leaves: who, when, why.
fn note(what: &str, reason: Option<&str>) -> String {
    let who = crate::state::owner::current();
    match reason {
        Some(r) => format!("{what} by hand ({who}): {}", crate::state::shown(r, 500)),
        None => format!("{what} by hand ({who})"),
    }
}

/// Sets a task of a finished run to `success`, `failed` or `skipped`, with the reason kept as
/// its note. Downstream tasks that trigger rules had already decided because of it
/// (`upstream_failed`, `skipped`) are reset so the daemon decides them again, and the run is
/// queued; with nothing to decide again, the run's state follows its leaves (Airflow's rule).
pub async fn mark_task(
    store: &dyn crate::store::Store,
    registry: &Registry,
    run_id: RunId,
    task_id: &str,
    state: TaskState,
    reason: Option<&str>,
    waker: &crate::ops::Waker,
) -> Result<Marked, OpsError> {
    if !matches!(
        state,
        TaskState::Success | TaskState::Failed | TaskState::Skipped
    ) {
        return Err(OpsError::Invalid(format!(
            "a task can be marked success, failed or skipped, not {state}"
        )));
    }
    let run = finished_run(store, run_id).await?;
    check_task(store, run_id, task_id).await?;
    let dag = dag_of(&run, registry)?;
    let mut tis = store.task_instances(run_id).await?;
    let now = chrono::Utc::now();
    let mut batch = crate::store::Batch::new(run_id);
    let mut change = |ti: &mut TaskInstance, to_state: TaskState, note_text: Option<String>| {
        let mut to = ti.clone();
        to.state = to_state;
        to.updated_at = now;
        if to_state == TaskState::Scheduled {
            to.started_at = None;
            to.ended_at = None;
            to.error = None;
        } else {
            to.ended_at = Some(now);
            to.note = note_text;
            if to_state == TaskState::Success {
                to.error = None;
            }
        }
        batch
            .tasks
            .push(crate::store::TaskTransition::change(ti, to.clone()));
        *ti = to;
    };
    let graph = &dag.graph;
    let i = graph.index_of(task_id).unwrap_or_default();
    if let Some(ti) = tis.iter_mut().find(|t| t.task_id == task_id) {
        change(ti, state, Some(note(&format!("marked {state}"), reason)));
    }
    let mut reset = Vec::new();
    for d in graph.descendants(i) {
        if let Some(ti) = tis.iter_mut().find(|t| t.task_id == graph.id(d))
            && matches!(ti.state, TaskState::UpstreamFailed | TaskState::Skipped)
        {
            change(ti, TaskState::Scheduled, None);
            reset.push(ti.task_id.clone());
        }
    }
    let run_state = if reset.is_empty() {
        let failed_leaf = graph.leaves().any(|l| {
            tis.iter().any(|t| {
                t.task_id == graph.id(l)
                    && matches!(t.state, TaskState::Failed | TaskState::UpstreamFailed)
            })
        });
        if failed_leaf {
            RunState::Failed
        } else {
            RunState::Success
        }
    } else {
        RunState::Queued
    };
    if run_state != run.state {
        batch.run = Some(crate::store::RunTransition {
            expect: run.state,
            to: run_state,
            at: now,
            note: None,
        });
    }
    store.commit(&batch).await?;
    let woke = if run_state == RunState::Queued {
        waker.wake(store).await
    } else {
        None
    };
    Ok(Marked {
        run_id,
        marked: vec![task_id.to_string()],
        reset,
        run_state,
        woke,
    })
}

/// Sets a run's state by hand with the reason kept as its note. A finished run simply changes
/// state; a queued run nobody has started ends now, its unfinished tasks marked as the run
/// (`failed` marks them `skipped`, as Airflow does). A running run is refused: cancel it.
pub async fn mark_run(
    store: &dyn crate::store::Store,
    run_id: RunId,
    state: RunState,
    reason: Option<&str>,
) -> Result<Marked, OpsError> {
    if !state.is_terminal() {
        return Err(OpsError::Invalid(format!(
            "a run can be marked success or failed, not {state}"
        )));
    }
    let run = store
        .run(run_id)
        .await?
        .ok_or(OpsError::NoSuchRun(run_id))?;
    if run.state == RunState::Running || (run.state == RunState::Queued && run.owner.is_some()) {
        return Err(OpsError::RunNotFinished {
            run_id,
            state: run.state,
        });
    }
    let now = chrono::Utc::now();
    let mut batch = crate::store::Batch::new(run_id);
    let mut marked = Vec::new();
    let task_state = match state {
        RunState::Success => TaskState::Success,
        _ => TaskState::Skipped,
    };
    for ti in store.task_instances(run_id).await? {
        if ti.state.is_terminal() {
            continue;
        }
        let mut to = ti.clone();
        to.state = task_state;
        to.ended_at = Some(now);
        to.updated_at = now;
        to.note = Some(note(&format!("run marked {state}"), reason));
        marked.push(ti.task_id.clone());
        batch
            .tasks
            .push(crate::store::TaskTransition::change(&ti, to));
    }
    batch.run = Some(crate::store::RunTransition {
        expect: run.state,
        to: state,
        at: now,
        note: Some(note(&format!("marked {state}"), reason)),
    });
    store.commit(&batch).await?;
    Ok(Marked {
        run_id,
        marked,
        reset: Vec::new(),
        run_state: state,
        woke: None,
    })
}

/// What a cancel did.
#[derive(Debug, Clone, Serialize)]
pub struct Cancelled {
    pub run_id: RunId,
    pub was: RunState,
    /// Ended now (nobody was executing it); otherwise the daemon executing it ends it.
    pub ended: bool,
    pub woke: Option<String>,
}

/// Stops a queued or running run: nothing further starts, running attempts get the shutdown
/// treatment without its grace (SIGTERM to their process groups, then SIGKILL), and the run
/// ends `failed` with a note saying who cancelled it (tasks that never started end `skipped`).
/// The daemon executing the run carries it out; a run nobody executes ends at once.
pub async fn cancel(
    store: &dyn crate::store::Store,
    run_id: RunId,
    waker: &crate::ops::Waker,
) -> Result<Cancelled, OpsError> {
    let run = store
        .run(run_id)
        .await?
        .ok_or(OpsError::NoSuchRun(run_id))?;
    if run.state.is_terminal() {
        return Err(OpsError::Invalid(format!(
            "run {run_id} already ended {}; there is nothing to cancel",
            run.state
        )));
    }
    let by = format!("by hand ({})", crate::state::owner::current());
    store.request_cancel(run_id, &by).await?;
    let woke = waker.wake(store).await;
    let executed_elsewhere = run
        .owner
        .as_deref()
        .is_some_and(|o| !crate::state::owner::is_dead_here(o));
    if woke.is_none() {
        if executed_elsewhere {
            return Err(OpsError::Invalid(format!(
                "run {run_id} is executed by {}, which is not a daemon: stop that process (Ctrl-C); the cancel is recorded for a daemon that takes the run over",
                run.owner.unwrap_or_default()
            )));
        }
        crate::run::cancel::end_cancelled(store, run_id, &by).await?;
    }
    Ok(Cancelled {
        run_id,
        was: run.state,
        ended: woke.is_none(),
        woke,
    })
}
