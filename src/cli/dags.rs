//! `vigil dags ...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;

use crate::cli::Ctx;
use crate::cli::output::{duration, gist, print_json, table};
use crate::dag::{Dag, FileErrors};
use crate::ops::dags::RunRequest;
use crate::ops::{self, OpsError, Waker};
use crate::run::{Observer, RunEvent, plan_run};
use crate::state::{RunState, TaskState};
use crate::store::RunType;

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// List the DAGs in the DAG folder, and the files that fail to load
    List,
    /// Show a DAG's tasks, edges, schedule and params
    Show {
        /// The DAG
        id: String,
        /// `table` for people, `dot` for Graphviz (`| dot -Tsvg`), `json` for scripts
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
    /// Check DAG files (default: the DAG folder); exit 1 and print every error if any is wrong
    Validate {
        /// Files or folders to check
        paths: Vec<PathBuf>,
    },
    /// Run one DAG run now, in this process, recorded in the database
    Test {
        /// The DAG
        id: String,
        /// Params for this run as a JSON object, e.g. '{"model": "churn"}'
        #[arg(long, value_name = "JSON")]
        conf: Option<String>,
        /// The run's logical date (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_name = "TIME")]
        logical_date: Option<String>,
    },
    /// Queue a run for the daemon (and wake it); --wait follows it to the end
    Trigger {
        /// The DAG
        id: String,
        /// Params for this run as a JSON object, e.g. '{"model": "churn"}'
        #[arg(long, value_name = "JSON")]
        conf: Option<String>,
        /// The run's logical date (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_name = "TIME")]
        logical_date: Option<String>,
        /// Wait for the run to finish; exit 0 if it succeeded, 1 if it failed
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this long (e.g. 10m) and exit 124; the run stays
        /// queued or running
        #[arg(long, value_name = "DURATION", value_parser = crate::state::parse_duration, requires = "wait")]
        timeout: Option<std::time::Duration>,
    },
    /// Create the runs of every tick of a date range (one per logical date; existing ones are
    /// skipped). A running daemon executes them within max_active_runs; without one they run
    /// here. Exit 1 if any failed
    Backfill {
        /// The DAG
        id: String,
        /// First logical date (RFC 3339 or YYYY-MM-DD), included
        #[arg(long, value_name = "TIME")]
        start: String,
        /// Last logical date (RFC 3339 or YYYY-MM-DD), included
        #[arg(long, value_name = "TIME")]
        end: String,
        /// Runs at once when running here [default: the DAG's max_active_runs]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_active: Option<u32>,
        /// Clear and run again the failed runs of the range
        #[arg(long)]
        rerun_failed: bool,
        /// Only list the ticks and what would happen to each
        #[arg(long)]
        dry_run: bool,
    },
    /// The next times a DAG's schedule fires, with their data intervals
    Next {
        /// The DAG
        id: String,
        /// How many fire times
        #[arg(short = 'n', long = "count", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
    },
    /// Stop scheduling new runs of a DAG (runs in progress finish)
    Pause {
        /// The DAG
        id: String,
    },
    /// Resume scheduling a paused DAG
    Unpause {
        /// The DAG
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    Table,
    Dot,
    Json,
}

pub async fn run(ctx: &Ctx, cmd: DagsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DagsCommand::List => list(ctx).await,
        DagsCommand::Show { id, format } => show(ctx, &id, format).await,
        DagsCommand::Validate { paths } => validate(ctx, paths),
        DagsCommand::Test {
            id,
            conf,
            logical_date,
        } => test(ctx, &id, conf.as_deref(), logical_date.as_deref()).await,
        DagsCommand::Trigger {
            id,
            conf,
            logical_date,
            wait,
            timeout,
        } => {
            trigger(
                ctx,
                &id,
                conf.as_deref(),
                logical_date.as_deref(),
                wait,
                timeout,
            )
            .await
        }
        DagsCommand::Next { id, count } => next(ctx, &id, count),
        DagsCommand::Backfill {
            id,
            start,
            end,
            max_active,
            rerun_failed,
            dry_run,
        } => {
            let request = crate::ops::backfill::BackfillRequest {
                start: parse_logical_date(&start).context("--start")?,
                end: parse_logical_date(&end).context("--end")?,
                rerun_failed,
                max_active,
                dry_run,
                heartbeat_interval: ctx.config.daemon.heartbeat_interval,
            };
            backfill(ctx, &id, &request).await
        }
        DagsCommand::Pause { id } => pause(ctx, &id, true).await,
        DagsCommand::Unpause { id } => pause(ctx, &id, false).await,
    }
}

