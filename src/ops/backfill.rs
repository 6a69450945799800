//! Backfill: the runs of every tick of a date range, one per logical date, as the schedule
//! would have made them (`scheduled` runs with the interval since the previous tick). A running
//! daemon executes them within the DAG's `max_active_runs`; without one they run here, in the
//! foreground, at most `max_active` at a time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::dag::Dag;
use crate::ops::runs::{ClearRequest, clear};
use crate::ops::{OpsError, Waker};
use crate::run::{Executor, plan_run};
use crate::schedule::cron::{next_after, previous_before};
use crate::state::RunState;
use crate::store::{NewRun, RunFilter, RunId, RunType, Store};
use crate::task::Registry;

/// The most ticks one backfill may cover, so a typo in a date range cannot queue millions.
pub const MAX_TICKS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct BackfillRequest {
    /// First and last logical date, both included.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Clear and run again the runs of the range that failed (others that exist are skipped).
    pub rerun_failed: bool,
    /// Runs at once in the foreground [default: the DAG's `max_active_runs`].
    pub max_active: Option<u32>,
    pub dry_run: bool,
    /// How often the foreground proves itself alive, so a daemon started meanwhile never
    /// takes its runs over.
    pub heartbeat_interval: std::time::Duration,
}

/// What backfill does with one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// A run exists already (and is not failed, or `--rerun-failed` was not given).
    Skip,
    /// A failed run of the range, cleared to run again.
    Rerun,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Skip => "skip",
            Action::Rerun => "rerun",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub logical_date: DateTime<Utc>,
    pub action: Action,
    /// The run of this tick (existing or created); `None` in a dry run that would create it.
    pub run_id: Option<RunId>,
    /// Its state at the end: as the foreground left it, or as queued for the daemon.
    pub state: Option<RunState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backfilled {
    pub dag_id: String,
    pub ticks: Vec<Tick>,
    /// Who runs them: `daemon (…)`, `foreground`, or `dry run`.
    pub executed_by: String,
}

impl Backfilled {
    pub fn failed(&self) -> usize {
        self.ticks
            .iter()
            .filter(|t| t.state == Some(RunState::Failed))
            .count()
    }
}

