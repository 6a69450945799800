//! The scheduler service: creates a run for every due cron tick, starts queued runs
//! (triggered by anyone) within `max_active_runs`, resumes runs whose owner died, reloads
//! DAG files as they change, and stops cleanly. `crate::daemon` composes it with the other
//! services.
//!
//! It waits with `select!` on the next due tick, a wake-up (a trigger or pause, a run
//! finishing, a DAG file changing) or shutdown — never a fixed polling sleep. The one periodic
//! activation is the lease check, which takes over runs whose owner stopped heartbeating.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dag::{Dag, DagSet, parse_dag};
use crate::notify::NotifyConfig;
use crate::run::{
    ExecError, Executor, Observer, RunEvent, RunUpdate, Stop, UpdateObserver, plan_run,
};
use crate::schedule::cron::{Window, due, next_after, previous_before};
use crate::state::failpoint::crash_point;
use crate::state::owner;
use crate::state::{RunState, Wake};
use crate::store::{DagState, NewRun, RunId, RunRecord, RunType, Store, StoreError};
use crate::task::Registry;

/// What a daemon does on a database it may share with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Creates the runs cron schedules, owns runs and executes tasks (the default).
    #[default]
    Both,
    /// Creates runs (cron ticks, catch-up), owns them (decides what is ready, retries, ends
    /// them) and carries out cancels; executes no task.
    Scheduler,
    /// Only executes the task instances it claims from any run; creates and owns no run.
    Worker,
}

impl Role {
    /// As `vigil daemons` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Both => "scheduler+worker",
            Role::Scheduler => "scheduler",
            Role::Worker => "worker",
        }
    }
}

/// What the scheduler needs to know beyond its collaborators.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// This process as a run owner (`pid@host`).
    pub owner: String,
    /// The DAG folder, reloaded when it changes.
    pub folder: PathBuf,
    /// A run whose owner has not heartbeat for this long is taken over.
    pub lease: Duration,
    /// At shutdown, how long running tasks may take before they are interrupted.
    pub shutdown_grace: Duration,
    /// Who hears about a run that cannot start.
    pub notify: NotifyConfig,
    pub role: Role,
}

/// The scheduler: owns the loaded DAGs and the runs this process executes.
pub struct Scheduler {
    store: Arc<dyn Store>,
    notify: NotifyConfig,
    /// Wakes the outbox worker: a run that ended may have queued a message.
    outbox: Wake,
    /// Told of every committed run and task event (the live UI listens).
    observer: Option<UpdateObserver>,
    registry: Arc<Registry>,
    executor: Executor,
    owner: String,
    folder: PathBuf,
    lease: Duration,
    role: Role,
    /// The last good version of each DAG file, by file.
    files: BTreeMap<PathBuf, Arc<Dag>>,
    /// Scheduler state of each DAG, refreshed at every wake-up.
    states: HashMap<String, DagState>,
    /// Runs this daemon is executing, with their DAG and the token that stops them at once
    /// (a child of `hurry`).
    active: HashMap<RunId, (String, CancellationToken)>,
    /// Runs stopped because someone asked to cancel them: ended `failed` when they return.
    cancelling: std::collections::HashSet<RunId>,
    /// Cancelled during shutdown (a second Ctrl-C): running attempts stop now, without the
    /// grace period, and are recorded to run again.
    hurry: CancellationToken,
    runs: JoinSet<(RunId, Result<RunState, ExecError>)>,
    /// A reload of the DAG folder in progress on the blocking pool. The loop keeps scheduling
    /// with the DAGs it has while a slow (or hostile) file is parsed.
    loading: Option<tokio::task::JoinHandle<Result<DagSet, crate::dag::FolderError>>>,
    /// Files changed during the reload in progress: load again when it ends.
    reload_again: bool,
    stop: Stop,
    /// Told of every folder (re)load, as loaded (the API lists DAGs and their load errors).
    feed: Option<tokio::sync::watch::Sender<Arc<DagSet>>>,
    /// Stamped with the time of every step (Unix seconds): `/readyz` reads it.
    pulse: Option<Arc<std::sync::atomic::AtomicI64>>,
}

