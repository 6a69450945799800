//! Is the production model worse than the one before it? A verdict a statistician would sign.
//!
//! The seed's rule was "a metric changed by more than 5 % → degraded", which rolls back on
//! noise when there are few rows and on a meaningless relative change of a small R². Here the
//! threshold is only the floor of a change that *matters*, and a change must also be
//! *established*:
//!
//! - both versions scored the same rows → a paired comparison: a t-interval of the metric
//!   difference from per-row terms ([`crate::quality::interval`]), and for classes McNemar's
//!   exact test as well;
//! - both scored enough rows, but different ones → a Welch interval, unpaired;
//! - too few labelled predictions → INCONCLUSIVE (never DEGRADED on noise), with how many more
//!   rows the worsening seen so far would need;
//! - no predictions at all → the versions' recorded metrics (the seed's method), or NODATA.
//!
//! DEGRADED needs the interval to exclude "no worse" *and* the estimate to pass the floor; an
//! estimate past the floor that the interval cannot yet tell from noise is INCONCLUSIVE. Each
//! verdict also carries the sequential test's state ([`crate::quality::sequential`]), which
//! the hourly check's automatic rollback waits for.

use std::collections::{BTreeMap, HashMap};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::quality::interval;
use crate::quality::metrics::{Metric, looks_like_classes};
use crate::quality::sequential::Sequential;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Degraded,
    Inconclusive,
    NoData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Degraded => "DEGRADED",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::NoData => "NODATA",
        }
    }
}

/// How the verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Paired: a t-interval on per-row differences.
    PairedT,
    /// Unpaired: Welch's interval on each version's per-row terms.
    Welch,
    PairedBootstrap,
    /// Paired, classification: McNemar's exact test (with the interval).
    McNemar,
    UnpairedBootstrap,
    RecordedMetrics,
    None,
}

impl Test {
    /// How the test reads in a table or a message (`--json` keeps the snake_case name).
    pub fn describe(self) -> &'static str {
        match self {
            Test::PairedT => "paired t-interval on the same rows",
            Test::Welch => "Welch interval of each version's own rows",
            Test::PairedBootstrap => "paired bootstrap on the same rows",
            Test::McNemar => "McNemar's exact test on the same rows",
            Test::UnpairedBootstrap => "bootstrap of each version's own rows",
            Test::RecordedMetrics => "recorded metrics (no labelled predictions)",
            Test::None => "none",
        }
    }
}

/// One labelled prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub row_key: Option<String>,
    pub predicted: f64,
    pub actual: f64,
}

/// What a verdict is based on: the candidate (usually production) against the baseline
/// (usually the version before it).
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub baseline: &'a [Scored],
    pub candidate: &'a [Scored],
    pub baseline_metrics: &'a BTreeMap<String, f64>,
    pub candidate_metrics: &'a BTreeMap<String, f64>,
}

/// How the fixed-sample interval is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    /// A t-interval (paired) or Welch interval (unpaired) on per-row terms: holds its level
    /// from 30 rows up.
    #[default]
    T,
    /// The percentile bootstrap (what vigil used before; under-covers at small n). Kept so
    /// the two can be measured side by side.
    Bootstrap,
}

/// The knobs, with the defaults the docs explain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// The smallest worsening that matters, in percent (relative for RMSE/MAE, percentage
    /// points for R²/accuracy).
    pub threshold_percent: f64,
    /// Labelled rows needed for a verdict from predictions.
    pub min_samples: usize,
    /// Two-sided confidence of the interval (and 1 − significance of McNemar).
    pub confidence: f64,
    pub bootstrap_resamples: usize,
    pub seed: u64,
    /// The metric to judge; by default accuracy for classes, else RMSE.
    #[serde(default)]
    pub metric: Option<Metric>,
    #[serde(default)]
    pub interval: IntervalMethod,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            threshold_percent: 5.0,
            min_samples: 30,
            confidence: 0.95,
            bootstrap_resamples: 1000,
            seed: 42,
            metric: None,
            interval: IntervalMethod::T,
        }
    }
}

