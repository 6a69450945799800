//! The deployment rollback-risk model: training (search, refit, hold-out evaluation, baseline,
//! importance), the artifact file, scoring with bands and the features behind each score.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ndarray::{Array2, ArrayView2, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ml::baseline::Baseline;
use crate::ml::bins::{Binned, MAX_BINS};
use crate::ml::data::Deployments;
use crate::ml::forest::{Forest, ForestParams};
use crate::ml::metrics::{Evaluation, roc_auc};
use crate::ml::search::{Grid, Progress, SearchOptions, SearchResult, search};
use crate::ml::spec::ModelSpec;
use crate::ml::{MlError, artifact};

/// The registry name of the model.
pub const MODEL_NAME: &str = "deployment_risk";

/// Bumped when the artifact's layout changes; older files are refused with a message.
pub const FORMAT: u32 = 1;

/// Where a feature's training values lie, to explain a score against "typical".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    pub name: String,
    pub p05: f64,
    pub median: f64,
    pub p95: f64,
    /// The smallest and largest training values: outside them a score is an extrapolation.
    /// Absent in artifacts from before they were recorded.
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// A feature's permutation importance: how much the hold-out ROC AUC drops when its values
/// are shuffled (mean and spread over the repeats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    pub feature: String,
    pub auc_drop: f64,
    pub std: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    pub data: String,
    pub data_sha256: String,
    pub rows: usize,
    pub train_rows: usize,
    pub holdout_rows: usize,
    /// Deployments at or after this time were held out: evaluation on later data is on
    /// deployments the model never saw.
    pub cutoff: DateTime<Utc>,
    pub base_rate: f64,
    pub seed: u64,
    pub trained_at: DateTime<Utc>,
    pub train_seconds: f64,
}

/// Which of the two models trained a version scores with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Forest,
    Logistic,
}

/// What `risk train --model` (and the `risk.train` task's `model`) keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelChoice {
    #[default]
    Forest,
    Logistic,
    /// The logistic baseline when it is as good on the hold-out (see [`as_good`]), else the
    /// forest.
    Best,
}

/// The baseline is "as good" as the forest when it is within noise of it on both hold-out
/// measures: 0.01 of F1 and 0.005 of ROC AUC.
pub fn as_good(baseline: &BaselineScores, forest: &Evaluation) -> bool {
    let f1 = forest.report.classes[1].f1;
    let auc_ok = match (baseline.roc_auc, forest.roc_auc) {
        (Some(b), Some(f)) => b >= f - 0.005,
        _ => false,
    };
    baseline.f1 >= f1 - 0.01 && auc_ok
}

/// The logistic baseline's scores on the same hold-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineScores {
    pub f1: f64,
    pub roc_auc: Option<f64>,
}

/// Everything saved as the model's artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskModel {
    pub format: u32,
    /// The feature columns, in the forest's order (the spec's features).
    pub features: Vec<String>,
    /// The columns the model reads; artifacts from before it was recorded read the
    /// simulator's columns.
    #[serde(default)]
    pub spec: ModelSpec,
    /// The learned encoding of each categorical feature, in the spec's order.
    #[serde(default)]
    pub encodings: Vec<crate::ml::category::CategoryEncoding>,
    /// Which model scores: the forest, or the logistic baseline when it was as good.
    #[serde(default)]
    pub kind: ModelKind,
    /// The logistic baseline fitted on the same rows (absent in older artifacts).
    #[serde(default)]
    pub logistic: Option<crate::ml::baseline::StoredLogistic>,
    pub forest: Forest,
    pub threshold: f64,
    pub training: TrainingInfo,
    pub summaries: Vec<FeatureSummary>,
    pub search: SearchResult,
    pub holdout: Evaluation,
    pub baseline: BaselineScores,
    pub importance: Vec<Importance>,
    /// The hold-out's probabilities and outcomes, logged with the version on registration so
    /// `model check` and `model.promote_if_better` can judge it like any other model. Not
    /// part of the artifact.
    #[serde(skip)]
    pub holdout_predictions: Vec<HoldoutPrediction>,
}

/// One hold-out deployment's predicted probability and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldoutPrediction {
    pub row_key: Option<String>,
    pub predicted: f64,
    pub actual: Option<f64>,
    pub at: chrono::DateTime<chrono::Utc>,
}