async fn trigger(
    ctx: &Ctx,
    id: &str,
    conf: Option<&str>,
    logical_date: Option<&str>,
    wait: bool,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<ExitCode> {
    let (dag, request) = run_inputs(ctx, id, conf, logical_date)?;
    let store = ctx.store().await?;
    let triggered = ops::dags::trigger(store.as_ref(), &dag, &request, &Waker::Daemons).await?;
    let run = &triggered.run;
    if ctx.json && !wait {
        print_json(&serde_json::json!({
            "run_id": run.id,
            "dag_id": run.dag_id,
            "logical_date": run.logical_date,
            "state": run.state,
            "daemon": triggered.woke,
            "paused": triggered.paused,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json {
        println!(
            "queued run {} of {} (logical date {})",
            run.id,
            dag.id,
            run.logical_date.to_rfc3339()
        );
        match &triggered.woke {
            Some(who) if who.contains(", ") => {
                println!("the daemons ({who}) were told to start it")
            }
            Some(who) => println!("the daemon ({who}) was told to start it"),
            None => println!(
                "no daemon is running on this database: start one with `vigil daemon` to run it, or run a DAG now in this process with `vigil dags test {}`",
                dag.id
            ),
        }
        if triggered.paused {
            println!(
                "note: {} is paused; the run waits until `vigil dags unpause {}`",
                dag.id, dag.id
            );
        }
    }
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    // Listening from here on, before anyone is told Ctrl-C is the way out.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    if triggered.woke.is_none() {
        eprintln!(
            "waiting for a daemon to run it: start `vigil daemon`, or press Ctrl-C to stop waiting (run {} stays queued)",
            run.id
        );
    }
    // Follow the run in the database; the daemon does the work.
    let follow = async {
        loop {
            let current = store
                .run(run.id)
                .await?
                .context("the run disappeared while waiting for it")?;
            if current.state.is_terminal() {
                return anyhow::Ok(current.state);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let gave_up = |why: &str| {
        eprintln!(
            "{why}; run {} stays as it is and the daemon carries on with it (`vigil runs show {}`)",
            run.id, run.id
        );
    };
    let state = tokio::select! {
        state = follow => state?,
        _ = interrupt.recv() => {
            gave_up("stopped waiting");
            return Ok(ExitCode::from(130));
        }
        _ = async {
            match timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        } => {
            gave_up(&format!(
                "gave up waiting after {}",
                humantime::format_duration(timeout.unwrap_or_default())
            ));
            return Ok(ExitCode::from(124));
        }
    };
    if ctx.json {
        let tis = store.task_instances(run.id).await?;
        print_json(&serde_json::json!({ "run_id": run.id, "state": state, "tasks": tis }))?;
    } else {
        println!(
            "run {} {}; details: vigil runs show {}",
            run.id, state, run.id
        );
    }
    Ok(if state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn pause(ctx: &Ctx, id: &str, paused: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let set = ctx.dags()?;
    let done = ops::dags::set_paused(
        store.as_ref(),
        &set,
        &ctx.config.dags.folder,
        id,
        paused,
        &Waker::Daemons,
    )
    .await
    .map_err(with_hint)?;
    let word = if paused { "paused" } else { "unpaused" };
    if ctx.json {
        print_json(&serde_json::json!({"dag_id": id, "paused": paused, "daemon": done.woke}))?;
    } else {
        println!(
            "{id} {word}{}",
            match &done.woke {
                Some(who) => format!("; the daemon ({who}) applies it now"),
                None => "; a daemon applies it when it starts".into(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_file_errors(errors: &[FileErrors]) {
    let mut err = std::io::stderr().lock();
    for e in errors {
        let _ = writeln!(err, "{e}");
    }
}

/// The latest runs' states, newest first, one letter each: `s`uccess, `f`ailed, `r`unning,
/// `q`ueued.
fn last_runs(states: &[RunState]) -> String {
    if states.is_empty() {
        return "-".into();
    }
    states
        .iter()
        .map(|s| match s {
            RunState::Success => 's',
            RunState::Failed => 'f',
            RunState::Running => 'r',
            RunState::Queued => 'q',
        })
        .collect()
}

async fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let set = ctx.dags()?;
    let list = ops::dags::list(ctx.store().await?.as_ref(), &set).await?;
    if ctx.json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = list
        .dags
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.schedule.clone().unwrap_or_else(|| "manual".into()),
                d.tasks.to_string(),
                if d.paused { "yes" } else { "no" }.to_string(),
                crate::cli::output::time(d.next_run),
                last_runs(&d.last_runs),
                d.tags.join(","),
                d.file.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "DAG",
                "SCHEDULE",
                "TASKS",
                "PAUSED",
                "NEXT RUN (UTC)",
                "LAST RUNS",
                "TAGS",
                "FILE"
            ],
            rows
        )
    );
    if !list.broken.is_empty() {
        println!(
            "\n{} file(s) failed to load (details on stderr; fix them or run `vigil dags validate`; a running daemon keeps the last version that loaded):",
            list.broken.len()
        );
        for e in &list.broken {
            println!("  {}", e.file.display());
        }
        print_file_errors(&list.broken);
    }
    Ok(ExitCode::SUCCESS)
}

async fn backfill(
    ctx: &Ctx,
    id: &str,
    request: &crate::ops::backfill::BackfillRequest,
) -> anyhow::Result<ExitCode> {
    let dag = find_dag(ctx, id)?;
    let executor = ctx.executor().await?;
    let done =
        crate::ops::backfill::backfill(executor.store(), &ctx.registry, &executor, dag, request)
            .await?;
    if ctx.json {
        print_json(&done)?;
    } else {
        let rows = done
            .ticks
            .iter()
            .map(|t| {
                vec![
                    t.logical_date.to_rfc3339(),
                    t.action.as_str().to_string(),
                    t.run_id
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    t.state.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["LOGICAL DATE", "ACTION", "RUN", "STATE"], rows)
        );
        println!(
            "{} tick(s) of {}; run by: {}",
            done.ticks.len(),
            done.dag_id,
            done.executed_by
        );
    }
    Ok(if done.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn next(ctx: &Ctx, id: &str, count: u32) -> anyhow::Result<ExitCode> {
    let dag = find_dag(ctx, id)?;
    let times = ops::dags::next_runs(&dag, chrono::Utc::now(), count as usize);
    if ctx.json {
        print_json(&times)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(schedule) = &dag.schedule else {
        println!("{id} has no schedule; it runs when triggered (`vigil dags trigger {id}`)");
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "{id}: `{}` in {}{}",
        schedule.expression,
        dag.timezone.name(),
        if times.is_empty() {
            " — no more fire times (past its end_date)"
        } else {
            ""
        }
    );
    let rows = times
        .iter()
        .map(|f| {
            vec![
                f.local.clone(),
                f.logical_date.to_rfc3339(),
                format!(
                    "{} → {}",
                    f.data_interval_start.to_rfc3339(),
                    f.data_interval_end.to_rfc3339()
                ),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                format!("FIRES ({})", dag.timezone.name()),
                "LOGICAL DATE (UTC)".to_string(),
                "DATA INTERVAL (UTC)".to_string()
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The DAG `id`, or an error that explains why it is not there (a broken file, a typo).
pub(crate) fn find_dag(ctx: &Ctx, id: &str) -> anyhow::Result<Arc<Dag>> {
    let set = ctx.dags()?;
    ops::dags::find(&set, &ctx.config.dags.folder, id).map_err(with_hint)
}

/// Adds what to type next to an error about a missing DAG.
fn with_hint(e: OpsError) -> anyhow::Error {
    match e {
        OpsError::NoSuchDag { broken_files, .. } if broken_files > 0 => {
            anyhow::Error::new(e).context("see `vigil dags list` for the files that failed")
        }
        e => e.into(),
    }
}

async fn show(ctx: &Ctx, id: &str, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let dag = find_dag(ctx, id)?;
    let format = if ctx.json { ShowFormat::Json } else { format };
    match format {
        ShowFormat::Dot => print!("{}", dot(&dag)),
        ShowFormat::Json => {
            let detail = match ctx.store().await {
                Ok(store) => ops::dags::show(store.as_ref(), &dag).await?,
                Err(_) => ops::dags::detail(&dag, dag.paused),
            };
            print_json(&detail)?;
        }
        ShowFormat::Table => {
            println!("DAG        {}", dag.id);
            if !dag.description.is_empty() {
                println!("           {}", dag.description);
            }
            println!("file       {}", dag.file.display());
            println!(
                "schedule   {} ({}, catchup {})",
                dag.schedule
                    .as_ref()
                    .map(|s| s.expression.as_str())
                    .unwrap_or("manual only"),
                dag.timezone.name(),
                dag.catchup
            );
            if let Some(next) = ops::dags::next_runs(&dag, chrono::Utc::now(), 1).first() {
                println!(
                    "next run   {} ({} UTC)",
                    next.local,
                    next.logical_date.to_rfc3339()
                );
            }
            println!(
                "limits     max_active_runs {}, max_active_tasks {}",
                dag.max_active_runs, dag.max_active_tasks
            );
            if !dag.params.is_empty() {
                let params: Vec<String> =
                    dag.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("params     {}", params.join(" "));
            }
            println!();
            let rows = dag
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.task_type.clone(),
                        if t.depends_on.is_empty() {
                            "-".into()
                        } else {
                            t.depends_on.join(",")
                        },
                        t.trigger_rule.as_str().to_string(),
                        t.retry.retries.to_string(),
                        t.timeout
                            .map(|d| humantime::format_duration(d).to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "TASK",
                        "TYPE",
                        "DEPENDS ON",
                        "TRIGGER RULE",
                        "RETRIES",
                        "TIMEOUT"
                    ],
                    rows
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Graphviz source of the DAG: one node per task (labelled with its type), one edge per
/// dependency, drawn left to right.
fn dot(dag: &Dag) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        dag.id
    );
    for t in &dag.tasks {
        s.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            t.id, t.id, t.task_type
        ));
    }
    for (from, to) in dag.graph.edges() {
        s.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
    }
    s.push_str("}\n");
    s
}

fn validate(ctx: &Ctx, paths: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![ctx.config.dags.folder.clone()]
    } else {
        paths
    };
    let checked = ops::dags::validate(&paths, &ctx.registry)?;
    if ctx.json {
        print_json(&checked)?;
    } else {
        for dag in &checked.valid {
            println!("ok     {} ({}, {} tasks)", dag.file, dag.id, dag.tasks);
        }
        for e in &checked.broken {
            println!("error  {e}");
        }
        println!(
            "\n{} file(s) valid, {} file(s) with {} error(s)",
            checked.valid.len(),
            checked.broken.len(),
            checked.errors.len()
        );
    }
    Ok(if checked.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--logical-date`: RFC 3339, or a date meaning midnight UTC.
pub fn parse_logical_date(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    bail!("invalid --logical-date `{s}`; use RFC 3339 like 2026-11-22T14:00:00Z, or 2026-11-22")
}

/// The DAG and the run asked for (`dags test`, `dags trigger`).
pub(crate) fn run_inputs(
    ctx: &Ctx,
    id: &str,
    conf: Option<&str>,
    logical_date: Option<&str>,
) -> anyhow::Result<(Arc<Dag>, RunRequest)> {
    let dag = find_dag(ctx, id)?;
    let request = RunRequest {
        conf: parse_conf(conf)?,
        logical_date: logical_date.map(parse_logical_date).transpose()?,
    };
    Ok((dag, request))
}

/// `--conf`: a JSON object.
pub fn parse_conf(s: Option<&str>) -> anyhow::Result<serde_json::Value> {
    match s {
        None => Ok(serde_json::Value::Object(Default::default())),
        Some(text) => crate::dag::parse_conf(text).map_err(|e| anyhow::anyhow!("--conf: {e}")),
    }
}

#[derive(Serialize)]
struct TestTask {
    task_id: String,
    state: TaskState,
    attempt: u32,
    max_attempts: u32,
    duration_ms: Option<f64>,
    error: Option<String>,
}

async fn test(
    ctx: &Ctx,
    id: &str,
    conf: Option<&str>,
    logical_date: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (dag, request) = run_inputs(ctx, id, conf, logical_date)?;
    let owner = crate::state::owner::current();
    let new = plan_run(
        &dag,
        request.conf.clone(),
        RunType::Test,
        request.logical_date(),
        RunState::Running,
        Some(owner.clone()),
    )?;
    let executor = ctx.executor().await?;
    let run = executor.store().create_run(&new).await?;
    let json = ctx.json;
    if !json {
        println!(
            "run {} of {} (logical date {}, {} tasks)",
            run.id,
            dag.id,
            run.logical_date.to_rfc3339(),
            dag.tasks.len()
        );
    }
    let observer: Observer = Arc::new(move |event: &RunEvent| {
        if json {
            return;
        }
        let now = Utc::now().format("%H:%M:%S%.3f");
        match event {
            RunEvent::TaskStarted {
                task_id,
                attempt,
                max_attempts,
            } => crate::say!(
                "{now}  {task_id:<24} running          attempt {attempt}/{max_attempts}"
            ),
            RunEvent::TaskEnded {
                task_id,
                state,
                attempt,
                max_attempts,
                duration: d,
                error,
                next_retry_at,
            } => {
                let mut line = format!(
                    "{now}  {task_id:<24} {:<16} attempt {attempt}/{max_attempts}",
                    state.as_str()
                );
                if *attempt > 0 {
                    line.push_str(&format!("  {}", duration(*d)));
                }
                if let Some(at) = next_retry_at {
                    line.push_str(&format!("  retry at {}", at.format("%H:%M:%S")));
                }
                if let Some(e) = error {
                    line.push_str(&format!("  {}", gist(e)));
                }
                crate::say!("{line}");
            }
            RunEvent::RunEnded { state, duration: d } => {
                crate::say!("run {} in {}", state.as_str(), duration(*d));
            }
        }
    });
    // Prove this process alive while it runs, so a daemon never takes the run over.
    let beating = tokio_util::sync::CancellationToken::new();
    let heartbeat = tokio::spawn(crate::run::owner::heartbeat_loop(
        executor.store().clone(),
        owner,
        ctx.config.daemon.heartbeat_interval,
        beating.clone(),
        None,
    ));
    let state = executor.execute(dag, run.clone(), Some(observer)).await;
    beating.cancel();
    let _ = heartbeat.await;
    let state = state?;
    if json {
        let tis = executor.store().task_instances(run.id).await?;
        let tasks: Vec<TestTask> = tis
            .into_iter()
            .map(|t| TestTask {
                duration_ms: match (t.started_at, t.ended_at) {
                    (Some(s), Some(e)) => {
                        Some((e - s).num_microseconds().unwrap_or(0) as f64 / 1000.0)
                    }
                    _ => None,
                },
                task_id: t.task_id,
                state: t.state,
                attempt: t.attempt,
                max_attempts: t.max_attempts,
                error: t.error,
            })
            .collect();
        print_json(&serde_json::json!({
            "run_id": run.id,
            "dag_id": run.dag_id,
            "logical_date": run.logical_date,
            "state": state,
            "tasks": tasks,
        }))?;
    }
    Ok(if state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