impl Rules {
    /// The one-sided error of a false DEGRADED: half of what the interval leaves out.
    pub fn alpha(&self) -> f64 {
        (1.0 - self.confidence) / 2.0
    }
}

/// A verdict with everything needed to answer "why?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub metric: Metric,
    pub test: Test,
    /// Rows the verdict rests on (pairs for paired tests).
    pub n: usize,
    pub baseline_value: Option<f64>,
    pub candidate_value: Option<f64>,
    /// How much worse the candidate is, in the metric's units (negative = better).
    pub estimate: Option<f64>,
    /// Confidence interval of `estimate`.
    pub interval: Option<(f64, f64)>,
    pub p_value: Option<f64>,
    /// The smallest worsening that counts.
    pub floor: Option<f64>,
    /// The sequential test over the same rows: the evidence so far, valid however often the
    /// check looks.
    #[serde(default)]
    pub sequential: Option<Sequential>,
    /// For an INCONCLUSIVE verdict: roughly how many more labelled rows (pairs, or per
    /// version) the worsening seen so far would need to be established (80 % power).
    #[serde(default)]
    pub more_rows_needed: Option<usize>,
    pub rules: Rules,
    pub reason: String,
}

/// Judges `e` under `rules`.
pub fn judge(e: &Evidence<'_>, rules: &Rules) -> Judgement {
    let pairs = pair(e.baseline, e.candidate);
    let all_rows: Vec<(f64, f64)> = e
        .baseline
        .iter()
        .chain(e.candidate)
        .map(|s| (s.predicted, s.actual))
        .collect();
    let metric = rules.metric.unwrap_or(if looks_like_classes(&all_rows) {
        Metric::Accuracy
    } else {
        Metric::Rmse
    });
    let base = Judgement {
        verdict: Verdict::NoData,
        metric,
        test: Test::None,
        n: 0,
        baseline_value: None,
        candidate_value: None,
        estimate: None,
        interval: None,
        p_value: None,
        floor: None,
        sequential: None,
        more_rows_needed: None,
        rules: *rules,
        reason: String::new(),
    };

    if pairs.len() >= rules.min_samples {
        let b: Vec<(f64, f64)> = pairs.iter().map(|p| (p.0, p.2)).collect();
        let c: Vec<(f64, f64)> = pairs.iter().map(|p| (p.1, p.2)).collect();
        let mut j = from_samples(base, metric, &b, &c, rules, true);
        if metric == Metric::Accuracy {
            j.test = Test::McNemar;
            j.p_value = Some(mcnemar(&pairs));
            let significant = j.p_value.is_some_and(|p| p < 1.0 - rules.confidence);
            if j.verdict == Verdict::Degraded && !significant {
                j.verdict = Verdict::Pass;
                j.reason = format!(
                    "{}; McNemar p = {:.3} is not significant",
                    j.reason,
                    j.p_value.unwrap_or(1.0)
                );
            }
        }
        return j;
    }
    let labelled = e.baseline.len().min(e.candidate.len());
    if labelled >= rules.min_samples {
        let b: Vec<(f64, f64)> = e.baseline.iter().map(|s| (s.predicted, s.actual)).collect();
        let c: Vec<(f64, f64)> = e
            .candidate
            .iter()
            .map(|s| (s.predicted, s.actual))
            .collect();
        return from_samples(base, metric, &b, &c, rules, false);
    }
    if !e.baseline.is_empty() || !e.candidate.is_empty() {
        let n = if pairs.is_empty() {
            labelled
        } else {
            pairs.len()
        };
        let (more, so_far) = match so_far(metric, e, &pairs, rules) {
            Some((needed, estimate)) => (
                Some(
                    needed
                        .saturating_sub(n)
                        .max(rules.min_samples.saturating_sub(n)),
                ),
                format!(
                    "; the {} is worse by {estimate:.4} so far, which would take about {needed} to establish",
                    metric.name()
                ),
            ),
            None => (Some(rules.min_samples.saturating_sub(n)), String::new()),
        };
        return Judgement {
            verdict: Verdict::Inconclusive,
            n,
            more_rows_needed: more,
            reason: format!(
                "only {n} labelled prediction(s) to compare (baseline {}, candidate {}, paired {}); at least {} are needed before a change can be told from noise{so_far}",
                e.baseline.len(),
                e.candidate.len(),
                pairs.len(),
                rules.min_samples
            ),
            ..base
        };
    }
    recorded(base, e, rules)
}

