//! Machine-learning task types: `risk.simulate`, `risk.train`, `risk.score`,
//! `ml.train_regressor` and `ml.evaluate`.
//!
//! Training is CPU work: it runs on tokio's blocking pool, never on the runtime's threads, and
//! polls the attempt's cancellation between trees, so a task `timeout` (or a shutdown) stops it
//! within one tree's time rather than leaving a thread burning after the attempt has failed.
//! Relative paths are resolved against the DAG's folder, as `model.register`'s artifact is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ml::MlError;
use crate::ml::artifact;
use crate::ml::metrics::Evaluation;
use crate::ml::regress::{self, Algorithm, RegressOptions, TreeRegressorParams};
use crate::ml::risk::{self, Band, Bands, Scored};
use crate::ml::search::Scored as GridPoint;
use crate::ml::{forest, simulate};
use crate::ops::risk::{self as risk_ops, Loaded, TrainRequest};
use crate::store::registry::{NewArtifact, NewVersion};
use crate::task::{ConfigError, KindExt, Task, TaskContext, TaskError};

/// Where a task saves its artifact: `out` if set, else `models/` next to the data file.
fn artifact_dir(ctx: &TaskContext, out: Option<&Path>, data: &Path) -> PathBuf {
    match out {
        Some(o) => ctx.resolve(o),
        None => data.parent().unwrap_or(Path::new(".")).join("models"),
    }
}

/// A share of the rows held out for measuring: too few measure nothing, too many leave too
/// little to learn from.
fn share(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.05..=0.5).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::at(
            key,
            format!("must be between 0.05 and 0.5, got {value}"),
        ))
    }
}

/// Writes simulated deployment history (see `vigil risk simulate`).
pub struct RiskSimulate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateConfig {
    #[serde(default = "default_rows")]
    pub rows: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub out: PathBuf,
}

fn default_rows() -> usize {
    2000
}

fn default_seed() -> u64 {
    42
}

#[async_trait]
impl Task for RiskSimulate {
    type Config = SimulateConfig;
    type Output = simulate::Simulated;

    async fn run(
        &self,
        ctx: &TaskContext,
        c: SimulateConfig,
    ) -> Result<simulate::Simulated, TaskError> {
        let out = ctx.resolve(&c.out);
        tokio::task::spawn_blocking(move || simulate::write(&out, c.rows, c.seed))
            .await
            .map_err(|e| TaskError::failed(format!("the simulation thread failed: {e}")))?
            .map_err(|e| TaskError::fatal(e.to_string()))
    }
}

/// Trains and registers a version of `deployment_risk` (see `vigil risk train`).
pub struct RiskTrain;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub data: PathBuf,
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// `KEY=V1,V2` entries, as `--grid`.
    #[serde(default)]
    pub grid: Vec<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    /// Folder for the artifact [default: `models` next to the data file].
    pub out: Option<PathBuf>,
    /// Which columns to read (`features`, `label`, `positive`, `id`, `time`, `group`); each
    /// one left out is the simulator's.
    #[serde(default)]
    pub columns: crate::ml::spec::ModelSpec,
    /// `forest` (default), `logistic`, or `best`: the logistic baseline when it is as good.
    #[serde(default)]
    pub model: crate::ml::risk::ModelChoice,
}

fn default_folds() -> usize {
    5
}

