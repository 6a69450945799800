//! `vigil runs ...` and `vigil tasks ...`: reading what the store remembers, through
//! [`crate::ops::runs`].

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::{first_line, print_json, span, table, time};
use crate::ops::runs::{self, RunDetail, RunView};
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
        /// Only runs older than this one (the next page; the list says what to pass)
        #[arg(long, value_name = "RUN")]
        before: Option<RunId>,
        /// At most this many runs (1 to 1000)
        #[arg(long, default_value_t = crate::ops::runs::DEFAULT_PAGE)]
        limit: u32,
    },
    /// Show a run and the state of each of its tasks
    Show { run_id: RunId },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Run one task now, in this process, with its config rendered; nothing is recorded (the
    /// task itself still does what it does). Exit 0 if it succeeded or skipped, 1 if it failed
    Test {
        /// The DAG
        dag_id: String,
        /// The task
        task_id: String,
        /// Params as a JSON object, e.g. '{"model": "churn"}'
        #[arg(long, value_name = "JSON")]
        conf: Option<String>,
        /// The logical date (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_name = "TIME")]
        logical_date: Option<String>,
        /// Read upstream results from this earlier run of the DAG
        #[arg(long, value_name = "RUN")]
        upstream_from: Option<RunId>,
    },
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
        RunsCommand::List {
            dag,
            state,
            before,
            limit,
        } => {
            let state = state
                .map(|s| s.parse::<RunState>())
                .transpose()
                .context("invalid --state")?;
            let query = RunFilter {
                dag_id: dag,
                state,
                before,
                limit: Some(limit),
            };
            let page = runs::list(store.as_ref(), &query).await?;
            if ctx.json {
                print_json(&page.runs)?;
            } else {
                println!("{}", runs_table(&page.runs));
                if let Some(next) = page.next {
                    eprintln!("more runs: add `--before {next}`");
                }
            }
        }
        RunsCommand::Show { run_id } => {
            let detail = runs::show(store.as_ref(), &ctx.registry, run_id).await?;
            if ctx.json {
                print_json(&detail)?;
            } else {
                print_run(&detail);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runs_table(runs: &[RunView]) -> String {
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
    table(
        &[
            "RUN",
            "DAG",
            "LOGICAL DATE",
            "TYPE",
            "STATE",
            "STARTED",
            "DURATION",
        ],
        rows,
    )
}

fn print_run(detail: &RunDetail) {
    let run = &detail.run;
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
    let rows = detail
        .tasks
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

pub async fn run_tasks(ctx: &Ctx, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        TasksCommand::Test {
            dag_id,
            task_id,
            conf,
            logical_date,
            upstream_from,
        } => {
            let (dag, request) = crate::cli::dags::run_inputs(
                ctx,
                &dag_id,
                conf.as_deref(),
                logical_date.as_deref(),
            )?;
            let executor = ctx.executor().await?;
            let tested =
                crate::ops::dags::test_task(&executor, dag, &task_id, &request, upstream_from)
                    .await?;
            if ctx.json {
                print_json(&tested)?;
            } else {
                for l in &tested.log {
                    println!(
                        "{} {:<5} {}",
                        l.ts.format("%H:%M:%S%.3f"),
                        l.level.as_str(),
                        l.message
                    );
                }
                match (&tested.output, &tested.error) {
                    (Some(out), _) => println!(
                        "{task_id} {} in {:.0} ms; result: {out}",
                        tested.state, tested.duration_ms
                    ),
                    (None, Some(e)) => println!("{task_id} {}: {e}", tested.state),
                    (None, None) => println!("{task_id} {}", tested.state),
                }
                println!("(nothing was recorded)");
            }
            return Ok(if tested.state == crate::state::TaskState::Failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        TasksCommand::Xcom { run_id, task_id } => {
            let out = runs::result(store.as_ref(), run_id, &task_id).await?;
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
            let logs = runs::logs(store.as_ref(), run_id, &task_id, attempt).await?;
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
