//! How much worse is the candidate, and how sure are we: each metric's worsening as a mean of
//! per-row contributions, and a t-interval on it.
//!
//! Every metric the verdicts judge is, to first order, a mean over rows: MAE and accuracy
//! exactly, RMSE and R² through the delta method (a row's *influence* on the metric). The
//! worsening between two versions is then a mean of per-row terms — on the same rows, one
//! paired difference per row; on different rows, a difference of two means — and a
//! Student-t (paired) or Welch (unpaired) interval on that mean holds its level from about 30
//! rows up, where the percentile bootstrap under-covers (measured in `bench/verdicts.sh`: a
//! false DEGRADED 4–5 % of the time at 30–50 rows for a nominal 2.5 %; the table is in
//! docs/model-rollback.md). The same per-row terms feed the sequential test
//! ([`crate::quality::sequential`], through the estimate and its standard error) and the
//! sample-size guidance.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::quality::metrics::Metric;

/// A worsening estimated from per-row terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The worsening (positive = the candidate is worse), in the metric's units.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// Degrees of freedom of the t-distribution the interval uses.
    pub df: f64,
    /// Rows behind it: pairs, or the smaller version's rows.
    pub n: usize,
    /// The standard deviation of one row's contribution: what the sample-size guidance scales.
    pub sd_per_row: f64,
}

impl Estimate {
    /// The two-sided interval at `confidence`.
    pub fn interval(&self, confidence: f64) -> (f64, f64) {
        let q = t_quantile(self.df, 1.0 - (1.0 - confidence) / 2.0);
        (self.estimate - q * self.se, self.estimate + q * self.se)
    }

    /// Roughly how many rows (in all, paired; per version, unpaired) would establish a
    /// worsening of `effect` at `confidence` with 80 % power.
    pub fn rows_needed(&self, effect: f64, confidence: f64) -> Option<usize> {
        if effect.is_nan() || effect <= 0.0 || self.sd_per_row.is_nan() || self.sd_per_row <= 0.0 {
            return None;
        }
        let z = |p: f64| Normal::standard().inverse_cdf(p);
        let n = ((z(1.0 - (1.0 - confidence) / 2.0) + z(0.8)) * self.sd_per_row / effect).powi(2);
        n.is_finite().then(|| n.ceil() as usize)
    }
}

fn t_quantile(df: f64, p: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df.max(1.0)) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => Normal::standard().inverse_cdf(p),
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn variance(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64
}

/// One version's metric on its rows and each row's influence on it (the influence values'
/// mean is the metric).
fn influence(metric: Metric, rows: &[(f64, f64)]) -> Option<(f64, Vec<f64>)> {
    let value = metric.compute(rows)?;
    let n = rows.len() as f64;
    let terms = match metric {
        Metric::Mae => rows.iter().map(|(p, a)| (p - a).abs()).collect(),
        Metric::Accuracy => rows
            .iter()
            .map(|(p, a)| f64::from(u8::from(p.round() == a.round())))
            .collect(),
        Metric::Rmse => {
            let mse = value * value;
            // A perfect version has no spread to linearise around: its RMSE is 0 on every row.
            if value == 0.0 {
                vec![0.0; rows.len()]
            } else {
                rows.iter()
                    .map(|(p, a)| value + ((p - a).powi(2) - mse) / (2.0 * value))
                    .collect()
            }
        }
        Metric::R2 => {
            let am = rows.iter().map(|(_, a)| a).sum::<f64>() / n;
            let var = rows.iter().map(|(_, a)| (a - am).powi(2)).sum::<f64>() / n;
            let mse = rows.iter().map(|(p, a)| (p - a).powi(2)).sum::<f64>() / n;
            rows.iter()
                .map(|(p, a)| {
                    value - ((p - a).powi(2) - mse) / var
                        + mse / (var * var) * ((a - am).powi(2) - var)
                })
                .collect()
        }
    };
    Some((value, terms))
}

