//! Bearer tokens: every request that changes state needs one, reads too when
//! `[api] read_requires_token` says so. The token comes from `VIGIL_API_TOKEN` or the first line
//! of `[api] token_file`; it is compared in constant time and never logged or printed.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The API token. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Why the token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {} (`[api] token_file`)", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} holds no token; put one (at least 16 characters) on its first line")]
    Empty { what: String },
    #[error("the API token from {what} is shorter than 16 characters; use a long random one")]
    Short { what: String },
}

impl crate::state::Kind for TokenError {
    fn kind(&self) -> crate::state::ErrorKind {
        match self {
            TokenError::Read { .. } => crate::state::ErrorKind::Unavailable,
            TokenError::Empty { .. } | TokenError::Short { .. } => crate::state::ErrorKind::Invalid,
        }
    }
}

impl Token {
    /// The token from `env` (the value of `VIGIL_API_TOKEN`) or else `file`; `None` when
    /// neither is set.
    pub fn load(env: Option<String>, file: Option<&Path>) -> Result<Option<Token>, TokenError> {
        let (text, what) = match (env, file) {
            (Some(t), _) => (t, "VIGIL_API_TOKEN".to_string()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                (text, format!("the token file {}", path.display()))
            }
            (None, None) => return Ok(None),
        };
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(TokenError::Empty { what });
        }
        if token.chars().count() < 16 {
            return Err(TokenError::Short { what });
        }
        Ok(Some(Token(token.into())))
    }

    fn matches(&self, offered: &str) -> bool {
        self.0.as_bytes().ct_eq(offered.as_bytes()).into()
    }
}

/// Who may do what.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token: Option<Token>,
    pub read_requires_token: bool,
}

/// Lets a request through when it needs no token or carries the right one.
pub async fn check(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !changes && !auth.read_requires_token {
        return next.run(request).await;
    }
    let Some(token) = &auth.token else {
        return ApiError::unauthorized(
            "this server has no API token, so it accepts no changes; set VIGIL_API_TOKEN (or `[api] token_file`) where it runs",
        )
        .into_response();
    };
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match offered {
        Some(t) if token.matches(t) => next.run(request).await,
        Some(_) => ApiError::unauthorized("the bearer token is not this server's").into_response(),
        None => {
            ApiError::unauthorized("send `Authorization: Bearer TOKEN` (the server's API token)")
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_long_enough_never_shown_and_matched_exactly() {
        assert!(Token::load(None, None).unwrap().is_none());
        assert!(matches!(
            Token::load(Some("short".into()), None),
            Err(TokenError::Short { .. })
        ));
        assert!(matches!(
            Token::load(Some("  \n".into()), None),
            Err(TokenError::Empty { .. })
        ));
        let t = Token::load(Some("0123456789abcdef-secret\n".into()), None)
            .unwrap()
            .unwrap();
        assert!(t.matches("0123456789abcdef-secret"));
        assert!(!t.matches("0123456789abcdef-secre"));
        assert!(!t.matches("0123456789abcdef-secrets"));
        assert!(!format!("{t:?}").contains("secret"));
    }
}
