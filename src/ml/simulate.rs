//! Deterministic synthetic deployment history, for `vigil risk simulate`.
//!
//! Every signal is one known *before* anyone decides to roll back: early-canary latency and
//! error rate, CPU and memory of the canary, the size of the change, the hour it ships, and
//! how many of the service's previous five deployments were rolled back. The label is drawn
//! from a noisy logistic rule over those signals — not computed by a threshold on them — so a
//! model cannot score perfectly by re-learning the rule, and errors are expected (as in life).
//!
//! The rule (z = standardised against the simulated population):
//!
//! ```text
//! logit = -3.1 + 1.6·z(log error_rate) + 0.7·z(latency_ms) + 0.35·z(cpu_pct)
//!         + 0.2·z(memory_pct) + 0.45·ln(change_size / 100) + 0.6·[hour < 7 or hour ≥ 20]
//!         + 0.35·recent_failures
//! rolled_back ~ Bernoulli(sigmoid(logit))
//! ```

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The services deployments belong to, with their typical canary p95 latency (ms).
const SERVICES: [(&str, f64); 6] = [
    ("checkout", 220.0),
    ("search", 160.0),
    ("payments", 300.0),
    ("catalog", 120.0),
    ("auth", 90.0),
    ("recommendations", 260.0),
];

/// One deployment; `rolled_back` is `None` for candidates not yet decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub deployment_id: String,
    pub service: String,
    pub timestamp: DateTime<Utc>,
    #[serde(serialize_with = "as_plain")]
    pub latency_ms: f64,
    #[serde(serialize_with = "as_plain")]
    pub error_rate: f64,
    #[serde(serialize_with = "as_plain")]
    pub cpu_pct: f64,
    #[serde(serialize_with = "as_plain")]
    pub memory_pct: f64,
    pub change_size: u32,
    pub hour: u32,
    pub recent_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--rows must be at least 10, got {0}")]
    TooFew(usize),
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("cannot create the folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl crate::state::Kind for SimulateError {
    fn kind(&self) -> crate::state::ErrorKind {
        match self {
            SimulateError::TooFew(_) => crate::state::ErrorKind::Invalid,
            SimulateError::Write { .. } | SimulateError::Folder { .. } => {
                crate::state::ErrorKind::Unavailable
            }
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The signals of one deployment of service `s`, before the label.
fn signals(rng: &mut ChaCha8Rng, s: usize) -> (f64, f64, f64, f64, u32) {
    let error_rate = (-0.5 + 0.8 * normal(rng)).exp().min(40.0);
    let latency = SERVICES[s].1 * (0.25 * normal(rng)).exp() + 20.0 * error_rate;
    let cpu = (55.0 + 15.0 * normal(rng)).clamp(5.0, 100.0);
    let memory = (60.0 + 12.0 * normal(rng)).clamp(5.0, 100.0);
    let change = (4.5 + 1.2 * normal(rng)).exp().round().clamp(1.0, 50_000.0) as u32;
    (
        round2(latency),
        round3(error_rate),
        round2(cpu),
        round2(memory),
        change,
    )
}

/// Written as people write numbers (`950`, not `950.0`); values are already rounded to at most
/// three decimals, so nothing is lost.
fn as_plain<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::state::plain(*v, 3))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The log-odds of a rollback under the documented rule. Centres and spreads are those of
/// the simulated population (fixed, so the rule does not depend on the sample).
pub fn logit(d: &Deployment) -> f64 {
    let z = |x: f64, mean: f64, sd: f64| (x - mean) / sd;
    let off_hours = if d.hour < 7 || d.hour >= 20 { 1.0 } else { 0.0 };
    -3.1 + 1.6 * z(d.error_rate.max(1e-6).ln(), -0.5, 0.8)
        + 0.7 * z(d.latency_ms, 210.0, 90.0)
        + 0.35 * z(d.cpu_pct, 55.0, 15.0)
        + 0.2 * z(d.memory_pct, 60.0, 12.0)
        + 0.45 * (f64::from(d.change_size.max(1)) / 100.0).ln()
        + 0.6 * off_hours
        + 0.35 * f64::from(d.recent_failures)
}

/// `rows` historical deployments, oldest first, the same for the same `seed`.
pub fn history(rows: usize, seed: u64) -> Vec<Deployment> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    // Spread over a year, whatever the row count.
    let step = (365.0 * 24.0 * 3600.0 / rows.max(1) as f64).max(1.0);
    let mut recent: Vec<Vec<u8>> = vec![Vec::new(); SERVICES.len()];
    (0..rows)
        .map(|i| {
            let s = rng.random_range(0..SERVICES.len());
            let jitter = rng.random_range(0.0..step);
            let timestamp = start + Duration::seconds((i as f64 * step + jitter) as i64);
            let (latency_ms, error_rate, cpu_pct, memory_pct, change_size) = signals(&mut rng, s);
            let recent_failures = recent[s].iter().map(|&r| u32::from(r)).sum();
            let mut d = Deployment {
                deployment_id: format!("d{:06}", i + 1),
                service: SERVICES[s].0.to_string(),
                hour: timestamp.format("%H").to_string().parse().unwrap_or(0),
                timestamp,
                latency_ms,
                error_rate,
                cpu_pct,
                memory_pct,
                change_size,
                recent_failures,
                rolled_back: None,
            };
            let p = 1.0 / (1.0 + (-logit(&d)).exp());
            let label = u8::from(rng.random_range(0.0..1.0) < p);
            d.rolled_back = Some(label);
            recent[s].push(label);
            if recent[s].len() > 5 {
                recent[s].remove(0);
            }
            d
        })
        .collect()
}

/// Undecided candidates after the history: one clearly risky, one clearly safe, and eight
/// drawn like the history.
pub fn candidates(seed: u64) -> Vec<Deployment> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_cafe);
    let at = Utc
        .with_ymd_and_hms(2026, 1, 5, 10, 0, 0)
        .single()
        .unwrap_or_default();
    let fixed = |id: &str, service: &str, values: (f64, f64, f64, f64, u32, u32, u32)| Deployment {
        deployment_id: id.into(),
        service: service.into(),
        timestamp: at,
        latency_ms: values.0,
        error_rate: values.1,
        cpu_pct: values.2,
        memory_pct: values.3,
        change_size: values.4,
        hour: values.5,
        recent_failures: values.6,
        rolled_back: None,
    };
    let mut out = vec![
        fixed(
            "new_risky",
            "payments",
            (950.0, 6.5, 93.0, 90.0, 2400, 2, 3),
        ),
        fixed("new_safe", "catalog", (110.0, 0.15, 32.0, 41.0, 35, 11, 0)),
    ];
    for i in 0..8 {
        let s = rng.random_range(0..SERVICES.len());
        let (latency_ms, error_rate, cpu_pct, memory_pct, change_size) = signals(&mut rng, s);
        let hour = rng.random_range(0..24);
        out.push(Deployment {
            deployment_id: format!("new_{:02}", i + 1),
            service: SERVICES[s].0.into(),
            timestamp: at + Duration::hours(i64::from(i) + 1),
            latency_ms,
            error_rate,
            cpu_pct,
            memory_pct,
            change_size,
            hour,
            recent_failures: rng.random_range(0..3),
            rolled_back: None,
        });
    }
    out
}