fn default_holdout() -> f64 {
    0.2
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Trained {
    pub model: String,
    pub version: String,
    pub artifact: String,
    pub metrics: BTreeMap<String, f64>,
    pub best: GridPoint,
}

#[async_trait]
impl Task for RiskTrain {
    type Config = TrainConfig;
    type Output = Trained;

    fn check(&self, c: &TrainConfig) -> Result<(), ConfigError> {
        c.columns
            .check()
            .map_err(|e| ConfigError::at("columns", e.to_string()))?;
        share("holdout", c.holdout)
    }

    async fn run(&self, ctx: &TaskContext, c: TrainConfig) -> Result<Trained, TaskError> {
        let data = ctx.resolve(&c.data);
        let out = artifact_dir(ctx, c.out.as_deref(), &data);
        let request = TrainRequest {
            data: data.clone(),
            folds: c.folds,
            grid: c.grid.clone(),
            seed: c.seed,
            holdout: c.holdout,
            threads: forest::threads(),
            spec: c.columns.clone(),
            choice: c.model,
        };
        let points = request.check().by_kind("settings")?.points();
        ctx.info(format!(
            "searching {points} grid points × {} folds on {}",
            c.folds,
            data.display()
        ));
        let model = ctx
            .run_blocking(move |w| {
                let folds = request.folds;
                let progress = |p: crate::ml::search::Progress| {
                    // One line per fold.
                    if p.fold_finished {
                        w.info(format!(
                            "fold {}/{folds} done, best mean F1 so far {:.3}",
                            p.fold,
                            p.best_f1.unwrap_or(0.0)
                        ));
                    }
                };
                risk_ops::train(&request, &progress, &|| w.stopped())
            })
            .await?
            .by_kind("training")?;
        let version = risk_ops::register(
            &**ctx.store()?,
            &model,
            &out,
            Some(format!("{} run {}", ctx.dag_id, ctx.run_id)),
        )
        .await
        .by_kind("registering the model")?;
        let best = model.search.best().clone();
        ctx.info(format!(
            "registered {} version {}: hold-out F1 {:.3}, ROC AUC {:.3}",
            risk::MODEL_NAME,
            version.version,
            model.holdout.report.classes[1].f1,
            model.holdout.roc_auc.unwrap_or(0.5)
        ));
        Ok(Trained {
            model: risk::MODEL_NAME.into(),
            artifact: version
                .artifact
                .as_ref()
                .and_then(|a| a.path.clone())
                .unwrap_or_default(),
            version: version.version,
            metrics: version.metrics,
            best,
        })
    }
}

/// Scores candidate deployments (see `vigil risk score`); fails when one reaches `fail_on`.
pub struct RiskScore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Block,
    Review,
    Never,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    pub data: PathBuf,
    pub version: Option<String>,
    #[serde(default = "default_block")]
    pub block_above: f64,
    #[serde(default = "default_review")]
    pub review_above: f64,
    #[serde(default = "default_fail_on")]
    pub fail_on: FailOn,
    /// Which deployments get drivers: `flagged` (review, block or unfamiliar), `all`, `none`.
    #[serde(default = "default_drivers")]
    pub drivers: crate::ml::risk::Drivers,
}

fn default_drivers() -> crate::ml::risk::Drivers {
    crate::ml::risk::Drivers::Flagged
}

fn default_block() -> f64 {
    Bands::default().block
}

fn default_review() -> f64 {
    Bands::default().review
}

