//! Webhooks: a JSON POST with a Slack-compatible `text` field (so a Slack or Mattermost
//! incoming-webhook URL works as is) and the structured `event` for everything else.

use std::time::Duration;

use crate::notify::{Attempt, NotifyError};
use crate::store::OutboxMessage;

#[derive(Debug, Clone)]
pub struct Webhooks {
    client: reqwest::Client,
}

impl Webhooks {
    pub fn new(timeout: Duration) -> Result<Webhooks, NotifyError> {
        // reqwest is built without a bundled crypto provider; vigil uses ring everywhere.
        // An embedding program may have installed one already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Config(format!("cannot set up the webhook client: {e}")))?;
        Ok(Webhooks { client })
    }

    /// The JSON body posted for `m`.
    pub fn body(m: &OutboxMessage) -> serde_json::Value {
        serde_json::json!({
            "text": format!("{}\n{}", m.subject, m.body),
            "event": m.payload,
            "outbox_id": m.id,
        })
    }

    /// One POST of `m` to its URL. 2xx is delivered; 408, 429 and 5xx are retried (the
    /// receiver is busy or down); any other status is a permanent rejection.
    pub async fn send(&self, m: &OutboxMessage) -> Attempt {
        let Some(url) = m.recipients.first() else {
            return Attempt::Permanent("the webhook delivery has no URL".into());
        };
        let response = self
            .client
            .post(url)
            .header("Idempotency-Key", format!("vigil-outbox-{}", m.id))
            .json(&Self::body(m))
            .send()
            .await;
        match response {
            Err(e) => Attempt::Transient(format!("POST {}: {}", redact(url), error_chain(e))),
            Ok(r) => {
                let status = r.status();
                let text: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                let reply = format!("{status} {}", text.trim());
                if status.is_success() {
                    Attempt::Sent(reply)
                } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                    Attempt::Transient(format!("POST {}: {reply}", redact(url)))
                } else {
                    Attempt::Permanent(format!("POST {}: {reply}", redact(url)))
                }
            }
        }
    }
}

/// reqwest's error and its causes, without the URL that its own message carries (a
/// Slack-style URL is a secret).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `text` with every occurrence of each URL in `urls` replaced by its [`redact`]ed form: for
/// text that may quote a webhook URL (errors stored before URLs were kept out of them).
pub fn redact_in(text: &str, urls: &[String]) -> String {
    urls.iter()
        .filter(|u| !u.is_empty())
        .fold(text.to_string(), |t, u| t.replace(u.as_str(), &redact(u)))
}

/// A webhook URL for logs and errors: Slack-style URLs carry their secret in the path, so
/// only the scheme and host are shown.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(invalid URL)".into(),
    }
}
