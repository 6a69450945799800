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

/// A text column as numbers: one 0/1 column per level after the first. The first level (in
/// sorted order) is the reference that the intercept stands for, so a linear model learns one
/// offset per other level and a tree can split any level off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneHot {
    pub column: String,
    pub levels: Vec<String>,
}

/// Levels one categorical column may have: more is usually an id column listed by mistake.
pub const MAX_LEVELS: usize = 100;

/// Where the levels of the categorical columns come from.
pub enum Levels<'a> {
    /// Training: the distinct values of these columns.
    Learn(&'a [String]),
    /// Evaluation: the levels training saw; other values count as unseen.
    Known(&'a [OneHot]),
}

/// The matrix a regressor sees, read from a CSV.
#[derive(Debug)]
pub struct Design {
    pub x: ndarray::Array2<f64>,
    pub y: Vec<f64>,
    pub encodings: Vec<OneHot>,
    /// Rows whose category training never saw, per column (predicted at the reference level).
    pub unseen: Vec<(String, usize)>,
}

/// Marks a regressor artifact (risk models have no `kind`).
pub const KIND: &str = "regressor";

/// A regressor artifact with what it was trained on and how it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressorModel {
    pub kind: String,
    pub target: String,
    pub features: Vec<String>,
    /// One-hot encoded after `features`, in this order (absent in older artifacts).
    #[serde(default)]
    pub categorical: Vec<OneHot>,
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
    pub categorical: &'a [String],
    pub algorithm: Algorithm,
    pub tree: TreeRegressorParams,
    pub test_fraction: f64,
    pub seed: u64,
}

/// Reads the numeric `features`, the categorical columns (one-hot encoded after them) and
/// `target` from a CSV.
pub fn read_design(
    data: &Path,
    target: &str,
    features: &[String],
    levels: Levels,
) -> Result<Design, MlError> {
    let categorical: Vec<&str> = match &levels {
        Levels::Learn(names) => names.iter().map(String::as_str).collect(),
        Levels::Known(encodings) => encodings.iter().map(|e| e.column.as_str()).collect(),
    };
    if features.is_empty() && categorical.is_empty() {
        return Err(MlError::Invalid("list at least one feature column".into()));
    }
    if let Some(both) = categorical
        .iter()
        .find(|c| features.iter().any(|f| f == *c))
    {
        return Err(MlError::Invalid(format!(
            "`{both}` is listed in both `features` and `categorical`; keep it in one"
        )));
    }
    let frame = Frame::read(data)?;
    let numeric = frame.matrix(features)?;
    let mut encodings = Vec::new();
    let mut columns = Vec::new();
    let mut unseen = Vec::new();
    for (k, column) in categorical.iter().enumerate() {
        let values = frame.text(column)?;
        let encoding = match &levels {
            Levels::Learn(_) => {
                let distinct: std::collections::BTreeSet<&String> = values.iter().collect();
                if distinct.len() > MAX_LEVELS {
                    return Err(MlError::Invalid(format!(
                        "{}: column `{column}` has {} distinct values (at most {MAX_LEVELS}); \
                         is it an id rather than a category?",
                        data.display(),
                        distinct.len()
                    )));
                }
                OneHot {
                    column: (*column).to_string(),
                    levels: distinct.into_iter().cloned().collect(),
                }
            }
            Levels::Known(encodings) => encodings[k].clone(),
        };
        let mut missing = 0;
        for level in encoding.levels.iter().skip(1) {
            columns.push(
                values
                    .iter()
                    .map(|v| f64::from(u8::from(v == level)))
                    .collect::<Vec<_>>(),
            );
        }
        for v in &values {
            if !encoding.levels.contains(v) {
                missing += 1;
            }
        }
        if missing > 0 {
            unseen.push(((*column).to_string(), missing));
        }
        encodings.push(encoding);
    }
    let mut x = ndarray::Array2::zeros((frame.len(), numeric.ncols() + columns.len()));
    x.slice_mut(ndarray::s![.., ..numeric.ncols()])
        .assign(&numeric);
    for (j, col) in columns.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            x[[i, numeric.ncols() + j]] = *v;
        }
    }
    Ok(Design {
        x,
        y: frame.numbers(target)?,
        encodings,
        unseen,
    })
}

/// Fits on a seeded random `1 - test_fraction` of the rows and measures on the rest.
pub fn train(o: &RegressOptions) -> Result<RegressorModel, MlError> {
    if !(0.05..=0.5).contains(&o.test_fraction) {
        return Err(MlError::Invalid(format!(
            "test_fraction must be between 0.05 and 0.5, got {}",
            o.test_fraction
        )));
    }
    let Design {
        x, y, encodings, ..
    } = read_design(o.data, o.target, o.features, Levels::Learn(o.categorical))?;
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
        categorical: encodings,
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

    /// Least squares of `y` on `features` and `categorical`, holding out a seeded quarter.
    fn linear(data: &Path, features: &[String], categorical: &[String]) -> RegressorModel {
        train(&RegressOptions {
            data,
            target: "y",
            features,
            categorical,
            algorithm: Algorithm::Linear,
            tree: TreeRegressorParams::default(),
            test_fraction: 0.25,
            seed: 1,
        })
        .unwrap()
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
        let m = linear(&p, &["a".into(), "b".into()], &[]);
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

    #[test]
    fn text_columns_are_one_hot_encoded_and_unseen_levels_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let train_csv = dir.path().join("train.csv");
        let mut s = String::from("x,service,y\n");
        for i in 0..60 {
            let (service, offset) = [("a", 0.0), ("b", 100.0), ("c", 250.0)][i % 3];
            s.push_str(&format!("{i},{service},{}\n", offset + f64::from(i as u32)));
        }
        std::fs::write(&train_csv, s).unwrap();
        let m = linear(&train_csv, &["x".into()], &["service".into()]);
        assert!((m.r2 - 1.0).abs() < 1e-9, "{}", m.r2);
        assert_eq!(m.categorical[0].levels, ["a", "b", "c"]);
        let Regressor::Linear { coefficients, .. } = &m.model else {
            panic!("linear");
        };
        // x, then one offset per level after the reference `a`.
        assert!((coefficients[1] - 100.0).abs() < 1e-6 && (coefficients[2] - 250.0).abs() < 1e-6);

        let fresh = dir.path().join("fresh.csv");
        std::fs::write(&fresh, "x,service,y\n1,b,101\n2,z,2\n3,z,3\n").unwrap();
        let d = read_design(&fresh, "y", &["x".into()], Levels::Known(&m.categorical)).unwrap();
        assert_eq!(d.unseen, vec![("service".to_string(), 2)]);
        assert_eq!(
            d.x.row(1).to_vec(),
            vec![2.0, 0.0, 0.0],
            "unseen: the reference level"
        );

        let both = read_design(
            &fresh,
            "y",
            &["service".into()],
            Levels::Learn(&["service".into()]),
        );
        assert!(matches!(both, Err(MlError::Invalid(m)) if m.contains("in both")));
        let ids = dir.path().join("ids.csv");
        let mut s = String::from("id,y\n");
        for i in 0..=MAX_LEVELS {
            s.push_str(&format!("id{i},1\n"));
        }
        std::fs::write(&ids, s).unwrap();
        let err = read_design(&ids, "y", &[], Levels::Learn(&["id".into()])).unwrap_err();
        assert!(err.to_string().contains("is it an id"), "{err}");
    }
}
