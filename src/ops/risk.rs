//! The deployment-risk predictor's use cases around the registry: train (with the checks both
//! `vigil risk train` and the `risk.train` task apply) and register, load the version to use,
//! and load any registered model vigil trains.
//!
//! Training is CPU work: [`train`] is synchronous, and each caller runs it on a blocking
//! thread with its own way of showing progress.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ml::MlError;
use crate::ml::artifact;
use crate::ml::regress::{self, RegressorModel};
use crate::ml::risk::{self, MODEL_NAME, RiskModel, TrainOptions};
use crate::ml::search::{Grid, Progress};
use crate::ops::OpsError;
use crate::store::StoreError;
use crate::store::registry::{ModelStore, ModelVersion, NewArtifact, NewPrediction, NewVersion};

/// A training run as asked for.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub data: PathBuf,
    pub folds: usize,
    /// `name=v1,v2` settings of the grid search; empty for the default grid.
    pub grid: Vec<String>,
    pub seed: u64,
    /// Share of the latest deployments held out, 0.05 to 0.5.
    pub holdout: f64,
    pub threads: usize,
    /// The columns to read (the simulator's by default).
    pub spec: crate::ml::spec::ModelSpec,
    /// Which model to keep: the forest, the logistic baseline, or the baseline when it is as
    /// good.
    pub choice: risk::ModelChoice,
}

impl TrainRequest {
    /// Checks the settings before any work starts (so a typo fails at once, not after the
    /// data is read).
    pub fn check(&self) -> Result<Grid, OpsError> {
        self.spec
            .check()
            .map_err(|e| OpsError::Invalid(e.to_string()))?;
        if !(0.05..=0.5).contains(&self.holdout) {
            return Err(OpsError::Invalid(format!(
                "holdout must be between 0.05 and 0.5, got {}",
                self.holdout
            )));
        }
        Ok(Grid::parse(&self.grid)?)
    }
}

