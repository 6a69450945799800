//! The HTTP interface: a JSON API under `/api/v1`, `/healthz` and `/readyz`, served by
//! `vigil daemon` and by `vigil api` from the same database. Handlers only translate HTTP to
//! the `ops` functions the CLI calls and back (`extract.rs` and `error.rs` keep every error
//! JSON); `auth.rs` decides who may change what; `web.rs` serves the web page, which reads and
//! changes everything through this same API.

mod auth;
mod dags;
mod error;
mod extract;
mod health;
mod metrics;
mod models;
mod openapi;
mod risk;
mod runs;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use auth::{Auth, Token, TokenError};
pub use metrics::Metrics;
pub use openapi::ApiDoc;

use crate::config::ApiConfig;
use crate::dag::DagSet;
use crate::ops::Waker;
use crate::store::Store;
use crate::task::Registry;

/// The largest request body the API reads (a trigger's conf is far smaller).
fn max_body_bytes() -> usize {
    crate::state::limits::input_limits().api_body_bytes
}

/// Log streams open at once (each polls the store twice a second); past it, clients poll.
pub const MAX_STREAMS: usize = 64;

/// What every handler reads.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The DAG folder as last loaded (the daemon's scheduler publishes each reload).
    pub dags: watch::Receiver<Arc<DagSet>>,
    pub folder: PathBuf,
    pub registry: Arc<Registry>,
    pub waker: Waker,
    /// When the scheduler loop last stepped (Unix seconds), in a daemon.
    pub pulse: Option<Arc<AtomicI64>>,
    /// How old that may be and the daemon still ready.
    pub pulse_within: Duration,
    /// What this process saw happen (a daemon's attempts), for `/metrics`.
    pub metrics: Option<Metrics>,
    /// Who hears about model verdicts and rollbacks made through the API (`[notify]`).
    pub audience: crate::state::Audience,
    /// The risk model last loaded for `/api/v1/risk`.
    pub risk: risk::Loaded,
    /// Slots for open log streams ([`MAX_STREAMS`]).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the server stops: it ends open streams, then the server.
    pub stop: CancellationToken,
}

impl ApiState {
    /// The state for `store` and the DAGs in `dags`; a daemon adds its pulse and metrics.
    pub fn new(
        store: Arc<dyn Store>,
        dags: watch::Receiver<Arc<DagSet>>,
        folder: PathBuf,
        registry: Arc<Registry>,
        waker: Waker,
        audience: crate::state::Audience,
        stop: CancellationToken,
    ) -> ApiState {
        ApiState {
            store,
            dags,
            folder,
            registry,
            waker,
            pulse: None,
            pulse_within: Duration::ZERO,
            metrics: None,
            audience,
            risk: Default::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            stop,
        }
    }
}

impl ApiState {
    fn dags(&self) -> Arc<DagSet> {
        self.dags.borrow().clone()
    }
}

/// Why the API cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("`[api] listen = \"{0}\"` is not `host:port` (or `off`)")]
    Address(String),
    #[error(
        "the API would listen on {0}, which other machines can reach, with no token; set VIGIL_API_TOKEN (or `[api] token_file`), or listen on 127.0.0.1"
    )]
    Exposed(SocketAddr),
    #[error(
        "cannot listen on {addr} for the API (set `[api] listen` or VIGIL_API_LISTEN to another port, or `off`)"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl crate::state::Kind for ServeError {
    fn kind(&self) -> crate::state::ErrorKind {
        match self {
            ServeError::Address(_) | ServeError::Exposed(_) => crate::state::ErrorKind::Invalid,
            ServeError::Listen { .. } => crate::state::ErrorKind::Unavailable,
            ServeError::Token(e) => e.kind(),
        }
    }
}

/// The API's listening socket and who may use it, ready to serve.
pub struct Listener {
    listener: tokio::net::TcpListener,
    auth: Auth,
    cors: Vec<axum::http::HeaderValue>,
    pub addr: SocketAddr,
}