/// Judges two versions on their labelled predictions alone (no recorded metrics to fall back
/// on): what the simulations and tests measure.
pub fn judge_predictions(baseline: &[Scored], candidate: &[Scored], rules: &Rules) -> Judgement {
    let none = BTreeMap::new();
    judge(
        &Evidence {
            baseline,
            candidate,
            baseline_metrics: &none,
            candidate_metrics: &none,
        },
        rules,
    )
}

/// From fewer rows than a verdict needs: the rows the worsening seen so far would need, and
/// that worsening (`None` when there is none, or too few rows to say).
fn so_far(
    metric: Metric,
    e: &Evidence<'_>,
    pairs: &[(f64, f64, f64)],
    rules: &Rules,
) -> Option<(usize, f64)> {
    type Rows = Vec<(f64, f64)>;
    let (b, c, paired): (Rows, Rows, bool) = if pairs.len() >= 2 {
        (
            pairs.iter().map(|p| (p.0, p.2)).collect(),
            pairs.iter().map(|p| (p.1, p.2)).collect(),
            true,
        )
    } else {
        let rows = |s: &[Scored]| s.iter().map(|s| (s.predicted, s.actual)).collect();
        (rows(e.baseline), rows(e.candidate), false)
    };
    if b.len() < 2 || c.len() < 2 {
        return None;
    }
    let (bv, _, est) = interval::worsening(metric, &b, &c, paired)?;
    let effect = est.estimate.max(metric.floor(bv, rules.threshold_percent));
    (est.estimate > 0.0)
        .then(|| est.rows_needed(effect, rules.confidence))
        .flatten()
        .map(|n| (n, est.estimate))
}

/// `(baseline prediction, candidate prediction, actual)` for rows both versions scored.
fn pair(baseline: &[Scored], candidate: &[Scored]) -> Vec<(f64, f64, f64)> {
    let by_key: HashMap<&str, &Scored> = baseline
        .iter()
        .filter_map(|s| Some((s.row_key.as_deref()?, s)))
        .collect();
    candidate
        .iter()
        .filter_map(|c| {
            let b = by_key.get(c.row_key.as_deref()?)?;
            Some((b.predicted, c.predicted, c.actual))
        })
        .collect()
}

