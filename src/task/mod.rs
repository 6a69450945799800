//! Typed task plugins. A task type declares the config it accepts and the output it produces;
//! the registry erases both to JSON so the executor, the store and templates see one shape,
//! while the load-time check still deserializes every DAG's config into the real type.

pub mod capture;
mod context;
pub mod probe;
pub mod process;
mod registry;
pub mod template;
mod work;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::{ErrorKind, Kind};

pub use capture::CaptureLayer;
pub use context::{OutputLimits, TaskContext};
pub use registry::{ConfigError, ErasedTask, Registry};
pub use work::Work;

/// A unit of work a DAG can name by `type`.
///
/// `Config` comes from `[tasks.x].config` after templating; `Output` is stored as the task's
/// result (its XCom) and is what downstream templates and [`TaskContext::upstream`] read.
#[async_trait]
pub trait Task: Send + Sync + 'static {
    type Config: DeserializeOwned + Send + 'static;
    type Output: Serialize + Send + 'static;

    async fn run(&self, ctx: &TaskContext, config: Self::Config)
    -> Result<Self::Output, TaskError>;

    /// Checks the values the types cannot (a percentage within 0–100, a share below 1).
    /// Called when the DAG loads — so `vigil dags validate` refuses a wrong value, not the
    /// 3 a.m. run — with every value known then (literals, templates over params with their
    /// defaults), and again on the rendered config before each attempt. A problem at a key
    /// whose value only exists at run time is not reported at load.
    fn check(&self, config: &Self::Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }
}

/// Why an attempt did not succeed, and whether retrying can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The attempt failed; it is retried while the task has retries left.
    #[error("{0}")]
    Failed(String),
    /// The attempt failed in a way another attempt cannot fix (bad config, bad input shape):
    /// the task fails now without using its retries.
    #[error("{0}")]
    Fatal(String),
    /// The task decided it has nothing to do; it ends `skipped` and downstream trigger rules
    /// see a skip.
    #[error("skipped: {0}")]
    Skip(String),
}

impl crate::state::Kind for TaskError {
    fn kind(&self) -> crate::state::ErrorKind {
        use crate::state::ErrorKind;
        match self {
            TaskError::Failed(_) => ErrorKind::Unavailable,
            TaskError::Fatal(_) => ErrorKind::Invalid,
            TaskError::Skip(_) => ErrorKind::Conflict,
        }
    }
}

impl TaskError {
    pub fn failed(message: impl Into<String>) -> Self {
        TaskError::Failed(message.into())
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError::Fatal(message.into())
    }

    /// A retryable failure that keeps the whole cause chain of `err` in its message.
    pub fn from_error(context: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        TaskError::Failed(format!("{context}: {}", crate::state::Chain(err)))
    }

    /// `err` as a retryable or a fatal failure, by its kind: what is unavailable now or lost
    /// a race may work on the next attempt; invalid input, a missing thing or a bug will not.
    pub fn by_kind<E: Kind + std::error::Error + 'static>(context: &str, err: &E) -> Self {
        match err.kind() {
            ErrorKind::Unavailable | ErrorKind::Conflict => TaskError::from_error(context, err),
            ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::Internal => {
                match TaskError::from_error(context, err) {
                    TaskError::Failed(m) => TaskError::Fatal(m),
                    other => other,
                }
            }
        }
    }
}

/// Marks an error for the executor in one word: `file.read().fatal("reading the model")?`
/// ends the task now, `.retryable(..)` uses its retries, `.by_kind(..)` decides by the
/// error's [`Kind`]. Each keeps the whole cause chain, after `context`.
pub trait ResultExt<T> {
    fn fatal(self, context: &str) -> Result<T, TaskError>;
    fn retryable(self, context: &str) -> Result<T, TaskError>;
}

impl<T, E: std::error::Error + 'static> ResultExt<T> for Result<T, E> {
    fn fatal(self, context: &str) -> Result<T, TaskError> {
        self.map_err(|e| match TaskError::from_error(context, &e) {
            TaskError::Failed(m) => TaskError::Fatal(m),
            other => other,
        })
    }

    fn retryable(self, context: &str) -> Result<T, TaskError> {
        self.map_err(|e| TaskError::from_error(context, &e))
    }
}

/// [`ResultExt`] for errors that know their kind.
pub trait KindExt<T> {
    fn by_kind(self, context: &str) -> Result<T, TaskError>;
}

impl<T, E: Kind + std::error::Error + 'static> KindExt<T> for Result<T, E> {
    fn by_kind(self, context: &str) -> Result<T, TaskError> {
        self.map_err(|e| TaskError::by_kind(context, &e))
    }
}
