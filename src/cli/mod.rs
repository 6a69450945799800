//! The `vigil` command line. Parses, calls the library, prints; `anyhow` lives only here.
//!
//! Exit codes: 0 success; 1 failure (a run failed, a DAG file has errors, bad input, any other
//! error); 2 the command line itself is wrong.

mod bench;
mod dags;
mod demo;
mod model;
mod notify;
mod output;
mod risk;
mod runs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::dag::DagSet;
use crate::run::{Executor, Limits};
use crate::store::Store;
use crate::task::Registry;

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "A lightweight workflow scheduler for ML model operations",
    after_help = "Exit codes: 0 success, 1 failure (run failed, invalid DAG, bad input), 2 usage error, 3 `model check` found production DEGRADED, 3 and 4 `risk score` says review and block, 124 `dags trigger --wait --timeout` gave up waiting, 130 a wait was interrupted (Ctrl-C)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file [default: config/vigil.toml if it exists]
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://vigil.db (overrides database.url)
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// DAG folder (overrides dags.folder)
    #[arg(long, global = true, value_name = "DIR")]
    pub dags: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler: cron schedules, triggered runs, hot reload, crash recovery
    Daemon {
        /// Log lines as text for people or JSON for log collectors
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Only create runs (cron ticks, catch-up); other daemons execute them (PostgreSQL)
        #[arg(long, conflicts_with = "worker_only")]
        scheduler_only: bool,
        /// Only execute runs others created or triggered (PostgreSQL)
        #[arg(long)]
        worker_only: bool,
    },
    /// Serve the HTTP API alone (`[api]`), against the database the daemons use
    Api {
        /// Log lines as text for people or JSON for log collectors
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// List, inspect, validate and test DAGs
    #[command(subcommand)]
    Dags(dags::DagsCommand),
    /// Inspect DAG runs
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Inspect task results and logs
    #[command(subcommand)]
    Tasks(runs::TasksCommand),
    /// The model registry: status, history, compare, check, rollback, promote, register
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// The outbox of failure, retry and model-alert messages: list, retry, send, test
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Deployment rollback risk: simulate a history, train and evaluate the classifier, score
    /// candidates (exit 3 review, 4 block), write a report
    #[command(subcommand)]
    Risk(risk::RiskCommand),
    /// Demo data for the model registry, and the monitoring DAG run on it
    Demo(demo::DemoArgs),
    /// The daemons serving this database: role, host, slots in use, last heartbeat, live or
    /// silent (on PostgreSQL several share one database)
    Daemons,
    /// Database maintenance
    #[command(subcommand)]
    Db(DbCommand),
    /// Measure vigil: task overhead (chain), fan-out, process start, DAG loading, trigger
    /// latency, daemon memory, cron lateness, a soak, and the risk model's search and scoring
    Bench(bench::BenchArgs),
    /// Print a shell completion script, e.g. `vigil completions bash > ~/.local/share/bash-completion/completions/vigil`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `vigil man | man -l -`
    Man,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database if needed and apply migrations
    Migrate,
    /// Copy a SQLite database's whole history into an empty PostgreSQL database, verified
    /// table by table
    Copy {
        /// The SQLite database, e.g. sqlite://vigil.db
        #[arg(long, value_name = "URL")]
        from: String,
        /// The PostgreSQL database, e.g. postgres://vigil@db.internal/vigil
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Delete finished runs (with their results and logs) older than an age
    Cleanup {
        /// e.g. 30d, 12h
        #[arg(long, value_name = "AGE", value_parser = crate::state::parse_duration)]
        older_than: std::time::Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What every command needs, built lazily so `dags validate` never opens a database.
pub struct Ctx {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub json: bool,
}

impl Ctx {
    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        crate::store::open(&self.config.database.url, self.config.database.synchronous)
            .await
            .context("opening the database")
    }

    pub fn dags(&self) -> anyhow::Result<DagSet> {
        Ok(DagSet::load_folder(
            &self.config.dags.folder,
            &self.registry,
        )?)
    }

    pub async fn executor(&self) -> anyhow::Result<Executor> {
        Ok(Executor::new(
            self.store().await?,
            self.registry.clone(),
            Arc::new(Limits::new(self.config.executor.parallelism)),
        )
        .with_notify(self.config.notify.clone())
        .with_output_limits(self.config.executor.output_limits()))
    }
}

/// Runs the CLI with the task types in `registry`. A program that registers its own task
/// types calls this from its `main` and gets the whole `vigil` command line.
pub fn main(registry: Registry) -> ExitCode {
    crate::state::failpoint::configure_crash_points();
    let cli = Cli::parse();
    let runs_tasks = matches!(
        cli.command,
        Command::Daemon { .. }
            | Command::Dags(dags::DagsCommand::Test { .. })
            | Command::Dags(dags::DagsCommand::Backfill { .. })
            | Command::Tasks(runs::TasksCommand::Test { .. })
            | Command::Demo(_)
            | Command::Bench(_)
    );
    if !runs_tasks {
        // A command piped into `head` should stop quietly when the pipe closes, as Unix tools
        // do, not panic in println!. Commands that execute tasks keep Rust's default of
        // ignoring SIGPIPE: feeding stdin to a `command` task that exits early must not kill
        // vigil (they write their output without panicking instead).
        // SAFETY: restoring the default disposition of one signal, before any thread exists;
        // no handler code runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if matches!(cli.command, Command::Daemon { .. } | Command::Api { .. }) {
        crate::daemon::map_code_on_demand();
    }
    match &cli.command {
        Command::Daemon { log_format, .. } | Command::Api { log_format } => {
            init_tracing("info", *log_format)
        }
        _ => init_tracing("warn", LogFormat::Text),
    }
    // One scheduler thread: the executor's steps are short and ordered, tasks are async or
    // go to the blocking pool, and SQLite runs on sqlx's own thread. A second scheduler thread
    // only adds cross-core wake-ups (measured: 150-190 µs per chained task with two, 120-150
    // with one, `vigil bench --scenario chain` on 2 cores).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, registry)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = hint(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What to type next, for errors whose remedy is a command: the library says what is wrong,
/// only the CLI knows its own commands.
fn hint(e: &anyhow::Error) -> Option<String> {
    use crate::ml::data::DataError;
    use crate::ops::registry::ModelError;
    use crate::store::StoreError;
    e.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<ModelError>() {
            return match e {
                ModelError::NoSuchModel(m) => {
                    Some(format!("`vigil model register {m} ...` creates it"))
                }
                ModelError::NoProduction(m) => Some(format!(
                    "promote a version with `vigil model promote {m} VERSION`"
                )),
                _ => None,
            };
        }
        if let Some(StoreError::NoSuchVersion { model, .. }) = cause.downcast_ref::<StoreError>() {
            return Some(format!("`vigil model history {model}` lists its versions"));
        }
        if let Some(e) = cause.downcast_ref::<crate::ops::OpsError>() {
            use crate::ops::OpsError;
            return match e {
                OpsError::NoSuchRun(_) => Some("`vigil runs list` shows the runs there are".into()),
                OpsError::NoSuchMessage(_) => Some("`vigil notify list` shows the messages".into()),
                _ => None,
            };
        }
        if let Some(DataError::Empty { .. }) = cause.downcast_ref::<DataError>() {
            return Some("`vigil risk simulate` writes an example file".into());
        }
        None
    })
}

/// Logs go to stderr; `VIGIL_LOG` sets the filter (default: `default`, warnings only for
/// commands so their output stays clean). Independently of that filter, events at info and
/// above inside a task attempt go to the attempt's log.
fn init_tracing(default: &str, format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(crate::task::CaptureLayer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .try_init();
}

pub async fn run(cli: Cli, registry: Registry) -> anyhow::Result<ExitCode> {
    // Generated from the clap definitions; they need no config, database or DAGs.
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "vigil", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let mut config = Config::load(cli.global.config.as_deref())?;
    if let Some(url) = cli.global.database {
        config.database.url = url;
    }
    if let Some(dir) = cli.global.dags {
        config.dags.folder = dir;
    }
    // Before anything is loaded: the loader, the API and the templates read them.
    crate::state::limits::set_input_limits(config.limits.clone());
    let ctx = Ctx {
        config,
        registry: Arc::new(registry),
        json: cli.global.json,
    };
    match cli.command {
        Command::Daemon {
            scheduler_only,
            worker_only,
            ..
        } => {
            let mut config = ctx.config.clone();
            if scheduler_only {
                config.daemon.role = crate::schedule::Role::Scheduler;
            } else if worker_only {
                config.daemon.role = crate::schedule::Role::Worker;
            }
            crate::Daemon::builder()
                .config(config)
                .registry(Registry::clone(&ctx.registry))
                .run()
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Api { .. } => {
            crate::daemon::serve_api(&ctx.config, ctx.registry.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dags(cmd) => dags::run(&ctx, cmd).await,
        Command::Runs(cmd) => runs::run_runs(&ctx, cmd).await,
        Command::Tasks(cmd) => runs::run_tasks(&ctx, cmd).await,
        Command::Model(cmd) => model::run(&ctx, cmd).await,
        Command::Notify(cmd) => notify::run(&ctx, cmd).await,
        Command::Risk(cmd) => risk::run(&ctx, cmd).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Daemons => {
            let store = ctx.store().await?;
            let daemons =
                crate::ops::daemons::list(store.as_ref(), ctx.config.daemon.lease).await?;
            if ctx.json {
                output::print_json(&daemons)?;
            } else if daemons.is_empty() {
                println!("no daemon serves this database; start one with `vigil daemon`");
            } else {
                let rows = daemons
                    .iter()
                    .map(|v| {
                        let d = &v.daemon;
                        vec![
                            d.owner.clone(),
                            d.role.clone(),
                            d.host.clone(),
                            format!("{}/{}", d.slots_in_use, d.slots),
                            d.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            format!("{}s ago", v.silent_seconds),
                            if v.live {
                                "live"
                            } else {
                                "silent (dead or cut off)"
                            }
                            .to_string(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(
                        &[
                            "DAEMON",
                            "ROLE",
                            "HOST",
                            "SLOTS",
                            "STARTED",
                            "HEARTBEAT",
                            "STATE"
                        ],
                        rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Migrate) => {
            ctx.store().await?;
            let shown = crate::store::display_url(&ctx.config.database.url);
            if ctx.json {
                output::print_json(&serde_json::json!({"database": shown, "migrated": true}))?;
            } else {
                println!("database {shown} is up to date");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Copy { from, to }) => {
            let copied = crate::ops::db::copy(&from, &to).await?;
            if ctx.json {
                output::print_json(&copied)?;
            } else {
                let rows = copied
                    .tables
                    .iter()
                    .map(|t| {
                        vec![
                            t.table.to_string(),
                            t.rows.to_string(),
                            t.sha256[..16].to_string(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["TABLE", "ROWS", "SHA-256 (BOTH SIDES)"], rows)
                );
                println!(
                    "copied and verified {} row(s) into {}",
                    copied.tables.iter().map(|t| t.rows).sum::<u64>(),
                    crate::store::display_url(&to)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Cleanup { older_than }) => {
            let before = chrono::Utc::now()
                - chrono::Duration::from_std(older_than).context("--older-than is too large")?;
            let removed = ctx.store().await?.cleanup(before).await?;
            if ctx.json {
                output::print_json(&removed)?;
            } else {
                println!(
                    "removed {} run(s) that ended before {}, with {} task instance(s), {} result(s) and {} log line(s)",
                    removed.runs,
                    before.format("%Y-%m-%d %H:%M:%S UTC"),
                    removed.task_instances,
                    removed.results,
                    removed.log_lines
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(&ctx, args).await,
        Command::Completions { .. } | Command::Man => Ok(ExitCode::SUCCESS),
    }
}