/// The worsening from `baseline` to `candidate` rows, its interval (by the rules' method), the
/// verdict it supports, and the sequential test's state. Paired: row `i` of both is the same
/// row.
fn from_samples(
    base: Judgement,
    metric: Metric,
    b: &[(f64, f64)],
    c: &[(f64, f64)],
    rules: &Rules,
    paired: bool,
) -> Judgement {
    let Some((bv, cv, est)) = interval::worsening(metric, b, c, paired) else {
        return Judgement {
            verdict: Verdict::Inconclusive,
            n: b.len().min(c.len()),
            reason: format!("{} is undefined on these rows", metric.name()),
            ..base
        };
    };
    let estimate = est.estimate;
    let floor = metric.floor(bv, rules.threshold_percent);
    let interval = match rules.interval {
        IntervalMethod::T => Some(est.interval(rules.confidence)),
        IntervalMethod::Bootstrap => bootstrap(metric, b, c, rules, paired),
    };
    let established = interval.is_some_and(|(lo, _)| lo > 0.0);
    let matters = estimate > floor;
    let verdict = match (established, matters) {
        (true, true) => Verdict::Degraded,
        (false, true) => Verdict::Inconclusive,
        _ => Verdict::Pass,
    };
    let more_rows_needed = (verdict == Verdict::Inconclusive)
        .then(|| est.rows_needed(estimate, rules.confidence))
        .flatten()
        .map(|needed| needed.saturating_sub(est.n).max(1));
    // Tuned to worsenings of one to four floors (see `sequential`).
    let tau = if floor > 0.0 {
        2.0 * floor
    } else {
        est.sd_per_row / 10.0
    };
    let sequential = Sequential::at(est.n, estimate, est.se, rules.alpha(), tau);
    let (lo, hi) = interval.unwrap_or((f64::NAN, f64::NAN));
    let reason = format!(
        "{} {:.4} → {:.4}: {} ({}% CI of the worsening {:.4} to {:.4}; it matters from {:.4}); {}",
        metric.name(),
        bv,
        cv,
        change_words(estimate),
        (rules.confidence * 100.0).round(),
        lo,
        hi,
        floor,
        match (established, matters, more_rows_needed) {
            (true, true, _) => "worse beyond doubt and by enough to matter".to_string(),
            (true, false, _) => "worse, but by less than the threshold".to_string(),
            (false, true, Some(more)) => format!(
                "the change could still be noise: about {more} more labelled rows would settle a worsening this size"
            ),
            (false, true, None) => "the change could still be noise".to_string(),
            (false, false, _) => "no meaningful worsening".to_string(),
        }
    );
    Judgement {
        verdict,
        test: match (paired, rules.interval) {
            (true, IntervalMethod::T) => Test::PairedT,
            (true, IntervalMethod::Bootstrap) => Test::PairedBootstrap,
            (false, IntervalMethod::T) => Test::Welch,
            (false, IntervalMethod::Bootstrap) => Test::UnpairedBootstrap,
        },
        n: est.n,
        baseline_value: Some(bv),
        candidate_value: Some(cv),
        estimate: Some(estimate),
        interval,
        floor: Some(floor),
        sequential,
        more_rows_needed,
        reason,
        ..base
    }
}

/// The percentile bootstrap interval of the worsening (fixed seed, so it can be recomputed).
/// Paired: the same resampled indices for both.
fn bootstrap(
    metric: Metric,
    b: &[(f64, f64)],
    c: &[(f64, f64)],
    rules: &Rules,
    paired: bool,
) -> Option<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(rules.seed);
    let mut diffs = Vec::with_capacity(rules.bootstrap_resamples);
    let mut rb = Vec::with_capacity(b.len());
    let mut rc = Vec::with_capacity(c.len());
    for _ in 0..rules.bootstrap_resamples {
        rb.clear();
        rc.clear();
        if paired {
            for _ in 0..b.len() {
                let i = rng.random_range(0..b.len());
                rb.push(b[i]);
                rc.push(c[i]);
            }
        } else {
            for _ in 0..b.len() {
                rb.push(b[rng.random_range(0..b.len())]);
            }
            for _ in 0..c.len() {
                rc.push(c[rng.random_range(0..c.len())]);
            }
        }
        if let (Some(x), Some(y)) = (metric.compute(&rb), metric.compute(&rc)) {
            diffs.push(metric.worsening(x, y));
        }
    }
    diffs.sort_by(f64::total_cmp);
    let tail = (1.0 - rules.confidence) / 2.0;
    (!diffs.is_empty()).then(|| {
        let at = |q: f64| diffs[((diffs.len() - 1) as f64 * q).round() as usize];
        (at(tail), at(1.0 - tail))
    })
}

