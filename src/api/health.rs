//! `/healthz` (the process answers) and `/readyz` (the store answers and, in a daemon, the
//! scheduler loop has stepped recently).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::ApiState;

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "The store answers and the scheduler loop ticks"),
              (status = 503, description = "Not ready: what is not")))]
pub async fn readyz(State(s): State<Arc<ApiState>>) -> (StatusCode, Json<serde_json::Value>) {
    let store = match s.store.now().await {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %crate::state::Chain(&e), "readiness: the store does not answer");
            "the database does not answer".to_string()
        }
    };
    let scheduler = match &s.pulse {
        None => "not in this process".to_string(),
        Some(pulse) => {
            let last = pulse.load(Ordering::Relaxed);
            let age = chrono::Utc::now().timestamp() - last;
            // The loop steps at least once per lease (its lease check).
            if last > 0 && age <= i64::try_from(s.pulse_within.as_secs()).unwrap_or(i64::MAX) {
                "ok".to_string()
            } else {
                format!("the scheduler loop has not stepped for {age} s")
            }
        }
    };
    let ready = store == "ok" && (scheduler == "ok" || s.pulse.is_none());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "store": store, "scheduler": scheduler})),
    )
}
