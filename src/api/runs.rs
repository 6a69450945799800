//! `/api/v1/runs`: runs with filters and cursor paging, one run with its task instances, a
//! task's log and result. Each handler calls the `ops` function the CLI calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

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

#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}/logs", tag = "runs",
    params(("run_id" = i64, Path, description = "The run's id"),
           ("task_id" = String, Path, description = "The task's id"),
           AttemptQuery),
    responses((status = 200, description = "The task's log lines (of every attempt, or of one), in order"),
              (status = 404, description = "No such run or task", body = super::error::ErrorBody)))]
pub async fn logs(
    State(s): State<Arc<ApiState>>,
    Path((run_id, task_id)): Path<(RunId, String)>,
    Query(q): Query<AttemptQuery>,
) -> Result<Json<Vec<ops::runs::LogView>>, ApiError> {
    Ok(Json(
        ops::runs::logs(s.store.as_ref(), run_id, &task_id, q.attempt).await?,
    ))
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