/// No predictions: compare the metrics each version recorded (e.g. at training time).
fn recorded(base: Judgement, e: &Evidence<'_>, rules: &Rules) -> Judgement {
    let both = |m: Metric| {
        Some((
            *e.baseline_metrics.get(m.name())?,
            *e.candidate_metrics.get(m.name())?,
        ))
    };
    for metric in [Metric::Rmse, Metric::R2, Metric::Accuracy, Metric::Mae] {
        if let Some((bv, cv)) = both(metric) {
            let estimate = metric.worsening(bv, cv);
            let floor = metric.floor(bv, rules.threshold_percent);
            let verdict = if estimate > floor {
                Verdict::Degraded
            } else {
                Verdict::Pass
            };
            return Judgement {
                verdict,
                metric,
                test: Test::RecordedMetrics,
                baseline_value: Some(bv),
                candidate_value: Some(cv),
                estimate: Some(estimate),
                floor: Some(floor),
                reason: format!(
                    "recorded {} {bv:.4} → {cv:.4}: {}, it matters from {floor:.4} (no predictions to test with)",
                    metric.name(),
                    change_words(estimate)
                ),
                ..base
            };
        }
    }
    Judgement {
        verdict: Verdict::NoData,
        reason: "no labelled predictions and no metric recorded by both versions".into(),
        ..base
    }
}

/// McNemar's exact two-sided p-value for paired classifications: of the rows where exactly
/// one version is right, is the split further from even than chance allows?
fn mcnemar(pairs: &[(f64, f64, f64)]) -> f64 {
    let (mut b, mut c) = (0u64, 0u64);
    for &(bp, cp, a) in pairs {
        let (br, cr) = (bp.round() == a.round(), cp.round() == a.round());
        match (br, cr) {
            (true, false) => b += 1,
            (false, true) => c += 1,
            _ => {}
        }
    }
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // 2 * P(X <= k) for X ~ Binomial(n, 1/2), summed in log space.
    let ln_choose = |n: u64, k: u64| {
        libm::lgamma(n as f64 + 1.0)
            - libm::lgamma(k as f64 + 1.0)
            - libm::lgamma((n - k) as f64 + 1.0)
    };
    let tail: f64 = (0..=k)
        .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum();
    (2.0 * tail).min(1.0)
}

