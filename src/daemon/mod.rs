//! The composition root: `vigil daemon` as a set of services over one store — the scheduler,
//! the outbox worker, the heartbeat, retention, the DAG folder watcher and wake-ups from other
//! processes — started together in one `JoinSet` under one `CancellationToken`, and stopped
//! together.
//!
//! This is the one place that knows every service; each service knows only what it is given.
//! In-process callers reach the running daemon through its [`Handle`]: a wake-up that does not
//! go through a signal, and the stream of run and task events (for a live UI).

mod memory;
mod watch;

pub use memory::map_code_on_demand;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dag::DagSet;
use crate::run::{Dispatch, Executor, Limits, RunUpdate, Stop, UpdateObserver, Worker};
use crate::schedule::{Role, Scheduler, SchedulerSettings, load_in_background};
use crate::state::Wake;
use crate::state::owner;
use crate::store::{DaemonRecord, Presence, Store, StoreError};
use crate::task::{Registry, Task};

/// How many run events a slow listener may fall behind before it misses some (it is told how
/// many it missed; the store remains the record).
const EVENT_BUFFER: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Folder(#[from] crate::dag::FolderError),
    #[error("cannot watch the DAG folder {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: watch::WatchError,
    },
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    #[error("loading the DAG folder stopped: {0}")]
    Load(String),
    #[error("cannot set up notifications")]
    Notify(#[from] crate::notify::NotifyError),
    #[error(transparent)]
    Api(#[from] crate::api::ServeError),
    #[error(
        "a {role} daemon needs a database other daemons share (postgres://...); on SQLite one daemon both schedules and executes: drop --scheduler-only/--worker-only (or [daemon] role)"
    )]
    RoleOnSqlite { role: &'static str },
}

impl crate::state::Kind for DaemonError {
    fn kind(&self) -> crate::state::ErrorKind {
        use crate::state::ErrorKind;
        match self {
            DaemonError::Store(e) => e.kind(),
            DaemonError::Folder(e) => e.kind(),
            DaemonError::Notify(e) => e.kind(),
            DaemonError::Watch { .. } | DaemonError::Signals(_) => ErrorKind::Unavailable,
            DaemonError::Load(_) => ErrorKind::Internal,
            DaemonError::RoleOnSqlite { .. } => ErrorKind::Invalid,
            DaemonError::Api(e) => e.kind(),
        }
    }
}

/// Reaches a running daemon from inside its process.
#[derive(Debug, Clone)]
pub struct Handle {
    /// Makes the scheduler look at the database now (after an in-process trigger or pause).
    pub wake: Wake,
    events: broadcast::Sender<RunUpdate>,
}

impl Handle {
    fn new() -> Self {
        Handle {
            wake: Wake::new(),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    /// Every run and task event committed from now on, with its run, as the executor
    /// reports it.
    pub fn events(&self) -> broadcast::Receiver<RunUpdate> {
        self.events.subscribe()
    }

    fn observer(&self) -> UpdateObserver {
        let events = self.events.clone();
        // Nobody listening is fine: the event is in the store already.
        Arc::new(move |update: RunUpdate| {
            let _ = events.send(update);
        })
    }
}

/// Says at start when DAGs ask for email that cannot leave: messages still queue (and go
/// out once `[smtp]` is set), but whoever reads the log should know.
fn warn_unsendable(set: &DagSet, config: &Config) {
    if !config.smtp.host.is_empty() {
        return;
    }
    let defaults = config.notify.defaults();
    let wanting: Vec<&str> = set
        .dags
        .values()
        .filter(|d| {
            let n = d.notify.or(&defaults);
            let tasks = d.tasks.iter().map(|t| t.notify.or(&n));
            std::iter::once(n.clone())
                .chain(tasks)
                .any(|n| !n.email_on_failure.is_empty() || !n.email_on_retry.is_empty())
        })
        .map(|d| d.id.as_str())
        .collect();
    if !wanting.is_empty() {
        tracing::warn!(
            dags = %wanting.join(", "),
            "these DAGs send email but [smtp] host is not set; their messages wait in the outbox (`vigil notify list`)"
        );
    }
}

/// Builds a [`Daemon`]: the config, and the task types beyond the built-in ones.
pub struct DaemonBuilder {
    config: Config,
    registry: Registry,
}

impl DaemonBuilder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Registers a task type (see [`Registry::register`]).
    pub fn task<T: Task>(mut self, name: impl Into<String>, task: T) -> Self {
        self.registry.register(name, task);
        self
    }

    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    pub fn build(self) -> Daemon {
        Daemon {
            config: self.config,
            registry: Arc::new(self.registry),
            handle: Handle::new(),
        }
    }

    /// Builds and runs the daemon until SIGTERM or SIGINT.
    pub async fn run(self) -> Result<(), DaemonError> {
        self.build().run().await
    }
}

pub struct Daemon {
    config: Config,
    registry: Arc<Registry>,
    handle: Handle,
}

impl Daemon {
    /// Built-in task types and the default config (`config/vigil.toml` is not read; pass a
    /// loaded [`Config`] with [`DaemonBuilder::config`]).
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder {
            config: Config::default(),
            registry: crate::tasks::builtin(),
        }
    }

