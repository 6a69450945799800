//! Small task types for tests, benchmarks and placeholders: `noop`, `sleep`, `fail`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::state::duration;
use crate::task::{Task, TaskContext, TaskError};

/// Does nothing and returns `config.output` (null by default), so a DAG can stand in a result
/// for a task that is not written yet.
pub struct Noop;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopConfig {
    #[serde(default)]
    pub output: serde_json::Value,
}

#[async_trait]
impl Task for Noop {
    type Config = NoopConfig;
    type Output = serde_json::Value;

    async fn run(&self, _ctx: &TaskContext, config: NoopConfig) -> Result<Self::Output, TaskError> {
        Ok(config.output)
    }
}

/// Waits, then succeeds. Stops early (and fails) when the attempt is cancelled.
pub struct Sleep;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepConfig {
    /// `"500ms"`, `"2s"`, `"1m"`, or a number of seconds.
    #[serde(deserialize_with = "duration::deserialize")]
    pub duration: Duration,
}

#[async_trait]
impl Task for Sleep {
    type Config = SleepConfig;
    type Output = ();

    async fn run(&self, ctx: &TaskContext, config: SleepConfig) -> Result<(), TaskError> {
        tokio::select! {
            _ = tokio::time::sleep(config.duration) => Ok(()),
            _ = ctx.cancelled() => Err(TaskError::failed("cancelled while sleeping")),
        }
    }
}

/// Fails on purpose: for testing retries, alerts and trigger rules.
pub struct Fail;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailConfig {
    #[serde(default = "default_message")]
    pub message: String,
    /// Fail only the first N attempts, then succeed (default: every attempt fails).
    pub attempts: Option<u32>,
    /// Fail without using the task's retries.
    #[serde(default)]
    pub fatal: bool,
    /// Panic instead of returning an error (tests that a panic fails only its attempt).
    #[serde(default)]
    pub panic: bool,
}

fn default_message() -> String {
    "failed on purpose (task type `fail`)".to_string()
}

#[async_trait]
impl Task for Fail {
    type Config = FailConfig;
    type Output = serde_json::Value;

    async fn run(&self, ctx: &TaskContext, config: FailConfig) -> Result<Self::Output, TaskError> {
        if config.attempts.is_some_and(|n| ctx.attempt > n) {
            ctx.info(format!("attempt {} succeeds", ctx.attempt));
            return Ok(serde_json::json!({ "attempt": ctx.attempt }));
        }
        ctx.warn(format!("attempt {} fails: {}", ctx.attempt, config.message));
        if config.panic {
            panic!("{}", config.message);
        }
        Err(if config.fatal {
            TaskError::fatal(config.message)
        } else {
            TaskError::failed(config.message)
        })
    }
}
