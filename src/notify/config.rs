//! The `[smtp]` and `[notify]` sections of `config/vigil.toml`: this module's own settings,
//! which `config::Config` composes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::state::NotifySpec;

/// How email leaves: an SMTP relay. The password is never part of the config itself, only
/// where to find it, so printing or logging a `Config` cannot leak it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The relay; empty means email is not set up and email deliveries wait in the outbox.
    pub host: String,
    /// Default: 25 without TLS, 587 with STARTTLS, 465 with TLS.
    pub port: Option<u16>,
    pub tls: TlsMode,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (its first line), e.g. a mounted secret.
    pub password_file: Option<PathBuf>,
    /// Connecting, and each delivery as a whole, give up after this long (the message is
    /// retried later), so a hung server holds up only the outbox worker.
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text: only for a relay on the same host or a test server.
    None,
    /// Upgrade with STARTTLS, and refuse to go on without it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            tls: TlsMode::Starttls,
            from: "vigil <vigil@localhost>".into(),
            username: None,
            password_env: None,
            password_file: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }
}

/// Who hears about what by default, and how patiently messages are delivered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where vigil's web page is reached; links in messages start with it.
    pub base_url: String,
    /// Used by every DAG and task that does not name its own.
    pub email_on_failure: Vec<String>,
    pub email_on_retry: Vec<String>,
    pub webhook_on_failure: Vec<String>,
    /// How often the daemon looks for messages to send (it also looks when a run ends).
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub poll_interval: Duration,
    /// Wait before the first retry of a failed delivery; doubles each time…
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub retry_delay: Duration,
    /// …up to this.
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub max_retry_delay: Duration,
    /// A webhook POST gives up after this long (and is retried).
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub webhook_timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            base_url: "http://localhost:8080".into(),
            email_on_failure: Vec::new(),
            email_on_retry: Vec::new(),
            webhook_on_failure: Vec::new(),
            poll_interval: Duration::from_secs(5),
            retry_delay: Duration::from_secs(30),
            max_retry_delay: Duration::from_secs(1800),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

impl NotifyConfig {
    /// The defaults as a DAG-level `[notify]` table, for inheritance.
    pub fn defaults(&self) -> NotifySpec {
        NotifySpec {
            email_on_failure: self.email_on_failure.clone(),
            email_on_retry: self.email_on_retry.clone(),
            webhook_on_failure: self.webhook_on_failure.clone(),
        }
    }
}