    /// The way in from this process, for services started beside the daemon.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs until SIGTERM or SIGINT; a second one stops running tasks without waiting out
    /// the grace period (they run again at the next start).
    pub async fn run(self) -> Result<(), DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
        let (first, first_rx) = tokio::sync::oneshot::channel::<()>();
        let hurry = CancellationToken::new();
        let signals = {
            let hurry = hurry.clone();
            tokio::spawn(async move {
                let mut first = Some(first);
                loop {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    match first.take() {
                        Some(tx) => {
                            tracing::info!("{name}: shutting down");
                            let _ = tx.send(());
                        }
                        None => {
                            tracing::info!("{name} again: not waiting for running tasks");
                            hurry.cancel();
                            return;
                        }
                    }
                }
            })
        };
        let result = self
            .run_until_hurried(
                async {
                    let _ = first_rx.await;
                },
                hurry,
            )
            .await;
        signals.abort();
        result
    }

    /// Runs until `shutdown` resolves, then stops: no new runs, running tasks get
    /// `daemon.shutdown_grace` to finish, the rest are recorded to run again; then every
    /// other service is cancelled and awaited.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        self.run_until_hurried(shutdown, CancellationToken::new())
            .await
    }

    /// [`Daemon::run_until`], where cancelling `hurry` during the shutdown stops running
    /// tasks at once instead of after the grace period.
    pub async fn run_until_hurried(
        self,
        shutdown: impl Future<Output = ()>,
        hurry: CancellationToken,
    ) -> Result<(), DaemonError> {
        let url = &self.config.database.url;
        let role = self.config.daemon.role;
        let shared = crate::store::is_postgres(url);
        if role != Role::Both && !shared {
            return Err(DaemonError::RoleOnSqlite {
                role: role.as_str(),
            });
        }
        let owner = owner::current();
        let mut presence = Presence::enter(url, &owner)?;
        let store = crate::store::open(url, self.config.database.synchronous).await?;
        let folder = self.config.dags.folder.clone();
        // Watch before the first load: a file written while the daemon starts is then either in
        // that load or reported to the watcher, never in between and missed.
        let (file_tx, file_rx) = mpsc::unbounded_channel();
        let watcher = watch::folder(&folder, file_tx);
        let set = load_in_background(folder.clone(), self.registry.clone())
            .await
            .map_err(|e| DaemonError::Load(e.to_string()))??;
        // A folder that cannot be read is reported by the load, which says more.
        let _watcher = watcher?;
        // Bound before anything runs, so a port in use (or an exposed address without a
        // token) stops the start.
        let api = crate::api::bind(&self.config.api).await?;
        // Set up delivery before anything runs, so a wrong SMTP setting stops the start
        // rather than the first failure mail.
        let sender = crate::notify::Sender::new(
            store.clone(),
            &self.config.smtp,
            &self.config.notify,
            &owner,
        )?;
        tracing::info!(
            owner = %owner,
            database = %crate::store::display_url(url),
            dags = set.dags.len(),
            broken_files = set.errors.len(),
            "daemon started"
        );
        for e in &set.errors {
            tracing::error!("{e}");
        }
        warn_unsendable(&set, &self.config);

        let background = CancellationToken::new();
        let mut services = JoinSet::new();
        let outbox = Wake::new();
        services.spawn(sender.run(
            outbox.clone(),
            self.config.notify.poll_interval,
            background.clone(),
        ));
        let limits = Arc::new(Limits::new(self.config.executor.parallelism));
        // A scheduler-only daemon runs no task: it has no slots to show.
        let slots = match role {
            Role::Scheduler => 0,
            _ => u32::try_from(limits.parallelism()).unwrap_or(u32::MAX),
        };
        store
            .announce(&DaemonRecord {
                owner: owner.clone(),
                role: self.config.daemon.role.as_str().into(),
                host: owner::hostname(),
                pid: i64::from(std::process::id()),
                version: env!("CARGO_PKG_VERSION").into(),
                slots,
                slots_in_use: 0,
                started_at: Utc::now(),
                heartbeat_at: Utc::now(),
            })
            .await?;
        services.spawn(crate::run::owner::heartbeat_loop(
            store.clone(),
            owner.clone(),
            self.config.daemon.heartbeat_interval,
            background.clone(),
            Some(limits.clone()),
        ));
        let (dag_feed, dags) = tokio::sync::watch::channel(Arc::new(set.clone()));
        let pulse = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let metrics = crate::api::Metrics::default();
        services.spawn(metrics.clone().record(
            self.handle.events(),
            dags.clone(),
            background.clone(),
        ));
        if let Some(listener) = api {
            tracing::info!(address = %format!("http://{}", listener.addr), "API listening");
            let state = crate::api::ApiState {
                pulse: Some(pulse.clone()),
                // The loop steps at least once per lease (its lease check).
                pulse_within: self.config.daemon.lease * 2 + Duration::from_secs(5),
                metrics: Some(metrics.clone()),
                ..crate::api::ApiState::new(
                    store.clone(),
                    dags,
                    folder.clone(),
                    self.registry.clone(),
                    crate::ops::Waker::InProcess(self.handle.wake.clone()),
                    self.config.notify.defaults().alert_audience(),
                    background.clone(),
                )
            };
            services.spawn(crate::api::serve(listener, Arc::new(state)));
        }
        services.spawn(memory::trim_loop(background.clone()));
        services.spawn(retention_loop(
            store.clone(),
            self.config.retention.max_age,
            self.config.retention.interval,
            background.clone(),
        ));
        // On a shared database every daemon's worker takes tasks from every run (see
        // `run::dispatch`); on SQLite the one daemon runs its runs' tasks itself.
        let dispatch = shared.then(|| {
            Dispatch::new(
                self.config.daemon.lease,
                self.config.daemon.heartbeat_interval,
            )
        });
        {
            let wake = self.handle.wake.clone();
            let stop = background.clone();
            let dispatch = dispatch.clone();
            services.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        signal = presence.woken() => match &dispatch {
                            Some(d) => d.route(signal, &wake),
                            None => wake.wake(),
                        },
                    }
                }
            });
        }

        let mut executor = Executor::new(store.clone(), self.registry.clone(), limits)
            .with_notify(self.config.notify.clone())
            .with_output_limits(self.config.executor.output_limits());
        if let Some(d) = &dispatch {
            executor = executor.with_dispatch(d.clone());
        }
        // Draining starts when `shutdown` resolves, for the scheduler and the worker alike.
        let drain = CancellationToken::new();
        let worker = match &dispatch {
            Some(d) if role != Role::Scheduler => {
                let stop = Stop {
                    drain: drain.clone(),
                    grace: self.config.daemon.shutdown_grace,
                    cancel: hurry.clone(),
                };
                Some(tokio::spawn(
                    Worker::new(executor.clone(), owner.clone(), d.clone()).run(stop),
                ))
            }
            _ => None,
        };
        let shutdown = {
            let drain = drain.clone();
            async move {
                shutdown.await;
                drain.cancel();
            }
        };
        let settings = SchedulerSettings {
            owner: owner.clone(),
            folder,
            lease: self.config.daemon.lease,
            shutdown_grace: self.config.daemon.shutdown_grace,
            notify: self.config.notify.clone(),
            role: self.config.daemon.role,
        };
        Scheduler::new(
            store.clone(),
            self.registry.clone(),
            executor,
            settings,
            outbox,
            set,
        )
        .with_observer(self.handle.observer())
        .with_dag_feed(dag_feed)
        .with_pulse(pulse)
        .hurried_by(hurry)
        .run(shutdown, self.handle.wake.clone(), file_rx)
        .await;
        // The scheduler returns once draining; the worker's attempts have the same grace.
        drain.cancel();
        if let Some(worker) = worker
            && let Err(e) = worker.await
        {
            tracing::error!("the worker stopped unexpectedly: {e}");
        }
        background.cancel();
        while services.join_next().await.is_some() {}
        if let Err(e) = store.leave(&owner).await {
            tracing::warn!(error = %crate::state::Chain(&e), "could not remove this daemon from `vigil daemons`");
        }
        tracing::info!("daemon stopped");
        Ok(())
    }
}

