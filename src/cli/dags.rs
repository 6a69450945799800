//! `vigil dags ...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;

use crate::cli::Ctx;
use crate::cli::output::{duration, first_line, print_json, table};
use crate::dag::{Dag, DagSet, FileErrors};
use crate::run::{Observer, RunEvent, plan_run};
use crate::state::{RunState, TaskState};
use crate::store::RunType;

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// List the DAGs in the DAG folder, and the files that fail to load
    List,
    /// Show a DAG's tasks, edges, schedule and params
    Show {
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
    },
    /// Stop scheduling new runs of a DAG (runs in progress finish)
    Pause { id: String },
    /// Resume scheduling a paused DAG
    Unpause { id: String },
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
        DagsCommand::Show { id, format } => show(ctx, &id, format),
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
        } => trigger(ctx, &id, conf.as_deref(), logical_date.as_deref(), wait).await,
        DagsCommand::Pause { id } => pause(ctx, &id, true).await,
        DagsCommand::Unpause { id } => pause(ctx, &id, false).await,
    }
}

/// Wakes the daemon that owns the database, if one runs; returns its pid.
fn wake_daemon(ctx: &Ctx) -> Option<i32> {
    let path = crate::store::sqlite_path(&ctx.config.database.url)?;
    let holder = crate::schedule::lock::OwnerLock::holder(&path)?;
    // SAFETY: kill(2) sends a signal and touches no memory. SIGUSR1 asks the daemon to look
    // at the database now; a process that is not a vigil daemon would not hold the lock.
    let rc = unsafe { libc::kill(holder.pid, libc::SIGUSR1) };
    (rc == 0).then_some(holder.pid)
}