/// Binds `config.listen` (`None` when it is `off`), with the token from `VIGIL_API_TOKEN` or
/// `config.token_file`. A non-loopback address without a token is refused.
pub async fn bind(config: &ApiConfig) -> Result<Option<Listener>, ServeError> {
    if config.listen.trim() == "off" {
        return Ok(None);
    }
    let token = Token::load(
        std::env::var("VIGIL_API_TOKEN").ok(),
        config.token_file.as_deref(),
    )?;
    let addr: SocketAddr = config
        .listen
        .parse()
        .map_err(|_| ServeError::Address(config.listen.clone()))?;
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::Exposed(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    // Checked with the config; a value that is no header is the one thing left to refuse.
    let cors = config
        .cors_origins
        .iter()
        .map(|o| axum::http::HeaderValue::from_str(o).map_err(|_| ServeError::Address(o.clone())))
        .collect::<Result<_, _>>()?;
    Ok(Some(Listener {
        listener,
        cors,
        auth: Auth {
            token,
            read_requires_token: config.read_requires_token,
        },
        addr,
    }))
}

/// Lets pages from `origins` call the API from a browser (none: no CORS headers at all).
fn cors(origins: Vec<axum::http::HeaderValue>) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{Method, header};
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("idempotency-key"),
            ]),
    )
}

/// Every route. A test (`tests/it/api.rs`) reads the route calls below and fails when one is
/// missing from the OpenAPI document (`openapi.rs`).
pub fn router(state: Arc<ApiState>, auth: Auth) -> Router {
    let api = Router::new()
        .route("/api/v1/dags", get(dags::list))
        .route("/api/v1/dags/{dag_id}", get(dags::show))
        .route("/api/v1/dags/{dag_id}/runs", post(dags::trigger))
        .route("/api/v1/dags/{dag_id}/grid", get(dags::grid))
        .route("/api/v1/dags/{dag_id}/pause", post(dags::pause))
        .route("/api/v1/dags/{dag_id}/unpause", post(dags::unpause))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/runs/{run_id}", get(runs::show))
        .route(
            "/api/v1/runs/{run_id}/tasks/{task_id}/logs",
            get(runs::logs),
        )
        .route(
            "/api/v1/runs/{run_id}/tasks/{task_id}/logs/stream",
            get(runs::stream_logs),
        )
        .route(
            "/api/v1/runs/{run_id}/tasks/{task_id}/result",
            get(runs::result),
        )
        .route("/api/v1/models", get(models::list))
        .route("/api/v1/models/{model}", get(models::status))
        .route("/api/v1/models/{model}/versions", get(models::versions))
        .route(
            "/api/v1/models/{model}/deployments",
            get(models::deployments),
        )
        .route("/api/v1/models/{model}/alerts", get(models::alerts))
        .route("/api/v1/models/{model}/compare", get(models::compare))
        .route("/api/v1/models/{model}/check", post(models::check))
        .route("/api/v1/models/{model}/rollback", post(models::rollback))
        .route("/api/v1/models/{model}/promote", post(models::promote))
        .route("/api/v1/risk", get(risk::current))
        .route("/api/v1/risk/score", post(risk::score))
        .route("/api/v1/risk/figures/{name}", get(risk::figure))
        .route("/api/v1/outbox", get(models::outbox))
        .route("/api/v1/outbox/{id}/retry", post(models::retry))
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(Arc::new(auth), auth::check))
        .with_state(state.clone());
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
        .merge(api)
        .merge(web::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes()))
}

async fn not_found() -> impl IntoResponse {
    error::ApiError::new(
        crate::state::ErrorKind::NotFound,
        "no such route; GET /api/v1/openapi.json lists them",
    )
}

/// Serves `listener` until `state.stop` is cancelled.
pub async fn serve(listener: Listener, state: Arc<ApiState>) {
    let stop = state.stop.clone();
    let mut app = router(state, listener.auth);
    if let Some(layer) = cors(listener.cors) {
        app = app.layer(layer);
    }
    if let Err(e) = axum::serve(listener.listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "the API stopped");
    }
}