/// Trains the risk model as `request` says. CPU-bound and synchronous: call it on a blocking
/// thread. `progress` hears of each forest grown; `stop` is asked often and ends the search
/// early with [`MlError::Cancelled`].
pub fn train(
    request: &TrainRequest,
    progress: &(dyn Fn(Progress) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<RiskModel, OpsError> {
    let grid = request.check()?;
    Ok(risk::train(&TrainOptions {
        data: &request.data,
        spec: &request.spec,
        choice: request.choice,
        folds: request.folds,
        grid,
        seed: request.seed,
        holdout: request.holdout,
        threads: request.threads,
        progress,
        stop,
    })?)
}

/// Saves the artifact under `dir` and registers it as a new version of `deployment_risk` with
/// its hold-out metrics (and the baseline's and the search's, prefixed).
pub async fn register(
    store: &dyn ModelStore,
    model: &RiskModel,
    dir: &Path,
    source: Option<String>,
) -> Result<ModelVersion, OpsError> {
    let (path, sha256, size) = model.save(dir)?;
    let mut metrics: BTreeMap<String, f64> = model
        .holdout
        .registry_metrics()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    metrics.insert("cv_f1".into(), model.search.best().mean_f1);
    metrics.insert("baseline_f1".into(), model.baseline.f1);
    if let Some(auc) = model.baseline.roc_auc {
        metrics.insert("baseline_roc_auc".into(), auc);
    }
    let best = model.search.best();
    let notes = format!(
        "random forest: {} trees, max depth {}, min samples split {}; trained on {} deployments before {}, measured on the {} after",
        best.trees,
        best.max_depth.map_or("none".into(), |d| d.to_string()),
        best.min_samples_split,
        model.training.train_rows,
        model.training.cutoff.format("%Y-%m-%d %H:%M UTC"),
        model.training.holdout_rows,
    );
    let predictions: Vec<NewPrediction> = model
        .holdout_predictions
        .iter()
        .map(|p| NewPrediction {
            row_key: p.row_key.clone(),
            predicted: p.predicted,
            actual: p.actual,
            at: p.at,
        })
        .collect();
    let version = store
        .register_version(&NewVersion {
            model: MODEL_NAME.into(),
            version: None,
            metrics,
            artifact: Some(NewArtifact::File {
                path: path.display().to_string(),
                sha256,
                size,
            }),
            source,
            notes: Some(notes),
        })
        .await?;
    store
        .add_predictions(MODEL_NAME, &version.version, &predictions)
        .await?;
    Ok(version)
}

/// The registered risk model to use: `version` if given, else production, else the newest.
pub async fn load_registered(
    store: &dyn ModelStore,
    version: Option<&str>,
) -> Result<(ModelVersion, RiskModel), OpsError> {
    let (v, path, sha) = resolve(store, MODEL_NAME, version).await?;
    Ok((v, RiskModel::load(&path, Some(&sha))?))
}

/// The version to use: `version` if given, else production, else the newest; with the path
/// and checksum of its artifact file.
pub async fn resolve(
    store: &dyn ModelStore,
    model: &str,
    version: Option<&str>,
) -> Result<(ModelVersion, PathBuf, String), OpsError> {
    let none = || OpsError::NoVersions(model.to_string());
    let v = match version {
        Some(v) => store.version(model, v).await?.ok_or_else(|| {
            OpsError::Store(StoreError::NoSuchVersion {
                model: model.to_string(),
                version: v.to_string(),
            })
        })?,
        None => {
            let production = store.model(model).await?.and_then(|m| m.production_version);
            match production {
                Some(p) => store.version(model, &p).await?.ok_or_else(none)?,
                None => store
                    .versions(model, 1)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(none)?,
            }
        }
    };
    let file = v.artifact.as_ref().and_then(|a| {
        a.path
            .as_ref()
            .map(|p| (PathBuf::from(p), a.sha256.clone()))
    });
    let Some((path, sha)) = file else {
        return Err(OpsError::Invalid(format!(
            "version {} of `{model}` has no artifact file",
            v.version
        )));
    };
    Ok((v, path, sha))
}

/// Either kind of model vigil trains.
pub enum Loaded {
    Risk(Box<RiskModel>),
    Regressor(Box<RegressorModel>),
}

/// Reads a registered version's artifact, whichever kind it is.
pub async fn load_any(
    store: &dyn ModelStore,
    model: &str,
    version: Option<&str>,
) -> Result<(ModelVersion, Loaded), OpsError> {
    let (v, path, sha) = resolve(store, model, version).await?;
    let bytes = artifact::read_checked(&path, Some(&sha))?;
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let kind: Option<Kind> = serde_json::from_slice(&bytes).ok();
    if kind.and_then(|k| k.kind).as_deref() == Some(regress::KIND) {
        let m = serde_json::from_slice(&bytes).map_err(|e| MlError::Artifact {
            path: path.clone(),
            reason: format!("not a vigil regressor: {e}"),
        })?;
        return Ok((v, Loaded::Regressor(Box::new(m))));
    }
    Ok((
        v,
        Loaded::Risk(Box::new(RiskModel::from_bytes(&path, &bytes)?)),
    ))
}

/// The risk model in use as the API shows it: its version and what it was measured to do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RiskSummary {
    pub model: &'static str,
    pub version: ModelVersion,
    /// Probability above which a deployment is predicted to roll back.
    pub threshold: f64,
    pub features: Vec<String>,
    pub training: risk::TrainingInfo,
    pub holdout: crate::ml::metrics::Evaluation,
    pub baseline: risk::BaselineScores,
    pub importance: Vec<risk::Importance>,
    /// The model that scores: `forest` or `logistic`.
    pub kept: risk::ModelKind,
    /// The columns it reads.
    pub spec: crate::ml::spec::ModelSpec,
}

impl RiskSummary {
    pub fn of(version: ModelVersion, m: &RiskModel) -> RiskSummary {
        RiskSummary {
            model: MODEL_NAME,
            version,
            threshold: m.threshold,
            features: m.features.clone(),
            training: m.training.clone(),
            holdout: m.holdout.clone(),
            baseline: m.baseline.clone(),
            importance: m.importance.clone(),
            kept: m.kind,
            spec: m.spec.clone(),
        }
    }
}

/// Deployments scored, as `risk score --json` prints them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoredSet {
    pub model: &'static str,
    pub version: String,
    pub block_above: f64,
    pub review_above: f64,
    pub deployments: Vec<risk::Scored>,
    /// The highest band of any of them (what a gate acts on).
    pub worst: risk::Band,
}

/// The figures drawn from a model alone (its recorded hold-out), by name.
pub const FIGURES: [&str; 2] = ["confusion_matrix", "feature_importance"];

/// Figure `name` of [`FIGURES`] for `model`, as SVG (the report draws the others from data).
pub fn figure(model: &RiskModel, name: &str) -> Result<String, OpsError> {
    crate::ml::report::holdout_figure(model, name)?.ok_or_else(|| OpsError::NoSuchName {
        what: "figure",
        name: name.to_string(),
        known: FIGURES.to_vec(),
    })
}

/// Scores `deployments` with `model` (version `version`) into `bands`.
pub fn score(
    version: &ModelVersion,
    model: &RiskModel,
    deployments: &crate::ml::data::Deployments,
    bands: risk::Bands,
    drivers: risk::Drivers,
) -> Result<ScoredSet, OpsError> {
    bands.check()?;
    let scored = model.score_with(deployments, &bands, drivers);
    let worst = scored
        .iter()
        .map(|s| s.band)
        .max()
        .unwrap_or(risk::Band::Proceed);
    Ok(ScoredSet {
        model: MODEL_NAME,
        version: version.version.clone(),
        block_above: bands.block,
        review_above: bands.review,
        deployments: scored,
        worst,
    })
}
