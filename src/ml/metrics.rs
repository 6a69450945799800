//! Classification and regression metrics, computed here rather than with linfa's: one call
//! form of linfa 0.8's `confusion_matrix` swaps precision and recall, and its
//! `roc().area_under_curve()` is wrong when scores tie at 0. The AUC here is the rank-sum
//! (Mann–Whitney) form, with tied scores sharing their mean rank.

use serde::{Deserialize, Serialize};

/// Counts of a binary classifier's decisions; "positive" is class 1 (rolled back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Confusion {
    pub fn new(predicted: &[bool], actual: &[bool]) -> Confusion {
        let mut c = Confusion::default();
        for (&p, &a) in predicted.iter().zip(actual) {
            match (p, a) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Precision, recall, F1 and support of class 1 (`positive`) or class 0.
    pub fn class(&self, positive: bool) -> ClassScores {
        let (tp, fp, fn_) = if positive {
            (self.tp, self.fp, self.fn_)
        } else {
            (self.tn, self.fn_, self.fp)
        };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        ClassScores {
            precision,
            recall,
            f1: if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            },
            support: tp + fn_,
        }
    }

    /// F1 of class 1, the score the search maximises.
    pub fn f1(&self) -> f64 {
        self.class(true).f1
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }
}

/// 0 when the denominator is 0 (scikit-learn's `zero_division=0`).
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// scikit-learn's `classification_report`, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Class 0 ("kept") then class 1 ("rolled back").
    pub classes: [ClassScores; 2],
    pub accuracy: f64,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
}

impl Report {
    pub fn new(c: &Confusion) -> Report {
        let classes = [c.class(false), c.class(true)];
        let n = classes.iter().map(|k| k.support).sum::<u64>();
        let avg = |weight: &dyn Fn(&ClassScores) -> f64| {
            let total: f64 = classes.iter().map(weight).sum();
            let mean = |f: fn(&ClassScores) -> f64| {
                if total > 0.0 {
                    classes.iter().map(|k| f(k) * weight(k)).sum::<f64>() / total
                } else {
                    0.0
                }
            };
            ClassScores {
                precision: mean(|k| k.precision),
                recall: mean(|k| k.recall),
                f1: mean(|k| k.f1),
                support: n,
            }
        };
        Report {
            classes,
            accuracy: c.accuracy(),
            macro_avg: avg(&|_| 1.0),
            weighted_avg: avg(&|k| k.support as f64),
        }
    }
}

/// Ranks 1..=n of `scores`, tied scores sharing the mean of their ranks.
fn mean_ranks(scores: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half. `None` when either class is absent.
pub fn roc_auc(scores: &[f64], actual: &[bool]) -> Option<f64> {
    let pos = actual.iter().filter(|&&a| a).count() as f64;
    let neg = actual.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let ranks = mean_ranks(scores);
    let rank_sum: f64 = ranks
        .iter()
        .zip(actual)
        .filter(|(_, a)| **a)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision (area under the precision–recall curve, step-wise as scikit-learn's
/// `average_precision_score`): Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct score thresholds.
pub fn average_precision(scores: &[f64], actual: &[bool]) -> Option<f64> {
    let pos = actual.iter().filter(|&&a| a).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // Every row tied at this score is flagged together.
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if actual[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let recall = tp / pos;
        ap += (recall - last_recall) * tp / (tp + fp);
        last_recall = recall;
    }
    Some(ap)
}

/// Share of the rollbacks caught if only the riskiest `fraction` of deployments were held for
/// review (⌈fraction·n⌉ of them; ties broken by file order).
pub fn recall_at_top(scores: &[f64], actual: &[bool], fraction: f64) -> Option<f64> {
    let pos = actual.iter().filter(|&&a| a).count();
    if pos == 0 {
        return None;
    }
    let k = ((fraction.clamp(0.0, 1.0) * scores.len() as f64).ceil() as usize).min(scores.len());
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let caught = order[..k].iter().filter(|&&i| actual[i]).count();
    Some(caught as f64 / pos as f64)
}

/// Mean squared difference between the predicted probability and the outcome (0 is perfect,
/// 0.25 is a coin flip's).
pub fn brier(probs: &[f64], actual: &[bool]) -> f64 {
    if probs.is_empty() {
        return 0.0;
    }
    probs
        .iter()
        .zip(actual)
        .map(|(p, &a)| (p - f64::from(u8::from(a))).powi(2))
        .sum::<f64>()
        / probs.len() as f64
}

/// R² (1 is perfect, 0 is "always the mean", negative is worse) and root mean squared error.
pub fn r2_rmse(predicted: &[f64], actual: &[f64]) -> (f64, f64) {
    let n = actual.len().max(1) as f64;
    let mean = actual.iter().sum::<f64>() / n;
    let sse: f64 = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a).powi(2))
        .sum();
    let sst: f64 = actual.iter().map(|a| (a - mean).powi(2)).sum();
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    (r2, (sse / n).sqrt())
}

/// Everything `vigil risk evaluate` reports about probabilities against outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub rows: usize,
    pub positives: usize,
    /// Probability above which a deployment is predicted to roll back.
    pub threshold: f64,
    pub confusion: Confusion,
    pub report: Report,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub brier: f64,
    /// Share of the rollbacks among the riskiest 10 % of deployments.
    pub recall_at_10pct: Option<f64>,
    /// Whether the probabilities mean what they say (absent in artifacts from before it was
    /// recorded).
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// Predicted probabilities against what happened, in ten equal-width bins: a calibrated model's
/// deployments scored 0.3 roll back about 30 % of the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Expected calibration error: the gap between mean predicted and observed rate in each
    /// bin, weighted by the bin's share of rows (0 is perfect).
    pub ece: f64,
    /// The bins that hold rows, lowest first.
    pub bins: Vec<CalibrationBin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub rows: usize,
    pub mean_predicted: f64,
    /// Share of them that rolled back.
    pub observed: f64,
}

