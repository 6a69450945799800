//! Model-registry task types, for the monitoring and validation DAGs:
//! `model.check_performance` (judge production, record the verdict), `model.compare_versions`
//! (the evidence side by side) and `model.handle_alert` (roll back when the verdict and the
//! guards allow it).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::models::ops::{self, Action, CheckOptions, CheckOutcome, ModelError};
use crate::models::verdict::{Judgement, Rules};
use crate::store::models::ModelVersion;
use crate::task::{Task, TaskContext, TaskError};
use crate::tasks::duration;

fn failed(e: ModelError) -> TaskError {
    match e {
        // A model or version that does not exist will not appear on a retry.
        ModelError::NoSuchModel(_)
        | ModelError::NoSuchVersion { .. }
        | ModelError::NoProduction(_)
        | ModelError::NoPrevious(_) => TaskError::fatal(e.to_string()),
        ModelError::Store(_) => TaskError::from_error("the model registry failed", &e),
    }
}

fn rules(threshold_percent: f64, min_samples: usize) -> Result<Rules, TaskError> {
    if !(threshold_percent > 0.0 && threshold_percent < 100.0) {
        return Err(TaskError::fatal(format!(
            "threshold_percent must be between 0 and 100, got {threshold_percent}"
        )));
    }
    Ok(Rules {
        threshold_percent,
        min_samples: min_samples.max(1),
        ..Rules::default()
    })
}

fn default_threshold() -> f64 {
    5.0
}

fn default_min_samples() -> usize {
    30
}

/// Judges production against the version before it and records the verdict.
pub struct CheckPerformance;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub model: String,
    #[serde(default = "default_threshold")]
    pub threshold_percent: f64,
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Only predictions this recent, e.g. "24h" (default: all).
    #[serde(default, deserialize_with = "optional_duration")]
    pub window: Option<Duration>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration::deserialize(d).map(Some)
}

#[async_trait]
impl Task for CheckPerformance {
    type Config = CheckConfig;
    type Output = CheckOutcome;

    async fn run(&self, ctx: &TaskContext, c: CheckConfig) -> Result<CheckOutcome, TaskError> {
        let opts = CheckOptions {
            rules: rules(c.threshold_percent, c.min_samples)?,
            since: c
                .window
                .and_then(|w| chrono::Duration::from_std(w).ok())
                .map(|w| chrono::Utc::now() - w),
            ..CheckOptions::default()
        };
        let out = ops::assess(&**ctx.store()?, &c.model, &opts)
            .await
            .map_err(failed)?;
        tracing::info!(
            model = %c.model,
            verdict = out.judgement.verdict.as_str(),
            "{}",
            out.judgement.reason
        );
        Ok(out)
    }
}

/// Puts the evidence of a check side by side: both versions' recorded metrics and the
/// verdict.
pub struct CompareVersions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// The output of `model.check_performance`.
    pub check: CheckOutcome,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub model: String,
    pub production: Option<ModelVersion>,
    pub baseline: Option<ModelVersion>,
    pub judgement: Judgement,
}

#[async_trait]
impl Task for CompareVersions {
    type Config = CompareConfig;
    type Output = Comparison;

    async fn run(&self, ctx: &TaskContext, c: CompareConfig) -> Result<Comparison, TaskError> {
        let store = ctx.store()?;
        let get = |v: Option<String>| {
            let store = store.clone();
            let model = c.check.model.clone();
            async move {
                match v {
                    Some(v) => store.version(&model, &v).await,
                    None => Ok(None),
                }
            }
        };
        let production = get(Some(c.check.production.clone()))
            .await
            .map_err(|e| TaskError::from_error("reading the production version", &e))?;
        let baseline = get(c.check.baseline.clone())
            .await
            .map_err(|e| TaskError::from_error("reading the baseline version", &e))?;
        Ok(Comparison {
            model: c.check.model,
            production,
            baseline,
            judgement: c.check.judgement,
        })
    }
}

/// Acts on a check: records nothing new when production passed; rolls back when the verdict
/// is DEGRADED, `auto_rollback` is on and the guards allow it.
pub struct HandleAlert;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandleConfig {
    /// The output of `model.check_performance`.
    pub check: CheckOutcome,
    #[serde(default)]
    pub auto_rollback: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// DEGRADED checks in a row before an automatic rollback.
    #[serde(default = "default_consecutive")]
    pub consecutive: usize,
    #[serde(
        default = "default_cooldown",
        deserialize_with = "duration::deserialize"
    )]
    pub cooldown: Duration,
}

fn default_consecutive() -> usize {
    2
}

fn default_cooldown() -> Duration {
    Duration::from_secs(3600)
}

#[async_trait]
impl Task for HandleAlert {
    type Config = HandleConfig;
    type Output = Action;

    async fn run(&self, ctx: &TaskContext, c: HandleConfig) -> Result<Action, TaskError> {
        let opts = CheckOptions {
            rules: c.check.judgement.rules,
            auto_rollback: c.auto_rollback,
            dry_run: c.dry_run,
            consecutive: c.consecutive.max(1),
            cooldown: c.cooldown,
            ..CheckOptions::default()
        };
        let action = ops::act(
            &**ctx.store()?,
            &c.check,
            &opts,
            &format!("{}.{} run {}", ctx.dag_id, ctx.task_id, ctx.run_id),
        )
        .await
        .map_err(failed)?;
        tracing::info!(model = %c.check.model, ?action, "handled the check");
        Ok(action)
    }
}