/// The ticks of `dag`'s schedule from `start` to `end`, both included.
fn ticks(
    dag: &Dag,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, OpsError> {
    let Some(schedule) = &dag.schedule else {
        return Err(OpsError::Invalid(format!(
            "DAG `{}` has no schedule, so it has no ticks to backfill; trigger runs with `vigil dags trigger {} --logical-date ...`",
            dag.id, dag.id
        )));
    };
    if end < start {
        return Err(OpsError::Invalid(
            "--end is before --start; swap them".into(),
        ));
    }
    let mut out = Vec::new();
    let mut from = start - chrono::Duration::microseconds(1);
    while let Some(tick) = next_after(&schedule.cron, dag.timezone, from) {
        if tick > end {
            break;
        }
        if out.len() == MAX_TICKS {
            return Err(OpsError::Invalid(format!(
                "the range holds more than {MAX_TICKS} ticks of `{}`; backfill it in parts",
                schedule.expression
            )));
        }
        out.push(tick);
        from = tick;
    }
    Ok(out)
}

pub async fn backfill(
    store: &Arc<dyn Store>,
    registry: &Registry,
    executor: &Executor,
    dag: Arc<Dag>,
    request: &BackfillRequest,
) -> Result<Backfilled, OpsError> {
    let ticks = ticks(&dag, request.start, request.end)?;
    let existing: std::collections::HashMap<DateTime<Utc>, (RunId, RunState)> = store
        .runs(&RunFilter {
            dag_id: Some(dag.id.clone()),
            limit: Some(u32::MAX),
            ..RunFilter::default()
        })
        .await?
        .into_iter()
        .map(|r| (r.logical_date, (r.id, r.state)))
        .collect();
    let mut plan: Vec<Tick> = ticks
        .iter()
        .map(|&t| match existing.get(&t) {
            Some(&(id, RunState::Failed)) if request.rerun_failed => Tick {
                logical_date: t,
                action: Action::Rerun,
                run_id: Some(id),
                state: Some(RunState::Failed),
            },
            Some(&(id, state)) => Tick {
                logical_date: t,
                action: Action::Skip,
                run_id: Some(id),
                state: Some(state),
            },
            None => Tick {
                logical_date: t,
                action: Action::Create,
                run_id: None,
                state: None,
            },
        })
        .collect();
    if request.dry_run {
        return Ok(Backfilled {
            dag_id: dag.id.clone(),
            ticks: plan,
            executed_by: "dry run".into(),
        });
    }
    // A daemon that holds this database runs them; otherwise this process does.
    let daemon = store.wake_daemons().await;
    let owner = daemon.is_none().then(crate::state::owner::current);
    let schedule = dag.schedule.as_ref().map(|s| &s.cron);
    let mut to_run = Vec::new();
    for tick in plan.iter_mut() {
        match tick.action {
            Action::Skip => {}
            Action::Create => {
                let new = NewRun {
                    data_interval_start: schedule
                        .and_then(|c| previous_before(c, dag.timezone, tick.logical_date))
                        .unwrap_or(tick.logical_date),
                    ..plan_run(
                        &dag,
                        serde_json::Value::Null,
                        RunType::Scheduled,
                        tick.logical_date,
                        // Queued even when this process runs it (and owns it from now on), so
                        // that its start time is when it starts, not when it was planned.
                        RunState::Queued,
                        owner.clone(),
                    )?
                };
                let run = store.create_run(&new).await?;
                tick.run_id = Some(run.id);
                tick.state = Some(run.state);
                to_run.push(run.id);
            }
            Action::Rerun => {
                let Some(id) = tick.run_id else { continue };
                let request = ClearRequest {
                    failed_only: true,
                    ..ClearRequest::default()
                };
                clear(store.as_ref(), registry, id, &request, &Waker::Daemons).await?;
                tick.state = Some(RunState::Queued);
                to_run.push(id);
            }
        }
    }
    let Some(owner) = owner else {
        // Asked first to learn whether one is alive; told again now that the runs exist (a
        // daemon that looked in between saw none of them).
        store.wake_daemons().await;
        return Ok(Backfilled {
            dag_id: dag.id.clone(),
            ticks: plan,
            executed_by: format!("daemon ({})", daemon.unwrap_or_default()),
        });
    };
    // Foreground: at most `max_active` runs at once, oldest first.
    let beating = tokio_util::sync::CancellationToken::new();
    let heartbeat = tokio::spawn(crate::run::owner::heartbeat_loop(
        store.clone(),
        owner.clone(),
        request.heartbeat_interval,
        beating.clone(),
        None,
    ));
    let parallel = request.max_active.unwrap_or(dag.max_active_runs).max(1) as usize;
    let results: Vec<(RunId, Result<RunState, OpsError>)> = futures::stream::iter(to_run)
        .map(|id| {
            let (store, executor, dag, owner) =
                (store.clone(), executor.clone(), dag.clone(), owner.clone());
            async move {
                let outcome = async {
                    // A cleared run is queued: take it before executing it.
                    store
                        .claim_run(id, &owner, std::time::Duration::ZERO, None)
                        .await?;
                    let run = store.run(id).await?.ok_or(OpsError::NoSuchRun(id))?;
                    executor
                        .execute(dag, run, None)
                        .await
                        .map_err(|e| OpsError::Invalid(e.to_string()))
                }
                .await;
                let _ = store.release_run(id, &owner).await;
                (id, outcome)
            }
        })
        .buffered(parallel)
        .collect()
        .await;
    beating.cancel();
    let _ = heartbeat.await;
    for (id, outcome) in results {
        if let Some(tick) = plan.iter_mut().find(|t| t.run_id == Some(id)) {
            tick.state = Some(outcome?);
        }
    }
    Ok(Backfilled {
        dag_id: dag.id.clone(),
        ticks: plan,
        executed_by: "foreground".into(),
    })
}
