//! The web page: one HTML file, a script and a style sheet compiled into the binary (no CDN,
//! works offline), drawing everything from the JSON API. The page builds its DOM from text
//! nodes only, and the Content-Security-Policy below lets nothing but these files run, so a
//! DAG id or a log line cannot become markup or script.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");
const ICON: &str = include_str!("web/icon.svg");

/// Scripts, styles and connections from this server only; images also from the page's own
/// blobs (figures fetched with the token); never framed by another site.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change with the binary; a revalidation is cheap on loopback.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// The page and its files: outside `/api/v1` and the OpenAPI document, and needing no token
/// (they hold no data; the page asks for the token when the API does).
pub fn router() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(index))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/icon.svg", get(icon))
        .route("/dags/{dag_id}/runs/{run_id}", get(run_link))
}

/// The address of a run in mail (`notify::message::run_link`): sent to the page's view of it.
/// Relative, so it also works under a reverse proxy's path prefix.
async fn run_link(
    axum::extract::Path((_dag, run)): axum::extract::Path<(String, String)>,
) -> impl IntoResponse {
    let run: String = run.chars().filter(char::is_ascii_digit).collect();
    (
        axum::http::StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("../../../#/runs/{run}"))],
    )
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn icon() -> impl IntoResponse {
    asset("image/svg+xml", ICON)
}