/// Deletes runs older than `max_age` now and every `interval`.
async fn retention_loop(
    store: Arc<dyn Store>,
    max_age: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let before = Utc::now() - chrono::Duration::from_std(max_age).unwrap_or_default();
        match store.cleanup(before).await {
            Ok(c) if c.runs > 0 => tracing::info!(
                runs = c.runs,
                task_instances = c.task_instances,
                results = c.results,
                log_lines = c.log_lines,
                "removed runs older than the retention period"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %crate::state::Chain(&e), "retention cleanup failed"),
        }
        // Daemons that died without leaving, silent for a day.
        if let Err(e) = store
            .forget_daemons(Utc::now() - chrono::Duration::days(1))
            .await
        {
            tracing::warn!(error = %crate::state::Chain(&e), "forgetting dead daemons failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// `vigil api`: the API alone, against the database the daemons use (several may run on
/// PostgreSQL). It reloads the DAG folder when it changes, and stops on SIGTERM or SIGINT.
/// Triggers and pauses wake the daemons through the store.
pub async fn serve_api(config: &Config, registry: Arc<Registry>) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    // Bound first: an exposed address without a token is refused before the database is
    // opened (or created).
    let Some(listener) = crate::api::bind(&config.api).await? else {
        tracing::warn!("`[api] listen` is `off`: nothing to serve");
        return Ok(());
    };
    let store = crate::store::open(&config.database.url, config.database.synchronous).await?;
    let folder = config.dags.folder.clone();
    let load = || load_in_background(folder.clone(), registry.clone());
    // Watch before the first load, as the daemon does.
    let (file_tx, mut file_rx) = mpsc::unbounded_channel();
    let watcher = watch::folder(&folder, file_tx);
    let set = load()
        .await
        .map_err(|e| DaemonError::Load(e.to_string()))??;
    let _watcher = watcher?;
    tracing::info!(address = %format!("http://{}", listener.addr), database = %crate::store::display_url(&config.database.url), "API listening");
    let (feed, dags) = tokio::sync::watch::channel(Arc::new(set));
    let stop = CancellationToken::new();
    let state = crate::api::ApiState::new(
        store,
        dags,
        folder.clone(),
        registry.clone(),
        crate::ops::Waker::Daemons,
        config.notify.defaults().alert_audience(),
        stop.clone(),
    );
    let server = tokio::spawn(crate::api::serve(listener, Arc::new(state)));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some(()) = file_rx.recv() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                while file_rx.try_recv().is_ok() {}
                match load().await {
                    Ok(Ok(set)) => {
                        feed.send_replace(Arc::new(set));
                    }
                    Ok(Err(e)) => tracing::error!("{}", crate::state::Chain(&e)),
                    Err(e) => tracing::error!("reloading the DAG folder stopped: {e}"),
                }
            }
        }
    }
    stop.cancel();
    let _ = server.await;
    tracing::info!("API stopped");
    Ok(())
}
