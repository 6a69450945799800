//! `/api/v1/openapi.json`, generated from the handlers' annotations. A test reads the router's
//! routes from `api/mod.rs` and fails when one is missing here.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "vigil", description = "The vigil workflow scheduler's HTTP API. Changes need `Authorization: Bearer TOKEN`."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        super::dags::list,
        super::dags::show,
        super::dags::grid,
        super::dags::trigger,
        super::dags::pause,
        super::dags::unpause,
        super::runs::list,
        super::runs::show,
        super::runs::logs,
        super::runs::stream_logs,
        super::runs::result,
        super::models::list,
        super::models::status,
        super::models::versions,
        super::models::deployments,
        super::models::alerts,
        super::models::compare,
        super::models::check,
        super::models::rollback,
        super::models::promote,
        super::models::outbox,
        super::models::retry,
        super::risk::current,
        super::risk::score,
        super::risk::figure,
        openapi,
    ),
    components(schemas(
        super::error::ErrorBody,
        super::error::ErrorDetail,
        super::dags::TriggerBody,
        super::models::CheckBody,
        super::models::RollbackBody,
        super::models::PromoteBody,
        super::risk::ScoreBody
    )),
    tags((name = "dags"), (name = "runs"), (name = "models"), (name = "outbox"), (name = "risk"), (name = "health"), (name = "meta"))
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
