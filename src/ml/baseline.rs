//! The logistic-regression baseline (linfa-logistic) on standard-scaled features
//! (linfa-preprocessing). Logistic regression needs the scaling — its L2 penalty and its
//! optimiser both assume comparable units — trees do not, so only this model uses it.

use linfa::Dataset;
use linfa::traits::{Fit, Transformer};
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_preprocessing::linear_scaling::LinearScaler;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::ml::MlError;

/// A scaler and a logistic regression fitted on the same (training) rows.
pub struct Baseline {
    scaler: LinearScaler<f64>,
    model: FittedLogisticRegression<f64, bool>,
}

impl Baseline {
    /// Fits the scaler on `x` only — inside cross-validation that is the training folds, so
    /// the validation fold's mean and spread never leak into training.
    pub fn fit(x: ArrayView2<f64>, y: &[bool]) -> Result<Baseline, MlError> {
        let scaler = LinearScaler::standard().fit(&Dataset::from(x.to_owned()))?;
        let scaled = scaler.transform(x.to_owned());
        let model = LogisticRegression::default()
            .max_iterations(200)
            .fit(&Dataset::new(scaled, Array1::from(y.to_vec())))?;
        Ok(Baseline { scaler, model })
    }

    /// The probability of class 1 (`true`).
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let p = self
            .model
            .predict_probabilities(&self.scaler.transform(x.to_owned()));
        // linfa-logistic calls the *more frequent* label its positive class; with rollbacks
        // the minority, its probabilities are those of `false` unless we check.
        if self.model.labels().pos.class {
            p
        } else {
            p.mapv(|v| 1.0 - v)
        }
    }
}

/// A fitted baseline as the artifact keeps it: the scaler's offsets and scales and the
/// regression's weights, enough to score without linfa's types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLogistic {
    pub offsets: Vec<f64>,
    pub scales: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// The regression's positive class is "kept": its probabilities are flipped.
    pub flip: bool,
}

impl Baseline {
    /// The fitted scaler and regression as plain numbers.
    pub fn stored(&self) -> StoredLogistic {
        StoredLogistic {
            offsets: self.scaler.offsets().to_vec(),
            scales: self.scaler.scales().to_vec(),
            weights: self.model.params().to_vec(),
            intercept: self.model.intercept(),
            flip: !self.model.labels().pos.class,
        }
    }
}

impl StoredLogistic {
    /// The probability of a rollback for each row of `x` (as [`Baseline::predict_proba`]).
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array1<f64> {
        x.rows()
            .into_iter()
            .map(|row| {
                let z = row
                    .iter()
                    .zip(&self.offsets)
                    .zip(&self.scales)
                    .zip(&self.weights)
                    .map(|(((v, o), s), w)| (v - o) * s * w)
                    .sum::<f64>()
                    + self.intercept;
                let p = 1.0 / (1.0 + (-z).exp());
                if self.flip { 1.0 - p } else { p }
            })
            .collect()
    }

    /// Whether it fits `features` columns and holds finite numbers.
    pub fn check(&self, features: usize) -> Result<(), String> {
        let lengths = [self.offsets.len(), self.scales.len(), self.weights.len()];
        if lengths.iter().any(|&n| n != features) {
            return Err(format!(
                "the logistic model has {lengths:?} coefficients for {features} features"
            ));
        }
        let all = self
            .offsets
            .iter()
            .chain(&self.scales)
            .chain(&self.weights)
            .chain(std::iter::once(&self.intercept));
        if all.into_iter().any(|v| !v.is_finite()) {
            return Err("the logistic model holds a value that is not a finite number".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn probabilities_are_of_the_minority_class_when_it_is_true() {
        // 1 of 5 is `true`: linfa-logistic's positive class is `false` here.
        let x = array![
            [0.0, 10.0],
            [1.0, 11.0],
            [2.0, 10.5],
            [3.0, 9.5],
            [9.0, 10.0]
        ];
        let y = [false, false, false, false, true];
        let b = Baseline::fit(x.view(), &y).unwrap();
        assert!(!b.model.labels().pos.class);
        let p = b.predict_proba(x.view());
        assert!(p[4] > p[0], "{p}");
        assert!(p[4] > 0.5 && p[0] < 0.5, "{p}");
        // Stored as plain numbers, it scores the same.
        let stored = b.stored();
        assert!(stored.flip);
        let q = stored.predict_proba(x.view());
        for (a, b) in p.iter().zip(&q) {
            assert!((a - b).abs() < 1e-12, "{p} vs {q}");
        }
        assert!(stored.check(2).is_ok() && stored.check(3).is_err());
    }

    #[test]
    fn scaling_by_hand() {
        // Mean 2, population std 1 for column 0; column 1 is constant (left unscaled).
        let x = array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]];
        let s = LinearScaler::standard()
            .fit(&Dataset::from(x.clone()))
            .unwrap();
        let t = s.transform(x);
        let std = (2.0f64 / 3.0).sqrt();
        assert!((t[[0, 0]] + 1.0 / std).abs() < 1e-12);
        assert_eq!(t[[1, 0]], 0.0);
        assert_eq!(t.column(1).to_vec(), vec![0.0, 0.0, 0.0]);
    }
}
