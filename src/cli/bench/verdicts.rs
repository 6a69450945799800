//! The verdicts' error rates, measured by simulation (`quality::simulate`): A/A DEGRADED rate
//! and power per metric, design and sample size, and hours to rollback under hourly checks —
//! the percentile bootstrap with "two DEGRADED in a row" (vigil before) beside the t-interval
//! with the sequential test (now). docs/model-rollback.md publishes the tables.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::ml::forest::{parallel_map, threads};
use crate::quality::metrics::Metric;
use crate::quality::simulate::{Case, Policy, degraded_rate, hours_to_rollback};
use crate::quality::verdict::{IntervalMethod, Rules};

const SIZES: [usize; 4] = [30, 50, 200, 1000];
const EFFECTS: [f64; 4] = [0.0, 1.0, 2.0, 4.0];
/// Labelled rows an hour, and the hours a stream is followed.
const ROWS_PER_HOUR: usize = 20;
const HOURS: usize = 168;

fn rules(method: IntervalMethod) -> Rules {
    Rules {
        interval: method,
        ..Rules::default()
    }
}

/// One line of the fixed-sample table: DEGRADED rates at 0, 1, 2 and 4 floors, before and
/// after.
#[derive(Debug, serde::Serialize)]
struct FixedRow {
    metric: &'static str,
    paired: bool,
    n: usize,
    before: [f64; 4],
    after: [f64; 4],
}

/// One line of the hourly table.
#[derive(Debug, serde::Serialize)]
struct HourlyRow {
    metric: &'static str,
    effect: f64,
    /// Share of streams rolled back within the week, median and 90th percentile hour.
    before: (f64, Option<usize>, Option<usize>),
    after: (f64, Option<usize>, Option<usize>),
}

fn summary(hours: &[Option<usize>]) -> (f64, Option<usize>, Option<usize>) {
    let mut done: Vec<usize> = hours.iter().flatten().copied().collect();
    done.sort_unstable();
    let share = done.len() as f64 / hours.len().max(1) as f64;
    // Quantiles over every stream, counting the ones never rolled back as "later than any".
    let at = |q: f64| {
        let i = ((hours.len() as f64 * q).ceil() as usize).max(1) - 1;
        done.get(i).copied()
    };
    (share, at(0.5), at(0.9))
}

/// Runs the simulation with `reps` comparisons per cell (the bootstrap, 1,000 resamples each,
/// gets a quarter of them: it is 1,000 times the work) and prints the tables. Returns the
/// after-method's worst A/A rate and the tables as JSON.
pub(super) fn verdicts(reps: usize) -> anyhow::Result<(f64, serde_json::Value)> {
    let mut cells = Vec::new();
    for metric in Metric::ALL {
        for paired in [true, false] {
            for n in SIZES {
                cells.push((metric, paired, n));
            }
        }
    }
    let fixed = parallel_map(cells.len(), threads(), &|| false, |i| {
        let (metric, paired, n) = cells[i];
        let rate = |method: IntervalMethod, effect: f64, reps: usize| {
            let case = Case {
                metric,
                paired,
                n,
                effect,
            };
            degraded_rate(&case, &rules(method), reps, 1000 + i as u64)
        };
        FixedRow {
            metric: metric.name(),
            paired,
            n,
            before: EFFECTS.map(|e| rate(IntervalMethod::Bootstrap, e, (reps / 4).max(1))),
            after: EFFECTS.map(|e| rate(IntervalMethod::T, e, reps)),
        }
    })?;
    let streams = (reps / 10).max(5);
    let hourly_cells: Vec<(Metric, f64)> = [Metric::Rmse, Metric::Accuracy]
        .into_iter()
        .flat_map(|m| [0.0, 2.0, 4.0].map(|e| (m, e)))
        .collect();
    let hourly = parallel_map(hourly_cells.len(), threads(), &|| false, |i| {
        let (metric, effect) = hourly_cells[i];
        let case = Case {
            metric,
            paired: true,
            n: ROWS_PER_HOUR,
            effect,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7 + i as u64);
        let mut run = |method, policy, streams: usize| -> Vec<Option<usize>> {
            (0..streams)
                .map(|_| hours_to_rollback(&case, &rules(method), policy, HOURS, &mut rng))
                .collect()
        };
        let before = run(
            IntervalMethod::Bootstrap,
            Policy::Consecutive(2),
            (streams / 4).max(2),
        );
        let after = run(IntervalMethod::T, Policy::Sequential, streams);
        HourlyRow {
            metric: metric.name(),
            effect,
            before: summary(&before),
            after: summary(&after),
        }
    })?;

    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    eprintln!(
        "\nDEGRADED rate by true worsening (0 = A/A; 1×, 2×, 4× the 5 % floor); before: percentile bootstrap, {} reps a cell; after: t / Welch interval, {reps} reps a cell",
        (reps / 4).max(1)
    );
    eprintln!(
        "| metric | design | n | A/A before | A/A after | 1× before | 1× after | 2× before | 2× after | 4× before | 4× after |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &fixed {
        eprintln!(
            "| {} | {} | {} | {} |",
            r.metric,
            if r.paired { "paired" } else { "unpaired" },
            r.n,
            (0..4)
                .map(|k| format!("{} | {}", pct(r.before[k]), pct(r.after[k])))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let hour = |h: Option<usize>| h.map_or_else(|| "—".to_string(), |h| h.to_string());
    eprintln!(
        "\nHourly checks on {ROWS_PER_HOUR} new labelled pairs an hour for a week ({HOURS} h): share of streams rolled back, median and 90th-percentile hour of the rollback; before: bootstrap + two DEGRADED in a row ({} streams), after: DEGRADED + the sequential test ({streams} streams)",
        (streams / 4).max(2)
    );
    eprintln!(
        "| metric | worsening | rolled back before | after | median hour before | after | 90th pct before | after |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|");
    for r in &hourly {
        eprintln!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.metric,
            if r.effect == 0.0 {
                "none (A/A)".to_string()
            } else {
                format!("{}× floor", r.effect)
            },
            pct(r.before.0),
            pct(r.after.0),
            hour(r.before.1),
            hour(r.after.1),
            hour(r.before.2),
            hour(r.after.2)
        );
    }
    let worst = fixed.iter().map(|r| r.after[0]).fold(0.0, f64::max);
    Ok((
        worst,
        serde_json::json!({ "fixed": fixed, "hourly": hourly }),
    ))
}
