//! Regression on any CSV, for the `ml.train_regressor` task: ordinary least squares
//! (linfa-linear) or one of our trees grown with the squared-error rule, measured by R² and
//! RMSE on a held-out share of the rows.

use std::path::Path;

use linfa::Dataset;
use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, ArrayBase, Axis, Data, Ix2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ml::MlError;
use crate::ml::bins::{Binned, MAX_BINS};
use crate::ml::data::Frame;
use crate::ml::metrics::r2_rmse;
use crate::ml::tree::{Tree, TreeParams};

/// A single regression tree (all features at every split, no bootstrap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeRegressorParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
}

impl Default for TreeRegressorParams {
    fn default() -> Self {
        TreeRegressorParams {
            max_depth: Some(8),
            min_samples_split: 10,
            min_samples_leaf: 5,
        }
    }
}

/// A fitted regression tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeRegressor {
    pub n_features: usize,
    pub tree: Tree,
}

impl<D: Data<Elem = f64>, T: AsSingleTargets<Elem = f64>> Fit<ArrayBase<D, Ix2>, T, MlError>
    for TreeRegressorParams
{
    type Object = TreeRegressor;

    fn fit(&self, ds: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<TreeRegressor, MlError> {
        let binned = Binned::new(ds.records.view(), MAX_BINS);
        let y: Vec<f64> = ds.as_single_targets().to_vec();
        let n_features = binned.features();
        let params = TreeParams {
            max_depth: self.max_depth,
            min_samples_split: self.min_samples_split.max(2),
            min_samples_leaf: self.min_samples_leaf.max(1),
            max_features: n_features,
        };
        // With every feature tried at every split, the generator only orders the features.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let tree = Tree::grow(&binned, &y, &vec![1.0; y.len()], &params, &mut rng);
        Ok(TreeRegressor { n_features, tree })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for TreeRegressor {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        for (row, y) in x.outer_iter().zip(y.iter_mut()) {
            *y = self.tree.predict_row(&row.to_vec());
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

/// The fitted model, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum Regressor {
    Linear {
        intercept: f64,
        coefficients: Vec<f64>,
    },
    Tree(TreeRegressor),
}

impl Regressor {
    pub fn predict(&self, x: &ndarray::Array2<f64>) -> Vec<f64> {
        match self {
            Regressor::Linear {
                intercept,
                coefficients,
            } => x
                .outer_iter()
                .map(|r| intercept + r.iter().zip(coefficients).map(|(a, b)| a * b).sum::<f64>())
                .collect(),
            Regressor::Tree(t) => {
                let mut y = t.default_target(x);
                t.predict_inplace(x, &mut y);
                y.to_vec()
            }
        }
    }
}

/// Marks a regressor artifact (risk models have no `kind`).
pub const KIND: &str = "regressor";

/// A regressor artifact with what it was trained on and how it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressorModel {
    pub kind: String,
    pub target: String,
    pub features: Vec<String>,
    pub model: Regressor,
    pub data: String,
    pub train_rows: usize,
    pub test_rows: usize,
    pub r2: f64,
    pub rmse: f64,
    pub seed: u64,
}

/// Which regressor `ml.train_regressor` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Linear,
    Tree,
}

pub struct RegressOptions<'a> {
    pub data: &'a Path,
    pub target: &'a str,
    pub features: &'a [String],
    pub algorithm: Algorithm,
    pub tree: TreeRegressorParams,
    pub test_fraction: f64,
    pub seed: u64,
}

/// Reads `features` and `target` from a CSV.
pub fn read_xy(
    data: &Path,
    target: &str,
    features: &[String],
) -> Result<(ndarray::Array2<f64>, Vec<f64>), MlError> {
    if features.is_empty() {
        return Err(MlError::Invalid("list at least one feature column".into()));
    }
    let frame = Frame::read(data)?;
    let names: Vec<&str> = features.iter().map(String::as_str).collect();
    Ok((frame.matrix(&names)?, frame.numbers(target)?))
}

/// Fits on a seeded random `1 - test_fraction` of the rows and measures on the rest.
pub fn train(o: &RegressOptions) -> Result<RegressorModel, MlError> {
    if !(0.05..=0.5).contains(&o.test_fraction) {
        return Err(MlError::Invalid(format!(
            "test_fraction must be between 0.05 and 0.5, got {}",
            o.test_fraction
        )));
    }
    let (x, y) = read_xy(o.data, o.target, o.features)?;
    let n = y.len();
    let n_test = ((n as f64) * o.test_fraction).round() as usize;
    if n_test < 2 || n - n_test < 2 {
        return Err(MlError::Invalid(format!(
            "{}: {n} rows are too few to hold out {:.0}% and still train",
            o.data.display(),
            100.0 * o.test_fraction
        )));
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    for i in (1..n).rev() {
        idx.swap(i, rng.random_range(0..=i));
    }
    let (test, train) = idx.split_at(n_test);
    let pick = |rows: &[usize]| {
        (
            x.select(Axis(0), rows),
            Array1::from(rows.iter().map(|&i| y[i]).collect::<Vec<_>>()),
        )
    };
    let (x_tr, y_tr) = pick(train);
    let (x_te, y_te) = pick(test);
    let model = match o.algorithm {
        Algorithm::Linear => {
            let fitted = linfa_linear::LinearRegression::new()
                .fit(&Dataset::new(x_tr.clone(), y_tr.clone()))?;
            Regressor::Linear {
                intercept: fitted.intercept(),
                coefficients: fitted.params().to_vec(),
            }
        }
        Algorithm::Tree => Regressor::Tree(o.tree.fit(&Dataset::new(x_tr.clone(), y_tr))?),
    };
    let (r2, rmse) = r2_rmse(&model.predict(&x_te), y_te.as_slice().unwrap_or_default());
    Ok(RegressorModel {
        kind: KIND.into(),
        target: o.target.into(),
        features: o.features.to_vec(),
        model,
        data: o.data.display().to_string(),
        train_rows: train.len(),
        test_rows: test.len(),
        r2,
        rmse,
        seed: o.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::Predict;
    use ndarray::array;

    #[test]
    fn a_tree_regressor_through_linfa_traits() {
        let x = array![[1.0], [2.0], [3.0], [10.0], [11.0], [12.0]];
        let y = array![1.0, 1.0, 1.0, 5.0, 5.0, 8.0];
        let t = TreeRegressorParams {
            max_depth: Some(1),
            min_samples_split: 2,
            min_samples_leaf: 1,
        }
        .fit(&Dataset::new(x, y))
        .unwrap();
        let p: Array1<f64> = t.predict(&array![[0.0], [20.0]]);
        assert_eq!(p.to_vec(), vec![1.0, 6.0]);
    }

    #[test]
    fn linear_regression_recovers_a_line_and_scores_r2_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        let mut s = String::from("a,b,y\n");
        for i in 0..40 {
            let (a, b) = (f64::from(i), f64::from(i % 7));
            s.push_str(&format!("{a},{b},{}\n", 3.0 + 2.0 * a - b));
        }
        std::fs::write(&p, s).unwrap();
        let m = train(&RegressOptions {
            data: &p,
            target: "y",
            features: &["a".into(), "b".into()],
            algorithm: Algorithm::Linear,
            tree: TreeRegressorParams::default(),
            test_fraction: 0.25,
            seed: 1,
        })
        .unwrap();
        assert!((m.r2 - 1.0).abs() < 1e-9, "{}", m.r2);
        assert!(m.rmse < 1e-6);
        let Regressor::Linear {
            coefficients,
            intercept,
        } = &m.model
        else {
            panic!("linear");
        };
        assert!((coefficients[0] - 2.0).abs() < 1e-9 && (intercept - 3.0).abs() < 1e-9);
        assert_eq!((m.train_rows, m.test_rows), (30, 10));
    }
}
