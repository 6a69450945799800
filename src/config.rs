//! `config/vigil.toml`, overridden by `VIGIL_*` environment variables, overridden by command
//! line flags. Every key is documented in `config/vigil.toml` itself.
//!
//! Relative paths are resolved against the directory vigil is started in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// On SIGTERM/SIGINT, how long running tasks may take to finish before they are
    /// cancelled and recorded to run again.
    #[serde(deserialize_with = "crate::tasks::duration::deserialize")]
    pub shutdown_grace: Duration,
    /// How often the daemon proves it is alive for the runs it executes.
    #[serde(deserialize_with = "crate::tasks::duration::deserialize")]
    pub heartbeat_interval: Duration,
    /// A run whose owner has not heartbeat for this long is taken over.
    #[serde(deserialize_with = "crate::tasks::duration::deserialize")]
    pub lease: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Finished runs older than this are deleted, with their results and logs.
    #[serde(deserialize_with = "crate::tasks::duration::deserialize")]
    pub max_age: Duration,
    /// How often the daemon deletes them.
    #[serde(deserialize_with = "crate::tasks::duration::deserialize")]
    pub interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            shutdown_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            lease: Duration::from_secs(30),
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
        ExecutorConfig { parallelism: 32 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
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

impl Config {
    /// Loads `path` if given (it must exist), else `config/vigil.toml` if it exists, else the
    /// defaults; then applies `VIGIL_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
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

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })
    }

    /// `VIGIL_DATABASE_URL`, `VIGIL_DATABASE_SYNCHRONOUS`, `VIGIL_DAGS_FOLDER`,
    /// `VIGIL_PARALLELISM`.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&'static str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(url) = var("VIGIL_DATABASE_URL") {
            self.database.url = url;
        }
        if let Some(value) = var("VIGIL_DATABASE_SYNCHRONOUS") {
            self.database.synchronous = match value.as_str() {
                "normal" => Synchronous::Normal,
                "full" => Synchronous::Full,
                _ => {
                    return Err(ConfigError::Env {
                        name: "VIGIL_DATABASE_SYNCHRONOUS",
                        value,
                        message: "expected `normal` or `full`".into(),
                    });
                }
            };
        }
        if let Some(folder) = var("VIGIL_DAGS_FOLDER") {
            self.dags.folder = folder.into();
        }
        if let Some(value) = var("VIGIL_PARALLELISM") {
            self.executor.parallelism = match value.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::Env {
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
}
