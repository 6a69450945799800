//! Task types by name, with their config and output types erased to JSON. A DAG reloaded from
//! its file or from a stored run can only find its tasks by name, so the name is the contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::task::probe::{Probe, ProbeDeserializer};
use crate::task::{Task, TaskContext, TaskError};

/// A task type seen through JSON.
#[async_trait]
pub trait ErasedTask: Send + Sync {
    /// Checks that a config (with template results not knowable before the run marked
    /// unknown) deserializes into the task type's config.
    /// Every problem of the config, at most one per top-level key.
    fn check_config(&self, probe: &Probe) -> Result<(), Vec<ConfigError>>;

    async fn run_json(
        &self,
        ctx: &TaskContext,
        config: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError>;
}

/// A config that does not fit the task type, with the path of the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// Dotted path inside `config`, empty for the config as a whole.
    pub path: String,
    pub message: String,
}

impl crate::state::Kind for ConfigError {
    fn kind(&self) -> crate::state::ErrorKind {
        crate::state::ErrorKind::Invalid
    }
}

impl ConfigError {
    /// A problem with the value at `path` (dotted, e.g. `"threshold_percent"`).
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

struct Typed<T>(T);

#[async_trait]
impl<T: Task> ErasedTask for Typed<T> {
    fn check_config(&self, probe: &Probe) -> Result<(), Vec<ConfigError>> {
        // serde stops at the first error. To report every wrong key at once, the key at fault
        // is set aside and the rest is checked again, until the config fits or the only
        // complaint left is about a key set aside.
        let mut probe = probe.clone();
        let mut set_aside: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        loop {
            let Err(e) =
                serde_path_to_error::deserialize::<_, T::Config>(ProbeDeserializer::new(&probe))
            else {
                break;
            };
            let path = e.path().clone();
            let message = e.into_inner().to_string();
            // A missing key after a key set aside is that key's doing, or (after an unknown
            // key) most likely the same typo said twice.
            let after_unknown = errors
                .iter()
                .any(|e: &ConfigError| e.message.starts_with("unknown field"));
            if message.starts_with("missing field") && (after_unknown || !set_aside.is_empty()) {
                break;
            }
            // An unknown *key* is wrong whatever its value turns out to be; a value from an
            // upstream result only exists at run time and is checked then.
            let deferred = probe.is_unknown_at(&path) && !message.starts_with("unknown field");
            if !deferred {
                errors.push(ConfigError {
                    path: path_string(&path),
                    message,
                });
            }
            let key = match path.iter().next() {
                Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
                _ => break,
            };
            if !probe.remove_key(&key) || errors.len() >= 50 {
                break;
            }
            set_aside.push(key);
        }
        if errors.is_empty()
            && let Ok(config) = T::Config::deserialize(ProbeDeserializer::new(&probe))
            && let Err(e) = self.0.check(&config)
            && !probe.is_unknown_key(&e.path)
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn run_json(
        &self,
        ctx: &TaskContext,
        config: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let config: T::Config = serde_path_to_error::deserialize(config).map_err(|e| {
            let path = path_string(e.path());
            TaskError::fatal(format!(
                "rendered config does not fit the task type{}: {}",
                if path.is_empty() {
                    String::new()
                } else {
                    format!(" at `{path}`")
                },
                e.inner()
            ))
        })?;
        self.0.check(&config).map_err(|e| {
            TaskError::fatal(if e.path.is_empty() {
                format!("config: {}", e.message)
            } else {
                format!("config `{}`: {}", e.path, e.message)
            })
        })?;
        let output = self.0.run(ctx, config).await?;
        serde_json::to_value(output)
            .map_err(|e| TaskError::fatal(format!("the task's result is not valid JSON: {e}")))
    }
}

/// serde_path_to_error prints `.` for the root; we print nothing.
fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

/// The task types a DAG may name.
#[derive(Clone, Default)]
pub struct Registry {
    types: BTreeMap<String, Arc<dyn ErasedTask>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

impl Registry {
    /// An empty registry; most callers want `vigil::tasks::builtin()`, which this layer
    /// cannot name (the built-in tasks sit above it).
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds (or replaces) the task type `name`.
    pub fn register<T: Task>(&mut self, name: impl Into<String>, task: T) -> &mut Self {
        self.types.insert(name.into(), Arc::new(Typed(task)));
        self
    }

    /// Builder form of [`Registry::register`].
    pub fn with<T: Task>(mut self, name: impl Into<String>, task: T) -> Self {
        self.register(name, task);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ErasedTask>> {
        self.types.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }
}
