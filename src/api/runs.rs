//! `/api/v1/runs`: runs with filters and cursor paging, one run with its task instances, a
//! task's log and result. Each handler calls the `ops` function the CLI calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use futures::StreamExt;

use super::extract::{Path, Query};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use crate::ops;
use crate::state::RunState;
use crate::store::{RunFilter, RunId};

/// The filters and page of `GET /api/v1/runs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only this DAG's runs.
    pub dag_id: Option<String>,
    /// Only runs in this state (`queued`, `running`, `success`, `failed`).
    pub state: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<RunId>,
    /// Runs per page, 1 to 1,000 (100 by default).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, description = "A page of runs, newest first; `next` is the cursor of the following page (null on the last)"),
              (status = 400, description = "A filter or the page size is wrong", body = super::error::ErrorBody)))]
pub async fn list(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<RunQuery>,
) -> Result<Json<ops::runs::RunPage>, ApiError> {
    let state = match q.state.as_deref() {
        Some(text) => Some(
            text.parse::<RunState>()
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
        None => None,
    };
    let filter = RunFilter {
        dag_id: q.dag_id,
        state,
        before: q.before,
        limit: q.limit,
    };
    Ok(Json(ops::runs::list(s.store.as_ref(), &filter).await?))
}

#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs",
    params(("run_id" = i64, Path, description = "The run's id")),
    responses((status = 200, description = "The run and its task instances (state, attempt, start, end, worker, error) in DAG order"),
              (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn show(
    State(s): State<Arc<ApiState>>,
    Path(run_id): Path<RunId>,
) -> Result<Json<ops::runs::RunDetail>, ApiError> {
    Ok(Json(
        ops::runs::show(s.store.as_ref(), &s.registry, run_id).await?,
    ))
}

/// Which attempt of a task (the latest when absent).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    pub attempt: Option<u32>,
}

/// Which lines of a task's log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this attempt (every attempt when absent).
    pub attempt: Option<u32>,
    /// Only lines numbered after this `seq` (to poll a running attempt's log).
    pub after: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}/logs", tag = "runs",
    params(("run_id" = i64, Path, description = "The run's id"),
           ("task_id" = String, Path, description = "The task's id"),
           LogQuery),
    responses((status = 200, description = "The task's log lines (of every attempt, or of one), in order; a running attempt's lines are stored every second"),
              (status = 404, description = "No such run or task", body = super::error::ErrorBody)))]
pub async fn logs(
    State(s): State<Arc<ApiState>>,
    Path((run_id, task_id)): Path<(RunId, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Vec<ops::runs::LogView>>, ApiError> {
    Ok(Json(
        ops::runs::logs(s.store.as_ref(), run_id, &task_id, q.attempt, q.after).await?,
    ))
}

/// How often a log stream looks for new lines (a running attempt stores them every second).
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(500);

#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}/logs/stream", tag = "runs",
    params(("run_id" = i64, Path, description = "The run's id"),
           ("task_id" = String, Path, description = "The task's id"),
           AttemptQuery),
    responses((status = 200, description = "Server-sent events following one attempt's log (the current one unless `attempt` is given): an `attempt` event with its number, a `line` event per log line (JSON, as in `/logs`), and an `end` event once the attempt is over", content_type = "text/event-stream"),
              (status = 404, description = "No such run or task", body = super::error::ErrorBody),
              (status = 503, description = "Too many log streams are open; poll `/logs?after=` instead", body = super::error::ErrorBody)))]
pub async fn stream_logs(
    State(s): State<Arc<ApiState>>,
    Path((run_id, task_id)): Path<(RunId, String)>,
    Query(q): Query<AttemptQuery>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            crate::state::ErrorKind::Unavailable,
            format!(
                "{} log streams are open, the most this server keeps; poll GET /api/v1/runs/{run_id}/tasks/{task_id}/logs?after=SEQ instead",
                super::MAX_STREAMS
            ),
        )
    })?;
    let mut follow = ops::runs::LogFollow::new(run_id, &task_id, q.attempt);
    // The first poll answers a missing run or task with a 404 rather than an empty stream.
    let first = follow.poll(s.store.as_ref()).await?;
    let opening = Event::default()
        .event("attempt")
        .data(first.attempt.to_string());
    let state = Following {
        s,
        follow,
        next: Some(first),
        done: false,
        _permit: permit,
    };
    let events = futures::stream::unfold(state, Following::step)
        .flat_map(futures::stream::iter)
        .map(Ok::<_, std::convert::Infallible>);
    let events = futures::stream::once(async { Ok(opening) }).chain(events);
    // Frequent enough that a client that left is noticed (and its slot freed) within seconds.
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(5))))
}

/// One open log stream: it holds a slot of [`super::MAX_STREAMS`] until it ends.
struct Following {
    s: Arc<ApiState>,
    follow: ops::runs::LogFollow,
    /// A poll made but not yet sent.
    next: Option<ops::runs::LogPoll>,
    done: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Following {
    /// The events of the next poll; `None` once the attempt ended or the server stops.
    async fn step(mut self) -> Option<(Vec<axum::response::sse::Event>, Following)> {
        use axum::response::sse::Event;
        if self.done {
            return None;
        }
        let poll = match self.next.take() {
            Some(p) => p,
            None => {
                tokio::select! {
                    _ = self.s.stop.cancelled() => return None,
                    _ = tokio::time::sleep(STREAM_POLL) => {}
                }
                match self.follow.poll(self.s.store.as_ref()).await {
                    Ok(p) => p,
                    Err(e) => {
                        self.done = true;
                        let e = ApiError::from(e);
                        return Some((vec![Event::default().event("error").data(e.message)], self));
                    }
                }
            }
        };
        let mut events: Vec<Event> = poll
            .lines
            .iter()
            .filter_map(|l| Event::default().event("line").json_data(l).ok())
            .collect();
        if poll.ended {
            events.push(Event::default().event("end").data(poll.attempt.to_string()));
            self.done = true;
        }
        Some((events, self))
    }
}

#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}/result", tag = "runs",
    params(("run_id" = i64, Path, description = "The run's id"),
           ("task_id" = String, Path, description = "The task's id"),
           AttemptQuery),
    responses((status = 200, description = "The task's result (its current attempt's, or the attempt asked for)"),
              (status = 404, description = "No such run or task, or no result", body = super::error::ErrorBody)))]
pub async fn result(
    State(s): State<Arc<ApiState>>,
    Path((run_id, task_id)): Path<(RunId, String)>,
    Query(q): Query<AttemptQuery>,
) -> Result<Json<crate::store::StoredOutput>, ApiError> {
    let store = s.store.as_ref();
    let out = match q.attempt {
        Some(a) => ops::runs::result_of_attempt(store, run_id, &task_id, a).await?,
        None => ops::runs::result(store, run_id, &task_id).await?,
    };
    Ok(Json(out))
}
