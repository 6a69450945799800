//! `/api/v1/models` and `/api/v1/outbox`: the model registry (status, versions with metrics,
//! deployment events, verdicts and alerts, compare, check, rollback, promote) and the
//! outbox (list, retry). Each handler calls the `ops` function the CLI calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::{Path, Query};
use crate::ops;
use crate::ops::registry as reg;

/// Who an API change is recorded as (the registry's deployment events keep it).
fn actor() -> String {
    format!("api ({})", crate::state::owner::current())
}

/// A page size for the registry's lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// At most this many, newest first (50 by default).
    pub limit: Option<u32>,
}

impl Limit {
    fn get(&self) -> Result<u32, ApiError> {
        match self.limit.unwrap_or(50) {
            0 => Err(ApiError::invalid("limit must be 1 or more")),
            n => Ok(n.min(1000)),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    responses((status = 200, description = "Every registered model with its production version")))]
pub async fn list(
    State(s): State<Arc<ApiState>>,
) -> Result<Json<Vec<crate::store::registry::ModelRecord>>, ApiError> {
    Ok(Json(reg::models(s.store.as_ref()).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{model}", tag = "models",
    params(("model" = String, Path, description = "The model's name")),
    responses((status = 200, description = "Production version, the version a rollback restores, version count, the latest check or change"),
              (status = 404, description = "No such model", body = super::error::ErrorBody)))]
pub async fn status(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
) -> Result<Json<reg::Status>, ApiError> {
    Ok(Json(reg::status(s.store.as_ref(), &model).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/versions", tag = "models",
    params(("model" = String, Path, description = "The model's name"), Limit),
    responses((status = 200, description = "Versions newest first, with their metrics and their periods in production"),
              (status = 404, description = "No such model", body = super::error::ErrorBody)))]
pub async fn versions(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<reg::HistoryEntry>>, ApiError> {
    Ok(Json(
        reg::history(s.store.as_ref(), &model, q.get()?).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/deployments", tag = "models",
    params(("model" = String, Path, description = "The model's name"), Limit),
    responses((status = 200, description = "Production changes, newest first: from, to, why, who"),
              (status = 404, description = "No such model", body = super::error::ErrorBody)))]
pub async fn deployments(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<crate::store::registry::Deployment>>, ApiError> {
    Ok(Json(
        reg::deployments(s.store.as_ref(), &model, q.get()?).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/alerts", tag = "models",
    params(("model" = String, Path, description = "The model's name"), Limit),
    responses((status = 200, description = "Every check verdict (with its evidence), rollback and refused change, newest first"),
              (status = 404, description = "No such model", body = super::error::ErrorBody)))]
pub async fn alerts(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<crate::store::registry::Alert>>, ApiError> {
    Ok(Json(reg::alerts(s.store.as_ref(), &model, q.get()?).await?))
}

/// The two versions `compare` weighs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    pub baseline: String,
    pub candidate: String,
}

#[utoipa::path(get, path = "/api/v1/models/{model}/compare", tag = "models",
    params(("model" = String, Path, description = "The model's name"), CompareQuery),
    responses((status = 200, description = "Is the candidate worse than the baseline: the verdict with its evidence (estimate, interval, p-value, n)"),
              (status = 404, description = "No such model or version", body = super::error::ErrorBody)))]
pub async fn compare(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Result<Json<crate::quality::verdict::Judgement>, ApiError> {
    let rules = crate::quality::verdict::Rules::default();
    Ok(Json(
        reg::compare(
            s.store.as_ref(),
            &model,
            &q.baseline,
            &q.candidate,
            &rules,
            None,
        )
        .await?,
    ))
}

/// What `POST …/check` does.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CheckBody {
    /// Roll back when the verdict and the guards allow.
    pub auto_rollback: bool,
    /// Record what would be done without changing production.
    pub dry_run: bool,
    /// Which labelled predictions: `since-change` (the default), `all`, or a duration such as
    /// `24h`.
    pub window: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/models/{model}/check", tag = "models",
    params(("model" = String, Path, description = "The model's name")),
    request_body = CheckBody,
    responses((status = 200, description = "The verdict on production against the version before it, and what was done"),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such model", body = super::error::ErrorBody),
              (status = 409, description = "No production version", body = super::error::ErrorBody)))]
pub async fn check(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<reg::CheckOutcome>, ApiError> {
    let body: CheckBody = super::dags::json_or_default(&body)?;
    let window = match &body.window {
        Some(w) => w
            .parse()
            .map_err(|e: String| ApiError::invalid(format!("window: {e}")))?,
        None => reg::Window::default(),
    };
    let opts = reg::CheckOptions {
        auto_rollback: body.auto_rollback,
        dry_run: body.dry_run,
        window,
        notify: s.audience.clone(),
        ..reg::CheckOptions::default()
    };
    Ok(Json(
        reg::check(s.store.as_ref(), &model, &opts, &actor()).await?,
    ))
}

/// What `POST …/rollback` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The version to restore (the one before production when absent).
    #[serde(default)]
    pub to: Option<String>,
    /// Why: kept with the deployment event.
    pub reason: String,
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/models/{model}/rollback", tag = "models",
    params(("model" = String, Path, description = "The model's name")),
    request_body = RollbackBody,
    responses((status = 200, description = "Rolled back (or already there, or what a dry run would do)"),
              (status = 400, description = "No reason given, or a malformed body", body = super::error::ErrorBody),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such model or version", body = super::error::ErrorBody),
              (status = 409, description = "Nothing to roll back to, or production changed meanwhile", body = super::error::ErrorBody)))]
pub async fn rollback(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<reg::Rollback>, ApiError> {
    let body: RollbackBody = super::dags::json_body(&body)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "give a reason: it is kept with the deployment event",
        ));
    }
    Ok(Json(
        reg::rollback(
            s.store.as_ref(),
            &model,
            body.to.as_deref(),
            &body.reason,
            &actor(),
            body.dry_run,
            &s.audience,
        )
        .await?,
    ))
}

/// What `POST …/promote` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    pub version: String,
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/models/{model}/promote", tag = "models",
    params(("model" = String, Path, description = "The model's name")),
    request_body = PromoteBody,
    responses((status = 200, description = "The deployment event, or null when the version already was production"),
              (status = 400, description = "No reason given, or a malformed body", body = super::error::ErrorBody),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such model or version", body = super::error::ErrorBody)))]
pub async fn promote(
    State(s): State<Arc<ApiState>>,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Option<crate::store::registry::Deployment>>, ApiError> {
    let body: PromoteBody = super::dags::json_body(&body)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "give a reason: it is kept with the deployment event",
        ));
    }
    Ok(Json(
        reg::promote(
            s.store.as_ref(),
            &model,
            &body.version,
            &body.reason,
            &actor(),
        )
        .await?,
    ))
}

/// Which messages `GET /api/v1/outbox` lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending`, `sent` or `failed`.
    pub state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/outbox", tag = "outbox", params(OutboxQuery),
    responses((status = 200, description = "Messages with their state, attempts and last error (webhook URLs cut to their host)"),
              (status = 400, description = "An unknown state", body = super::error::ErrorBody)))]
pub async fn outbox(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<OutboxQuery>,
) -> Result<Json<Vec<crate::store::OutboxMessage>>, ApiError> {
    let state = match q.state.as_deref() {
        Some(t) => Some(
            t.parse()
                .map_err(|e: crate::state::UnknownName| ApiError::invalid(e.to_string()))?,
        ),
        None => None,
    };
    Ok(Json(ops::outbox::list(s.store.as_ref(), state).await?))
}

#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "outbox",
    params(("id" = i64, Path, description = "The message's id")),
    responses((status = 200, description = "The message is queued again"),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No such message", body = super::error::ErrorBody),
              (status = 409, description = "Already sent", body = super::error::ErrorBody)))]
pub async fn retry(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<i64>,
) -> Result<Json<ops::outbox::Requeued>, ApiError> {
    Ok(Json(ops::outbox::retry(s.store.as_ref(), id).await?))
}
