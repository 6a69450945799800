//! `vigil runs ...` and `vigil tasks ...`: reading what the store remembers, through
//! [`crate::ops::runs`].

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::{gist, print_json, span, table, time};
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
    Show {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
    },
    /// Run a finished run's tasks again in the same run (the daemon runs them); earlier
    /// attempts' logs and results stay in history
    Rerun {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
        /// Only the tasks that failed (or were upstream_failed)
        #[arg(long)]
        failed_only: bool,
    },
    /// Stop a queued or running run: running attempts are killed, nothing further starts, and
    /// the run ends failed with a note saying who cancelled it
    Cancel {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
    },
    /// Delete a finished run with its task instances, results and logs
    Delete {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
    },
    /// Set a run's state by hand (success or failed), with the reason kept as its note
    Mark {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
        /// success or failed
        state: RunState,
        /// Why (kept with the run)
        #[arg(long)]
        reason: Option<String>,
    },
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
    /// Reset tasks of a finished run so the daemon runs them again in the same run; earlier
    /// attempts' logs and results stay in history
    Clear {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
        /// The tasks to run again
        #[arg(required = true)]
        task_ids: Vec<String>,
        /// Also every task downstream of them
        #[arg(long)]
        downstream: bool,
        /// Also every task upstream of them
        #[arg(long)]
        upstream: bool,
        /// Only those that failed (or were upstream_failed)
        #[arg(long)]
        failed_only: bool,
    },
    /// Set a task of a finished run to success, failed or skipped, with the reason kept as
    /// its note; downstream tasks already decided because of it are decided again
    Mark {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
        /// The task
        task_id: String,
        /// success, failed or skipped
        state: crate::state::TaskState,
        /// Why (kept with the task)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print the result (XCom) a task produced in a run
    Xcom {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
        /// The task
        task_id: String,
        /// The result of this attempt (earlier attempts' results are kept) [default: current]
        #[arg(long)]
        attempt: Option<u32>,
    },
    /// Print a task's log in a run
    Logs {
        /// The run (its id, as `vigil runs list` shows)
        run_id: RunId,
        /// The task
        task_id: String,
        /// Only this attempt (1-based)
        #[arg(long)]
        attempt: Option<u32>,
        /// Keep printing new lines while the attempt runs (the current attempt, or --attempt);
        /// returns when it ends. With --json, one JSON line per log line
        #[arg(long, short = 'f')]
        follow: bool,
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
        RunsCommand::Rerun {
            run_id,
            failed_only,
        } => {
            let request = runs::ClearRequest {
                failed_only,
                ..runs::ClearRequest::default()
            };
            clear(ctx, store.as_ref(), run_id, &request).await?;
        }
        RunsCommand::Cancel { run_id } => {
            let done = runs::cancel(store.as_ref(), run_id, &crate::ops::Waker::Daemons).await?;
            if ctx.json {
                print_json(&done)?;
            } else if done.ended {
                println!("run {run_id} ({}) is cancelled: it ended failed", done.was);
            } else {
                println!(
                    "run {run_id} ({}): the daemon ({}) cancels it now; `vigil runs show {run_id}` shows it end",
                    done.was,
                    done.woke.as_deref().unwrap_or("?")
                );
            }
        }
        RunsCommand::Delete { run_id } => {
            let was = runs::delete(store.as_ref(), run_id).await?;
            if ctx.json {
                print_json(&serde_json::json!({"run_id": run_id, "deleted": true, "was": was}))?;
            } else {
                println!("deleted run {run_id} ({was}) with its tasks, results and logs");
            }
        }
        RunsCommand::Mark {
            run_id,
            state,
            reason,
        } => {
            let marked = runs::mark_run(store.as_ref(), run_id, state, reason.as_deref()).await?;
            print_marked(ctx, &marked)?;
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

/// Clears what `request` says in run `run_id` (waking the daemon) and prints what it did.
async fn clear(
    ctx: &Ctx,
    store: &dyn crate::store::Store,
    run_id: RunId,
    request: &runs::ClearRequest,
) -> anyhow::Result<()> {
    let cleared = runs::clear(
        store,
        &ctx.registry,
        run_id,
        request,
        &crate::ops::Waker::Daemons,
    )
    .await?;
    if ctx.json {
        return print_json(&cleared);
    }
    println!(
        "cleared {} task(s) of run {} ({} before): {}",
        cleared.tasks.len(),
        cleared.run_id,
        cleared.was,
        cleared.tasks.join(", ")
    );
    match &cleared.woke {
        Some(who) => println!("the daemon ({who}) runs them now"),
        None => println!(
            "the run is queued; no daemon is running on this database: start one with `vigil daemon`"
        ),
    }
    Ok(())
}

fn print_marked(ctx: &Ctx, marked: &runs::Marked) -> anyhow::Result<()> {
    if ctx.json {
        return print_json(marked);
    }
    if !marked.marked.is_empty() {
        println!("marked: {}", marked.marked.join(", "));
    }
    if !marked.reset.is_empty() {
        println!(
            "to be decided again by their trigger rules: {}",
            marked.reset.join(", ")
        );
    }
    println!("run {} is {}", marked.run_id, marked.run_state);
    if marked.run_state == RunState::Queued && marked.woke.is_none() {
        println!("no daemon is running on this database: start one with `vigil daemon`");
    }
    Ok(())
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
    if let Some(note) = &run.note {
        println!("note         {note}");
    }
    println!(
        "started      {}  ({})",
        time(run.started_at),
        span(run.started_at, run.ended_at)
    );
    println!();
    // Which daemon ran each task matters only when several share the database.
    let workers = detail.tasks.iter().any(|t| t.worker.is_some());
    let rows = detail
        .tasks
        .iter()
        .map(|t| {
            let mut row = vec![
                t.task_id.clone(),
                t.state.as_str().to_string(),
                format!("{}/{}", t.attempt, t.max_attempts),
                time(t.started_at),
                span(t.started_at, t.ended_at),
            ];
            if workers {
                row.push(t.worker.clone().unwrap_or_default());
            }
            row.push(t.error.as_deref().map(gist).unwrap_or_default());
            row
        })
        .collect();
    let header: &[&str] = if workers {
        &[
            "TASK", "STATE", "ATTEMPT", "STARTED", "DURATION", "WORKER", "ERROR",
        ]
    } else {
        &["TASK", "STATE", "ATTEMPT", "STARTED", "DURATION", "ERROR"]
    };
    println!("{}", table(header, rows));
    for t in detail.tasks.iter().filter(|t| t.note.is_some()) {
        println!(
            "note on {}: {}",
            t.task_id,
            t.note.as_deref().unwrap_or_default()
        );
    }
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
        TasksCommand::Clear {
            run_id,
            task_ids,
            downstream,
            upstream,
            failed_only,
        } => {
            let request = runs::ClearRequest {
                tasks: task_ids,
                downstream,
                upstream,
                failed_only,
            };
            clear(ctx, store.as_ref(), run_id, &request).await?;
        }
        TasksCommand::Mark {
            run_id,
            task_id,
            state,
            reason,
        } => {
            let marked = runs::mark_task(
                store.as_ref(),
                &ctx.registry,
                run_id,
                &task_id,
                state,
                reason.as_deref(),
                &crate::ops::Waker::Daemons,
            )
            .await?;
            print_marked(ctx, &marked)?;
        }
        TasksCommand::Xcom {
            run_id,
            task_id,
            attempt,
        } => {
            let out = match attempt {
                None => runs::result(store.as_ref(), run_id, &task_id).await?,
                Some(n) => runs::result_of_attempt(store.as_ref(), run_id, &task_id, n).await?,
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
            follow: true,
        } => {
            let mut follow = runs::LogFollow::new(run_id, &task_id, attempt);
            let mut first = true;
            loop {
                let poll = follow.poll(store.as_ref()).await?;
                if first {
                    eprintln!("--- attempt {} ---", poll.attempt);
                    first = false;
                }
                for l in &poll.lines {
                    if ctx.json {
                        println!("{}", serde_json::to_string(l)?);
                    } else {
                        print_log_line(&l.line);
                    }
                }
                if poll.ended {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        TasksCommand::Logs {
            run_id,
            task_id,
            attempt,
            follow: false,
        } => {
            let logs = runs::logs(store.as_ref(), run_id, &task_id, attempt, None).await?;
            if ctx.json {
                print_json(&logs)?;
            } else {
                let mut current = None;
                for l in &logs {
                    if current != Some(l.attempt) {
                        println!("--- attempt {} ---", l.attempt);
                        current = Some(l.attempt);
                    }
                    print_log_line(&l.line);
                }
                if logs.is_empty() {
                    eprintln!("no log lines for task `{task_id}` in run {run_id}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_log_line(line: &crate::state::LogLine) {
    println!(
        "{} {:<5} {}",
        line.ts.format("%Y-%m-%d %H:%M:%S%.3f"),
        line.level.as_str(),
        line.message
    );
}
