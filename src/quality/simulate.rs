//! Synthetic model pairs with a known worsening, for measuring the verdicts: how often two
//! equally good versions are called DEGRADED (A/A), how often a real worsening is caught
//! (power), and how many hourly checks it takes. `vigil bench --scenario verdicts` prints the
//! tables (docs/model-rollback.md publishes them); the tests assert on the same simulation.
//!
//! Regression: actual values `y ~ N(0, 1)`, the baseline's errors `N(0, 0.5²)` (R² 0.75), the
//! candidate's errors correlated 0.5 with the baseline's on shared rows and scaled so that its
//! worsening is `effect` floors of the metric judged (5 % of RMSE or MAE, 5 points of R²).
//! Classification: balanced 0/1 labels, the baseline right 85 % of the time, the candidate
//! `effect` × 5 points less, its mistakes correlated with the baseline's.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::quality::metrics::Metric;
use crate::quality::verdict::{Rules, Scored, Verdict, judge_predictions};

/// The floor the simulation's effects are measured in, in percent (the default threshold).
pub const THRESHOLD_PERCENT: f64 = 5.0;
const BASE_ERROR_SD: f64 = 0.5;
const BASE_ACCURACY: f64 = 0.85;
const CORRELATION: f64 = 0.5;

/// One simulated comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    pub metric: Metric,
    /// Both versions scored the same rows.
    pub paired: bool,
    /// Labelled rows (per version).
    pub n: usize,
    /// The candidate's true worsening, in floors (0 = equally good).
    pub effect: f64,
}

/// The candidate's error spread for a regression worsening of `effect` floors.
fn candidate_error_sd(metric: Metric, effect: f64) -> f64 {
    let floor = THRESHOLD_PERCENT / 100.0;
    match metric {
        // RMSE and MAE both scale with the error's spread.
        Metric::Rmse | Metric::Mae => BASE_ERROR_SD * (1.0 + effect * floor),
        // R² = 1 − σ² (var y = 1): `effect` floors lower means σ² larger by that much.
        Metric::R2 | Metric::Accuracy => (BASE_ERROR_SD.powi(2) + effect * floor).sqrt(),
    }
}

/// Rows of one case: `(baseline, candidate)`, with row keys shared when paired. `start` numbers
/// the rows, so an hourly stream can be drawn in batches.
pub fn draw(case: &Case, rng: &mut ChaCha8Rng, start: usize) -> (Vec<Scored>, Vec<Scored>) {
    let mut normal = || -> f64 { StandardNormal.sample(rng) };
    let (mut b, mut c) = (Vec::with_capacity(case.n), Vec::with_capacity(case.n));
    let key = |i: usize, who: &str| Some(format!("{who}{i}"));
    for i in start..start + case.n {
        if case.metric == Metric::Accuracy {
            let p_c = BASE_ACCURACY - case.effect * THRESHOLD_PERCENT / 100.0;
            let y = f64::from(u8::from(normal() > 0.0));
            let u_b = 0.5 + 0.5 * libm::erf(normal() / std::f64::consts::SQRT_2);
            let fresh = 0.5 + 0.5 * libm::erf(normal() / std::f64::consts::SQRT_2);
            let u_c = if case.paired && normal() < 0.0 {
                u_b
            } else {
                fresh
            };
            let class = |right: bool| if right { y } else { 1.0 - y };
            b.push(Scored {
                row_key: key(i, if case.paired { "r" } else { "b" }),
                predicted: class(u_b < BASE_ACCURACY),
                actual: y,
            });
            if case.paired {
                c.push(Scored {
                    row_key: key(i, "r"),
                    predicted: class(u_c < p_c),
                    actual: y,
                });
            } else {
                let y2 = f64::from(u8::from(normal() > 0.0));
                c.push(Scored {
                    row_key: key(i, "c"),
                    predicted: if u_c < p_c { y2 } else { 1.0 - y2 },
                    actual: y2,
                });
            }
            continue;
        }
        let sd_c = candidate_error_sd(case.metric, case.effect);
        let y = normal();
        let z_b = normal();
        b.push(Scored {
            row_key: key(i, if case.paired { "r" } else { "b" }),
            predicted: y + BASE_ERROR_SD * z_b,
            actual: y,
        });
        if case.paired {
            let z_c = CORRELATION * z_b + (1.0 - CORRELATION * CORRELATION).sqrt() * normal();
            c.push(Scored {
                row_key: key(i, "r"),
                predicted: y + sd_c * z_c,
                actual: y,
            });
        } else {
            let y2 = normal();
            c.push(Scored {
                row_key: key(i, "c"),
                predicted: y2 + sd_c * normal(),
                actual: y2,
            });
        }
    }
    (b, c)
}

/// The share of `reps` simulated comparisons judged DEGRADED under `rules` (its metric set to
/// the case's).
pub fn degraded_rate(case: &Case, rules: &Rules, reps: usize, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rules = Rules {
        metric: Some(case.metric),
        threshold_percent: THRESHOLD_PERCENT,
        ..*rules
    };
    let degraded = (0..reps)
        .filter(|&r| {
            let (b, c) = draw(case, &mut rng, 0);
            let j = judge_predictions(
                &b,
                &c,
                &Rules {
                    seed: r as u64,
                    ..rules
                },
            );
            j.verdict == Verdict::Degraded
        })
        .count();
    degraded as f64 / reps.max(1) as f64
}

/// How an hourly check decides to roll back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Two DEGRADED checks in a row (vigil before the sequential test).
    Consecutive(usize),
    /// A DEGRADED check whose sequential test has crossed.
    Sequential,
}

/// Hourly checks over a stream of `case.n` labelled rows an hour since the production change:
/// the hour of the first rollback, or `None` within `hours`.
pub fn hours_to_rollback(
    case: &Case,
    rules: &Rules,
    policy: Policy,
    hours: usize,
    rng: &mut ChaCha8Rng,
) -> Option<usize> {
    let rules = Rules {
        metric: Some(case.metric),
        threshold_percent: THRESHOLD_PERCENT,
        seed: rng.random(),
        ..*rules
    };
    let (mut b, mut c) = (Vec::new(), Vec::new());
    let mut in_a_row = 0;
    for hour in 1..=hours {
        let (nb, nc) = draw(case, rng, b.len());
        b.extend(nb);
        c.extend(nc);
        let j = judge_predictions(&b, &c, &rules);
        let degraded = j.verdict == Verdict::Degraded;
        in_a_row = if degraded { in_a_row + 1 } else { 0 };
        let roll = match policy {
            Policy::Consecutive(k) => in_a_row >= k,
            Policy::Sequential => degraded && j.sequential.is_some_and(|s| s.crossed()),
        };
        if roll {
            return Some(hour);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_worsening_is_the_one_asked_for() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for metric in Metric::ALL {
            let case = Case {
                metric,
                paired: true,
                n: 200_000,
                effect: 2.0,
            };
            let (b, c) = draw(&case, &mut rng, 0);
            let rows = |s: &[Scored]| -> Vec<(f64, f64)> {
                s.iter().map(|s| (s.predicted, s.actual)).collect()
            };
            let (bv, cv) = (
                metric.compute(&rows(&b)).unwrap(),
                metric.compute(&rows(&c)).unwrap(),
            );
            let floors = metric.worsening(bv, cv) / metric.floor(bv, THRESHOLD_PERCENT);
            assert!((floors - 2.0).abs() < 0.15, "{metric:?}: {floors} floors");
        }
    }
}