async fn trigger(
    ctx: &Ctx,
    id: &str,
    conf: Option<&str>,
    logical_date: Option<&str>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let (dag, conf, logical_date) = run_inputs(ctx, id, conf, logical_date)?;
    let new = plan_run(
        &dag,
        conf,
        RunType::Manual,
        logical_date,
        RunState::Queued,
        None,
    )?;
    let store = ctx.store().await?;
    let run = store.create_run(&new).await?;
    let daemon = wake_daemon(ctx);
    let paused = store
        .dag_state(&dag.id, Utc::now(), dag.paused)
        .await?
        .paused;
    if ctx.json && !wait {
        print_json(&serde_json::json!({
            "run_id": run.id,
            "dag_id": run.dag_id,
            "logical_date": run.logical_date,
            "state": run.state,
            "daemon_pid": daemon,
            "paused": paused,
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
        match daemon {
            Some(pid) => println!("the daemon (pid {pid}) was told to start it"),
            None => println!(
                "no daemon is running on this database: start one with `vigil daemon` to run it, or run a DAG now in this process with `vigil dags test {}`",
                dag.id
            ),
        }
        if paused {
            println!(
                "note: {} is paused; the run waits until `vigil dags unpause {}`",
                dag.id, dag.id
            );
        }
    }
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow the run in the database; the daemon does the work.
    let state = loop {
        let current = store
            .run(run.id)
            .await?
            .context("the run disappeared while waiting for it")?;
        if current.state.is_terminal() {
            break current.state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
    let known = store.dag_states().await?.iter().any(|s| s.dag_id == id);
    if !known {
        // Not seen by a daemon yet: it must at least be a DAG in the folder.
        find_dag(ctx, id)?;
    }
    store.set_paused(id, paused).await?;
    let daemon = wake_daemon(ctx);
    let word = if paused { "paused" } else { "unpaused" };
    if ctx.json {
        print_json(&serde_json::json!({"dag_id": id, "paused": paused, "daemon_pid": daemon}))?;
    } else {
        println!(
            "{id} {word}{}",
            match daemon {
                Some(pid) => format!("; the daemon (pid {pid}) applies it now"),
                None => "; a daemon applies it when it starts".into(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct DagSummary<'a> {
    id: &'a str,
    description: &'a str,
    file: String,
    schedule: Option<&'a str>,
    timezone: &'a str,
    tasks: usize,
    tags: &'a [String],
}

fn summary(dag: &Dag) -> DagSummary<'_> {
    DagSummary {
        id: &dag.id,
        description: &dag.description,
        file: dag.file.display().to_string(),
        schedule: dag.schedule.as_ref().map(|s| s.expression.as_str()),
        timezone: dag.timezone.name(),
        tasks: dag.tasks.len(),
        tags: &dag.tags,
    }
}

fn print_file_errors(errors: &[FileErrors]) {
    let mut err = std::io::stderr().lock();
    for e in errors {
        let _ = writeln!(err, "{e}");
    }
}

async fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let set = ctx.dags()?;
    let paused: std::collections::HashSet<String> = ctx
        .store()
        .await?
        .dag_states()
        .await?
        .into_iter()
        .filter(|s| s.paused)
        .map(|s| s.dag_id)
        .collect();
    if ctx.json {
        let dags: Vec<_> = set
            .dags
            .values()
            .map(|d| {
                let mut v = serde_json::to_value(summary(d)).unwrap_or_default();
                v["paused"] = paused.contains(&d.id).into();
                v
            })
            .collect();
        print_json(&serde_json::json!({
            "dags": dags,
            "errors": set.errors.iter().flat_map(|e| &e.diagnostics).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = set
        .dags
        .values()
        .map(|d| {
            vec![
                d.id.clone(),
                d.schedule
                    .as_ref()
                    .map(|s| s.expression.clone())
                    .unwrap_or_else(|| "manual".into()),
                d.tasks.len().to_string(),
                if paused.contains(&d.id) { "yes" } else { "no" }.to_string(),
                d.tags.join(","),
                d.file.display().to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["DAG", "SCHEDULE", "TASKS", "PAUSED", "TAGS", "FILE"],
            rows
        )
    );
    if !set.errors.is_empty() {
        println!(
            "\n{} file(s) failed to load (details on stderr; fix them or run `vigil dags validate`; a running daemon keeps the last version that loaded):",
            set.errors.len()
        );
        for e in &set.errors {
            println!("  {}", e.file.display());
        }
        print_file_errors(&set.errors);
    }
    Ok(ExitCode::SUCCESS)
}

/// The DAG `id`, or an error that explains why it is not there (a broken file, a typo).
pub(crate) fn find_dag(ctx: &Ctx, id: &str) -> anyhow::Result<Arc<Dag>> {
    let set = ctx.dags()?;
    if let Some(dag) = set.get(id) {
        return Ok(dag.clone());
    }
    let broken: Vec<&FileErrors> = set
        .errors
        .iter()
        .filter(|e| e.file.file_stem().is_some_and(|s| s == id))
        .collect();
    if !broken.is_empty() {
        bail!(
            "DAG `{id}` did not load:\n{}",
            broken
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let known: Vec<&str> = set.dags.keys().map(String::as_str).collect();
    bail!(
        "no DAG `{id}` in {}; known DAGs: {}{}",
        ctx.config.dags.folder.display(),
        if known.is_empty() {
            "(none)".to_string()
        } else {
            known.join(", ")
        },
        if set.errors.is_empty() {
            String::new()
        } else {
            format!(
                " ({} file(s) failed to load; see `vigil dags list`)",
                set.errors.len()
            )
        }
    )
}

fn show(ctx: &Ctx, id: &str, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let dag = find_dag(ctx, id)?;
    let format = if ctx.json { ShowFormat::Json } else { format };
    match format {
        ShowFormat::Dot => print!("{}", dot(&dag)),
        ShowFormat::Json => {
            let tasks: Vec<_> = dag
                .tasks
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.id,
                        "type": t.task_type,
                        "depends_on": t.depends_on,
                        "trigger_rule": t.trigger_rule,
                        "retries": t.retry.retries,
                        "retry_delay_secs": t.retry.delay.as_secs_f64(),
                        "retry_backoff": t.retry.backoff,
                        "max_retry_delay_secs": t.retry.max_delay.as_secs_f64(),
                        "timeout_secs": t.timeout.map(|d| d.as_secs_f64()),
                        "config": t.config.source(),
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "dag": summary(&dag),
                "catchup": dag.catchup,
                "max_active_runs": dag.max_active_runs,
                "max_active_tasks": dag.max_active_tasks,
                "params": dag.params,
                "notify": redacted(&dag.notify),
                "tasks": tasks,
                "edges": dag.graph.edges().collect::<Vec<_>>(),
            }))?;
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

/// A `[notify]` as the CLI shows it: webhook URLs cut to their host (Slack-style URLs carry
/// their secret in the path).
fn redacted(spec: &crate::dag::NotifySpec) -> crate::dag::NotifySpec {
    crate::dag::NotifySpec {
        webhook_on_failure: spec
            .webhook_on_failure
            .iter()
            .map(|u| crate::notify::webhook::redact(u))
            .collect(),
        ..spec.clone()
    }
}

fn validate(ctx: &Ctx, paths: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![ctx.config.dags.folder.clone()]
    } else {
        paths
    };
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        bail!(
            "{} does not exist; give DAG files or folders",
            missing.display()
        );
    }
    let set = DagSet::load_paths(&paths, &ctx.registry)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "valid": set.dags.values().map(|d| summary(d)).collect::<Vec<_>>(),
            "errors": set.errors.iter().flat_map(|e| &e.diagnostics).collect::<Vec<_>>(),
        }))?;
    } else {
        for dag in set.dags.values() {
            println!(
                "ok     {} ({}, {} tasks)",
                dag.file.display(),
                dag.id,
                dag.tasks.len()
            );
        }
        for e in &set.errors {
            println!("error  {e}");
        }
        let n_err: usize = set.errors.iter().map(|e| e.diagnostics.len()).sum();
        println!(
            "\n{} file(s) valid, {} file(s) with {} error(s)",
            set.dags.len(),
            set.errors.len(),
            n_err
        );
    }
    Ok(if set.errors.is_empty() {
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

/// The DAG, conf and logical date of a run to create (`dags test`, `dags trigger`).
fn run_inputs(
    ctx: &Ctx,
    id: &str,
    conf: Option<&str>,
    logical_date: Option<&str>,
) -> anyhow::Result<(Arc<Dag>, serde_json::Value, DateTime<Utc>)> {
    let dag = find_dag(ctx, id)?;
    let conf = parse_conf(conf)?;
    let logical_date = match logical_date {
        Some(s) => parse_logical_date(s)?,
        None => Utc::now().trunc_subsecs(6),
    };
    Ok((dag, conf, logical_date))
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
    let (dag, conf, logical_date) = run_inputs(ctx, id, conf, logical_date)?;
    let owner = crate::run::owner::current();
    let new = plan_run(
        &dag,
        conf,
        RunType::Test,
        logical_date,
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
                    line.push_str(&format!("  {}", first_line(e)));
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
