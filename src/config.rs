//! `config/vigil.toml`, overridden by `VIGIL_*` environment variables, overridden by command
//! line flags. Every key is documented in `config/vigil.toml` itself.
//!
//! Relative paths are resolved against the directory vigil is started in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::notify::{NotifyConfig, SmtpConfig};
use crate::store::Synchronous;

/// The config file used when `--config` / `VIGIL_CONFIG` do not name one (if it exists).
pub const DEFAULT_CONFIG_PATH: &str = "config/vigil.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub dags: DagsConfig,
    pub executor: ExecutorConfig,
    pub daemon: DaemonConfig,
    pub retention: RetentionConfig,
    pub smtp: SmtpConfig,
    pub notify: NotifyConfig,
    pub api: ApiConfig,
    /// `[risk]`: the columns `vigil risk train` reads by default (flags override each one).
    pub risk: crate::ml::spec::ModelSpec,
    /// `[limits]`: what one DAG file, conf, API request or template may cost.
    pub limits: crate::state::limits::InputLimits,
}

/// `[api]`: the HTTP API, metrics and web page the daemon (and `vigil api`) serve.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// `host:port` to listen on (port 0: any free one, printed at start), or `off`.
    pub listen: String,
    /// A file whose first line is the bearer token; `VIGIL_API_TOKEN` takes precedence. The
    /// token itself is never part of the config, so it is never printed with it.
    pub token_file: Option<PathBuf>,
    /// Reads need the token too (changes always do).
    pub read_requires_token: bool,
    /// Web origins (`https://ops.example.com`) whose pages may call the API from a browser;
    /// empty: none (no CORS headers are sent).
    pub cors_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            token_file: None,
            read_requires_token: false,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// On SIGTERM/SIGINT, how long running tasks may take to finish before they are
    /// cancelled and recorded to run again.
    #[serde(deserialize_with = "crate::state::duration::deserialize")]
    pub shutdown_grace: Duration,
    /// How often the daemon proves it is alive for the runs it executes.
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub heartbeat_interval: Duration,
    /// A run whose owner has not heartbeat for this long is taken over.
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub lease: Duration,
    /// What this daemon does on a shared (PostgreSQL) database; `--scheduler-only` and
    /// `--worker-only` override it.
    pub role: crate::schedule::Role,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Finished runs older than this are deleted, with their results and logs.
    #[serde(deserialize_with = "crate::state::duration::deserialize")]
    pub max_age: Duration,
    /// How often the daemon deletes them.
    #[serde(deserialize_with = "crate::state::duration::deserialize_positive")]
    pub interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            shutdown_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            role: crate::schedule::Role::Both,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(30 * 24 * 3600),
            interval: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created if missing).
    pub url: String,
    /// `normal` (safe against a process crash) or `full` (also against power loss, slower).
    pub synchronous: Synchronous,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DagsConfig {
    pub folder: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Task attempts running at once in this process, across all DAGs.
    pub parallelism: usize,
    /// Bytes of result one attempt may print (a `command` task's stdout); a larger result
    /// fails the attempt.
    pub max_result_bytes: usize,
    /// Bytes of log kept per attempt; lines past it are counted and dropped.
    pub max_log_bytes: usize,
    /// After SIGTERM at shutdown, how long a task's processes get before SIGKILL.
    #[serde(deserialize_with = "crate::state::duration::deserialize")]
    pub kill_grace: Duration,
}

impl ExecutorConfig {
    pub fn output_limits(&self) -> crate::task::OutputLimits {
        crate::task::OutputLimits {
            max_result_bytes: self.max_result_bytes,
            max_log_bytes: self.max_log_bytes,
            kill_grace: self.kill_grace,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://vigil.db".into(),
            synchronous: Synchronous::Normal,
        }
    }
}

