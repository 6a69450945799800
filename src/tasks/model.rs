//! Model-registry task types, for the monitoring and validation DAGs:
//! `model.check_performance` (judge production, record the verdict), `model.compare_versions`
//! (the evidence side by side) and `model.handle_alert` (roll back when the verdict and the
//! guards allow it).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ops::registry::{self as ops, Action, CheckOptions, CheckOutcome, ModelError};
use crate::quality::metrics::Metric;
use crate::quality::verdict::{Judgement, Rules};
use crate::state::duration;
use crate::store::registry::ModelVersion;
use crate::task::{ConfigError, Task, TaskContext, TaskError};

/// A model or version that does not exist will not appear on a retry; a registry that is
/// unavailable may be back.
fn failed(e: ModelError) -> TaskError {
    match e {
        ModelError::Store(_) => TaskError::by_kind("the model registry failed", &e),
        e => TaskError::fatal(e.to_string()),
    }
}

/// The degradation floor is a share of the metric: 0 would flag noise, 100 nothing.
fn check_threshold(threshold_percent: f64) -> Result<(), ConfigError> {
    if threshold_percent > 0.0 && threshold_percent < 100.0 {
        Ok(())
    } else {
        Err(ConfigError::at(
            "threshold_percent",
            format!("must be between 0 and 100 (exclusive), got {threshold_percent}"),
        ))
    }
}

/// The verdict rules of a checked config ([`Task::check`] has refused a wrong threshold).
fn rules(threshold_percent: f64, min_samples: usize) -> Rules {
    Rules {
        threshold_percent,
        min_samples: min_samples.max(1),
        ..Rules::default()
    }
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
    /// Which predictions: "since-change" (the default), "all", or a duration such as "24h".
    #[serde(default)]
    pub window: ops::Window,
    /// The metric to judge: rmse, mae, r2 or accuracy (default: accuracy for classes, else
    /// rmse).
    #[serde(default)]
    pub metric: Option<Metric>,
}

#[async_trait]
impl Task for CheckPerformance {
    type Config = CheckConfig;
    type Output = CheckOutcome;

    fn check(&self, c: &CheckConfig) -> Result<(), ConfigError> {
        check_threshold(c.threshold_percent)
    }

    async fn run(&self, ctx: &TaskContext, c: CheckConfig) -> Result<CheckOutcome, TaskError> {
        let opts = CheckOptions {
            rules: Rules {
                metric: c.metric,
                ..rules(c.threshold_percent, c.min_samples)
            },
            window: c.window,
            notify: ctx.alert_audience().clone(),
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
    /// DEGRADED checks in a row before an automatic rollback (the sequential test already
    /// guards against noise; more than 1 adds hours).
    #[serde(default = "default_consecutive")]
    pub consecutive: usize,
    /// Wait for the sequential test to establish the worsening (on by default).
    #[serde(default = "default_true")]
    pub sequential: bool,
    #[serde(
        default = "default_cooldown",
        deserialize_with = "duration::deserialize"
    )]
    pub cooldown: Duration,
}

fn default_consecutive() -> usize {
    1
}

fn default_true() -> bool {
    true
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
            sequential: c.sequential,
            cooldown: c.cooldown,
            notify: ctx.alert_audience().clone(),
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

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration::deserialize(d).map(Some)
}

/// Metrics of a version over its labelled predictions (optionally only recent ones).
pub struct Evaluate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateConfig {
    pub model: String,
    pub version: String,
    #[serde(default, deserialize_with = "optional_duration")]
    pub window: Option<Duration>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: String,
    pub version: String,
    /// Labelled predictions the metrics are computed from.
    pub n: usize,
    pub metrics: std::collections::BTreeMap<String, f64>,
}

#[async_trait]
impl Task for Evaluate {
    type Config = EvaluateConfig;
    type Output = Evaluation;

    async fn run(&self, ctx: &TaskContext, c: EvaluateConfig) -> Result<Evaluation, TaskError> {
        use crate::quality::metrics::{Metric, looks_like_classes};
        let store = ctx.store()?;
        if store
            .version(&c.model, &c.version)
            .await
            .map_err(|e| TaskError::from_error("reading the version", &e))?
            .is_none()
        {
            return Err(TaskError::fatal(
                crate::store::StoreError::NoSuchVersion {
                    model: c.model,
                    version: c.version,
                }
                .to_string(),
            ));
        }
        let since = c
            .window
            .and_then(|w| chrono::Duration::from_std(w).ok())
            .map(|w| chrono::Utc::now() - w);
        let rows: Vec<(f64, f64)> = store
            .predictions(&c.model, &c.version, since)
            .await
            .map_err(|e| TaskError::from_error("reading predictions", &e))?
            .into_iter()
            .filter_map(|p| Some((p.predicted, p.actual?)))
            .collect();
        let wanted: &[Metric] = if looks_like_classes(&rows) {
            &[Metric::Accuracy]
        } else {
            &[Metric::Rmse, Metric::Mae, Metric::R2]
        };
        let metrics = wanted
            .iter()
            .filter_map(|m| Some((m.name().to_string(), m.compute(&rows)?)))
            .collect();
        Ok(Evaluation {
            model: c.model,
            version: c.version,
            n: rows.len(),
            metrics,
        })
    }
}