/// The reliability table and ECE of `probs` against `actual` in `bins` equal-width bins.
pub fn calibration(probs: &[f64], actual: &[bool], bins: usize) -> Calibration {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&p, &a) in probs.iter().zip(actual) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += usize::from(a);
    }
    let n = probs.len().max(1) as f64;
    let mut ece = 0.0;
    let mut out = Vec::new();
    for (b, &(rows, total, positives)) in sums.iter().enumerate() {
        if rows == 0 {
            continue;
        }
        let mean_predicted = total / rows as f64;
        let observed = positives as f64 / rows as f64;
        ece += rows as f64 / n * (mean_predicted - observed).abs();
        out.push(CalibrationBin {
            from: b as f64 / bins as f64,
            to: (b + 1) as f64 / bins as f64,
            rows,
            mean_predicted,
            observed,
        });
    }
    Calibration { ece, bins: out }
}

impl Evaluation {
    pub fn new(probs: &[f64], actual: &[bool], threshold: f64) -> Evaluation {
        let predicted: Vec<bool> = probs.iter().map(|&p| p > threshold).collect();
        let confusion = Confusion::new(&predicted, actual);
        Evaluation {
            rows: actual.len(),
            positives: actual.iter().filter(|&&a| a).count(),
            threshold,
            confusion,
            report: Report::new(&confusion),
            roc_auc: roc_auc(probs, actual),
            pr_auc: average_precision(probs, actual),
            brier: brier(probs, actual),
            recall_at_10pct: recall_at_top(probs, actual, 0.1),
            calibration: Some(calibration(probs, actual, 10)),
        }
    }

