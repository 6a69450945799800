//! Model quality metrics: how each is computed from predictions, which direction is better,
//! and how big a change must be to matter.

use serde::{Deserialize, Serialize};

/// A metric the verdicts know how to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Root mean squared error: lower is better, unbounded.
    Rmse,
    /// Mean absolute error: lower is better, unbounded.
    Mae,
    /// Coefficient of determination: higher is better, at most 1.
    R2,
    /// Share of correct class predictions: higher is better, in [0, 1].
    Accuracy,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Rmse, Metric::Mae, Metric::R2, Metric::Accuracy];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
            Metric::Accuracy => "accuracy",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::R2 | Metric::Accuracy)
    }

    /// Bounded metrics get an absolute floor (5 % means 0.05 of R² or accuracy): a relative
    /// change of a number near zero, like R² = 0.02, means nothing.
    pub fn is_bounded(self) -> bool {
        matches!(self, Metric::R2 | Metric::Accuracy)
    }

    /// How much worse `candidate` is than `baseline`, in the metric's own units (positive =
    /// worse).
    pub fn worsening(self, baseline: f64, candidate: f64) -> f64 {
        if self.higher_is_better() {
            baseline - candidate
        } else {
            candidate - baseline
        }
    }

    /// The smallest worsening that counts, for a threshold in percent: relative to the
    /// baseline for unbounded metrics, absolute (percentage points) for bounded ones.
    pub fn floor(self, baseline: f64, threshold_percent: f64) -> f64 {
        if self.is_bounded() {
            threshold_percent / 100.0
        } else {
            baseline.abs() * threshold_percent / 100.0
        }
    }

    /// The metric over `(predicted, actual)` pairs; `None` when it is undefined (no rows, or
    /// R² of a constant target).
    pub fn compute(self, rows: &[(f64, f64)]) -> Option<f64> {
        if rows.is_empty() {
            return None;
        }
        let n = rows.len() as f64;
        match self {
            Metric::Rmse => {
                Some((rows.iter().map(|(p, a)| (p - a).powi(2)).sum::<f64>() / n).sqrt())
            }
            Metric::Mae => Some(rows.iter().map(|(p, a)| (p - a).abs()).sum::<f64>() / n),
            Metric::R2 => {
                let mean = rows.iter().map(|(_, a)| a).sum::<f64>() / n;
                let total: f64 = rows.iter().map(|(_, a)| (a - mean).powi(2)).sum();
                let residual: f64 = rows.iter().map(|(p, a)| (a - p).powi(2)).sum();
                (total > 0.0).then(|| 1.0 - residual / total)
            }
            Metric::Accuracy => {
                Some(rows.iter().filter(|(p, a)| p.round() == a.round()).count() as f64 / n)
            }
        }
    }
}

/// Classification when every prediction and label is 0 or 1 (or a small whole class id).
pub fn looks_like_classes(rows: &[(f64, f64)]) -> bool {
    !rows.is_empty()
        && rows.iter().all(|(p, a)| {
            p.fract() == 0.0
                && a.fract() == 0.0
                && (0.0..=100.0).contains(p)
                && (0.0..=100.0).contains(a)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_hand_computed_cases() {
        let rows = [(2.0, 1.0), (2.0, 3.0), (5.0, 5.0), (3.0, 3.0)];
        // errors 1, -1, 0, 0 -> mse 0.5
        assert!((Metric::Rmse.compute(&rows).unwrap() - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((Metric::Mae.compute(&rows).unwrap() - 0.5).abs() < 1e-12);
        // actual mean 3, total SS 4+0+4+0 = 8, residual SS 2 -> R² 0.75
        assert!((Metric::R2.compute(&rows).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(
            Metric::R2.compute(&[(1.0, 2.0), (3.0, 2.0)]),
            None,
            "constant target"
        );
        let classes = [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0), (1.0, 1.0)];
        assert_eq!(Metric::Accuracy.compute(&classes), Some(0.75));
        assert!(looks_like_classes(&classes));
        assert!(!looks_like_classes(
            &rows[..1]
                .iter()
                .map(|(p, a)| (p + 0.5, *a))
                .collect::<Vec<_>>()
        ));
    }

    #[test]
    fn directions_and_floors() {
        assert_eq!(Metric::Rmse.worsening(2.0, 2.5), 0.5);
        assert_eq!(Metric::R2.worsening(0.9, 0.8), 0.9 - 0.8);
        assert!(
            (Metric::Rmse.floor(4.0, 5.0) - 0.2).abs() < 1e-12,
            "relative"
        );
        assert!(
            (Metric::R2.floor(0.02, 5.0) - 0.05).abs() < 1e-12,
            "absolute, never relative"
        );
    }
}
