//! `vigil runs ...` and `vigil tasks ...`: reading what the store remembers.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::{first_line, print_json, span, table, time};
use crate::state::RunState;
use crate::store::{RunFilter, RunId};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first
    List {
        /// Only runs of this DAG
        #[arg(long, value_name = "ID")]
        dag: Option<String>,
        /// Only runs in this state (queued, running, success, failed)
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most this many runs
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a run and the state of each of its tasks
    Show { run_id: RunId },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Print the result (XCom) a task produced in a run
    Xcom { run_id: RunId, task_id: String },
    /// Print a task's log in a run
    Logs {
        run_id: RunId,
        task_id: String,
        /// Only this attempt (1-based)
        #[arg(long)]
        attempt: Option<u32>,
    },
}

pub async fn run_runs(ctx: &Ctx, cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        RunsCommand::List { dag, state, limit } => {
            let state = state
                .map(|s| s.parse::<RunState>())
                .transpose()
                .context("invalid --state")?;
            let runs = store
                .runs(&RunFilter {
                    dag_id: dag,
                    state,
                    before: None,
                    limit: Some(limit),
                })
                .await?;
            if ctx.json {
                print_json(&runs)?;
            } else {
                let rows = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.dag_id.clone(),
                            r.logical_date.to_rfc3339(),
                            r.run_type.as_str().to_string(),
                            r.state.as_str().to_string(),
                            time(r.started_at),
                            span(r.started_at, r.ended_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "RUN",
                            "DAG",
                            "LOGICAL DATE",
                            "TYPE",
                            "STATE",
                            "STARTED",
                            "DURATION"
                        ],
                        rows
                    )
                );
            }
        }
        RunsCommand::Show { run_id } => {
            let Some(run) = store.run(run_id).await? else {
                bail!("no run {run_id}; `vigil runs list` shows the runs there are");
            };
            let mut tis = store.task_instances(run_id).await?;
            // Task order of the DAG the run was created from, when its snapshot still parses.
            if let Ok(dag) = crate::dag::parse_dag(
                std::path::Path::new(&run.dag_file),
                &run.dag_source,
                &ctx.registry,
            ) {
                tis.sort_by_key(|t| dag.graph.index_of(&t.task_id).unwrap_or(usize::MAX));
            }
            if ctx.json {
                print_json(&serde_json::json!({ "run": run, "tasks": tis }))?;
            } else {
                println!("run          {}", run.id);
                println!("dag          {}", run.dag_id);
                println!("logical date {}", run.logical_date.to_rfc3339());
                println!("type         {}", run.run_type.as_str());
                println!("state        {}", run.state);
                println!("conf         {}", run.conf);
                println!(
                    "started      {}  ({})",
                    time(run.started_at),
                    span(run.started_at, run.ended_at)
                );
                println!();
                let rows = tis
                    .iter()
                    .map(|t| {
                        vec![
                            t.task_id.clone(),
                            t.state.as_str().to_string(),
                            format!("{}/{}", t.attempt, t.max_attempts),
                            time(t.started_at),
                            span(t.started_at, t.ended_at),
                            t.error.as_deref().map(first_line).unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["TASK", "STATE", "ATTEMPT", "STARTED", "DURATION", "ERROR"],
                        rows
                    )
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_tasks(ctx: &Ctx, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        TasksCommand::Xcom { run_id, task_id } => {
            check_task(&*store, run_id, &task_id).await?;
            let Some(out) = store.output(run_id, &task_id).await? else {
                bail!("task `{task_id}` has no result in run {run_id} (it has not succeeded)");
            };
            if ctx.json {
                print_json(&out)?;
            } else {
                print_json(&out.value)?;
            }
        }
        TasksCommand::Logs {
            run_id,
            task_id,
            attempt,
        } => {
            check_task(&*store, run_id, &task_id).await?;
            let logs = store.logs(run_id, &task_id, attempt).await?;
            if ctx.json {
                print_json(&logs)?;
            } else {
                let mut current = None;
                for l in &logs {
                    if current != Some(l.attempt) {
                        println!("--- attempt {} ---", l.attempt);
                        current = Some(l.attempt);
                    }
                    println!(
                        "{} {:<5} {}",
                        l.line.ts.format("%Y-%m-%d %H:%M:%S%.3f"),
                        l.line.level.as_str(),
                        l.line.message
                    );
                }
                if logs.is_empty() {
                    eprintln!("no log lines for task `{task_id}` in run {run_id}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Fails with a helpful message when the run or the task does not exist.
async fn check_task(
    store: &dyn crate::store::Store,
    run_id: RunId,
    task_id: &str,
) -> anyhow::Result<()> {
    if store.run(run_id).await?.is_none() {
        bail!("no run {run_id}; `vigil runs list` shows the runs there are");
    }
    let tis = store.task_instances(run_id).await?;
    if !tis.iter().any(|t| t.task_id == task_id) {
        let ids: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
        bail!(
            "run {run_id} has no task `{task_id}`; its tasks: {}",
            ids.join(", ")
        );
    }
    Ok(())
}
