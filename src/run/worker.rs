//! A daemon's worker on a shared database: it claims queued task instances for its free
//! slots (`TaskQueue::claim_tasks`), runs each attempt and commits its end, fenced by the
//! state and attempt it claimed, with the attempt's result, log and failure message in one
//! transaction. It decides nothing about the run: the run's owner (on any daemon) learns of
//! the end through a signal and applies trigger rules, retries and the run's end.
//!
//! While an attempt runs, the daemon's heartbeat renews its lease. An attempt the worker no
//! longer holds (its run was cancelled, a person marked the task, or the lease ran out while
//! this daemon was cut off) is stopped, and its end changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dag::{Dag, parse_dag, resolve_params};
use crate::notify::message::TaskFailure;
use crate::run::attempt::{Attempt, Finished, Outcome, RunScope, Upstream};
use crate::run::dispatch::{Dispatch, Lent};
use crate::run::executor::{Executor, Stop, sleep_until_opt};
use crate::run::messages::Messages;
use crate::state::failpoint::crash_point;
use crate::state::{Chain, TaskState};
use crate::store::{
    Batch, Notification, RunId, RunRecord, Signal, StoreError, StoredOutput, TaskInstance,
    TaskTransition,
};
use crate::task::template::RunVars;

/// Runs kept parsed between claims; beyond this, those with no attempt running are dropped.
const CACHED_RUNS: usize = 256;

/// What every attempt of one run shares, worked out once per run.
struct RunCtx {
    run: RunRecord,
    dag: Arc<Dag>,
    params: Arc<serde_json::Map<String, serde_json::Value>>,
    run_vars: Arc<RunVars>,
    /// Who each task alerts.
    messages: Messages,
}

/// An attempt this worker runs.
struct Running {
    ctx: Arc<RunCtx>,
    /// The task instance as the claim left it (`running` at this attempt).
    row: TaskInstance,
    index: usize,
    cancel: CancellationToken,
    _permit: Option<OwnedSemaphorePermit>,
    /// No longer held: its end is not written.
    taken_back: bool,
}

/// The results and states an attempt's templates may read, indexed like its DAG's tasks.
struct Seen {
    outputs: Vec<Option<Arc<serde_json::Value>>>,
    states: Vec<TaskState>,
}

impl Upstream for Seen {
    fn output(&self, i: usize) -> Option<Arc<serde_json::Value>> {
        self.outputs.get(i).cloned().flatten()
    }
    fn state(&self, i: usize) -> TaskState {
        self.states.get(i).copied().unwrap_or(TaskState::Scheduled)
    }
}

/// The end of one attempt as written: its transition and the message about its failure.
type Ended = (TaskTransition, Option<Notification>);

/// How an attempt ended, as this worker records it.
enum End {
    /// It ran to an end (success, failure, skip).
    Ran(Finished),
    /// Stopped by shutdown: it runs again without using up a retry.
    Interrupted,
}

pub struct Worker {
    exec: Executor,
    owner: String,
    dispatch: Dispatch,
    runs: HashMap<RunId, Arc<RunCtx>>,
    /// Parsed DAG versions by source text, shared by the runs created from them.
    dags: HashMap<String, Arc<Dag>>,
    running: JoinSet<Finished>,
    attempts: HashMap<tokio::task::Id, Running>,
    /// Ends the store did not take (it was unreachable), tried again at each poll.
    unsent: Vec<(RunId, Vec<Ended>)>,
}

impl Worker {
    /// A worker running attempts with `exec`'s store, task registry, limits (its
    /// `parallelism` is the number of slots) and notification settings, as daemon `owner`.
    pub fn new(exec: Executor, owner: String, dispatch: Dispatch) -> Worker {
        Worker {
            exec,
            owner,
            dispatch,
            runs: HashMap::new(),
            dags: HashMap::new(),
            running: JoinSet::new(),
            attempts: HashMap::new(),
            unsent: Vec::new(),
        }
    }