impl Default for DagsConfig {
    fn default() -> Self {
        DagsConfig {
            folder: PathBuf::from("dags"),
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        let limits = crate::task::OutputLimits::default();
        ExecutorConfig {
            parallelism: 32,
            max_result_bytes: limits.max_result_bytes,
            max_log_bytes: limits.max_log_bytes,
            kill_grace: limits.kill_grace,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("invalid environment variable {name}={value:?}: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },
}

impl crate::state::Kind for SettingsError {
    fn kind(&self) -> crate::state::ErrorKind {
        match self {
            SettingsError::Read { .. } => crate::state::ErrorKind::Unavailable,
            SettingsError::Parse { .. } | SettingsError::Env { .. } => {
                crate::state::ErrorKind::Invalid
            }
        }
    }
}

impl Config {
    /// Loads `path` if given (it must exist), else `config/vigil.toml` if it exists, else the
    /// defaults; then applies `VIGIL_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, SettingsError> {
        let mut config = match path {
            Some(p) => Config::from_file(p)?,
            None if Path::new(DEFAULT_CONFIG_PATH).is_file() => {
                Config::from_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, SettingsError> {
        let config: Config = toml::from_str(text).map_err(|e| SettingsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        config.check().map_err(|message| SettingsError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// What serde cannot check: addresses and URLs, so a typo fails at start and not in
    /// the middle of the night when the first failure should be mailed.
    fn check(&self) -> Result<(), String> {
        use crate::notify::address;
        let n = &self.notify;
        for (key, list) in [
            ("notify.email_on_failure", &n.email_on_failure),
            ("notify.email_on_retry", &n.email_on_retry),
        ] {
            for a in list {
                address::check_email(a).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        for u in &n.webhook_on_failure {
            address::check_url(u).map_err(|e| format!("notify.webhook_on_failure: {e}"))?;
        }
        address::check_url(&n.base_url).map_err(|e| format!("notify.base_url: {e}"))?;
        address::check_email(&self.smtp.from).map_err(|e| format!("smtp.from: {e}"))?;
        for origin in &self.api.cors_origins {
            check_origin(origin).map_err(|e| format!("api.cors_origins: {e}"))?;
        }
        self.risk.check().map_err(|e| format!("risk: {e}"))?;
        if self.executor.parallelism == 0 {
            return Err(
                "executor.parallelism: must be 1 or more (0 would start no task, ever)".into(),
            );
        }
        if let Some(key) = self.limits.zero_key() {
            return Err(format!(
                "limits.{key}: must be 1 or more (0 would refuse every input)"
            ));
        }
        if self.smtp.password_env.is_some() && self.smtp.password_file.is_some() {
            return Err("smtp: set either password_env or password_file, not both".into());
        }
        Ok(())
    }

    /// `VIGIL_DATABASE_URL`, `VIGIL_DATABASE_SYNCHRONOUS`, `VIGIL_DAGS_FOLDER`,
    /// `VIGIL_PARALLELISM`, `VIGIL_API_LISTEN`.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&'static str) -> Option<String>,
    ) -> Result<(), SettingsError> {
        if let Some(url) = var("VIGIL_DATABASE_URL") {
            self.database.url = url;
        }
        if let Some(value) = var("VIGIL_DATABASE_SYNCHRONOUS") {
            self.database.synchronous = match value.as_str() {
                "normal" => Synchronous::Normal,
                "full" => Synchronous::Full,
                _ => {
                    return Err(SettingsError::Env {
                        name: "VIGIL_DATABASE_SYNCHRONOUS",
                        value,
                        message: "expected `normal` or `full`".into(),
                    });
                }
            };
        }
        if let Some(listen) = var("VIGIL_API_LISTEN") {
            self.api.listen = listen;
        }
        if let Some(folder) = var("VIGIL_DAGS_FOLDER") {
            self.dags.folder = folder.into();
        }
        if let Some(value) = var("VIGIL_PARALLELISM") {
            self.executor.parallelism = match value.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(SettingsError::Env {
                        name: "VIGIL_PARALLELISM",
                        value,
                        message: "expected a whole number of 1 or more".into(),
                    });
                }
            };
        }
        Ok(())
    }
}

/// A web origin as browsers send it: `scheme://host[:port]`, nothing after.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|e| format!("`{origin}` is not an origin: {e}"))?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && !origin.ends_with('/')
        && url.query().is_none()
        && url.username().is_empty();
    if bare {
        Ok(())
    } else {
        Err(format!(
            "`{origin}` is not an origin; write it as a browser sends it, e.g. `https://ops.example.com` or `http://localhost:3000`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        let mut c = Config::parse(
            Path::new("vigil.toml"),
            "[database]\nurl = \"sqlite://a.db\"\n[executor]\nparallelism = 4\n",
        )
        .unwrap();
        assert_eq!(c.database.url, "sqlite://a.db");
        assert_eq!(c.dags.folder, PathBuf::from("dags"));
        c.apply_env(|name| match name {
            "VIGIL_DATABASE_URL" => Some("sqlite://b.db".into()),
            "VIGIL_DATABASE_SYNCHRONOUS" => Some("full".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database.url, "sqlite://b.db");
        assert_eq!(c.database.synchronous, Synchronous::Full);
        assert_eq!(c.executor.parallelism, 4);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::parse(Path::new("c.toml"), "[database]\nurll = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("urll"), "{err}");
        let err = Config::default()
            .apply_env(|n| (n == "VIGIL_PARALLELISM").then(|| "zero".to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("VIGIL_PARALLELISM"), "{err}");
    }

    #[test]
    fn the_shipped_config_parses_to_the_defaults() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/vigil.toml"));
        let c = Config::from_file(path).unwrap();
        let d = Config::default();
        assert_eq!(c.smtp.from, d.smtp.from);
        assert_eq!(c.smtp.tls, d.smtp.tls);
        assert_eq!(c.smtp.timeout, d.smtp.timeout);
        assert_eq!(c.notify.base_url, d.notify.base_url);
        assert_eq!(c.notify.retry_delay, d.notify.retry_delay);
        assert_eq!(c.notify.max_retry_delay, d.notify.max_retry_delay);
        assert_eq!(c.limits, d.limits);
        assert_eq!(c.retention.max_age, d.retention.max_age);
        assert_eq!(c.risk, d.risk);
    }

    #[test]
    fn the_risk_columns_come_from_the_config_and_are_checked_at_load() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[risk]\nfeatures = [\"latency_ms\", \"cpu_usage\"]\nlabel = \"rollback\"\npositive = \"yes\"\n",
        )
        .unwrap();
        assert_eq!(c.risk.features, ["latency_ms", "cpu_usage"]);
        assert_eq!(
            (c.risk.label.as_str(), c.risk.positive.as_str()),
            ("rollback", "yes")
        );
        assert_eq!(
            c.risk.id, "deployment_id",
            "a column left out is the simulator's"
        );
        let err = Config::parse(
            Path::new("c.toml"),
            "[risk]\nfeatures = [\"rollback\"]\nlabel = \"rollback\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("c.toml") && err.contains("risk") && err.contains("`rollback`"),
            "{err}"
        );
        let err = Config::parse(Path::new("c.toml"), "[risk]\nfeature = [\"a\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("feature"), "{err}");
    }

    #[test]
    fn addresses_in_the_config_are_checked_at_load() {
        let err = Config::parse(
            Path::new("c.toml"),
            "[notify]\nemail_on_failure = [\"oncall.example.com\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("c.toml")
                && err.contains("notify.email_on_failure")
                && err.contains("oncall.example.com"),
            "{err}"
        );
        let err = Config::parse(
            Path::new("c.toml"),
            "[notify]\nwebhook_on_failure = [\"slack\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("notify.webhook_on_failure"), "{err}");
        let err = Config::parse(
            Path::new("c.toml"),
            "[smtp]\npassword_env = \"A\"\npassword_file = \"b\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn the_password_comes_from_the_environment_and_never_prints() {
        const SENTINEL: &str = "SENTINEL-unit-7d2a";
        // A variable only this test uses; set before any thread of this test reads it.
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("VIGIL_TEST_SMTP_PASSWORD_7D2A", SENTINEL) };
        let c = Config::parse(
            Path::new("c.toml"),
            "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"VIGIL_TEST_SMTP_PASSWORD_7D2A\"\n",
        )
        .unwrap();
        let secret = crate::notify::email::password(&c.smtp).unwrap().unwrap();
        assert_eq!(secret.expose(), SENTINEL);
        let mailer = crate::notify::Mailer::from_config(&c.smtp)
            .unwrap()
            .unwrap();
        for shown in [
            format!("{c:?}"),
            format!("{secret:?}"),
            format!("{secret}"),
            format!("{mailer:?}"),
        ] {
            assert!(!shown.contains(SENTINEL), "{shown}");
        }
        let missing = Config::parse(
            Path::new("c.toml"),
            "[smtp]\nusername = \"u\"\npassword_env = \"VIGIL_TEST_UNSET_9F\"\n",
        )
        .unwrap();
        let err = crate::notify::email::password(&missing.smtp)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("VIGIL_TEST_UNSET_9F") && err.contains("not set"),
            "{err}"
        );
    }
}
