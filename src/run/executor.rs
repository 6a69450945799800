//! Executes one DAG run to completion.
//!
//! The executor keeps the run's task instances in memory and mirrors every change to the
//! store. It works in steps: take the attempts that finished, decide what that makes ready,
//! skipped or upstream_failed, start what the limits allow, and commit all of it in **one**
//! transaction before any of it takes effect (before a task is spawned, before an event is
//! reported). A step's updates are conditional on the state the executor last wrote, so if
//! another writer changed the run, the commit fails and this executor stops.
//!
//! Grouping a step into one transaction is what makes persistence cheap: a chain of tasks
//! costs one commit per task (the success of one and the start of the next), and 10,000 tasks
//! that become ready together are queued by one commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dag::{Dag, resolve_params};
use crate::notify::NotifyConfig;
use crate::notify::message::TaskFailure;
use crate::run::attempt::{Attempt, Finished, Outcome, RunScope, Upstream};
use crate::run::dispatch::{Dispatch, Lent, Owned};
use crate::run::limits::{Limits, Permits};
use crate::run::messages::Messages;
use crate::run::rules::{Decision, UpstreamCounts, evaluate};
use crate::state::LogLine;
use crate::state::failpoint::crash_point;
use crate::state::owner;
use crate::state::{RunState, TaskState};
use crate::store::{
    Batch, RunRecord, RunTransition, Signal, Store, StoreError, TaskInstance, TaskTransition,
};
use crate::task::template::RunVars;
use crate::task::{OutputLimits, Registry, process};

/// What happened in a run, reported after it is committed. `vigil dags test` prints these.
#[derive(Debug, Clone)]
pub enum RunEvent {
    TaskStarted {
        task_id: String,
        attempt: u32,
        max_attempts: u32,
    },
    TaskEnded {
        task_id: String,
        state: TaskState,
        attempt: u32,
        max_attempts: u32,
        /// How long the attempt ran; zero for tasks decided without running.
        duration: Duration,
        error: Option<String>,
        next_retry_at: Option<DateTime<Utc>>,
    },
    RunEnded {
        state: RunState,
        duration: Duration,
    },
}

/// Receives [`RunEvent`]s as they are committed.
pub type Observer = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// A run event with the run it belongs to: what a daemon broadcasts to listeners that follow
/// every run at once (a live page).
#[derive(Debug, Clone)]
pub struct RunUpdate {
    pub run_id: crate::store::RunId,
    pub dag_id: String,
    pub event: RunEvent,
}

/// Receives the [`RunUpdate`]s of every run a scheduler executes.
pub type UpdateObserver = Arc<dyn Fn(RunUpdate) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run_id} does not match DAG `{dag_id}`: {detail}")]
    Mismatch {
        run_id: i64,
        dag_id: String,
        detail: String,
    },
    #[error("run {0} is already finished")]
    AlreadyFinished(i64),
    /// Stopped by [`Stop`] before the run finished; the run stays `running` (its interrupted
    /// attempts `up_for_retry`) for the next owner to resume.
    #[error("run {0} was interrupted by shutdown")]
    Interrupted(i64),
}

impl crate::state::Kind for ExecError {
    fn kind(&self) -> crate::state::ErrorKind {
        use crate::state::ErrorKind;
        match self {
            ExecError::Store(e) => e.kind(),
            ExecError::Mismatch { .. } => ErrorKind::Invalid,
            ExecError::AlreadyFinished(_) | ExecError::Interrupted(_) => ErrorKind::Conflict,
        }
    }
}

/// Asks an executing run to stop: once `drain` is cancelled no task starts, running attempts
/// get `grace` to finish, and the rest are cancelled and recorded to run again (without
/// using up a retry).
#[derive(Debug, Clone)]
pub struct Stop {
    pub drain: CancellationToken,
    pub grace: Duration,
    /// Like `drain` with no grace: running attempts are cancelled at once (`vigil runs cancel`).
    pub cancel: CancellationToken,
}

impl Stop {
    /// Whether a stop is asked for; if so, moves `deadline` to when running attempts must be
    /// cancelled (a cancel ends the grace period of a drain already under way).
    pub(super) fn draining(&self, deadline: &mut Option<tokio::time::Instant>) -> bool {
        let cancelled = self.cancel.is_cancelled();
        if !(cancelled || self.drain.is_cancelled()) {
            return false;
        }
        let grace = if cancelled {
            Duration::ZERO
        } else {
            self.grace
        };
        let end = tokio::time::Instant::now() + grace;
        *deadline = Some(deadline.map_or(end, |d| d.min(end)));
        true
    }

    /// A stop that is never requested.
    pub fn never() -> Stop {
        Stop {
            drain: CancellationToken::new(),
            grace: Duration::ZERO,
            cancel: CancellationToken::new(),
        }
    }
}

/// Runs DAG runs; cheap to clone and share.
#[derive(Clone)]
pub struct Executor {
    pub(super) store: Arc<dyn Store>,
    pub(super) registry: Arc<Registry>,
    pub(super) limits: Arc<Limits>,
    pub(super) notify: Arc<NotifyConfig>,
    pub(super) output: OutputLimits,
    /// Set on a shared database: runs queue their tasks for the daemons' workers instead of
    /// running them here.
    dispatch: Option<Dispatch>,
}