    /// Claims and runs tasks until `stop` drains it: then nothing more is claimed, running
    /// attempts get the grace period and the rest are recorded to run again.
    pub async fn run(mut self, stop: Stop) {
        let mut poll = tokio::time::interval(self.dispatch.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let cancelled = stop.cancel.is_cancelled();
            let draining = stop.draining(&mut deadline);
            if !draining {
                self.claim().await;
            }
            if draining && self.running.is_empty() {
                self.flush().await;
                return;
            }
            tokio::select! {
                Some(joined) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    let mut done = vec![joined];
                    while let Some(j) = self.running.try_join_next_with_id() {
                        done.push(j);
                    }
                    self.record(done, false).await;
                }
                _ = self.dispatch.work.woken(), if !draining => {}
                _ = poll.tick() => {
                    self.check_held().await;
                    self.flush().await;
                }
                _ = stop.drain.cancelled(), if !draining => {}
                _ = stop.cancel.cancelled(), if !cancelled => {}
                _ = sleep_until_opt(deadline), if draining => {
                    self.interrupt_all().await;
                }
            }
        }
    }

    /// Claims queued tasks for the free slots and starts them.
    async fn claim(&mut self) {
        let free = self.exec.limits.global().available_permits();
        if free == 0 {
            return;
        }
        let max = u32::try_from(free).unwrap_or(u32::MAX);
        let claimed = match self.exec.store.claim_tasks(&self.owner, max).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "could not claim tasks; trying again at the next poll");
                return;
            }
        };
        if !claimed.is_empty() {
            crash_point("worker.after_claim");
        }
        let mut by_run: BTreeMap<RunId, Vec<TaskInstance>> = BTreeMap::new();
        for row in claimed {
            by_run.entry(row.run_id).or_default().push(row);
        }
        for (run_id, rows) in by_run {
            let ctx = match self.context(run_id).await {
                Ok(ctx) => ctx,
                Err(why) => {
                    for row in rows {
                        self.refuse(row, &why).await;
                    }
                    continue;
                }
            };
            let seen = match self.seen(&ctx, &rows).await {
                Ok(seen) => seen,
                Err(e) => {
                    let why = format!("could not read the upstream results: {}", Chain(&e));
                    for row in rows {
                        self.refuse(row, &why).await;
                    }
                    continue;
                }
            };
            for row in rows {
                self.start(&ctx, row, &seen).await;
            }
        }
        self.forget_idle_runs();
    }

    /// The run `run_id` with its DAG version parsed and its params resolved.
    async fn context(&mut self, run_id: RunId) -> Result<Arc<RunCtx>, String> {
        if let Some(ctx) = self.runs.get(&run_id) {
            return Ok(ctx.clone());
        }
        let lent = match self.dispatch.lent(run_id) {
            Some(lent) => lent,
            None => self.load(run_id).await?,
        };
        let ctx = Arc::new(RunCtx {
            run_vars: Arc::new(RunVars::of(&lent.run)),
            messages: Messages::new(&lent.dag, &self.exec.notify),
            params: lent.params,
            dag: lent.dag,
            run: lent.run,
        });
        self.runs.insert(run_id, ctx.clone());
        Ok(ctx)
    }

    /// Run `run_id` read from the store, its DAG version parsed (once per version) and its
    /// params resolved: what an owner in another process has of it.
    async fn load(&mut self, run_id: RunId) -> Result<Lent, String> {
        let run = match self.exec.store.run(run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => return Err(format!("run {run_id} no longer exists")),
            Err(e) => return Err(format!("could not read run {run_id}: {}", Chain(&e))),
        };
        let dag = match self.dags.get(&run.dag_source) {
            Some(dag) => dag.clone(),
            None => {
                let (file, source, registry) = (
                    run.dag_file.clone(),
                    run.dag_source.clone(),
                    self.exec.registry.clone(),
                );
                // Parsing is CPU work, kept off the runtime's threads.
                let parsed = tokio::task::spawn_blocking(move || {
                    parse_dag(Path::new(&file), &source, &registry).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| format!("parsing the run's DAG stopped: {e}"))?
                .map_err(|e| format!("the DAG version of this run no longer loads:\n{e}"))?;
                let dag = Arc::new(parsed);
                if self.dags.len() >= CACHED_RUNS {
                    self.dags.clear();
                }
                self.dags.insert(run.dag_source.clone(), dag.clone());
                dag
            }
        };
        let params = resolve_params(&dag, &run.conf).map_err(|e| e.to_string())?;
        Ok(Lent {
            run,
            dag,
            params: Arc::new(params),
        })
    }

    /// Drops cached runs nothing here runs any more, once there are many.
    fn forget_idle_runs(&mut self) {
        if self.runs.len() > CACHED_RUNS {
            let busy: HashSet<RunId> = self.attempts.values().map(|a| a.row.run_id).collect();
            self.runs.retain(|id, _| busy.contains(id));
        }
    }

    /// What the claimed `rows` of one run may read of their run: results of their upstream
    /// tasks and, for templates that ask, the states of the tasks they read.
    async fn seen(&self, ctx: &RunCtx, rows: &[TaskInstance]) -> Result<Seen, StoreError> {
        let graph = &ctx.dag.graph;
        let n = ctx.dag.tasks.len();
        let spec = |row: &TaskInstance| graph.index_of(&row.task_id).map(|i| &ctx.dag.tasks[i]);
        let upstream = rows.iter().any(|r| {
            graph
                .index_of(&r.task_id)
                .is_some_and(|i| !graph.upstream(i).is_empty())
        });
        let reads = rows
            .iter()
            .any(|r| spec(r).is_some_and(|s| !s.config.reads_tasks().is_empty()));
        let mut seen = Seen {
            outputs: vec![None; n],
            states: vec![TaskState::Scheduled; n],
        };
        if upstream || reads {
            let outputs: Vec<StoredOutput> = self.exec.store.outputs(ctx.run.id).await?;
            for o in outputs {
                if let Some(i) = graph.index_of(&o.task_id) {
                    seen.outputs[i] = Some(Arc::new(o.value));
                }
            }
        }
        if reads {
            for ti in self.exec.store.task_instances(ctx.run.id).await? {
                if let Some(i) = graph.index_of(&ti.task_id) {
                    seen.states[i] = ti.state;
                }
            }
        }
        Ok(seen)
    }

    /// Spawns the claimed attempt `row` of `ctx`'s run.
    async fn start(&mut self, ctx: &Arc<RunCtx>, row: TaskInstance, seen: &Seen) {
        let Some(i) = ctx.dag.graph.index_of(&row.task_id) else {
            let why = format!("the run's DAG version has no task `{}`", row.task_id);
            self.refuse(row, &why).await;
            return;
        };
        let permit = self.exec.limits.global().try_acquire_owned().ok();
        let cancel = CancellationToken::new();
        let scope = RunScope {
            dag: &ctx.dag,
            run_id: ctx.run.id,
            logical_date: ctx.run.logical_date,
            params: &ctx.params,
            run_vars: &ctx.run_vars,
        };
        let attempt = Attempt::prepare(
            &self.exec,
            &scope,
            (i, row.attempt),
            seen,
            ctx.messages.alert_audience(i),
            cancel.clone(),
        );
        let span = tracing::info_span!("task", dag_id = %ctx.dag.id, run_id = ctx.run.id, task_id = %row.task_id, attempt = row.attempt);
        let id = self.running.spawn(attempt.run().instrument(span)).id();
        self.attempts.insert(
            id,
            Running {
                ctx: ctx.clone(),
                row,
                index: i,
                cancel,
                _permit: permit,
                taken_back: false,
            },
        );
    }

    /// Ends a claimed attempt that cannot start (its run or DAG version is gone): it fails
    /// for good, and its run's owner decides the rest.
    async fn refuse(&mut self, row: TaskInstance, why: &str) {
        tracing::error!(run_id = row.run_id, task_id = %row.task_id, "cannot run the claimed task: {why}");
        let now = Utc::now();
        let mut to = row.clone();
        to.state = TaskState::Failed;
        to.ended_at = Some(now);
        to.updated_at = now;
        to.error = Some(why.to_string());
        let run_id = row.run_id;
        self.commit(run_id, vec![(TaskTransition::change(&row, to), None)])
            .await;
    }

    /// Writes the ends of the attempts in `done` (`interrupted`: stopped by shutdown).
    async fn record(
        &mut self,
        done: Vec<Result<(tokio::task::Id, Finished), tokio::task::JoinError>>,
        interrupted: bool,
    ) {
        let now = Utc::now();
        let mut by_run: BTreeMap<RunId, Vec<Ended>> = BTreeMap::new();
        for joined in done {
            let (id, end) = match joined {
                // A success stands even when a shutdown interrupted the wait for it.
                Ok((id, f)) if !interrupted || f.result.is_ok() => (id, End::Ran(f)),
                Ok((id, _)) => (id, End::Interrupted),
                Err(e) => (e.id(), End::Interrupted),
            };
            let Some(held) = self.attempts.remove(&id) else {
                continue;
            };
            if held.taken_back {
                continue;
            }
            by_run.entry(held.row.run_id).or_default().push(end_of(
                &held,
                end,
                now,
                &self.exec.notify,
            ));
        }
        for (run_id, ends) in by_run {
            self.commit(run_id, ends).await;
        }
    }

    /// Commits the ends of attempts of one run together and tells the run's owner. An
    /// attempt taken back meanwhile makes the whole batch stale: then each is written alone.
    async fn commit(&mut self, run_id: RunId, ends: Vec<Ended>) {
        let mut batch = Batch::new(run_id);
        for (t, n) in &ends {
            batch.tasks.push(t.clone());
            batch.notifications.extend(n.clone());
        }
        match self.exec.store.commit(&batch).await {
            Ok(()) => self.tell_owner(run_id).await,
            Err(StoreError::Conflict { .. }) if ends.len() > 1 => {
                for one in ends {
                    Box::pin(self.commit(run_id, vec![one])).await;
                }
            }
            Err(StoreError::Conflict { .. }) => {
                let t = batch.tasks.first();
                tracing::warn!(
                    run_id,
                    task_id = t.map_or("", |t| t.to.task_id.as_str()),
                    attempt = t.map_or(0, |t| t.expect_attempt),
                    "the attempt was taken back while it ran (its run was cancelled, it was marked by hand, or its lease ran out); its end is not recorded"
                );
            }
            Err(e) => {
                tracing::warn!(run_id, error = %Chain(&e), "could not record the end of an attempt; trying again at the next poll");
                self.unsent.push((run_id, ends));
            }
        }
    }

    async fn tell_owner(&self, run_id: RunId) {
        if self.dispatch.wake_owner(run_id) {
            return;
        }
        if let Err(e) = self.exec.store.signal(Signal::Ended(run_id)).await {
            // The owner's poll finds the end anyway.
            tracing::warn!(run_id, error = %Chain(&e), "could not signal the run's owner");
        }
    }

    /// Tries the unsent ends again.
    async fn flush(&mut self) {
        for (run_id, ends) in std::mem::take(&mut self.unsent) {
            self.commit(run_id, ends).await;
        }
    }

    /// Stops the attempts this worker no longer holds in the store.
    async fn check_held(&mut self) {
        if self.attempts.is_empty() {
            return;
        }
        let held: HashSet<(RunId, String, u32)> = match self.exec.store.held_by(&self.owner).await {
            Ok(h) => h.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "could not check the claimed tasks");
                return;
            }
        };
        for a in self.attempts.values_mut() {
            let key = (a.row.run_id, a.row.task_id.clone(), a.row.attempt);
            if !a.taken_back && !held.contains(&key) {
                tracing::warn!(run_id = a.row.run_id, task_id = %a.row.task_id, attempt = a.row.attempt, "this attempt was taken back (its run was cancelled, it was marked by hand, or its lease ran out); stopping it");
                a.taken_back = true;
                a.cancel.cancel();
            }
        }
    }

    /// The grace period is over: cancels every running attempt and records it to run again
    /// (a success that makes it in time stands).
    async fn interrupt_all(&mut self) {
        for a in self.attempts.values() {
            a.cancel.cancel();
        }
        let deadline =
            tokio::time::Instant::now() + self.exec.output.kill_grace + Duration::from_secs(1);
        let mut done = Vec::new();
        let mut aborted = false;
        loop {
            let joined = tokio::select! {
                joined = self.running.join_next_with_id() => joined,
                _ = tokio::time::sleep_until(deadline), if !aborted => {
                    self.running.abort_all();
                    aborted = true;
                    continue;
                }
            };
            match joined {
                Some(j) => done.push(j),
                None => break,
            }
        }
        self.record(done, true).await;
    }
}