pub struct TrainOptions<'a> {
    pub data: &'a Path,
    /// The columns to read (checked by `ModelSpec::check` first).
    pub spec: &'a ModelSpec,
    /// Which model to keep.
    pub choice: ModelChoice,
    pub folds: usize,
    pub grid: Grid,
    pub seed: u64,
    /// Share of the latest deployments held out.
    pub holdout: f64,
    pub threads: usize,
    pub progress: &'a (dyn Fn(Progress) + Sync),
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

/// Row indices in time order, split into the earlier `1 - holdout` and the later `holdout`.
pub fn time_split(d: &Deployments, holdout: f64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..d.len()).collect();
    order.sort_by_key(|&i| (d.timestamps[i], i));
    let cut = ((1.0 - holdout.clamp(0.0, 0.9)) * d.len() as f64).round() as usize;
    let later = order.split_off(cut.min(d.len()));
    (order, later)
}

/// The `p` quantile of sorted, non-empty `v` (the nearest rank).
fn quantile(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn summaries(names: &[String], x: ArrayView2<f64>) -> Vec<FeatureSummary> {
    names
        .iter()
        .zip(x.columns())
        .map(|(name, col)| {
            let mut v = col.to_vec();
            v.sort_by(f64::total_cmp);
            let q = |p: f64| quantile(&v, p);
            FeatureSummary {
                name: name.clone(),
                p05: q(0.05),
                median: q(0.5),
                p95: q(0.95),
                min: v.first().copied(),
                max: v.last().copied(),
            }
        })
        .collect()
}

/// Rows permutation importance looks at, at most: beyond this the ranking no longer changes
/// but the time (features × repeats predictions) keeps growing.
pub const IMPORTANCE_ROWS: usize = 10_000;

/// Permutation importance on `x`, `y` (a seeded sample of [`IMPORTANCE_ROWS`] if larger):
/// each feature's column shuffled `repeats` times.
pub fn permutation_importance(
    predict: &dyn Fn(ArrayView2<f64>) -> ndarray::Array1<f64>,
    names: &[String],
    x: ArrayView2<f64>,
    y: &[bool],
    repeats: usize,
    seed: u64,
) -> Vec<Importance> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if x.nrows() > IMPORTANCE_ROWS {
        let mut idx: Vec<usize> = (0..x.nrows()).collect();
        let n = idx.len();
        for i in 0..IMPORTANCE_ROWS {
            idx.swap(i, rng.random_range(i..n));
        }
        idx.truncate(IMPORTANCE_ROWS);
        idx.sort_unstable();
        let ys: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
        return permutation_importance(
            predict,
            names,
            x.select(Axis(0), &idx).view(),
            &ys,
            repeats,
            seed,
        );
    }
    let base = roc_auc(predict(x).as_slice().unwrap_or_default(), y).unwrap_or(0.5);
    let mut out: Vec<Importance> = (0..x.ncols())
        .map(|f| {
            let drops: Vec<f64> = (0..repeats)
                .map(|_| {
                    let mut shuffled = x.to_owned();
                    let mut col: Vec<f64> = x.column(f).to_vec();
                    for i in (1..col.len()).rev() {
                        col.swap(i, rng.random_range(0..=i));
                    }
                    shuffled.column_mut(f).assign(&ndarray::Array1::from(col));
                    let p = predict(shuffled.view());
                    base - roc_auc(p.as_slice().unwrap_or_default(), y).unwrap_or(0.5)
                })
                .collect();
            let mean = drops.iter().sum::<f64>() / repeats.max(1) as f64;
            let var = drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / repeats.max(1) as f64;
            Importance {
                feature: names.get(f).cloned().unwrap_or_else(|| "?".into()),
                auc_drop: mean,
                std: var.sqrt(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.auc_drop.total_cmp(&a.auc_drop));
    out
}

/// Searches, refits the best forest on the earlier rows and measures it on the later ones.
pub fn train(o: &TrainOptions) -> Result<RiskModel, MlError> {
    let start = std::time::Instant::now();
    let bytes = std::fs::read(o.data).map_err(|source| MlError::Write {
        path: o.data.to_path_buf(),
        source,
    })?;
    o.spec
        .check()
        .map_err(|e| MlError::Invalid(e.to_string()))?;
    let mut d = Deployments::load(o.data, o.spec, true)?;
    let (early, late) = time_split(&d, o.holdout);
    // Empty cells (under `missing = "impute"`) take the earlier rows' median or most common
    // value; the model keeps them (summaries, encodings) to fill a scored file alike. The
    // median is the summaries' quantile: adding copies of it leaves it the summaries' median.
    let medians: Vec<f64> = (0..o.spec.features.len())
        .map(|f| {
            let mut v: Vec<f64> = early
                .iter()
                .map(|&i| d.x[[i, f]])
                .filter(|v| !v.is_nan())
                .collect();
            v.sort_by(f64::total_cmp);
            if v.is_empty() { 0.0 } else { quantile(&v, 0.5) }
        })
        .collect();
    let modes: Vec<String> = d
        .categories
        .iter()
        .map(|values| crate::ml::category::most_common(early.iter().map(|&i| values[i].as_str())))
        .collect();
    d.impute(&medians, &modes);
    // Categorical levels are encoded from the earlier rows only: the hold-out's outcomes must
    // not leak into the model that is measured on them.
    let encodings: Vec<crate::ml::category::CategoryEncoding> = {
        let labels: Vec<bool> = early.iter().map(|&i| d.labels()[i]).collect();
        o.spec
            .categorical
            .iter()
            .zip(&d.categories)
            .map(|(column, values)| {
                let values: Vec<String> = early.iter().map(|&i| values[i].clone()).collect();
                crate::ml::category::CategoryEncoding::fit(column, &values, &labels)
            })
            .collect()
    };
    d.encode(&encodings);
    let train = d.select(&early);
    let hold = d.select(&late);
    if hold.labels().iter().all(|&l| l) || hold.labels().iter().all(|&l| !l) {
        return Err(MlError::Invalid(format!(
            "{}: the latest {} deployments (the hold-out) are all of one class; add more history",
            o.data.display(),
            hold.len()
        )));
    }
    let y_tr = train.labels();
    let result = search(
        train.x.view(),
        y_tr,
        &SearchOptions {
            grid: &o.grid,
            folds: o.folds,
            seed: o.seed,
            threads: o.threads,
            progress: o.progress,
            stop: o.stop,
        },
    )?;
    let best = result.best().clone();
    let forest = ForestParams {
        trees: best.trees,
        max_depth: best.max_depth,
        min_samples_split: best.min_samples_split,
        seed: o.seed,
        ..ForestParams::default()
    }
    .grow(
        &Binned::new(train.x.view(), MAX_BINS),
        &y_tr
            .iter()
            .map(|&b| f64::from(u8::from(b)))
            .collect::<Vec<_>>(),
        o.threads,
        o.stop,
    )?;
    let threshold = 0.5;
    let forest_p = forest.predict_proba(hold.x.view());
    let forest_eval = Evaluation::new(
        forest_p.as_slice().unwrap_or_default(),
        hold.labels(),
        threshold,
    );
    let fitted = Baseline::fit(train.x.view(), y_tr)?;
    let logistic = fitted.stored();
    let bp = logistic.predict_proba(hold.x.view());
    let baseline_eval =
        Evaluation::new(bp.as_slice().unwrap_or_default(), hold.labels(), threshold);
    let baseline = BaselineScores {
        f1: baseline_eval.report.classes[1].f1,
        roc_auc: baseline_eval.roc_auc,
    };
    let kind = match o.choice {
        ModelChoice::Forest => ModelKind::Forest,
        ModelChoice::Logistic => ModelKind::Logistic,
        ModelChoice::Best if as_good(&baseline, &forest_eval) => ModelKind::Logistic,
        ModelChoice::Best => ModelKind::Forest,
    };
    let (p, holdout) = match kind {
        ModelKind::Forest => (forest_p, forest_eval),
        ModelKind::Logistic => (bp, baseline_eval),
    };
    let features = o.spec.all_features();
    let predict = |x: ArrayView2<f64>| match kind {
        ModelKind::Forest => forest.predict_proba(x),
        ModelKind::Logistic => logistic.predict_proba(x),
    };
    let importance =
        permutation_importance(&predict, &features, hold.x.view(), hold.labels(), 5, o.seed);
    let positives = d.labels().iter().filter(|&&l| l).count();
    Ok(RiskModel {
        format: FORMAT,
        summaries: summaries(&features, train.x.view()),
        features,
        spec: o.spec.clone(),
        encodings,
        kind,
        logistic: Some(logistic),
        forest,
        threshold,
        training: TrainingInfo {
            data: o.data.display().to_string(),
            data_sha256: crate::state::sha256_hex(&bytes),
            rows: d.len(),
            train_rows: train.len(),
            holdout_rows: hold.len(),
            cutoff: hold
                .timestamps
                .iter()
                .min()
                .copied()
                .unwrap_or_else(Utc::now),
            base_rate: positives as f64 / d.len() as f64,
            seed: o.seed,
            trained_at: Utc::now(),
            train_seconds: start.elapsed().as_secs_f64(),
        },
        search: result,
        holdout,
        baseline,
        importance,
        holdout_predictions: hold
            .ids
            .iter()
            .zip(p.iter())
            .zip(hold.labels())
            .zip(&hold.timestamps)
            .map(|(((id, &prob), &actual), &at)| HoldoutPrediction {
                row_key: Some(id.clone()),
                predicted: prob,
                actual: Some(f64::from(u8::from(actual))),
                at,
            })
            .collect(),
    })
}

/// A model measured on labelled deployments, with permutation importance on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub evaluation: Evaluation,
    pub importance: Vec<Importance>,
}

pub fn evaluate(model: &RiskModel, d: &Deployments) -> Measured {
    let p = model.predict_proba(d.x.view());
    Measured {
        evaluation: Evaluation::new(
            p.as_slice().unwrap_or_default(),
            d.labels(),
            model.threshold,
        ),
        importance: permutation_importance(
            &|x| model.predict_proba(x),
            &model.features,
            d.x.view(),
            d.labels(),
            5,
            model.training.seed,
        ),
    }
}

impl RiskModel {
    /// Writes the artifact, binary (see [`artifact`]).
    pub fn save(&self, dir: &Path) -> Result<(PathBuf, String, u64), MlError> {
        artifact::save_binary(self, dir, MODEL_NAME)
    }

    /// Reads an artifact, checking its checksum when the registry gave one.
    pub fn load(path: &Path, sha256: Option<&str>) -> Result<RiskModel, MlError> {
        RiskModel::from_bytes(path, &artifact::read_checked(path, sha256)?)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<RiskModel, MlError> {
        let bad = |reason: String| MlError::Artifact {
            path: path.to_path_buf(),
            reason,
        };
        let model: RiskModel = artifact::decode(path, bytes, "a vigil risk model")?;
        if model.format != FORMAT {
            return Err(bad(format!(
                "artifact format {} but this vigil reads {FORMAT}; train the model again",
                model.format
            )));
        }
        if model.spec.all_features() != model.features
            || model.forest.n_features != model.features.len()
            || model.encodings.len() != model.spec.categorical.len()
        {
            return Err(bad(
                "its feature list, its spec and its forest do not agree".into(),
            ));
        }
        model.forest.check().map_err(bad)?;
        match (&model.logistic, model.kind) {
            (Some(l), _) => l.check(model.features.len()).map_err(bad)?,
            (None, ModelKind::Logistic) => {
                return Err(bad("it keeps the logistic model but holds none".into()));
            }
            (None, ModelKind::Forest) => {}
        }
        Ok(model)
    }

    /// Each row's probability of a rollback, by the model this version keeps.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> ndarray::Array1<f64> {
        match (self.kind, &self.logistic) {
            (ModelKind::Logistic, Some(l)) => l.predict_proba(x),
            _ => self.forest.predict_proba(x),
        }
    }

    /// Reads a file the way the model was trained to: its columns, its policy for empty
    /// cells, its categorical encodings.
    pub fn read(&self, path: &Path, labelled: bool) -> Result<Deployments, MlError> {
        let mut d = Deployments::load(path, &self.spec, labelled)?;
        self.prepare(&mut d);
        Ok(d)
    }

    /// Fills empty cells (training medians and modes) and encodes the categorical features.
    fn prepare(&self, d: &mut Deployments) {
        let medians: Vec<f64> = self
            .summaries
            .iter()
            .take(self.spec.features.len())
            .map(|s| s.median)
            .collect();
        let modes: Vec<String> = self.encodings.iter().map(|e| e.mode.clone()).collect();
        d.impute(&medians, &modes);
        d.encode(&self.encodings);
    }

    /// [`RiskModel::read`] of CSV held in memory (a request's body), named `name` in errors.
    pub fn read_csv(&self, name: &str, csv: &[u8]) -> Result<Deployments, MlError> {
        let mut d = Deployments::from_csv(name, &self.spec, csv)?;
        self.prepare(&mut d);
        Ok(d)
    }

    /// [`RiskModel::read`] of JSON rows keyed by column.
    pub fn read_json(
        &self,
        name: &str,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<Deployments, MlError> {
        let mut d = Deployments::from_json_rows(name, &self.spec, rows)?;
        self.prepare(&mut d);
        Ok(d)
    }

    /// [`RiskModel::read`] `rows` deployments at a time, for files of any size.
    pub fn read_chunks<'a>(
        &'a self,
        path: &Path,
        rows: usize,
    ) -> Result<impl Iterator<Item = Result<Deployments, MlError>> + 'a, MlError> {
        Ok(
            Deployments::chunks(path, &self.spec, rows)?.map(move |chunk| {
                let mut d = chunk?;
                d.encode(&self.encodings);
                Ok(d)
            }),
        )
    }

    /// The deployments of `d` (read from `file`) the model never learned from: those at or
    /// after its training cutoff — all of them when `all`.
    pub fn unseen(&self, d: &Deployments, file: &Path, all: bool) -> Result<Deployments, MlError> {
        let rows: Vec<usize> = (0..d.len())
            .filter(|&i| all || d.timestamps[i] >= self.training.cutoff)
            .collect();
        if rows.is_empty() {
            return Err(MlError::Invalid(format!(
                "{} has no deployments at or after the model's training cutoff {}; use a file with newer deployments, or every row (`--all`, `all = true`: optimistic, it includes training rows)",
                file.display(),
                self.training.cutoff
            )));
        }
        Ok(d.select(&rows))
    }

    /// Scores deployments into bands.
    /// Scores every deployment of `d`, with the drivers of each (see [`Drivers`] to limit
    /// them to the rows that need them).
    pub fn score(&self, d: &Deployments, bands: &Bands) -> Vec<Scored> {
        self.score_with(d, bands, Drivers::All)
    }

    /// Scores every deployment of `d`; computes drivers for the rows `drivers` says. A row's
    /// drivers cost one prediction per feature, so for a large file most of the time goes to
    /// them: `Flagged` spends it only where a person will look.
    pub fn score_with(&self, d: &Deployments, bands: &Bands, drivers: Drivers) -> Vec<Scored> {
        let (rows, width) = d.x.dim();
        let p = self.predict_proba(d.x.view());
        let mut scored: Vec<Scored> = (0..rows)
            .map(|i| Scored {
                deployment_id: d.ids[i].clone(),
                service: d.services[i].clone(),
                probability: p[i],
                band: bands.band(p[i]),
                drivers: Vec::new(),
                unfamiliar: self.unfamiliar(d, i),
            })
            .collect();
        let explain: Vec<usize> = scored
            .iter()
            .enumerate()
            .filter(|(_, s)| match drivers {
                Drivers::All => true,
                Drivers::None => false,
                Drivers::Flagged => s.band != Band::Proceed || !s.unfamiliar.is_empty(),
            })
            .map(|(i, _)| i)
            .collect();
        if explain.is_empty() {
            return scored;
        }
        // Each row to explain with one feature at a time set to its training median: one
        // scoring pass over all of them (on all cores) instead of one small pass per row.
        let mut all = Array2::zeros((explain.len() * width, width));
        for (k, &i) in explain.iter().enumerate() {
            for f in 0..width {
                let mut r = all.row_mut(k * width + f);
                r.assign(&d.x.row(i));
                r[f] = self.summaries.get(f).map_or(f64::NAN, |s| s.median);
            }
        }
        let changed = self.predict_proba(all.view());
        for (k, &i) in explain.iter().enumerate() {
            let variants = changed.slice(ndarray::s![k * width..(k + 1) * width]);
            scored[i].drivers = self.drivers_from(
                d.x.row(i).as_slice().unwrap_or_default(),
                p[i],
                variants.as_slice().unwrap_or_default(),
            );
        }
        scored
    }

    /// What row `i` of `d` has that training never saw: numeric values beyond the training
    /// range, categorical values never met.
    fn unfamiliar(&self, d: &Deployments, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (f, s) in self
            .summaries
            .iter()
            .enumerate()
            .take(self.spec.features.len())
        {
            let v = d.x[[i, f]];
            if let Some(max) = s.max.filter(|&m| v > m) {
                out.push(format!(
                    "{} = {v} is above every training value (max {max})",
                    s.name
                ));
            } else if let Some(min) = s.min.filter(|&m| v < m) {
                out.push(format!(
                    "{} = {v} is below every training value (min {min})",
                    s.name
                ));
            }
        }
        out.extend(
            d.unseen[i]
                .iter()
                .map(|u| format!("{u} was never seen in training")),
        );
        out
    }

    fn drivers_from(&self, row: &[f64], prob: f64, changed: &[f64]) -> Vec<Driver> {
        let mut out: Vec<Driver> = self
            .summaries
            .iter()
            .zip(changed)
            .enumerate()
            .filter(|(_, (_, q))| prob - **q >= 0.01)
            .map(|(f, (s, q))| Driver {
                feature: s.name.clone(),
                value: row[f],
                typical: s.median,
                adds: prob - q,
            })
            .collect();
        out.sort_by(|a, b| b.adds.total_cmp(&a.adds));
        out
    }
}

/// Which scored rows get their drivers computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Drivers {
    /// Every row.
    #[default]
    All,
    /// Rows in the review or block band, or with a value the model has no basis for.
    Flagged,
    /// None (the fastest: one prediction per row).
    None,
}