/// Registers a new version (e.g. a freshly trained candidate) with its metrics.
pub struct Register;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    pub model: String,
    /// Default: `YYYYMMDD_HHMMSS` now.
    pub version: Option<String>,
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// A model file: its path, SHA-256 and size are recorded.
    pub artifact: Option<std::path::PathBuf>,
    pub notes: Option<String>,
}

#[async_trait]
impl Task for Register {
    type Config = RegisterConfig;
    type Output = ModelVersion;

    async fn run(&self, ctx: &TaskContext, c: RegisterConfig) -> Result<ModelVersion, TaskError> {
        let artifact = match &c.artifact {
            Some(path) => {
                let path = ctx.resolve(path);
                let bytes = tokio::fs::read(&path).await.map_err(|e| {
                    TaskError::fatal(format!("cannot read the artifact {}: {e}", path.display()))
                })?;
                Some(crate::store::registry::NewArtifact::file(
                    path.display().to_string(),
                    &bytes,
                ))
            }
            None => None,
        };
        ctx.store()?
            .register_version(&crate::store::registry::NewVersion {
                model: c.model,
                version: c.version,
                metrics: c.metrics,
                artifact,
                source: Some(format!("{} run {}", ctx.dag_id, ctx.run_id)),
                notes: c.notes,
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::VersionExists { .. } => TaskError::fatal(e.to_string()),
                other => TaskError::from_error("registering the version", &other),
            })
    }
}

/// Post-training validation: promotes `candidate` only if it is at least as good as
/// production (verdict PASS, and not worse on the estimate); otherwise records the refusal.
pub struct PromoteIfBetter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteConfig {
    pub model: String,
    pub candidate: String,
    #[serde(default = "default_threshold")]
    pub threshold_percent: f64,
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PromotionDecision {
    pub promoted: bool,
    pub candidate: String,
    pub production: Option<String>,
    pub reason: String,
}

#[async_trait]
impl Task for PromoteIfBetter {
    type Config = PromoteConfig;
    type Output = PromotionDecision;

    fn check(&self, c: &PromoteConfig) -> Result<(), ConfigError> {
        check_threshold(c.threshold_percent)
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        c: PromoteConfig,
    ) -> Result<PromotionDecision, TaskError> {
        use crate::notify::message::{ModelEvent, model_event};
        use crate::quality::verdict::Verdict;
        use crate::store::registry::{AlertKind, NewAlert};
        let store = ctx.store()?;
        let m = ops::model(&**store, &c.model).await.map_err(failed)?;
        let actor = format!("{}.{} run {}", ctx.dag_id, ctx.task_id, ctx.run_id);
        let Some(production) = m.production_version.clone() else {
            ops::promote(
                &**store,
                &c.model,
                &c.candidate,
                "first version: nothing to compare with",
                &actor,
            )
            .await
            .map_err(failed)?;
            return Ok(PromotionDecision {
                promoted: true,
                candidate: c.candidate,
                production: None,
                reason: "no production version yet".into(),
            });
        };
        let j = ops::compare(
            &**store,
            &c.model,
            &production,
            &c.candidate,
            &rules(c.threshold_percent, c.min_samples),
            None,
        )
        .await
        .map_err(failed)?;
        let better = j.verdict == Verdict::Pass && j.estimate.is_some_and(|e| e <= 0.0);
        if better {
            ops::promote(
                &**store,
                &c.model,
                &c.candidate,
                &format!("validated: {}", j.reason),
                &actor,
            )
            .await
            .map_err(failed)?;
        } else {
            let why = format!(
                "{} not promoted over {production}: verdict {}, {}",
                c.candidate,
                j.verdict.as_str(),
                j.reason
            );
            store
                .record_alert(
                    &NewAlert {
                        model: c.model.clone(),
                        kind: AlertKind::Refused,
                        verdict: Some(j.verdict.as_str().into()),
                        message: why.clone(),
                        details: serde_json::json!({"candidate": c.candidate, "production": production, "judgement": j}),
                        dry_run: false,
                    },
                    Some(&model_event(
                        &ModelEvent {
                            headline: "PROMOTION REFUSED",
                            model: &c.model,
                            subject: format!("PROMOTION REFUSED {} {}", c.model, c.candidate),
                            summary: why.clone(),
                            versions: vec![
                                ("production", production.clone()),
                                ("candidate", c.candidate.clone()),
                            ],
                            judgement: serde_json::to_value(&j).ok(),
                            action: format!("{production} stays in production"),
                            details: serde_json::json!({"candidate": c.candidate, "production": production}),
                        },
                        ctx.alert_audience().clone(),
                    )),
                )
                .await
                .map_err(|e| TaskError::from_error("recording the refusal", &e))?;
        }
        Ok(PromotionDecision {
            promoted: better,
            candidate: c.candidate,
            production: Some(production),
            reason: j.reason,
        })
    }
}
