//! `/api/v1/dags`: the DAGs as loaded now, one in detail, triggering and pausing. Each handler
//! calls the `ops` function the CLI calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use crate::ops;

#[utoipa::path(get, path = "/api/v1/dags", tag = "dags",
    responses((status = 200, description = "Every DAG (schedule, next run, paused, last runs' states) and the errors of the files that failed to load")))]
pub async fn list(State(s): State<Arc<ApiState>>) -> Result<Json<ops::dags::DagList>, ApiError> {
    let set = s.dags();
    Ok(Json(ops::dags::list(s.store.as_ref(), &set).await?))
}

#[utoipa::path(get, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path, description = "The DAG's id")),
    responses((status = 200, description = "The DAG with its tasks, edges, params and next fire times"),
              (status = 404, description = "No such DAG", body = super::error::ErrorBody)))]
pub async fn show(
    State(s): State<Arc<ApiState>>,
    Path(dag_id): Path<String>,
) -> Result<Json<ops::dags::DagDetail>, ApiError> {
    let set = s.dags();
    let dag = ops::dags::find(&set, &s.folder, &dag_id)?;
    Ok(Json(ops::dags::show(s.store.as_ref(), &dag).await?))
}

/// How many runs a grid shows.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GridQuery {
    /// The latest runs to show, 1 to 100 (25 by default).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/grid", tag = "dags",
    params(("dag_id" = String, Path, description = "The DAG's id"), GridQuery),
    responses((status = 200, description = "The DAG's latest runs (oldest first) × its tasks: each cell the task instance's state, attempt, start and end"),
              (status = 400, description = "The number of runs is out of range", body = super::error::ErrorBody),
              (status = 404, description = "No such DAG", body = super::error::ErrorBody)))]
pub async fn grid(
    State(s): State<Arc<ApiState>>,
    Path(dag_id): Path<String>,
    super::extract::Query(q): super::extract::Query<GridQuery>,
) -> Result<Json<ops::dags::Grid>, ApiError> {
    let set = s.dags();
    let dag = ops::dags::find(&set, &s.folder, &dag_id)?;
    Ok(Json(
        ops::dags::grid(s.store.as_ref(), &dag, q.limit).await?,
    ))
}

/// What `POST /api/v1/dags/{dag_id}/runs` takes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// A JSON object checked against the DAG's `[params]`, as `dags trigger --conf` is.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub conf: serde_json::Value,
    /// Defaults to now.
    #[serde(default)]
    pub logical_date: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs", tag = "dags",
    params(("dag_id" = String, Path, description = "The DAG's id"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key returns the run the first one created")),
    request_body = TriggerBody,
    responses((status = 201, description = "The queued run"),
              (status = 400, description = "The conf does not fit the DAG's params", body = super::error::ErrorBody),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such DAG", body = super::error::ErrorBody),
              (status = 409, description = "The DAG has a run at that logical date", body = super::error::ErrorBody)))]
pub async fn trigger(
    State(s): State<Arc<ApiState>>,
    Path(dag_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ops::dags::Triggered>), ApiError> {
    // An empty body is a run with no conf, as `dags trigger` without `--conf`.
    let body: TriggerBody = json_or_default(&body)?;
    let key = idempotency_key(&headers)?;
    let set = s.dags();
    let dag = ops::dags::find(&set, &s.folder, &dag_id)?;
    let request = ops::dags::RunRequest {
        conf: body.conf,
        logical_date: body.logical_date,
    };
    let triggered =
        ops::dags::trigger_once(s.store.as_ref(), &dag, &request, key, &s.waker).await?;
    let status = if triggered.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(triggered)))
}

/// A JSON body of type `T`; an empty body is `T`'s default.
pub(super) fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(body)
}

/// A JSON body of type `T`, or an `invalid` error that says what is wrong with it.
/// The key at fault is named (`logical_date: input contains invalid characters`), not only
/// its column.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        ApiError::invalid(if path == "." {
            format!("the request body is not what this route takes: {e}")
        } else {
            format!("the request body is not what this route takes: `{path}`: {e}")
        })
    })?;
    // Nothing may follow the value.
    de.end().map_err(|e| {
        ApiError::invalid(format!(
            "the request body is not what this route takes: {e}"
        ))
    })?;
    Ok(value)
}

/// The `Idempotency-Key` header, if sent: printable ASCII, at most 200 characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            ApiError::invalid(
                "the Idempotency-Key header must be 1 to 200 printable ASCII characters",
            )
        })?;
    Ok(Some(key.to_string()))
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/pause", tag = "dags",
    params(("dag_id" = String, Path, description = "The DAG's id")),
    responses((status = 200, description = "The DAG is paused: no new scheduled runs, queued ones wait"),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such DAG", body = super::error::ErrorBody)))]
pub async fn pause(
    State(s): State<Arc<ApiState>>,
    Path(dag_id): Path<String>,
) -> Result<Json<ops::dags::Paused>, ApiError> {
    set_paused(&s, &dag_id, true).await
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/unpause", tag = "dags",
    params(("dag_id" = String, Path, description = "The DAG's id")),
    responses((status = 200, description = "The DAG is scheduled again"),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such DAG", body = super::error::ErrorBody)))]
pub async fn unpause(
    State(s): State<Arc<ApiState>>,
    Path(dag_id): Path<String>,
) -> Result<Json<ops::dags::Paused>, ApiError> {
    set_paused(&s, &dag_id, false).await
}

async fn set_paused(
    s: &ApiState,
    dag_id: &str,
    paused: bool,
) -> Result<Json<ops::dags::Paused>, ApiError> {
    let set = s.dags();
    Ok(Json(
        ops::dags::set_paused(s.store.as_ref(), &set, &s.folder, dag_id, paused, &s.waker).await?,
    ))
}
