//! Evidence that accumulates: a test the hourly check may look at every hour.
//!
//! A fixed-sample interval is valid for *one* look. The monitoring DAG looks every hour at a
//! growing stream of labelled predictions, and "DEGRADED on any look" then happens far more
//! often than 2.5 % on two equally good versions; requiring two DEGRADED checks in a row
//! guards against that only roughly, and throws away what the earlier hours showed.
//!
//! This is a one-sided normal-mixture sequential probability ratio test (Robbins' mixture; the
//! "always-valid" test of Johari et al., 2017): with the worsening estimated as `θ̂` with
//! information `I = 1/se²`, `z = (θ̂ − μ₀)·√I` and `k = Iτ²`, the likelihood ratio of "worse than
//! `μ₀` by some amount" (a half-normal prior of scale τ over the excess) against "worse by
//! `μ₀`" is
//!
//! ```text
//! Λ = 2 · (1 + k)^(-1/2) · exp( z²k / (2(1 + k)) ) · Φ( z·√(k/(1 + k)) )
//! ```
//!
//! and by Ville's inequality the chance that it *ever* exceeds `1/α` — over every look, however
//! many — is at most `α` when the worsening is `μ₀` or less. A check rolls back when that
//! happens for `μ₀ = 0` (`ln Λ ≥ ln(1/α)`) and the estimate passes the floor. Inverted, it
//! bounds the worsening at every look at once: `lower` is the largest `μ₀` still rejected
//! (`upper` the same bound the other way). `α` is the one-sided error, `(1 − confidence)/2`
//! (2.5 % by default). The variance is estimated from the rows (as `se`), which makes the
//! guarantee asymptotic, like the t-interval's; the A/A simulation in `bench/verdicts.sh`
//! measures it.
//!
//! `τ`, the size of worsening the test is tuned for, is twice the floor: it is sharpest for
//! worsenings of one to four floors, the ones worth a rollback.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// The sequential test's state at one look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sequential {
    /// Rows so far (pairs, or the smaller version's rows).
    pub n: usize,
    pub estimate: f64,
    /// The confidence sequence at this look: valid at every look at once.
    pub lower: f64,
    pub upper: f64,
    /// `ln Λ`, the mixture likelihood ratio's logarithm…
    pub statistic: f64,
    /// …and the `ln(1/α)` it must reach (with a positive estimate) to establish a worsening.
    pub threshold: f64,
    /// The prior scale `τ` the test is tuned with, in the metric's units.
    pub tau: f64,
}

impl Sequential {
    /// The test after `n` rows, for a worsening `estimate` with standard error `se`, at
    /// one-sided error `alpha`, tuned to worsenings of size `tau`.
    pub fn at(n: usize, estimate: f64, se: f64, alpha: f64, tau: f64) -> Option<Sequential> {
        if !(se > 0.0 && tau > 0.0 && alpha > 0.0 && alpha < 1.0 && estimate.is_finite()) {
            return None;
        }
        let sqrt_info = 1.0 / se;
        let k = (tau * sqrt_info).powi(2);
        let threshold = (1.0 / alpha).ln();
        // `ln Λ` for a standardised distance `z` from the hypothesis (increasing in `z`).
        let ln_lr = |z: f64| {
            let phi = Normal::standard().cdf(z * (k / (1.0 + k)).sqrt());
            std::f64::consts::LN_2 - 0.5 * k.ln_1p()
                + z * z * k / (2.0 * (1.0 + k))
                + phi.max(f64::MIN_POSITIVE).ln()
        };
        // The distance `r` (in `z` units) at which `ln Λ` reaches the threshold: at `z = 0` it
        // is below (`ln 2 − ½ln(1+k) + ln ½ < 0`), and it grows without bound.
        let (mut lo, mut hi) = (0.0, 1.0);
        while ln_lr(hi) < threshold {
            hi *= 2.0;
        }
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if ln_lr(mid) < threshold {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let radius = hi * se;
        Some(Sequential {
            n,
            estimate,
            lower: estimate - radius,
            upper: estimate + radius,
            statistic: ln_lr(estimate * sqrt_info),
            threshold,
            tau,
        })
    }

    /// Whether the evidence so far establishes a worsening (the sequence's lower end is above
    /// zero).
    pub fn crossed(&self) -> bool {
        self.lower > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_the_threshold_and_the_lower_end_above_zero_agree() {
        for (estimate, se) in [
            (0.5, 0.1),
            (0.1, 0.1),
            (0.3, 0.1),
            (0.25, 0.09),
            (-0.5, 0.1),
        ] {
            let s = Sequential::at(100, estimate, se, 0.025, 0.2).unwrap();
            assert_eq!(
                s.crossed(),
                estimate > 0.0 && s.statistic >= s.threshold,
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_sequence_is_wider_than_one_looks_interval_and_narrows_with_rows() {
        let one_look = 1.959_964 * 0.1;
        let s = Sequential::at(100, 0.0, 0.1, 0.025, 0.2).unwrap();
        assert!(s.upper > one_look, "{s:?}");
        let later = Sequential::at(400, 0.0, 0.05, 0.025, 0.2).unwrap();
        assert!(later.upper < s.upper, "{later:?}");
        assert!(Sequential::at(10, 0.1, 0.0, 0.025, 0.2).is_none());
    }

    /// Looking after every batch of rows of two equally good versions, the chance of ever
    /// crossing stays near or below α (a Monte Carlo check of Ville's bound).
    #[test]
    fn looking_every_hour_at_nothing_rarely_crosses() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (trials, hours, per_hour) = (1000, 100, 20);
        let mut crossed = 0;
        for _ in 0..trials {
            let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0usize);
            for _ in 0..hours {
                for _ in 0..per_hour {
                    let x: f64 = StandardNormal.sample(&mut rng);
                    sum += x;
                    sum2 += x * x;
                    n += 1;
                }
                let mean = sum / n as f64;
                let sd = ((sum2 - n as f64 * mean * mean) / (n - 1) as f64).sqrt();
                let s = Sequential::at(n, mean, sd / (n as f64).sqrt(), 0.025, 0.2).unwrap();
                if s.crossed() {
                    crossed += 1;
                    break;
                }
            }
        }
        // α = 2.5 %, plus three Monte Carlo standard errors.
        assert!(crossed <= 25 + 15, "{crossed} of {trials} crossed");
    }
}