/// The end of `held`'s attempt: its new state, result and log lines, and the message about a
/// failure.
fn end_of(
    held: &Running,
    end: End,
    now: DateTime<Utc>,
    notify: &crate::notify::NotifyConfig,
) -> Ended {
    let mut message = None;
    let (ctx, row, i) = (&held.ctx, &held.row, held.index);
    let mut to = row.clone();
    to.updated_at = now;
    to.ended_at = Some(now);
    let (output, logs) = match end {
        End::Interrupted => {
            to.state = TaskState::UpForRetry;
            to.max_attempts += 1;
            to.next_retry_at = Some(now);
            to.error = Some(format!(
                "attempt {} was interrupted by shutdown; it runs again",
                row.attempt
            ));
            (None, (0, Vec::new()))
        }
        End::Ran(f) => {
            let unstored = f.unstored_logs();
            let end = Outcome::of(
                &ctx.dag.tasks[i].retry,
                row.attempt,
                row.max_attempts,
                f.result,
                now,
            );
            to.state = end.state;
            to.error = end.error.clone();
            to.next_retry_at = end.next_retry_at;
            if let (TaskState::Failed | TaskState::UpForRetry, Some(error)) =
                (end.state, &end.error)
            {
                let failure = TaskFailure {
                    dag_id: &ctx.dag.id,
                    task_id: &row.task_id,
                    run_id: row.run_id,
                    logical_date: ctx.run.logical_date,
                    attempt: row.attempt,
                    max_attempts: row.max_attempts,
                    error,
                    next_attempt: end.next_retry_at,
                    logs: &f.logs,
                    base_url: &notify.base_url,
                };
                message = Messages::new(&ctx.dag, notify).task_failure(i, &failure);
            }
            (end.stored(), unstored)
        }
    };
    let t = TaskTransition {
        expect_state: TaskState::Running,
        expect_attempt: row.attempt,
        logs_attempt: row.attempt,
        logs_from: logs.0,
        to,
        output,
        logs: logs.1,
    };
    (t, message)
}