/// A signed worsening in words: "worse by 0.0100" or "better by 0.1974", never "worse by
/// -0.1974".
fn change_words(worsening: f64) -> String {
    if worsening < 0.0 {
        format!("better by {:.4}", -worsening)
    } else {
        format!("worse by {worsening:.4}")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_change_reads_as_better_or_worse_never_as_a_negative_worsening() {
        assert_eq!(change_words(-0.19741), "better by 0.1974");
        assert_eq!(change_words(0.01), "worse by 0.0100");
        assert_eq!(change_words(0.0), "worse by 0.0000");
    }

    use super::*;

    fn rows(values: &[(f64, f64)]) -> Vec<Scored> {
        values
            .iter()
            .enumerate()
            .map(|(i, &(p, a))| Scored {
                row_key: Some(i.to_string()),
                predicted: p,
                actual: a,
            })
            .collect()
    }

    fn judge_default(
        baseline: &[Scored],
        candidate: &[Scored],
        baseline_metrics: &BTreeMap<String, f64>,
        candidate_metrics: &BTreeMap<String, f64>,
    ) -> Judgement {
        judge(
            &Evidence {
                baseline,
                candidate,
                baseline_metrics,
                candidate_metrics,
            },
            &Rules::default(),
        )
    }

    fn no_metrics() -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// Regression rows with noise of scale `noise` around `truth`, seeded.
    fn noisy(seed: u64, n: usize, noise: f64) -> Vec<Scored> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let actual = 10.0 + (i % 17) as f64;
                let err: f64 = (rng.random_range(0.0..1.0) - 0.5) * 2.0 * noise;
                Scored {
                    row_key: Some(i.to_string()),
                    predicted: actual + err,
                    actual,
                }
            })
            .collect()
    }

    #[test]
    fn too_few_rows_is_inconclusive_never_degraded() {
        let b = rows(&[(1.0, 1.0), (2.0, 2.0)]);
        let c = rows(&[(9.0, 1.0), (9.0, 2.0)]); // terrible, but two rows prove nothing
        let m = no_metrics();
        let j = judge_default(&b, &c, &m, &m);
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert_eq!(j.n, 2);
        assert!(j.reason.contains("at least 30"), "{}", j.reason);
    }

    #[test]
    fn a_clear_degradation_is_degraded_with_its_evidence() {
        let b = noisy(1, 200, 1.0);
        let mut c = noisy(2, 200, 3.0); // three times the error on the same rows
        for (i, s) in c.iter_mut().enumerate() {
            s.row_key = Some(i.to_string());
        }
        let m = no_metrics();
        let j = judge_default(&b, &c, &m, &m);
        assert_eq!(j.verdict, Verdict::Degraded, "{}", j.reason);
        assert_eq!((j.metric, j.test, j.n), (Metric::Rmse, Test::PairedT, 200));
        let s = j.sequential.unwrap();
        assert!(s.crossed() && s.statistic > s.threshold, "{s:?}");
        let (lo, hi) = j.interval.unwrap();
        assert!(lo > 0.0 && lo <= j.estimate.unwrap() && j.estimate.unwrap() <= hi);
        // Deterministic: the same evidence gives the same interval.
        let again = judge_default(&b, &c, &m, &m);
        assert_eq!(again.interval, j.interval);
    }

    #[test]
    fn an_a_a_comparison_is_rarely_degraded() {
        // Two versions of the same quality on the same rows: a false alarm may happen at most
        // at the interval's tail rate (2.5 %), and the floor makes it rarer still.
        let rules = Rules::default();
        let trials = 200;
        let mut degraded = 0;
        for seed in 0..trials {
            let b = noisy(seed * 2, 100, 2.0);
            let c = noisy(seed * 2 + 1, 100, 2.0);
            let j = judge_predictions(&b, &c, &Rules { seed, ..rules });
            degraded += u32::from(j.verdict == Verdict::Degraded);
        }
        assert!(degraded <= 5, "A/A DEGRADED {degraded} of {trials}");
    }

    /// Paired rows whose absolute errors are 1 for the baseline and 1.2 ± 1 (alternately) for
    /// the candidate: MAE worse by 0.2 (the floor is 0.05), per-row spread 1.
    fn mae_pairs(n: usize) -> (Vec<Scored>, Vec<Scored>) {
        let row = |i: usize, err: f64| Scored {
            row_key: Some(i.to_string()),
            predicted: 10.0 + err,
            actual: 10.0,
        };
        (
            (0..n).map(|i| row(i, 1.0)).collect(),
            (0..n)
                .map(|i| row(i, if i % 2 == 0 { 2.2 } else { 0.2 }))
                .collect(),
        )
    }

    #[test]
    fn a_worsening_past_the_floor_but_not_established_is_inconclusive_with_guidance() {
        let rules = Rules {
            metric: Some(Metric::Mae),
            ..Rules::default()
        };
        let judge_n = |n: usize| {
            let (b, c) = mae_pairs(n);
            judge_predictions(&b, &c, &rules)
        };
        let j = judge_n(40);
        assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.reason);
        // ((1.96 + 0.84) · 1.0 / 0.2)² ≈ 197 pairs in all (sd 1.0127 with n − 1): 157 more.
        let more = j.more_rows_needed.unwrap();
        assert!((150..=165).contains(&more), "{more}");
        assert!(
            j.reason.contains(&format!("about {more} more")),
            "{}",
            j.reason
        );
        // The guidance is for 80 % power; with four times that many rows of the same kind the
        // worsening is established.
        let j = judge_n(4 * (40 + more));
        assert_eq!(j.verdict, Verdict::Degraded, "{}", j.reason);
        // Below min_samples the guidance still comes from the rows so far.
        let j = judge_n(10);
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert!(j.more_rows_needed.unwrap() > 150, "{j:?}");
    }

    #[test]
    fn the_metric_can_be_chosen() {
        // Actual values 10..26 (variance 24); errors uniform on ±3 and ±6: RMSE and MAE double,
        // R² falls from about 0.88 to 0.5.
        let b = noisy(5, 300, 3.0);
        let c = noisy(6, 300, 6.0);
        for metric in Metric::ALL {
            let j = judge_predictions(
                &b,
                &c,
                &Rules {
                    metric: Some(metric),
                    ..Rules::default()
                },
            );
            assert_eq!(j.metric, metric);
            if metric != Metric::Accuracy {
                assert_eq!(j.verdict, Verdict::Degraded, "{metric:?}: {}", j.reason);
            }
        }
    }

    #[test]
    fn a_worsening_below_the_threshold_passes() {
        let b = noisy(7, 400, 1.0);
        let c: Vec<Scored> = b
            .iter()
            .map(|s| Scored {
                predicted: s.predicted + 0.05 * (s.predicted - s.actual).signum() * 0.1,
                ..s.clone()
            })
            .collect();
        let m = no_metrics();
        let j = judge_default(&b, &c, &m, &m);
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
        assert!(j.estimate.unwrap() > 0.0 && j.estimate.unwrap() < j.floor.unwrap());
    }

    #[test]
    fn classifications_use_accuracy_and_mcnemar() {
        // 100 rows; the baseline is right on 90, the candidate on 70 of them.
        let b: Vec<(f64, f64)> = (0..100)
            .map(|i| (if i < 90 { 1.0 } else { 0.0 }, 1.0))
            .collect();
        let c: Vec<(f64, f64)> = (0..100)
            .map(|i| (if i < 70 { 1.0 } else { 0.0 }, 1.0))
            .collect();
        let m = no_metrics();
        let (b, c) = (rows(&b), rows(&c));
        let j = judge_default(&b, &c, &m, &m);
        assert_eq!(
            (j.metric, j.test, j.verdict),
            (Metric::Accuracy, Test::McNemar, Verdict::Degraded)
        );
        assert!((j.estimate.unwrap() - 0.2).abs() < 1e-12);
        // 20 discordant rows, all one way: p = 2 / 2^20.
        assert!((j.p_value.unwrap() - 2.0 / 1_048_576.0).abs() < 1e-12);
    }

    #[test]
    fn mcnemar_on_a_hand_computed_case() {
        // b = 3 (baseline right only), c = 1: p = 2 * (C(4,0) + C(4,1)) / 16 = 0.625.
        let pairs = [
            (1.0, 0.0, 1.0),
            (1.0, 0.0, 1.0),
            (1.0, 0.0, 1.0),
            (0.0, 1.0, 1.0),
            (1.0, 1.0, 1.0),
        ];
        assert!((mcnemar(&pairs) - 0.625).abs() < 1e-12);
        assert_eq!(mcnemar(&[(1.0, 1.0, 1.0)]), 1.0);
    }

    #[test]
    fn without_predictions_recorded_metrics_decide_and_r2_uses_an_absolute_floor() {
        let none: Vec<Scored> = vec![];
        let bm = BTreeMap::from([("r2".to_string(), 0.040)]);
        let cm = BTreeMap::from([("r2".to_string(), 0.030)]);
        // R² fell by 25 % relative, but only 0.01 absolute: not a 5-point drop.
        let j = judge_default(&none, &none, &bm, &cm);
        assert_eq!(
            (j.verdict, j.test, j.metric),
            (Verdict::Pass, Test::RecordedMetrics, Metric::R2)
        );
        let bm = BTreeMap::from([("rmse".to_string(), 3.0)]);
        let cm = BTreeMap::from([("rmse".to_string(), 3.3)]);
        let j = judge_default(&none, &none, &bm, &cm);
        assert_eq!(j.verdict, Verdict::Degraded, "{}", j.reason);
        let empty = BTreeMap::new();
        let j = judge_default(&none, &none, &empty, &cm);
        assert_eq!(j.verdict, Verdict::NoData);
    }
}