/// Where a probability puts a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Proceed,
    Review,
    Block,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Proceed => "proceed",
            Band::Review => "review",
            Band::Block => "block",
        }
    }
}

/// The thresholds of the bands: above `block` blocks, above `review` needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bands {
    pub block: f64,
    pub review: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            block: 0.6,
            review: 0.3,
        }
    }
}

impl Bands {
    pub fn check(&self) -> Result<(), MlError> {
        let ok = |p: f64| (0.0..=1.0).contains(&p);
        if !ok(self.block) || !ok(self.review) || self.review > self.block {
            return Err(MlError::Invalid(format!(
                "thresholds must satisfy 0 <= review ({}) <= block ({}) <= 1",
                self.review, self.block
            )));
        }
        Ok(())
    }

    pub fn band(&self, p: f64) -> Band {
        if p > self.block {
            Band::Block
        } else if p > self.review {
            Band::Review
        } else {
            Band::Proceed
        }
    }
}

/// One feature's push on a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    pub feature: String,
    pub value: f64,
    /// The training median.
    pub typical: f64,
    /// Risk added by this value compared with the typical one (0.12 = 12 points).
    pub adds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub deployment_id: String,
    pub service: String,
    pub probability: f64,
    pub band: Band,
    pub drivers: Vec<Driver>,
    /// Why the model has no basis for this score, if it has none: a value outside every
    /// training value, a category training never saw. A gate should not trust such a score.
    #[serde(default)]
    pub unfamiliar: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_model_loads_and_scores_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let sim = crate::ml::simulate::write(dir.path(), 300, 3).unwrap();
        let grid = Grid::parse(&[
            "trees=8".into(),
            "depth=none".into(),
            "min_samples=2".into(),
        ])
        .unwrap();
        let model = train(&TrainOptions {
            spec: &ModelSpec::default(),
            choice: ModelChoice::Forest,
            data: Path::new(&sim.history),
            folds: 3,
            grid,
            seed: 1,
            holdout: 0.2,
            threads: 2,
            progress: &|_| {},
            stop: &|| false,
        })
        .unwrap();
        let (path, sha, size) = model.save(&dir.path().join("models")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        let back = RiskModel::load(&path, Some(&sha)).unwrap();
        let new = model.read(Path::new(&sim.candidates), false).unwrap();
        let history = model.read(Path::new(&sim.history), true).unwrap();
        assert_eq!(
            back.predict_proba(history.x.view()),
            model.predict_proba(history.x.view())
        );
        assert_eq!(
            back.score(&new, &Bands::default()),
            model.score(&new, &Bands::default())
        );
        assert_eq!(back.holdout, model.holdout);
        // A changed byte is caught by the checksum.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let e = RiskModel::load(&path, Some(&sha)).unwrap_err().to_string();
        assert!(e.contains("the file changed after registration"), "{e}");
    }

    #[test]
    fn bands_split_at_their_thresholds() {
        let b = Bands::default();
        assert_eq!(b.band(0.3), Band::Proceed);
        assert_eq!(b.band(0.31), Band::Review);
        assert_eq!(b.band(0.61), Band::Block);
        assert!(
            Bands {
                block: 0.2,
                review: 0.5
            }
            .check()
            .is_err()
        );
    }
}
