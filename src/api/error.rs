//! Errors as the API returns them: `{"error": {"code", "message"}}` with a status and a code
//! from the error's kind, and a message that names what was asked for and what to do — never
//! SQL, a file path or a secret (those stay in the daemon's log).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ops::OpsError;
use crate::state::{Chain, ErrorKind, Kind};

/// An API error: its status, its stable code and what the caller may read.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable: `not_found`, `conflict`, `invalid`, `unauthorized`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        let (status, code) = match kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Invalid, message)
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> ApiError {
        let kind = e.kind();
        let message = match &e {
            // These name the DAG folder; the caller needs only the DAGs.
            OpsError::NoSuchDag { id, known, .. } => format!(
                "no DAG `{id}`; known DAGs: {}",
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            ),
            OpsError::DagBroken { id, .. } => {
                format!("DAG `{id}` did not load; GET /api/v1/dags lists its file's errors")
            }
            OpsError::Folder(_) => "the DAG folder cannot be read; see the daemon's log".into(),
            // Artifact errors name the file.
            OpsError::Ml(crate::ml::MlError::Artifact { .. }) => {
                tracing::error!(error = %Chain(&e), "API request failed");
                "the model's artifact did not load; see the daemon's log".into()
            }
            OpsError::Store(s) => match s.kind() {
                // Conflicts and missing rows say what the caller asked about; anything else
                // is the database's business, and its detail (SQL, a path) stays in the log.
                ErrorKind::Conflict | ErrorKind::NotFound | ErrorKind::Invalid => e.to_string(),
                ErrorKind::Unavailable => {
                    tracing::warn!(error = %Chain(&e), "API request failed");
                    "the database is unavailable; try again".into()
                }
                ErrorKind::Internal => {
                    tracing::error!(error = %Chain(&e), "API request failed");
                    "internal error; see the daemon's log".into()
                }
            },
            _ if kind == ErrorKind::Internal || kind == ErrorKind::Unavailable => {
                tracing::error!(error = %Chain(&e), "API request failed");
                "internal error; see the daemon's log".into()
            }
            _ => e.to_string(),
        };
        ApiError::new(kind, message)
    }
}

impl From<crate::ops::registry::ModelError> for ApiError {
    fn from(e: crate::ops::registry::ModelError) -> ApiError {
        match e {
            crate::ops::registry::ModelError::Store(s) => OpsError::Store(s).into(),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