    /// The numbers recorded with a model version in the registry.
    pub fn registry_metrics(&self) -> Vec<(&'static str, f64)> {
        let pos = self.report.classes[1];
        let mut m = vec![
            ("f1", pos.f1),
            ("precision", pos.precision),
            ("recall", pos.recall),
            ("accuracy", self.report.accuracy),
            ("brier", self.brier),
        ];
        for (k, v) in [
            ("roc_auc", self.roc_auc),
            ("pr_auc", self.pr_auc),
            ("recall_at_10pct", self.recall_at_10pct),
        ] {
            if let Some(v) = v {
                m.push((k, v));
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_by_hand() {
        // Bin [0.1, 0.2): two rows predicted 0.1 and 0.15, one rolled back: gap |0.125 - 0.5|.
        // Bin [0.9, 1.0]: two rows predicted 0.9 and 1.0, both rolled back: gap 0.05.
        let c = calibration(&[0.1, 0.15, 0.9, 1.0], &[true, false, true, true], 10);
        assert_eq!(c.bins.len(), 2);
        assert_eq!((c.bins[0].rows, c.bins[1].rows), (2, 2));
        assert!((c.bins[0].observed - 0.5).abs() < 1e-12);
        assert!(
            (c.ece - (0.5 * 0.375 + 0.5 * 0.05)).abs() < 1e-12,
            "{}",
            c.ece
        );
        let perfect = calibration(&[0.0, 1.0], &[false, true], 10);
        assert_eq!(perfect.ece, 0.0);
    }

    const T: bool = true;
    const F: bool = false;

    #[test]
    fn confusion_and_report_by_hand() {
        // tp 2, fn 1, fp 1, tn 4
        let actual = [T, T, T, F, F, F, F, F];
        let predicted = [T, T, F, T, F, F, F, F];
        let c = Confusion::new(&predicted, &actual);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 4,
                fn_: 1
            }
        );
        let pos = c.class(true);
        assert_eq!((pos.precision, pos.recall), (2.0 / 3.0, 2.0 / 3.0));
        assert!((pos.f1 - 2.0 / 3.0).abs() < 1e-12);
        let neg = c.class(false);
        // class 0: precision 4/5, recall 4/5
        assert_eq!((neg.precision, neg.recall, neg.support), (0.8, 0.8, 5));
        let r = Report::new(&c);
        assert_eq!(r.accuracy, 6.0 / 8.0);
        assert!((r.macro_avg.f1 - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((r.weighted_avg.recall - (5.0 * 0.8 + 3.0 * 2.0 / 3.0) / 8.0).abs() < 1e-12);
        assert_eq!(r.macro_avg.support, 8);
    }

    #[test]
    fn no_predicted_positives_give_zero_not_nan() {
        let c = Confusion::new(&[F, F], &[T, F]);
        assert_eq!(c.class(true).precision, 0.0);
        assert_eq!(c.f1(), 0.0);
    }

    #[test]
    fn auc_by_rank_sum_with_ties() {
        // Perfect, reversed, and the case linfa 0.8 gets wrong: many scores tied at 0.
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[F, F, T, T]), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &[F, F, T, T]), Some(0.0));
        // Pairs (pos, neg): pos 0.0 vs negs 0.0,0.0,0.5 → ½+½+0; pos 0.7 vs all → 3. (4)/6.
        let auc = roc_auc(&[0.0, 0.0, 0.0, 0.5, 0.7], &[T, F, F, F, T]).unwrap();
        assert!((auc - 4.0 / 6.0).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[0.0, 0.0, 0.0], &[T, F, F]), Some(0.5));
        assert_eq!(roc_auc(&[0.3, 0.4], &[T, T]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranked: T(0.9) F(0.8) T(0.7) F(0.1): recall steps ½ at precision 1, ½ at 2/3.
        let ap = average_precision(&[0.1, 0.9, 0.7, 0.8], &[F, T, T, F]).unwrap();
        assert!((ap - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12, "{ap}");
        // All tied: one threshold, precision = base rate.
        let ap = average_precision(&[0.5; 4], &[T, F, F, F]).unwrap();
        assert!((ap - 0.25).abs() < 1e-12);
    }

    #[test]
    fn recall_at_the_riskiest_share() {
        let scores = [0.9, 0.1, 0.8, 0.2, 0.3, 0.05, 0.4, 0.6, 0.7, 0.5];
        let actual = [T, T, F, F, F, F, F, F, F, T];
        // Top 10 % = 1 row (0.9, a rollback): 1 of 3.
        assert_eq!(recall_at_top(&scores, &actual, 0.1), Some(1.0 / 3.0));
        // Top 50 % = 0.9 0.8 0.7 0.6 0.5: 2 of 3.
        assert_eq!(recall_at_top(&scores, &actual, 0.5), Some(2.0 / 3.0));
    }

    #[test]
    fn brier_and_regression_scores() {
        assert_eq!(brier(&[1.0, 0.0, 0.5], &[T, F, T]), 0.25 / 3.0);
        let (r2, rmse) = r2_rmse(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
        // mean 7/3; sst = 16/9+1/9+25/9 = 42/9; sse = 1
        assert!((r2 - (1.0 - 9.0 / 42.0)).abs() < 1e-12);
        assert!((rmse - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