fn default_fail_on() -> FailOn {
    FailOn::Block
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ScoreOutput {
    pub version: String,
    pub worst: Band,
    pub deployments: Vec<Scored>,
}

#[async_trait]
impl Task for RiskScore {
    type Config = ScoreConfig;
    type Output = ScoreOutput;

    async fn run(&self, ctx: &TaskContext, c: ScoreConfig) -> Result<ScoreOutput, TaskError> {
        let bands = Bands {
            block: c.block_above,
            review: c.review_above,
        };
        bands.check().by_kind("bands")?;
        let (v, model) = risk_ops::load_registered(&**ctx.store()?, c.version.as_deref())
            .await
            .by_kind("loading the model")?;
        let data = ctx.resolve(&c.data);
        let drivers = c.drivers;
        let scored = ctx
            .run_blocking(move |_| {
                let d = model.read(&data, false)?;
                Ok::<_, MlError>(model.score_with(&d, &bands, drivers))
            })
            .await?
            .by_kind("scoring")?;
        let worst = scored.iter().map(|s| s.band).max().unwrap_or(Band::Proceed);
        for s in &scored {
            ctx.info(format!(
                "{}: {:.0}% {}",
                s.deployment_id,
                100.0 * s.probability,
                s.band.as_str()
            ));
        }
        let limit = match c.fail_on {
            FailOn::Block => Some(Band::Block),
            FailOn::Review => Some(Band::Review),
            FailOn::Never => None,
        };
        if let Some(limit) = limit.filter(|l| worst >= *l) {
            let names: Vec<String> = scored
                .iter()
                .filter(|s| s.band >= limit)
                .map(|s| format!("{} ({:.0}%)", s.deployment_id, 100.0 * s.probability))
                .collect();
            return Err(TaskError::fatal(format!(
                "{} deployment(s) at {} or above: {}",
                names.len(),
                limit.as_str(),
                names.join(", ")
            )));
        }
        Ok(ScoreOutput {
            version: v.version,
            worst,
            deployments: scored,
        })
    }
}

/// Trains a regressor on a CSV and registers it as a model version.
pub struct TrainRegressor;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressorConfig {
    /// Registry name of the model.
    pub model: String,
    pub data: PathBuf,
    pub target: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Text columns, one-hot encoded (e.g. `["service"]`).
    #[serde(default)]
    pub categorical: Vec<String>,
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// Tree only.
    pub max_depth: Option<usize>,
    #[serde(default = "default_min_split")]
    pub min_samples_split: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Folder for the artifact [default: `models` next to the data file].
    pub out: Option<PathBuf>,
}

fn default_algorithm() -> Algorithm {
    Algorithm::Linear
}

fn default_min_split() -> usize {
    10
}

fn default_test_fraction() -> f64 {
    0.2
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegressorOutput {
    pub model: String,
    pub version: String,
    pub algorithm: Algorithm,
    pub r2: f64,
    pub rmse: f64,
    pub artifact: String,
}

#[async_trait]
impl Task for TrainRegressor {
    type Config = RegressorConfig;
    type Output = RegressorOutput;

    fn check(&self, c: &RegressorConfig) -> Result<(), ConfigError> {
        share("test_fraction", c.test_fraction)
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        c: RegressorConfig,
    ) -> Result<RegressorOutput, TaskError> {
        let data = ctx.resolve(&c.data);
        let out = artifact_dir(ctx, c.out.as_deref(), &data);
        let (target, features, algorithm) = (c.target.clone(), c.features.clone(), c.algorithm);
        let categorical = c.categorical.clone();
        let d = data.clone();
        let name = c.model.clone();
        let (trained, (file, sha256, size)) = ctx
            .run_blocking(move |_| {
                let m = regress::train(&RegressOptions {
                    data: &d,
                    target: &target,
                    features: &features,
                    categorical: &categorical,
                    algorithm,
                    tree: TreeRegressorParams {
                        max_depth: c.max_depth,
                        min_samples_split: c.min_samples_split,
                        ..TreeRegressorParams::default()
                    },
                    test_fraction: c.test_fraction,
                    seed: c.seed,
                })?;
                let saved = artifact::save_json(&m, &out, &name)?;
                Ok::<_, MlError>((m, saved))
            })
            .await?
            .by_kind("training the regressor")?;
        let metrics = BTreeMap::from([("r2".into(), trained.r2), ("rmse".into(), trained.rmse)]);
        let version = ctx
            .store()?
            .register_version(&NewVersion {
                model: c.model.clone(),
                version: None,
                metrics,
                artifact: Some(NewArtifact::File {
                    path: file.display().to_string(),
                    sha256,
                    size,
                }),
                source: Some(format!("{} run {}", ctx.dag_id, ctx.run_id)),
                notes: Some(format!(
                    "{} regression of {} on {}; R² {:.3}, RMSE {:.3} on {} held-out rows",
                    match algorithm {
                        Algorithm::Linear => "linear",
                        Algorithm::Tree => "tree",
                    },
                    trained.target,
                    trained
                        .features
                        .iter()
                        .cloned()
                        .chain(trained.categorical.iter().map(|e| format!(
                            "{} ({} levels)",
                            e.column,
                            e.levels.len()
                        )))
                        .collect::<Vec<_>>()
                        .join(", "),
                    trained.r2,
                    trained.rmse,
                    trained.test_rows
                )),
            })
            .await
            .map_err(|e| TaskError::from_error("registering the version", &e))?;
        ctx.info(format!(
            "registered {} version {}: R² {:.3}, RMSE {:.3}",
            c.model, version.version, trained.r2, trained.rmse
        ));
        Ok(RegressorOutput {
            model: c.model,
            version: version.version,
            algorithm,
            r2: trained.r2,
            rmse: trained.rmse,
            artifact: file.display().to_string(),
        })
    }
}

/// Measures a registered model on a CSV and fails when a metric misses its bound — the gate
/// of a post-training validation DAG.
pub struct Evaluate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateConfig {
    pub model: String,
    /// [default: production, else the newest]
    pub version: Option<String>,
    pub data: PathBuf,
    /// Risk models: use every row, not only those after the training cutoff.
    #[serde(default)]
    pub all: bool,
    /// Metrics that must be at least this (e.g. `{ roc_auc = 0.75 }`).
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    /// Metrics that must be at most this (e.g. `{ rmse = 40.0 }`).
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EvaluateOutput {
    pub model: String,
    pub version: String,
    pub rows: usize,
    pub metrics: BTreeMap<String, f64>,
}

#[async_trait]
impl Task for Evaluate {
    type Config = EvaluateConfig;
    type Output = EvaluateOutput;

    async fn run(&self, ctx: &TaskContext, c: EvaluateConfig) -> Result<EvaluateOutput, TaskError> {
        let (v, loaded) = risk_ops::load_any(&**ctx.store()?, &c.model, c.version.as_deref())
            .await
            .by_kind("loading the model")?;
        let data = ctx.resolve(&c.data);
        let all = c.all;
        let (rows, metrics) = ctx
            .run_blocking(move |_| measure(&loaded, &data, all))
            .await?
            .by_kind("evaluating")?;
        let known = metrics.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut misses = Vec::new();
        for (bounds, at_least) in [(&c.min, true), (&c.max, false)] {
            for (name, bound) in bounds {
                let Some(&value) = metrics.get(name) else {
                    return Err(TaskError::fatal(format!(
                        "no metric `{name}` for this model; it has {known}"
                    )));
                };
                if (at_least && value < *bound) || (!at_least && value > *bound) {
                    misses.push(format!(
                        "{name} {value:.4} is {} {bound}",
                        if at_least {
                            "below the minimum"
                        } else {
                            "above the maximum"
                        }
                    ));
                }
            }
        }
        ctx.info(format!(
            "{} version {} on {rows} rows: {}",
            c.model,
            v.version,
            metrics
                .iter()
                .map(|(k, v)| format!("{k} {}", crate::state::plain(*v, 4)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if !misses.is_empty() {
            return Err(TaskError::fatal(format!(
                "{} version {} failed validation: {}",
                c.model,
                v.version,
                misses.join("; ")
            )));
        }
        Ok(EvaluateOutput {
            model: c.model,
            version: v.version,
            rows,
            metrics,
        })
    }
}

/// Rows used and metrics of a model on a CSV.
fn measure(
    loaded: &Loaded,
    data: &Path,
    all: bool,
) -> Result<(usize, BTreeMap<String, f64>), MlError> {
    match loaded {
        Loaded::Risk(model) => {
            let d = model.unseen(&model.read(data, true)?, data, all)?;
            let p = model.predict_proba(d.x.view());
            let e = Evaluation::new(
                p.as_slice().unwrap_or_default(),
                d.labels(),
                model.threshold,
            );
            Ok((
                d.len(),
                e.registry_metrics()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ))
        }
        Loaded::Regressor(m) => {
            let d = regress::read_design(
                data,
                &m.target,
                &m.features,
                regress::Levels::Known(&m.categorical),
            )?;
            let (r2, rmse) = crate::ml::metrics::r2_rmse(&m.model.predict(&d.x), &d.y);
            let mut metrics = BTreeMap::from([("r2".into(), r2), ("rmse".into(), rmse)]);
            // Rows with a category training never saw: a gate can bound them (`max`).
            let unseen: usize = d.unseen.iter().map(|(_, n)| n).sum();
            metrics.insert("unseen_category_rows".into(), unseen as f64);
            Ok((d.y.len(), metrics))
        }
    }
}