/// The worsening from `baseline` to `candidate`: on the same rows (`paired`, row `i` of both
/// is the same row) or on each version's own rows. `None` when the metric is undefined.
pub fn worsening(
    metric: Metric,
    baseline: &[(f64, f64)],
    candidate: &[(f64, f64)],
    paired: bool,
) -> Option<(f64, f64, Estimate)> {
    let (bv, mut bt) = influence(metric, baseline)?;
    let (cv, mut ct) = influence(metric, candidate)?;
    if metric == Metric::Rmse && bv + cv > 0.0 {
        // RMSE_c − RMSE_b = (MSE_c − MSE_b) / (RMSE_c + RMSE_b) exactly: with the sum as the
        // scale, the worsening is a mean of squared-error differences, and the interval is
        // the t-test on them — which holds its level at small n better than linearising each
        // RMSE around itself (A/A at 30–200 rows: 2.8–3.1 % that way, 1.9–2.6 % this way).
        let scale = bv + cv;
        let squares = |rows: &[(f64, f64)]| -> Vec<f64> {
            rows.iter().map(|(p, a)| (p - a).powi(2) / scale).collect()
        };
        bt = squares(baseline);
        ct = squares(candidate);
    }
    let estimate = metric.worsening(bv, cv);
    let sign = if metric.higher_is_better() { -1.0 } else { 1.0 };
    if paired && bt.len() == ct.len() {
        let terms: Vec<f64> = ct.iter().zip(&bt).map(|(c, b)| sign * (c - b)).collect();
        let n = terms.len() as f64;
        let sd = variance(&terms).sqrt();
        return Some((
            bv,
            cv,
            Estimate {
                estimate,
                se: sd / n.sqrt(),
                df: n - 1.0,
                n: terms.len(),
                sd_per_row: sd,
            },
        ));
    }
    let (nb, nc) = (bt.len() as f64, ct.len() as f64);
    let (vb, vc) = (variance(&bt), variance(&ct));
    let (sb, sc) = (vb / nb, vc / nc);
    let se2 = sb + sc;
    // Welch–Satterthwaite.
    let df = if se2 > 0.0 {
        se2 * se2 / (sb * sb / (nb - 1.0).max(1.0) + sc * sc / (nc - 1.0).max(1.0))
    } else {
        nb.min(nc) - 1.0
    };
    Some((
        bv,
        cv,
        Estimate {
            estimate,
            se: se2.sqrt(),
            df,
            n: bt.len().min(ct.len()),
            // Per version: the two versions' row-level spreads, pooled.
            sd_per_row: (vb + vc).sqrt(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influence_values_average_to_the_metric() {
        let rows = [(2.0, 1.0), (2.0, 3.0), (5.0, 5.5), (3.0, 3.0), (7.0, 9.0)];
        for metric in [Metric::Rmse, Metric::Mae, Metric::R2] {
            let (value, terms) = influence(metric, &rows).unwrap();
            assert!((mean(&terms) - value).abs() < 1e-12, "{metric:?}");
        }
        let classes = [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)];
        let (value, terms) = influence(Metric::Accuracy, &classes).unwrap();
        assert_eq!((value, terms), (0.5, vec![1.0, 0.0, 0.0, 1.0]));
    }

    #[test]
    fn a_paired_mae_interval_is_the_t_interval_of_the_differences() {
        // |errors|: baseline 1, 1, 1, 1; candidate 2, 1, 3, 2 → differences 1, 0, 2, 1.
        let b = [(1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0)];
        let c = [(2.0, 0.0), (1.0, 0.0), (3.0, 0.0), (2.0, 0.0)];
        let (_, _, e) = worsening(Metric::Mae, &b, &c, true).unwrap();
        assert_eq!(e.estimate, 1.0);
        assert_eq!(e.df, 3.0);
        // sd of (1, 0, 2, 1) = sqrt(2/3); se = sd / 2; t(3, 0.975) = 3.182446.
        let se = (2.0f64 / 3.0).sqrt() / 2.0;
        assert!((e.se - se).abs() < 1e-12);
        let (lo, hi) = e.interval(0.95);
        assert!((lo - (1.0 - 3.182_446 * se)).abs() < 1e-5, "{lo}");
        assert!((hi - (1.0 + 3.182_446 * se)).abs() < 1e-5, "{hi}");
    }

    #[test]
    fn better_is_a_negative_worsening_whatever_the_metric_direction() {
        let b = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0)];
        let c = [(0.0, 0.0), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0)];
        let (bv, cv, e) = worsening(Metric::Accuracy, &b, &c, true).unwrap();
        assert_eq!((bv, cv, e.estimate), (0.5, 1.0, -0.5));
        let (_, _, u) = worsening(Metric::Accuracy, &b, &c, false).unwrap();
        assert_eq!(u.estimate, -0.5);
    }

    #[test]
    fn rows_needed_shrinks_as_the_effect_grows() {
        let b: Vec<(f64, f64)> = (0..40).map(|i| (f64::from(i % 7), 0.0)).collect();
        let c: Vec<(f64, f64)> = (0..40).map(|i| (f64::from(i % 5) + 0.5, 0.0)).collect();
        let (_, _, e) = worsening(Metric::Mae, &b, &c, true).unwrap();
        let small = e.rows_needed(0.1, 0.95).unwrap();
        let large = e.rows_needed(0.4, 0.95).unwrap();
        assert!(small > large * 10, "{small} vs {large}");
        assert_eq!(e.rows_needed(-0.1, 0.95), None);
    }
}