/// Loads the DAG folder on the blocking pool: parsing and template checks are CPU work that
/// must not run on the scheduler's thread.
pub fn load_in_background(
    folder: PathBuf,
    registry: Arc<Registry>,
) -> tokio::task::JoinHandle<Result<DagSet, crate::dag::FolderError>> {
    tokio::task::spawn_blocking(move || DagSet::load_folder(&folder, &registry))
}

impl Scheduler {
    /// A scheduler over `dags` (the folder as loaded at start). `outbox` is woken whenever a
    /// run ends, since it may have queued a message.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        executor: Executor,
        settings: SchedulerSettings,
        outbox: Wake,
        dags: DagSet,
    ) -> Self {
        let mut scheduler = Scheduler {
            executor,
            notify: settings.notify,
            outbox,
            observer: None,
            store,
            registry,
            owner: settings.owner,
            folder: settings.folder,
            lease: settings.lease,
            role: settings.role,
            files: BTreeMap::new(),
            states: HashMap::new(),
            active: HashMap::new(),
            cancelling: std::collections::HashSet::new(),
            hurry: CancellationToken::new(),
            runs: JoinSet::new(),
            loading: None,
            reload_again: false,
            stop: Stop {
                drain: CancellationToken::new(),
                grace: settings.shutdown_grace,
                cancel: CancellationToken::new(),
            },
            feed: None,
            pulse: None,
        };
        scheduler.adopt(dags);
        scheduler
    }

    /// At shutdown, cancelling `hurry` stops running attempts at once instead of after the
    /// grace period (the daemon does it on a second Ctrl-C).
    pub fn hurried_by(mut self, hurry: CancellationToken) -> Self {
        self.hurry = hurry;
        self
    }

    /// Stamps `pulse` with the time of every step, so others can tell the loop is alive.
    pub fn with_pulse(mut self, pulse: Arc<std::sync::atomic::AtomicI64>) -> Self {
        self.pulse = Some(pulse);
        self
    }

    /// Publishes every reload of the DAG folder to `feed`.
    pub fn with_dag_feed(mut self, feed: tokio::sync::watch::Sender<Arc<DagSet>>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Tells `observer` of every event of the runs this scheduler executes.
    pub fn with_observer(mut self, observer: UpdateObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Schedules until `shutdown` resolves, then stops: no new runs; running tasks get the
    /// grace period, the rest are recorded to run again. `wake` makes it look now (a trigger,
    /// a pause); `files` says the DAG folder changed.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        wake: Wake,
        files: mpsc::UnboundedReceiver<()>,
    ) {
        self.main_loop(shutdown, wake, files).await;
        self.shut_down().await;
    }

    async fn main_loop(
        &mut self,
        shutdown: impl Future<Output = ()>,
        wake: Wake,
        mut files: mpsc::UnboundedReceiver<()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let now = Utc::now();
            if let Err(e) = self.step(now).await {
                // A store hiccup must not kill the daemon; the next wake-up tries again.
                tracing::error!(error = %crate::state::Chain(&e), "scheduler step failed");
            }
            let next_tick = self.next_tick(now);
            // Runs owned by a process that stopped heartbeating become ours after the lease.
            let lease_check = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
            let until = next_tick.map_or(lease_check, |t| t.min(lease_check));
            let wait = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
                _ = wake.woken() => {}
                Some(()) = files.recv() => {
                    // Editors write in bursts; let the burst settle, then reload once.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while files.try_recv().is_ok() {}
                    self.request_reload();
                }
                loaded = async {
                    match self.loading.as_mut() {
                        Some(handle) => handle.await,
                        None => std::future::pending().await,
                    }
                }, if self.loading.is_some() => {
                    self.loading = None;
                    match loaded {
                        Ok(Ok(set)) => self.reloaded(set),
                        Ok(Err(e)) => tracing::error!("{}; keeping the DAGs already loaded", crate::state::Chain(&e)),
                        Err(e) => tracing::error!("reloading the DAG folder stopped: {e}; keeping the DAGs already loaded"),
                    }
                    if std::mem::take(&mut self.reload_again) {
                        self.request_reload();
                    }
                }
                Some(joined) = self.runs.join_next(), if !self.runs.is_empty() => {
                    self.finished(joined).await;
                    while let Some(joined) = self.runs.try_join_next() {
                        self.finished(joined).await;
                    }
                    self.outbox.wake();
                }
            }
        }
    }

    /// The current good DAGs by id.
    fn dags(&self) -> BTreeMap<&str, &Arc<Dag>> {
        self.files.values().map(|d| (d.id.as_str(), d)).collect()
    }

    /// Replaces the loaded DAGs with `set`, keeping the last good version of a file that
    /// broke.
    fn adopt(&mut self, set: DagSet) {
        let mut files = BTreeMap::new();
        for dag in set.dags.values() {
            files.insert(dag.file.clone(), dag.clone());
        }
        for e in &set.errors {
            if let Some(previous) = self.files.remove(&e.file) {
                tracing::error!(
                    dag_id = %previous.id,
                    "{e}\nkeeping the last good version of {}",
                    e.file.display()
                );
                files.insert(e.file.clone(), previous);
            }
        }
        self.files = files;
    }

    /// Starts reloading the DAG folder after a change (or marks that another reload is due
    /// when one is already running).
    fn request_reload(&mut self) {
        if self.loading.is_some() {
            self.reload_again = true;
        } else {
            self.loading = Some(load_in_background(
                self.folder.clone(),
                self.registry.clone(),
            ));
        }
    }

    /// Adopts a reloaded DAG folder, saying what was added, changed and removed.
    fn reloaded(&mut self, set: DagSet) {
        if let Some(feed) = &self.feed {
            feed.send_replace(Arc::new(set.clone()));
        }
        let before: BTreeMap<String, String> = self
            .dags()
            .iter()
            .map(|(id, d)| (id.to_string(), d.source.clone()))
            .collect();
        for e in &set.errors {
            if !self.files.contains_key(&e.file) {
                tracing::error!("{e}");
            }
        }
        self.adopt(set);
        let after = self.dags();
        for (id, dag) in &after {
            match before.get(*id) {
                None => tracing::info!(dag_id = %id, file = %dag.file.display(), "DAG added"),
                Some(src) if *src != dag.source => tracing::info!(dag_id = %id, "DAG changed"),
                Some(_) => {}
            }
        }
        for id in before.keys() {
            if !after.contains_key(id.as_str()) {
                tracing::info!(dag_id = %id, "DAG removed; its runs in progress finish");
            }
        }
    }

    /// One pass at `now`: create due scheduled runs, then start what may start. The loop
    /// calls it at every wake-up; tests call it with the time they mean.
    pub async fn step(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(pulse) = &self.pulse {
            pulse.store(Utc::now().timestamp(), std::sync::atomic::Ordering::Relaxed);
        }
        self.states = self
            .store
            .dag_states()
            .await?
            .into_iter()
            .map(|s| (s.dag_id.clone(), s))
            .collect();
        let unfinished = self.store.unfinished_runs().await?;
        let dags: Vec<Arc<Dag>> = self.dags().values().map(|d| (*d).clone()).collect();
        for dag in &dags {
            let state = match self.states.get(&dag.id) {
                Some(s) => s.clone(),
                None => {
                    let s = self.store.dag_state(&dag.id, now, dag.paused).await?;
                    if s.paused && dag.paused {
                        tracing::info!(dag_id = %dag.id, "new DAG starts paused; `vigil dags unpause` it to schedule it");
                    }
                    self.states.insert(dag.id.clone(), s.clone());
                    s
                }
            };
            if state.paused || self.role == Role::Worker {
                continue;
            }
            let Some(schedule) = &dag.schedule else {
                continue;
            };
            let active = unfinished.iter().filter(|r| r.dag_id == dag.id).count();
            let room = if dag.catchup {
                (dag.max_active_runs as usize).saturating_sub(active)
            } else {
                1
            };
            let window = Window {
                start: dag.start_date.unwrap_or(state.first_seen),
                end: dag.end_date,
                catchup: dag.catchup,
            };
            for tick in due(
                &schedule.cron,
                dag.timezone,
                &window,
                state.last_tick,
                now,
                room,
            ) {
                self.create_scheduled(dag, tick).await?;
            }
        }
        let unfinished = self.store.unfinished_runs().await?;
        // Leases are judged by the store's clock (the database server's once several hosts
        // share it), not by `now`, which drives the schedule.
        let stale_before = crate::store::stale_before(self.store.now().await?, self.lease);
        let unfinished = self.carry_out_cancels(unfinished, stale_before).await?;
        if self.role == Role::Worker {
            return Ok(());
        }
        self.start_runs(unfinished, stale_before).await
    }

    /// Stops the runs someone asked to cancel: one this daemon executes is stopped now (its
    /// attempts cancelled) and ended when its executor returns; one nobody executes is ended
    /// here. Returns the runs still to consider.
    async fn carry_out_cancels(
        &mut self,
        unfinished: Vec<RunRecord>,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut rest = Vec::with_capacity(unfinished.len());
        for run in unfinished {
            let Some(by) = &run.cancel_requested else {
                rest.push(run);
                continue;
            };
            if let Some((_, cancel)) = self.active.get(&run.id) {
                if self.cancelling.insert(run.id) {
                    tracing::info!(run_id = run.id, by = %by, "cancelling run");
                    cancel.cancel();
                }
                continue;
            }
            if self.held_elsewhere(&run, stale_before) {
                rest.push(run);
                continue;
            }
            tracing::info!(run_id = run.id, by = %by, "cancelled run that nobody executes");
            crate::run::cancel::end_cancelled(self.store.as_ref(), run.id, by).await?;
        }
        Ok(rest)
    }

    /// Creates the run of one tick; a run that exists already (a restart, a race) is fine.
    async fn create_scheduled(&mut self, dag: &Dag, tick: DateTime<Utc>) -> Result<(), StoreError> {
        let Some(schedule) = &dag.schedule else {
            return Ok(());
        };
        let new = match plan_run(
            dag,
            serde_json::Value::Null,
            RunType::Scheduled,
            tick,
            RunState::Queued,
            None,
        ) {
            // A scheduled run covers the interval from the previous tick to its own.
            Ok(new) => NewRun {
                data_interval_start: previous_before(&schedule.cron, dag.timezone, tick)
                    .unwrap_or(tick),
                ..new
            },
            Err(e) => {
                tracing::error!(dag_id = %dag.id, "{e}");
                return Ok(());
            }
        };
        match self.store.create_run(&new).await {
            Ok(run) => {
                crash_point("scheduler.after_run_created");
                tracing::info!(dag_id = %dag.id, run_id = run.id, logical_date = %tick, "scheduled run created")
            }
            Err(StoreError::RunExists { .. }) => {}
            Err(e) => return Err(e),
        }
        self.store.set_last_tick(&dag.id, tick).await?;
        if let Some(s) = self.states.get_mut(&dag.id) {
            s.last_tick = Some(tick);
        }
        Ok(())
    }

    /// Whether another live process executes `run`: it has an owner that is not us, not a
    /// dead process on this host, and heartbeat since `stale_before`.
    fn held_elsewhere(&self, run: &RunRecord, stale_before: DateTime<Utc>) -> bool {
        match &run.owner {
            Some(o) if *o == self.owner || owner::is_dead_here(o) => false,
            Some(_) => run.heartbeat_at.is_some_and(|h| h >= stale_before),
            None => false,
        }
    }

    /// Claims and starts queued runs (oldest first, within `max_active_runs`) and running runs
    /// whose owner is gone.
    async fn start_runs(
        &mut self,
        unfinished: Vec<RunRecord>,
        stale_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.stop.drain.is_cancelled() {
            return Ok(());
        }
        // Runs that count against max_active_runs: running in the store, or launched by us
        // and not yet marked running.
        let mut running: HashMap<String, usize> = HashMap::new();
        for r in &unfinished {
            if r.state == RunState::Running || self.active.contains_key(&r.id) {
                *running.entry(r.dag_id.clone()).or_default() += 1;
            }
        }
        for run in unfinished {
            if self.active.contains_key(&run.id) {
                continue;
            }
            if self.held_elsewhere(&run, stale_before) {
                continue;
            }
            let paused = self.states.get(&run.dag_id).is_some_and(|s| s.paused);
            // A dead owner on this host: take over now rather than after the lease — from that
            // owner only, so another daemon that got there first keeps the run.
            let dead = run.owner.as_deref().filter(|o| owner::is_dead_here(o));
            let claimed = if run.state == RunState::Queued {
                if paused {
                    continue;
                }
                let max = self
                    .dags()
                    .get(run.dag_id.as_str())
                    .map_or(1, |d| d.max_active_runs);
                // What this daemon knows first; the store decides across daemons.
                let n = running.entry(run.dag_id.clone()).or_default();
                if *n >= max as usize {
                    continue;
                }
                let claimed = self
                    .store
                    .claim_queued_run(run.id, &self.owner, self.lease, dead, max)
                    .await?;
                if claimed {
                    *n += 1;
                }
                claimed
            } else {
                self.store
                    .claim_run(run.id, &self.owner, self.lease, dead)
                    .await?
            };
            if !claimed {
                continue;
            }
            match self.dag_of(&run) {
                Ok(dag) => self.launch(run, dag),
                Err(why) => self.fail_run(&run, &why).await,
            }
        }
        Ok(())
    }

    /// Ends a run that can never execute (its DAG version no longer loads), so it does not
    /// stay unfinished forever.
    async fn fail_run(&self, run: &RunRecord, why: &str) {
        tracing::error!(dag_id = %run.dag_id, run_id = run.id, "failing the run: {why}");
        let mut batch = crate::store::Batch::new(run.id);
        batch.run = Some(crate::store::RunTransition {
            expect: run.state,
            to: RunState::Failed,
            at: Utc::now(),
            note: None,
        });
        // Who hears: the DAG as it is now, if it loads, else the defaults.
        let defaults = self.notify.defaults();
        let to = match self.dags().get(run.dag_id.as_str()) {
            Some(d) => d.notify.or(&defaults),
            None => defaults,
        }
        .alert_audience();
        if !to.is_empty() {
            batch
                .notifications
                .push(crate::notify::message::run_failure(
                    &crate::notify::message::RunFailure {
                        dag_id: &run.dag_id,
                        run_id: run.id,
                        logical_date: run.logical_date,
                        failed: Vec::new(),
                        reason: Some(why),
                        base_url: &self.notify.base_url,
                    },
                    to,
                ));
        }
        if let Err(e) = self.store.commit(&batch).await {
            tracing::error!(run_id = run.id, error = %crate::state::Chain(&e), "could not record the run as failed");
        }
        self.outbox.wake();
    }

    /// The DAG version `run` was created from, or why it no longer loads.
    fn dag_of(&self, run: &RunRecord) -> Result<Arc<Dag>, String> {
        match self.dags().get(run.dag_id.as_str()) {
            Some(d) if d.source == run.dag_source => Ok((*d).clone()),
            _ => parse_dag(
                std::path::Path::new(&run.dag_file),
                &run.dag_source,
                &self.registry,
            )
            .map(Arc::new)
            .map_err(|e| format!("the DAG version of this run no longer loads:\n{e}")),
        }
    }

    /// Executes `run` with `dag`, the version it was created from.
    fn launch(&mut self, run: RunRecord, dag: Arc<Dag>) {
        tracing::info!(dag_id = %run.dag_id, run_id = run.id, state = %run.state, "starting run");
        let cancel = self.hurry.child_token();
        self.active
            .insert(run.id, (run.dag_id.clone(), cancel.clone()));
        let executor = self.executor.clone();
        let stop = Stop {
            cancel,
            ..self.stop.clone()
        };
        let id = run.id;
        let observer = self.observer.clone().map(|o| -> Observer {
            let dag_id = run.dag_id.clone();
            Arc::new(move |event: &RunEvent| {
                o(RunUpdate {
                    run_id: id,
                    dag_id: dag_id.clone(),
                    event: event.clone(),
                })
            })
        });
        self.runs.spawn(async move {
            let result = executor.execute_until(dag, run, observer, &stop).await;
            (id, result)
        });
    }

    async fn finished(
        &mut self,
        joined: Result<(RunId, Result<RunState, ExecError>), tokio::task::JoinError>,
    ) {
        let Ok((run_id, result)) = joined else {
            tracing::error!("a run executor stopped unexpectedly");
            return;
        };
        let (dag_id, _) = self.active.remove(&run_id).unwrap_or_default();
        let cancelled = self.cancelling.remove(&run_id);
        match result {
            Ok(state) => tracing::info!(%dag_id, run_id, %state, "run finished"),
            Err(ExecError::Interrupted(_)) if cancelled => {
                let by = match self.store.run(run_id).await {
                    Ok(Some(run)) => run.cancel_requested.unwrap_or_default(),
                    _ => String::new(),
                };
                match crate::run::cancel::end_cancelled(self.store.as_ref(), run_id, &by).await {
                    Ok(()) => tracing::info!(%dag_id, run_id, "run cancelled"),
                    Err(e) => {
                        tracing::error!(run_id, error = %crate::state::Chain(&e), "could not end the cancelled run; the next step tries again")
                    }
                }
                if let Err(e) = self.store.release_run(run_id, &self.owner).await {
                    tracing::warn!(run_id, error = %crate::state::Chain(&e), "could not release the run");
                }
            }
            Err(ExecError::Interrupted(_)) => {
                tracing::info!(%dag_id, run_id, "run interrupted; it resumes when a daemon starts");
                if let Err(e) = self.store.release_run(run_id, &self.owner).await {
                    tracing::warn!(run_id, error = %crate::state::Chain(&e), "could not release the run");
                }
            }
            Err(ExecError::Mismatch { detail, .. }) => {
                // The run cannot execute with its own DAG version; retrying will not help.
                if let Ok(Some(run)) = self.store.run(run_id).await {
                    self.fail_run(&run, &detail).await;
                }
            }
            Err(e) => {
                // A store error: give the run up; the next step claims and resumes it.
                tracing::error!(%dag_id, run_id, error = %crate::state::Chain(&e), "run stopped with an error; it will be resumed");
                if let Err(e) = self.store.release_run(run_id, &self.owner).await {
                    tracing::warn!(run_id, error = %crate::state::Chain(&e), "could not release the run");
                }
            }
        }
    }

    /// The earliest upcoming tick of any unpaused scheduled DAG.
    fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.dags()
            .values()
            .filter(|d| !self.states.get(&d.id).is_some_and(|s| s.paused))
            .filter_map(|d| {
                let s = d.schedule.as_ref()?;
                let from = self
                    .states
                    .get(&d.id)
                    .and_then(|st| st.last_tick)
                    .map_or(now, |t| t.max(now));
                let next = next_after(&s.cron, d.timezone, from)?;
                match d.end_date {
                    Some(end) if next > end => None,
                    _ => Some(next),
                }
            })
            .min()
    }

    /// Stops: no new runs; running ones get the grace period, then are interrupted.
    async fn shut_down(&mut self) {
        self.stop.drain.cancel();
        if !self.active.is_empty() {
            tracing::info!(
                runs = self.active.len(),
                grace = %humantime::format_duration(self.stop.grace),
                "stopping: no new tasks start; running tasks get the grace period to finish, then run again at the next start (Ctrl-C again stops them now)"
            );
        }
        let hurry = self.hurry.clone();
        let mut hurried = hurry.is_cancelled();
        let released = !self.active.is_empty();
        loop {
            tokio::select! {
                joined = self.runs.join_next() => match joined {
                    Some(joined) => self.finished(joined).await,
                    None => break,
                },
                _ = hurry.cancelled(), if !hurried => {
                    hurried = true;
                    tracing::info!("stopping running tasks now; they run again at the next start");
                }
            }
        }
        // Other daemons on a shared database take the released runs over now, not at their
        // next lease check.
        if released && let Err(e) = self.store.signal(crate::store::Signal::Look).await {
            tracing::warn!(error = %crate::state::Chain(&e), "could not tell the other daemons about the released runs");
        }
    }
}
