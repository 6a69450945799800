//! `/api/v1/risk`: the deployment rollback-risk model in use (version, hold-out metrics) and
//! scoring posted deployments (CSV or JSON rows) with bands and drivers, as `vigil risk score`
//! does. The loaded model is kept while its artifact's checksum stays the same.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::Query;
use crate::ml::risk::{Bands, MODEL_NAME, RiskModel};
use crate::ops;
use crate::store::registry::ModelVersion;

/// The last risk model loaded: its artifact's checksum and the model.
pub type Loaded = tokio::sync::Mutex<Option<(String, Arc<RiskModel>)>>;

/// Which version (production, else the newest, when absent).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    pub version: Option<String>,
}

async fn model(
    s: &ApiState,
    version: Option<&str>,
) -> Result<(ModelVersion, Arc<RiskModel>), ApiError> {
    let (v, path, sha) = ops::risk::resolve(s.store.as_ref(), MODEL_NAME, version).await?;
    let mut loaded = s.risk.lock().await;
    if let Some((cached, m)) = loaded.as_ref()
        && *cached == sha
    {
        return Ok((v, m.clone()));
    }
    let check = sha.clone();
    // Reading and checking the artifact is file and CPU work.
    let m = tokio::task::spawn_blocking(move || RiskModel::load(&path, Some(&check)))
        .await
        .map_err(|e| ApiError::new(crate::state::ErrorKind::Internal, e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %crate::state::Chain(&e), "the risk model's artifact did not load");
            ApiError::new(
                crate::state::ErrorKind::Unavailable,
                format!("version {} of {MODEL_NAME} did not load; see the daemon's log", v.version),
            )
        })?;
    let m = Arc::new(m);
    *loaded = Some((sha, m.clone()));
    Ok((v, m))
}

#[utoipa::path(get, path = "/api/v1/risk", tag = "risk", params(VersionQuery),
    responses((status = 200, description = "The risk model in use: version, threshold, features, training data, hold-out metrics beside the logistic baseline, feature importance"),
              (status = 404, description = "No risk model registered", body = super::error::ErrorBody)))]
pub async fn current(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<ops::risk::RiskSummary>, ApiError> {
    let (v, m) = model(&s, q.version.as_deref()).await?;
    Ok(Json(ops::risk::RiskSummary::of(v, &m)))
}

#[utoipa::path(get, path = "/api/v1/risk/figures/{name}", tag = "risk",
    params(("name" = String, Path, description = "`confusion_matrix` or `feature_importance` (`.svg` may follow)"), VersionQuery),
    responses((status = 200, description = "The figure, drawn from the hold-out the model recorded", content_type = "image/svg+xml"),
              (status = 404, description = "No such figure, or no risk model registered", body = super::error::ErrorBody)))]
pub async fn figure(
    State(s): State<Arc<ApiState>>,
    super::extract::Path(name): super::extract::Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let name = name.strip_suffix(".svg").unwrap_or(&name).to_string();
    let (_, m) = model(&s, q.version.as_deref()).await?;
    // Drawing is CPU work: off the runtime.
    let svg = tokio::task::spawn_blocking(move || ops::risk::figure(&m, &name))
        .await
        .map_err(|e| ApiError::new(crate::state::ErrorKind::Internal, e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        svg,
    ))
}

/// The model and the bands of `POST /api/v1/risk/score`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScoreQuery {
    pub version: Option<String>,
    /// Above this probability a deployment is blocked (0.6 by default).
    pub block_above: Option<f64>,
    /// Above this it needs a person (0.3 by default).
    pub review_above: Option<f64>,
    /// Which deployments get drivers: `flagged` (review, block or unfamiliar; the default),
    /// `all` or `none`.
    #[param(value_type = Option<String>)]
    pub drivers: Option<crate::ml::risk::Drivers>,
}

/// JSON body of `POST /api/v1/risk/score`: one object per deployment, keyed by column.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[utoipa::path(post, path = "/api/v1/risk/score", tag = "risk", params(ScoreQuery),
    request_body(content = ScoreBody, description = "`{\"rows\": [...]}`, or CSV (`Content-Type: text/csv`) with the columns of `risk score`'s input"),
    responses((status = 200, description = "Each deployment's probability, band and the features that pushed it up; the worst band"),
              (status = 400, description = "A missing column or a bad value, named with its line and column", body = super::error::ErrorBody),
              (status = 401, description = "No or wrong token", body = super::error::ErrorBody),
              (status = 404, description = "No risk model registered", body = super::error::ErrorBody)))]
pub async fn score(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<ScoreQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ops::risk::ScoredSet>, ApiError> {
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/csv"));
    // The model first: its spec says which columns the rows must have.
    let (v, m) = model(&s, q.version.as_deref()).await?;
    let deployments = if csv {
        m.read_csv("the posted CSV", &body)
    } else {
        let body: ScoreBody = super::dags::json_body(&body)?;
        m.read_json("the posted rows (row 1 is line 2)", &body.rows)
    }
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let defaults = Bands::default();
    let bands = Bands {
        block: q.block_above.unwrap_or(defaults.block),
        review: q.review_above.unwrap_or(defaults.review),
    };
    Ok(Json(ops::risk::score(
        &v,
        &m,
        &deployments,
        bands,
        q.drivers.unwrap_or(crate::ml::risk::Drivers::Flagged),
    )?))
}