/// What `write` produced.
#[derive(Debug, Clone, Serialize)]
pub struct Simulated {
    pub history: String,
    pub candidates: String,
    pub rows: usize,
    pub rollback_rate: f64,
}

/// Writes `deployments.csv` (`rows` rows) and `new_deployments.csv` into `dir`.
pub fn write(dir: &Path, rows: usize, seed: u64) -> Result<Simulated, SimulateError> {
    if rows < 10 {
        return Err(SimulateError::TooFew(rows));
    }
    std::fs::create_dir_all(dir).map_err(|source| SimulateError::Folder {
        path: dir.display().to_string(),
        source,
    })?;
    let history = history(rows, seed);
    let rate = history.iter().filter(|d| d.rolled_back == Some(1)).count() as f64 / rows as f64;
    let h = dir.join("deployments.csv");
    let c = dir.join("new_deployments.csv");
    write_csv(&h, &history)?;
    write_csv(&c, &candidates(seed))?;
    Ok(Simulated {
        history: h.display().to_string(),
        candidates: c.display().to_string(),
        rows,
        rollback_rate: rate,
    })
}

fn write_csv(path: &Path, rows: &[Deployment]) -> Result<(), SimulateError> {
    let err = |source| SimulateError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    for r in rows {
        w.serialize(r).map_err(err)?;
    }
    w.flush().map_err(|e| err(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_history_and_another_seed_does_not() {
        assert_eq!(history(500, 7), history(500, 7));
        assert_ne!(history(500, 7), history(500, 8));
    }

    #[test]
    fn the_label_follows_the_signals_but_not_exactly() {
        let h = history(20_000, 1);
        let rate = |f: &dyn Fn(&Deployment) -> bool| {
            let sel: Vec<_> = h.iter().filter(|d| f(d)).collect();
            sel.iter().filter(|d| d.rolled_back == Some(1)).count() as f64 / sel.len() as f64
        };
        let all = rate(&|_| true);
        assert!((0.08..0.30).contains(&all), "base rate {all}");
        let high_errors = rate(&|d| d.error_rate > 2.0);
        let low_errors = rate(&|d| d.error_rate < 0.3);
        assert!(high_errors > 2.0 * all, "{high_errors} vs {all}");
        assert!(
            low_errors < all && low_errors > 0.0,
            "noisy, not a threshold: {low_errors}"
        );
    }

    #[test]
    fn the_candidates_include_a_clearly_risky_and_a_clearly_safe_one() {
        let c = candidates(3);
        let p = |id: &str| {
            let d = c.iter().find(|d| d.deployment_id == id).unwrap();
            1.0 / (1.0 + (-logit(d)).exp())
        };
        assert!(p("new_risky") > 0.9, "{}", p("new_risky"));
        assert!(p("new_safe") < 0.02, "{}", p("new_safe"));
        assert!(c.iter().all(|d| d.rolled_back.is_none()));
    }
}