impl Executor {
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>, limits: Arc<Limits>) -> Self {
        Executor {
            store,
            registry,
            limits,
            notify: Arc::new(NotifyConfig::default()),
            output: OutputLimits::default(),
            dispatch: None,
        }
    }

    /// Hands the tasks of the runs this executor owns to the workers of every daemon on the
    /// database (see `run::dispatch`), instead of running them in this process.
    pub fn with_dispatch(mut self, dispatch: Dispatch) -> Self {
        self.dispatch = Some(dispatch);
        self
    }

    /// What each attempt may print and log, and how long its processes get after SIGTERM.
    pub fn with_output_limits(mut self, output: OutputLimits) -> Self {
        self.output = output;
        self
    }

    /// The `[notify]` defaults and link base for the messages runs queue.
    pub fn with_notify(mut self, notify: NotifyConfig) -> Self {
        self.notify = Arc::new(notify);
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs `run` (of `dag`) until every task is terminal, and returns the run's final state.
    /// The run may be fresh or half done: execution resumes from what the store holds.
    pub async fn execute(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        observer: Option<Observer>,
    ) -> Result<RunState, ExecError> {
        self.execute_until(dag, run, observer, &Stop::never()).await
    }

    /// [`Executor::execute`], stopping early when `stop` asks (see [`Stop`]).
    pub async fn execute_until(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        observer: Option<Observer>,
        stop: &Stop,
    ) -> Result<RunState, ExecError> {
        let span = tracing::info_span!("run", dag_id = %dag.id, run_id = run.id);
        self.execute_inner(dag, run, observer, stop)
            .instrument(span)
            .await
    }

    async fn execute_inner(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        observer: Option<Observer>,
        stop: &Stop,
    ) -> Result<RunState, ExecError> {
        if run.state.is_terminal() {
            return Err(ExecError::AlreadyFinished(run.id));
        }
        let mismatch = |detail: String| ExecError::Mismatch {
            run_id: run.id,
            dag_id: dag.id.clone(),
            detail,
        };
        let params = resolve_params(&dag, &run.conf).map_err(|e| mismatch(e.to_string()))?;
        let instances = self.store.task_instances(run.id).await?;
        // A fresh run has nothing running and no results: two reads saved on the path from a
        // trigger to the first task.
        let live = if instances.iter().any(|t| t.state == TaskState::Running) {
            self.live_attempts(run.id).await?
        } else {
            HashSet::new()
        };
        self.kill_leftovers(&run, &instances, &live).await;
        let outputs = if instances.iter().any(|t| t.state == TaskState::Success) {
            self.store.outputs(run.id).await?
        } else {
            Vec::new()
        };
        let mut state = RunExec::new(
            dag.clone(),
            &run,
            Arc::new(params),
            (instances, outputs),
            self,
            &live,
        )
        .map_err(mismatch)?;
        state.run(self, observer, stop).await
    }

    /// The running attempts of a run that a live worker still holds (on a shared database):
    /// its new owner waits for them instead of retrying them.
    async fn live_attempts(&self, run_id: i64) -> Result<HashSet<String>, StoreError> {
        let Some(dispatch) = &self.dispatch else {
            return Ok(HashSet::new());
        };
        Ok(self
            .store
            .task_leases(run_id, dispatch.lease)
            .await?
            .into_iter()
            .filter(|l| !l.expired)
            .filter(|l| l.worker.as_deref().is_some_and(|w| !owner::is_dead_here(w)))
            .map(|l| l.task_id)
            .collect())
    }

    /// Kills what the interrupted attempts of a resumed run left running on this host (their
    /// daemon died with them running), so that a retry never runs beside its earlier attempt.
    /// Attempts in `live` belong to a worker that is still there and are left alone.
    async fn kill_leftovers(
        &self,
        run: &RunRecord,
        instances: &[TaskInstance],
        live: &HashSet<String>,
    ) {
        let attempts = instances
            .iter()
            .filter(|ti| ti.state == TaskState::Running && !live.contains(&ti.task_id))
            .map(|ti| (ti.task_id.clone(), ti.attempt))
            .collect();
        self.kill_attempts(run.id, attempts).await;
    }

    /// Kills the processes that `attempts` (task id, attempt) of run `run_id` left on this
    /// host.
    async fn kill_attempts(&self, run_id: i64, attempts: Vec<(String, u32)>) {
        let keys: Vec<(String, u32, String)> = attempts
            .into_iter()
            .map(|(task_id, attempt)| {
                let key = process::attempt_key(self.store.identity(), run_id, &task_id, attempt);
                (task_id, attempt, key)
            })
            .collect();
        if keys.is_empty() {
            return;
        }
        let wait = self.output.kill_grace.max(Duration::from_secs(1));
        let killed = tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .map(|(task, attempt, key)| (task, attempt, process::kill_marked(&key, wait)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (task_id, attempt, n) in killed.into_iter().filter(|(_, _, n)| *n > 0) {
            tracing::warn!(
                %task_id,
                attempt,
                processes = n,
                "killed what the interrupted attempt left running before retrying it"
            );
        }
    }
}

/// What a transition carries besides the new row.
#[derive(Default)]
struct Change {
    output: Option<serde_json::Value>,
    logs: Vec<LogLine>,
    logs_attempt: u32,
    logs_from: usize,
}

/// What one step writes and then reports: committed together, reported after the commit.
struct Step {
    batch: Batch,
    /// Position of a task's transition in `batch.tasks`, so later changes in the same step
    /// fold into one row update.
    in_batch: BTreeMap<usize, usize>,
    events: Vec<RunEvent>,
}

/// The concurrency permits of one run.
struct Slots {
    /// The DAG's `max_active_tasks` and the process's `parallelism`.
    dag: Arc<Semaphore>,
    global: Arc<Semaphore>,
    /// Permits taken for the tasks this step starts, handed to them once it is committed.
    pending: Vec<Permits>,
    /// Permits won by waiting in line, used by the next task to start.
    won: Option<Permits>,
    /// Permits of attempts whose end is in the step being built; released after its commit.
    ending: Vec<Permits>,
    /// Permits of running attempts, by spawned task id. They move to `ending` when the
    /// executor records an attempt's end (not when its future returns) and are released after
    /// that is committed, so the stored states never show more running tasks than the limits
    /// allow.
    running: HashMap<tokio::task::Id, (usize, Permits, CancellationToken)>,
}

/// A run whose tasks the daemons' workers execute (see `run::dispatch`).
struct Remote {
    dispatch: Dispatch,
    /// Registered as this run's owner, so a local worker wakes it directly.
    owned: Owned,
    /// Tasks handed to the workers: `queued` or `running` in the store, ended by a worker.
    dispatched: BTreeSet<usize>,
    /// This step queued tasks: wake the workers once it is committed.
    queued_some: bool,
}

struct RunExec {
    dag: Arc<Dag>,
    run_id: i64,
    run_state: RunState,
    run_vars: Arc<RunVars>,
    logical_date: DateTime<Utc>,
    params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Indexed like `dag.tasks` (topological order).
    tis: Vec<TaskInstance>,
    outputs: Vec<Option<Arc<serde_json::Value>>>,
    counts: Vec<UpstreamCounts>,
    /// Scheduled tasks whose upstream changed since they were last looked at.
    to_evaluate: BTreeSet<usize>,
    queued: BTreeSet<usize>,
    retry_at: BTreeSet<(DateTime<Utc>, usize)>,
    terminal: usize,
    /// Who hears about failures, and who already did.
    messages: Messages,
    /// The step being built.
    step: Step,
    to_spawn: Vec<usize>,
    /// The permits this run waits for, holds and gives back.
    slots: Slots,
    started: Instant,
    /// On a shared database: what the workers have of this run.
    remote: Option<Remote>,
}

impl Upstream for RunExec {
    fn output(&self, i: usize) -> Option<Arc<serde_json::Value>> {
        self.outputs[i].clone()
    }
    fn state(&self, i: usize) -> TaskState {
        self.tis[i].state
    }
}

impl RunExec {
    /// The run as stored (`instances` and `outputs`); `live` names its running attempts that
    /// a live worker holds.
    fn new(
        dag: Arc<Dag>,
        run: &RunRecord,
        params: Arc<serde_json::Map<String, serde_json::Value>>,
        (instances, outputs): (Vec<TaskInstance>, Vec<crate::store::StoredOutput>),
        exec: &Executor,
        live: &HashSet<String>,
    ) -> Result<RunExec, String> {
        let dag_slots = exec.limits.dag(&dag.id, dag.max_active_tasks);
        let global_slots = exec.limits.global();
        let messages = Messages::new(&dag, &exec.notify);
        let n = dag.tasks.len();
        let mut tis: Vec<Option<TaskInstance>> = vec![None; n];
        for ti in instances {
            let i = dag.graph.index_of(&ti.task_id).ok_or_else(|| {
                format!("the run has task `{}`, which the DAG does not", ti.task_id)
            })?;
            tis[i] = Some(ti);
        }
        let tis: Vec<TaskInstance> = tis
            .into_iter()
            .enumerate()
            .map(|(i, ti)| ti.ok_or_else(|| format!("the run has no task `{}`", dag.graph.id(i))))
            .collect::<Result<_, _>>()?;
        let mut out: Vec<Option<Arc<serde_json::Value>>> = vec![None; n];
        for o in outputs {
            if let Some(i) = dag.graph.index_of(&o.task_id) {
                out[i] = Some(Arc::new(o.value));
            }
        }
        let ld = run.logical_date;
        let run_vars = RunVars::of(run);
        let lent = exec.dispatch.as_ref().map(|d| {
            let lent = Lent {
                run: run.clone(),
                dag: dag.clone(),
                params: params.clone(),
            };
            (d.clone(), d.own(lent))
        });
        let mut exec = RunExec {
            counts: (0..n)
                .map(|i| UpstreamCounts::new(dag.graph.upstream(i).len()))
                .collect(),
            dag,
            run_id: run.id,
            run_state: run.state,
            run_vars: Arc::new(run_vars),
            logical_date: ld,
            params,
            tis,
            outputs: out,
            to_evaluate: BTreeSet::new(),
            queued: BTreeSet::new(),
            retry_at: BTreeSet::new(),
            terminal: 0,
            messages,
            step: Step {
                batch: Batch::new(run.id),
                in_batch: BTreeMap::new(),
                events: Vec::new(),
            },
            to_spawn: Vec::new(),
            slots: Slots {
                dag: dag_slots,
                global: global_slots,
                pending: Vec::new(),
                won: None,
                ending: Vec::new(),
                running: HashMap::new(),
            },
            started: Instant::now(),
            remote: lent.map(|(dispatch, owned)| Remote {
                dispatch,
                owned,
                dispatched: BTreeSet::new(),
                queued_some: false,
            }),
        };
        exec.index_states(live);
        Ok(exec)
    }

    /// Builds the work sets from the stored states (fresh or resumed run).
    fn index_states(&mut self, live: &HashSet<String>) {
        let now = Utc::now();
        for i in 0..self.tis.len() {
            let (state, attempt, next_retry_at) = {
                let ti = &self.tis[i];
                (ti.state, ti.attempt, ti.next_retry_at)
            };
            match state {
                TaskState::Scheduled => {
                    self.to_evaluate.insert(i);
                }
                TaskState::Queued => match self.remote.as_mut() {
                    // Already in the workers' queue.
                    Some(r) => {
                        r.dispatched.insert(i);
                    }
                    None => {
                        self.queued.insert(i);
                    }
                },
                TaskState::Running if live.contains(&self.tis[i].task_id) => {
                    if let Some(r) = self.remote.as_mut() {
                        r.dispatched.insert(i);
                    }
                }
                TaskState::UpForRetry => {
                    self.retry_at.insert((next_retry_at.unwrap_or(now), i));
                }
                TaskState::Running => {
                    // Nothing in this process runs it, so its process is gone: the attempt
                    // counts as failed and is retried if the task has retries left.
                    let message = format!(
                        "attempt {attempt} was interrupted: the process running it stopped before it finished"
                    );
                    self.finish_attempt(Finished::interrupted(i, attempt, message), now);
                }
                TaskState::Failed => {
                    // Its failure message was committed with the failure; the run's own
                    // message must not repeat it to the same people after a restart.
                    self.messages.told_about(i);
                    self.mark_terminal(i, state);
                }
                TaskState::Success | TaskState::UpstreamFailed | TaskState::Skipped => {
                    self.mark_terminal(i, state)
                }
            }
        }
    }

    async fn run(
        &mut self,
        exec: &Executor,
        observer: Option<Observer>,
        stop: &Stop,
    ) -> Result<RunState, ExecError> {
        let mut running: JoinSet<Finished> = JoinSet::new();
        if self.run_state == RunState::Queued {
            self.step.batch.run = Some(RunTransition {
                expect: RunState::Queued,
                to: RunState::Running,
                at: Utc::now(),
                note: None,
            });
            self.run_state = RunState::Running;
        }
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut acquiring: Option<Acquiring> = None;
        loop {
            let now = Utc::now();
            let cancelled = stop.cancel.is_cancelled();
            let draining = stop.draining(&mut deadline);
            self.decide_scheduled(now);
            if !draining {
                self.release_due_retries(now);
                self.start_queued(now);
            }
            let finished = self.terminal == self.tis.len() && running.is_empty();
            if finished {
                let state = self.final_state();
                self.step.batch.run = Some(RunTransition {
                    expect: RunState::Running,
                    to: state,
                    at: now,
                    note: None,
                });
                if state == RunState::Failed {
                    self.queue_run_failure();
                }
                self.step.events.push(RunEvent::RunEnded {
                    state,
                    duration: self.started.elapsed(),
                });
            }

            self.commit_until_written(&exec.store, stop).await?;
            self.wake_workers(&exec.store).await;
            if let Some(obs) = &observer {
                for e in &self.step.events {
                    obs(e);
                }
            }
            self.step.events.clear();
            for (i, permits) in std::mem::take(&mut self.to_spawn)
                .into_iter()
                .zip(std::mem::take(&mut self.slots.pending))
            {
                let cancel = CancellationToken::new();
                let id = self.spawn(i, exec, cancel.clone(), &mut running);
                self.slots.running.insert(id, (i, permits, cancel));
            }
            if finished {
                return Ok(self.final_state());
            }
            if draining && running.is_empty() {
                return Err(ExecError::Interrupted(self.run_id));
            }

            // Wait for something to change: an attempt ends, a retry falls due, a slot frees
            // up elsewhere (when tasks are queued behind the limits), or a stop is asked for.
            let next_retry = self
                .retry_at
                .first()
                .map(|(at, _)| *at)
                .filter(|_| !draining);
            let sleep = next_retry.map(|at| {
                let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait)
            });
            let waiting_for_slot = !self.queued.is_empty() && !draining;
            if waiting_for_slot {
                if acquiring.is_none() {
                    acquiring = Some(Box::pin(Permits::acquire(
                        self.slots.dag.clone(),
                        self.slots.global.clone(),
                    )));
                }
            } else {
                // Leave the line (and give back anything won) when nothing waits to start.
                acquiring = None;
                self.slots.won = None;
            }
            // Tasks the workers have: look when one ends, and now and then without being told.
            let (remote, poll) = match &self.remote {
                Some(r) if !r.dispatched.is_empty() && !draining => {
                    (Some(r.owned.wake.clone()), r.dispatch.poll)
                }
                _ => (None, Duration::MAX),
            };
            if running.is_empty()
                && next_retry.is_none()
                && !waiting_for_slot
                && !draining
                && remote.is_none()
            {
                // Nothing can make progress; only a bug gets here. Fail what is left rather
                // than hang.
                self.fail_stuck(Utc::now());
                continue;
            }
            tokio::select! {
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    let now = Utc::now();
                    self.absorb(joined, now);
                    while let Some(joined) = running.try_join_next_with_id() {
                        self.absorb(joined, now);
                    }
                }
                _ = async { if let Some(s) = sleep { s.await } }, if next_retry.is_some() => {}
                permits = acquired(&mut acquiring), if waiting_for_slot => {
                    acquiring = None;
                    self.slots.won = permits;
                }
                _ = async { if let Some(w) = &remote { w.woken().await } }, if remote.is_some() => {
                    self.refresh(exec, false).await?;
                }
                _ = tokio::time::sleep(poll), if remote.is_some() => {
                    self.refresh(exec, true).await?;
                }
                _ = stop.drain.cancelled(), if !draining => {}
                _ = stop.cancel.cancelled(), if !cancelled => {}
                _ = sleep_until_opt(deadline), if draining => {
                    self.cancel_running(&mut running, exec.output.kill_grace).await;
                }
            }
        }
    }

    /// The grace period is over: cancels every running attempt and records it to run again.
    /// An interrupted attempt does not use up a retry (its task gets one more attempt).
    async fn cancel_running(&mut self, running: &mut JoinSet<Finished>, kill_grace: Duration) {
        // Cancelling tells each attempt to stop: a `command` task sends SIGTERM to its
        // processes and SIGKILL after `kill_grace`. Whatever has not ended a moment after that
        // is aborted (dropping a `command` attempt kills its process group).
        for (_, _, cancel) in self.slots.running.values() {
            cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + kill_grace + Duration::from_secs(1);
        let mut aborted = false;
        loop {
            let joined = tokio::select! {
                joined = running.join_next_with_id() => joined,
                _ = tokio::time::sleep_until(deadline), if !aborted => {
                    running.abort_all();
                    aborted = true;
                    continue;
                }
            };
            let Some(joined) = joined else { break };
            let now = Utc::now();
            match joined {
                // It finished despite the stop: keep a success. A failure is most likely the
                // stop itself, so it does not use up a retry.
                Ok((id, done)) if done.result.is_ok() => self.absorb(Ok((id, done)), now),
                Ok((id, _)) => self.interrupted(id, now),
                Err(e) => self.interrupted(e.id(), now),
            }
        }
    }

    /// Records the attempt spawned as `id` as interrupted by shutdown: it runs again when the
    /// run resumes, without using up a retry.
    fn interrupted(&mut self, id: tokio::task::Id, now: DateTime<Utc>) {
        let Some((i, permits, _)) = self.slots.running.remove(&id) else {
            return;
        };
        self.slots.ending.push(permits);
        let attempt = self.tis[i].attempt;
        self.transition(i, TaskState::UpForRetry, now, Change::default(), |ti| {
            ti.max_attempts += 1;
            ti.ended_at = Some(now);
            ti.next_retry_at = Some(now);
            ti.error = Some(format!(
                "attempt {attempt} was interrupted by shutdown; it runs again when the run resumes"
            ));
        });
        self.report_end(i, Duration::ZERO);
    }

    fn absorb(
        &mut self,
        joined: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
        now: DateTime<Utc>,
    ) {
        match joined {
            Ok((id, f)) => {
                self.finish_attempt(f, now);
                // Held until the end is committed: another run must not start a task (and
                // record it running) before this one is recorded as ended.
                if let Some((_, permits, _)) = self.slots.running.remove(&id) {
                    self.slots.ending.push(permits);
                }
            }
            // Panics are caught inside the attempt; a JoinError here means the runtime is
            // shutting down and aborted it. The attempt stays `running` in the store and is
            // recovered when the run resumes.
            Err(e) => {
                tracing::warn!(error = %crate::state::Chain(&e), "task attempt aborted");
                self.slots.running.remove(&e.id());
            }
        }
    }

    /// Records the end of an attempt: success, retry or failure.
    fn finish_attempt(&mut self, f: Finished, now: DateTime<Utc>) {
        let (i, attempt, duration) = (f.index, f.attempt, f.duration);
        let (logs_from, logs) = f.unstored_logs();
        let end = Outcome::of(
            &self.dag.tasks[i].retry,
            attempt,
            self.tis[i].max_attempts,
            f.result,
            now,
        );
        let output = end.stored();
        let Outcome {
            state,
            error,
            next_retry_at,
            value,
        } = end;
        if let Some(value) = value {
            self.outputs[i] = Some(Arc::new(value));
        }
        if let Some(at) = next_retry_at {
            self.retry_at.insert((at, i));
        }
        if let (TaskState::Failed | TaskState::UpForRetry, Some(e)) = (state, &error) {
            self.queue_failure(i, attempt, e, next_retry_at, &f.logs);
        }
        let change = Change {
            output,
            logs,
            logs_attempt: attempt,
            logs_from,
        };
        self.transition(i, state, now, change, |ti| {
            ti.ended_at = Some(now);
            ti.error = error;
            ti.next_retry_at = next_retry_at;
        });
        self.report_end(i, duration);
    }

    /// Queues the message about a failed attempt of task `i` with this step.
    fn queue_failure(
        &mut self,
        i: usize,
        attempt: u32,
        error: &str,
        next_attempt: Option<DateTime<Utc>>,
        logs: &[LogLine],
    ) {
        let base_url = self.messages.base_url.clone();
        let failure = TaskFailure {
            dag_id: &self.dag.id,
            task_id: &self.dag.tasks[i].id,
            run_id: self.run_id,
            logical_date: self.logical_date,
            attempt,
            max_attempts: self.tis[i].max_attempts,
            error,
            next_attempt,
            logs,
            base_url: &base_url,
        };
        if let Some(n) = self.messages.task_failure(i, &failure) {
            self.step.batch.notifications.push(n);
        }
    }

    /// Queues the message that the run failed with this step.
    fn queue_run_failure(&mut self) {
        if let Some(n) =
            self.messages
                .run_failure(&self.dag.id, self.run_id, self.logical_date, &self.tis)
        {
            self.step.batch.notifications.push(n);
        }
    }

    /// Reports that task `i` reached the state it now has (terminal or up for retry).
    fn report_end(&mut self, i: usize, duration: Duration) {
        let ti = &self.tis[i];
        self.step.events.push(RunEvent::TaskEnded {
            task_id: ti.task_id.clone(),
            state: ti.state,
            attempt: ti.attempt,
            max_attempts: ti.max_attempts,
            duration,
            error: ti.error.clone(),
            next_retry_at: ti.next_retry_at,
        });
    }

    /// Counts a terminal task for its downstream tasks and queues them for evaluation.
    fn mark_terminal(&mut self, i: usize, state: TaskState) {
        self.terminal += 1;
        for &d in self.dag.graph.downstream(i) {
            self.counts[d].record(state);
            self.to_evaluate.insert(d);
        }
    }

    /// Applies trigger rules to scheduled tasks whose upstream changed. Downstream tasks have
    /// higher indices, so a skip or upstream_failed propagates within one pass.
    fn decide_scheduled(&mut self, now: DateTime<Utc>) {
        while let Some(i) = self.to_evaluate.pop_first() {
            if self.tis[i].state != TaskState::Scheduled {
                continue;
            }
            let state = match evaluate(self.dag.tasks[i].trigger_rule, &self.counts[i]) {
                Decision::Wait => continue,
                Decision::Run => TaskState::Queued,
                Decision::Skip => TaskState::Skipped,
                Decision::UpstreamFailed => TaskState::UpstreamFailed,
            };
            self.transition(i, state, now, Change::default(), |ti| {
                if state.is_terminal() {
                    ti.ended_at = Some(now);
                }
            });
            if state.is_terminal() {
                self.report_end(i, Duration::ZERO);
            } else {
                self.queued.insert(i);
            }
        }
    }

    fn release_due_retries(&mut self, now: DateTime<Utc>) {
        while let Some(&(at, i)) = self.retry_at.first() {
            if at > now {
                break;
            }
            self.retry_at.pop_first();
            self.transition(i, TaskState::Queued, now, Change::default(), |ti| {
                ti.next_retry_at = None
            });
            self.queued.insert(i);
        }
    }

    /// Starts queued tasks, in topological order, while both limits have room. On a shared
    /// database they stay queued for the workers instead.
    fn start_queued(&mut self, now: DateTime<Utc>) {
        if let Some(r) = self.remote.as_mut() {
            if !self.queued.is_empty() {
                r.dispatched.append(&mut self.queued);
                r.queued_some = true;
            }
            return;
        }
        while let Some(&i) = self.queued.first() {
            let Some(permits) = self
                .slots
                .won
                .take()
                .or_else(|| Permits::try_acquire(&self.slots.dag, &self.slots.global))
            else {
                break;
            };
            self.queued.pop_first();
            let retrying = self.tis[i].attempt > 0;
            if retrying {
                // A new attempt must not be able to read an earlier attempt's result.
                self.outputs[i] = None;
            }
            self.transition(i, TaskState::Running, now, Change::default(), |ti| {
                ti.worker = None;
                ti.attempt += 1;
                ti.started_at = Some(now);
                ti.ended_at = None;
                ti.error = None;
            });
            let ti = &self.tis[i];
            self.step.events.push(RunEvent::TaskStarted {
                task_id: ti.task_id.clone(),
                attempt: ti.attempt,
                max_attempts: ti.max_attempts,
            });
            self.to_spawn.push(i);
            self.slots.pending.push(permits);
        }
    }

    /// Moves task `i` to `state` at `now` (with `edit` for its other fields) and adds the
    /// transition to this step, folded into an earlier transition of the same task in this
    /// step when that loses nothing. A terminal state is counted for the downstream tasks.
    fn transition(
        &mut self,
        i: usize,
        state: TaskState,
        now: DateTime<Utc>,
        change: Change,
        edit: impl FnOnce(&mut TaskInstance),
    ) {
        let mut to = self.tis[i].clone();
        to.state = state;
        to.updated_at = now;
        edit(&mut to);
        let from = std::mem::replace(&mut self.tis[i], to.clone());
        if state.is_terminal() {
            self.mark_terminal(i, state);
        }
        if let Some(&pos) = self.step.in_batch.get(&i) {
            let t = &mut self.step.batch.tasks[pos];
            if change.logs.is_empty() || t.logs.is_empty() {
                t.to = to;
                t.output = change.output.or(t.output.take());
                if !change.logs.is_empty() {
                    t.logs = change.logs;
                    t.logs_attempt = change.logs_attempt;
                    t.logs_from = change.logs_from;
                }
                return;
            }
        }
        self.step.in_batch.insert(i, self.step.batch.tasks.len());
        self.step.batch.tasks.push(TaskTransition {
            expect_state: from.state,
            expect_attempt: from.attempt,
            to,
            output: change.output,
            logs: change.logs,
            logs_attempt: change.logs_attempt,
            logs_from: change.logs_from,
        });
    }

    /// Commits this step, waiting out a database that cannot be written (a full disk, a
    /// read-only directory, a PostgreSQL restart): the step — finished attempts and their
    /// results — is kept and written once the database takes it, so a fault that clears
    /// loses no work and makes no task run again. A stop request ends the wait; the run then
    /// resumes from what was written, as after a crash.
    async fn commit_until_written(
        &mut self,
        store: &Arc<dyn Store>,
        stop: &Stop,
    ) -> Result<(), ExecError> {
        let mut wait = Duration::from_millis(250);
        let mut since: Option<Instant> = None;
        loop {
            match self.commit(store).await {
                Ok(()) => {
                    if let Some(t) = since {
                        tracing::info!(run_id = self.run_id, waited = %humantime::format_duration(Duration::from_secs(t.elapsed().as_secs())), "the database takes writes again; the run goes on");
                    }
                    return Ok(());
                }
                Err(ExecError::Store(e))
                    if crate::state::Kind::kind(&e) == crate::state::ErrorKind::Unavailable
                        && !stop.cancel.is_cancelled()
                        && !stop.drain.is_cancelled() =>
                {
                    if since.is_none() {
                        since = Some(Instant::now());
                    }
                    tracing::error!(run_id = self.run_id, error = %crate::state::Chain(&e), retry_in = ?wait, "cannot write the run's state changes; holding them and trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancel.cancelled() => {}
                        _ = stop.drain.cancelled() => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn commit(&mut self, store: &Arc<dyn Store>) -> Result<(), ExecError> {
        if !self.step.batch.is_empty() {
            crash_point("executor.before_commit");
            store.commit(&self.step.batch).await?;
            crash_point("executor.after_commit");
        }
        self.slots.ending.clear();
        self.step.batch = Batch::new(self.run_id);
        self.step.in_batch.clear();
        Ok(())
    }

    fn final_state(&self) -> RunState {
        let failed = self.dag.graph.leaves().any(|i| {
            matches!(
                self.tis[i].state,
                TaskState::Failed | TaskState::UpstreamFailed
            )
        });
        if failed {
            RunState::Failed
        } else {
            RunState::Success
        }
    }

    fn fail_stuck(&mut self, now: DateTime<Utc>) {
        tracing::error!("run cannot make progress; failing its remaining tasks");
        for i in 0..self.tis.len() {
            if !self.tis[i].state.is_terminal() {
                let error = "internal error: the run could not make progress";
                let attempt = self.tis[i].attempt;
                self.queue_failure(i, attempt, error, None, &[]);
                self.transition(i, TaskState::Failed, now, Change::default(), |ti| {
                    ti.error = Some(error.into());
                    ti.ended_at = Some(now);
                });
            }
        }
        self.queued.clear();
        self.retry_at.clear();
    }

    /// Spawns attempt `tis[i].attempt` of task `i`.
    fn spawn(
        &self,
        i: usize,
        exec: &Executor,
        cancel: CancellationToken,
        running: &mut JoinSet<Finished>,
    ) -> tokio::task::Id {
        let scope = RunScope {
            dag: &self.dag,
            run_id: self.run_id,
            logical_date: self.logical_date,
            params: &self.params,
            run_vars: &self.run_vars,
        };
        let attempt = Attempt::prepare(
            exec,
            &scope,
            (i, self.tis[i].attempt),
            self,
            self.messages.alert_audience(i),
            cancel,
        );
        let span =
            tracing::info_span!("task", task_id = %self.dag.tasks[i].id, attempt = attempt.attempt);
        running.spawn(attempt.run().instrument(span)).id()
    }

    /// After a commit that queued tasks for the workers: wakes this process's worker and
    /// signals the other daemons'.
    async fn wake_workers(&mut self, store: &Arc<dyn Store>) {
        let Some(r) = self.remote.as_mut() else {
            return;
        };
        if !std::mem::take(&mut r.queued_some) {
            return;
        }
        r.dispatch.work.wake();
        if let Err(e) = store.signal(Signal::Queued).await {
            // The other workers' poll finds the tasks anyway.
            tracing::warn!(error = %crate::state::Chain(&e), "could not signal the workers");
        }
    }

    /// Takes in what the workers did with this run's tasks: attempts that started and ended
    /// (from the store), and, when `leases` is set, attempts whose worker stopped
    /// heartbeating, which end as interrupted (and run again if retries are left).
    async fn refresh(&mut self, exec: &Executor, leases: bool) -> Result<(), ExecError> {
        let Some(remote) = self.remote.as_ref() else {
            return Ok(());
        };
        let lease = remote.dispatch.lease;
        let dispatched: Vec<usize> = remote.dispatched.iter().copied().collect();
        let mut rows: Vec<Option<TaskInstance>> = vec![None; self.tis.len()];
        for row in exec.store.task_instances(self.run_id).await? {
            if let Some(i) = self.dag.graph.index_of(&row.task_id) {
                rows[i] = Some(row);
            }
        }
        let now = Utc::now();
        for i in dispatched {
            let Some(row) = rows[i].take() else { continue };
            match row.state {
                TaskState::Queued | TaskState::Scheduled => {}
                TaskState::Running => {
                    if (self.tis[i].state, self.tis[i].attempt) != (row.state, row.attempt) {
                        self.step.events.push(RunEvent::TaskStarted {
                            task_id: row.task_id.clone(),
                            attempt: row.attempt,
                            max_attempts: row.max_attempts,
                        });
                        self.tis[i] = row;
                    }
                }
                state => self.ended_remotely(i, row, state, now),
            }
        }
        if leases {
            let mut taken = Vec::new();
            for l in exec.store.task_leases(self.run_id, lease).await? {
                let gone = l.expired || l.worker.as_deref().is_some_and(owner::is_dead_here);
                let Some(i) = self.dag.graph.index_of(&l.task_id) else {
                    continue;
                };
                let ours = self
                    .remote
                    .as_ref()
                    .is_some_and(|r| r.dispatched.contains(&i));
                let current =
                    self.tis[i].state == TaskState::Running && self.tis[i].attempt == l.attempt;
                if !gone || !ours || !current {
                    continue;
                }
                if let Some(r) = self.remote.as_mut() {
                    r.dispatched.remove(&i);
                }
                let worker = l.worker.as_deref().unwrap_or("its worker");
                tracing::warn!(task_id = %l.task_id, attempt = l.attempt, %worker, "the worker running this attempt stopped heartbeating; taking it back");
                let message = format!(
                    "attempt {} was interrupted: the daemon running it ({worker}) stopped heartbeating",
                    l.attempt
                );
                self.finish_attempt(Finished::interrupted(i, l.attempt, message), now);
                taken.push((l.task_id, l.attempt));
            }
            // A retry must not run beside what the taken attempt left on this host.
            exec.kill_attempts(self.run_id, taken).await;
        }
        Ok(())
    }

    /// A worker ended task `i`'s attempt (`row` as it committed it, in `state`): count it as
    /// this executor counts its own.
    fn ended_remotely(
        &mut self,
        i: usize,
        row: TaskInstance,
        state: TaskState,
        now: DateTime<Utc>,
    ) {
        if let Some(r) = self.remote.as_mut() {
            r.dispatched.remove(&i);
        }
        let duration = match (row.started_at, row.ended_at) {
            (Some(s), Some(e)) => (e - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let retry_at = row.next_retry_at.unwrap_or(now);
        self.tis[i] = row;
        match state {
            TaskState::UpForRetry => {
                self.retry_at.insert((retry_at, i));
            }
            _ => {
                if state == TaskState::Failed {
                    self.messages.told_about(i);
                }
                self.mark_terminal(i, state);
            }
        }
        self.report_end(i, duration);
    }
}

pub(super) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Waits on `acquiring`, or forever when there is nothing to wait for.
async fn acquired(acquiring: &mut Option<Acquiring>) -> Option<Permits> {
    match acquiring {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// A run's place in line for a task slot, kept across steps so it is never lost.
type Acquiring = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Permits>> + Send>>;
