//! `vigil bench`: measures the engine as it runs in production — real SQLite file, every
//! transition persisted, `synchronous=NORMAL` (the default).
//!
//! Each scenario runs in a child process (`vigil bench --scenario X`), so the peak memory
//! reported is that scenario's alone. Timings are wall-clock on whatever machine runs it; no
//! test asserts on them.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{SubsecRound, Utc};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

mod daemon;
mod engine;
mod ml;
mod verdicts;

use daemon::*;
use engine::*;
use ml::*;
use verdicts::*;

use crate::cli::Ctx;
use crate::cli::output::{print_json, table};
use crate::dag::{DagSet, parse_dag};
use crate::run::{Executor, Limits, plan_run};
use crate::state::RunState;
use crate::store::{RunType, Synchronous};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Small sizes: checks that every scenario works, in seconds
    #[arg(long)]
    quick: bool,
    /// Run only this scenario, in this process, and print its result as JSON
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// The scenario's size (what it means is in each scenario's description) instead of its
    /// default; with --scenario
    #[arg(long, requires = "scenario")]
    size: Option<usize>,
    /// Durability of the benchmark database
    #[arg(long, value_enum, default_value_t = SyncArg::Normal)]
    synchronous: SyncArg,
    /// Daemons sharing the work in the `throughput` scenario (more than one needs
    /// `--database postgres://...`)
    #[arg(long, default_value_t = 1)]
    daemons: usize,
    /// Also write every scenario's result as JSON to this file (the table still prints)
    #[arg(long, value_name = "FILE", conflicts_with = "scenario")]
    save: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// A chain of noop tasks: per-task overhead of the executor and store
    Chain,
    /// One task, a fan-out of noop tasks, and a join (size = all the tasks)
    Fanout,
    /// `vigil dags test` of a 3-task DAG as a process, start to exit
    Process,
    /// Loading and validating many generated DAG files
    Load,
    /// A daemon running: time from a trigger to its first task starting
    Trigger,
    /// A daemon with 100 DAGs loaded: its resident memory
    #[value(name = "daemon_memory")]
    DaemonMemory,
    /// A daemon with an every-second cron: how late runs start (5 minutes; not in the
    /// default set, run it with --scenario lateness)
    Lateness,
    /// 200 DAGs on every-second schedules under a daemon with default settings, for two
    /// minutes (size = seconds; not in the default set, run it with --scenario soak): every
    /// tick must become a finished run, and memory must stay flat
    Soak,
    /// `vigil risk train`'s search on simulated history: trees {50,100,200} × depth
    /// {none,5,10}, 5 folds (size = rows)
    #[value(name = "risk_search")]
    RiskSearch,
    /// Scoring rows with the forest `risk train` picks on 2,000 deployments (size = rows
    /// scored)
    #[value(name = "risk_score")]
    RiskScore,
    /// The artifact of a full-depth 100-tree forest trained on simulated history: its size
    /// and the time to load it (read, checksum, decode, check), binary and the former JSON
    /// (size = rows)
    #[value(name = "risk_artifact")]
    RiskArtifact,
    /// The degradation verdicts by simulation: A/A false-DEGRADED rate and power per metric,
    /// design and sample size, and hours to rollback under hourly checks, before and after
    /// the t-interval and sequential test (size = comparisons per cell; tables on stderr)
    Verdicts,
    /// The web page with 10,000 finished runs of 100 DAGs in the database: each page's load
    /// (HTML, script and style, then its API calls), median and slowest (size = runs)
    Web,
    /// `--daemons N` daemons executing 100 runs of 100 noop tasks: task instances per second
    /// (not in the default set; size = tasks)
    Throughput,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncArg {
    Normal,
    Full,
}

impl Scenario {
    /// What `vigil bench` runs by default.
    const DEFAULT: [Scenario; 11] = [
        Scenario::Chain,
        Scenario::Fanout,
        Scenario::Process,
        Scenario::Load,
        Scenario::Trigger,
        Scenario::DaemonMemory,
        Scenario::Web,
        Scenario::RiskSearch,
        Scenario::RiskScore,
        Scenario::RiskArtifact,
        Scenario::Verdicts,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Chain => "chain",
            Scenario::Fanout => "fanout",
            Scenario::Process => "process",
            Scenario::Load => "load",
            Scenario::Trigger => "trigger",
            Scenario::DaemonMemory => "daemon_memory",
            Scenario::Lateness => "lateness",
            Scenario::Soak => "soak",
            Scenario::RiskSearch => "risk_search",
            Scenario::RiskScore => "risk_score",
            Scenario::RiskArtifact => "risk_artifact",
            Scenario::Verdicts => "verdicts",
            Scenario::Throughput => "throughput",
            Scenario::Web => "web",
        }
    }

    fn size(self, quick: bool) -> usize {
        match (self, quick) {
            (Scenario::Chain, false) => 1_000,
            (Scenario::Chain, true) => 50,
            (Scenario::Fanout, false) => 10_000,
            (Scenario::Fanout, true) => 200,
            (Scenario::Process, false) => 20,
            (Scenario::Process, true) => 2,
            (Scenario::Load, false) => 1_000,
            (Scenario::Load, true) => 20,
            (Scenario::Trigger, false) => 100,
            (Scenario::Trigger, true) => 5,
            (Scenario::DaemonMemory, false) => 100,
            (Scenario::DaemonMemory, true) => 10,
            // Seconds the every-second cron runs.
            (Scenario::Lateness, false) => 300,
            (Scenario::Lateness, true) => 5,
            // Seconds the 200 every-second DAGs run.
            (Scenario::Soak, false) => 120,
            (Scenario::Soak, true) => 5,
            (Scenario::RiskSearch, false) => 2_000,
            (Scenario::RiskSearch, true) => 300,
            (Scenario::RiskScore, false) => 1_000_000,
            (Scenario::RiskScore, true) => 10_000,
            (Scenario::RiskArtifact, false) => 200_000,
            (Scenario::RiskArtifact, true) => 500,
            (Scenario::Verdicts, false) => 2_000,
            (Scenario::Verdicts, true) => 40,
            (Scenario::Web, false) => 10_000,
            (Scenario::Web, true) => 200,
            (Scenario::Throughput, false) => 10_000,
            (Scenario::Throughput, true) => 400,
        }
    }
}

/// One scenario's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    pub scenario: Scenario,
    /// Tasks (chain, fanout), process starts (process) or files (load).
    pub size: usize,
    /// Wall time of the whole scenario; for the repeated ones (`process`, `load`,
    /// `trigger`, `lateness`), the median repetition; for `daemon_memory`, the time to start.
    pub total_ms: f64,
    /// Slowest repetition; for `risk_artifact`, the JSON artifact's load time.
    pub max_ms: Option<f64>,
    /// Wall time divided by the number of tasks.
    pub per_task_us: Option<f64>,
    pub peak_rss_mib: f64,
    pub target: String,
    pub met: bool,
    /// A scenario's own tables (`verdicts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

pub async fn run(ctx: &Ctx, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let sync = match args.synchronous {
        SyncArg::Normal => Synchronous::Normal,
        SyncArg::Full => Synchronous::Full,
    };
    if args.daemons > 1 && !crate::store::is_postgres(&ctx.config.database.url) {
        bail!(
            "--daemons {} needs a shared database: --database postgres://...",
            args.daemons
        );
    }
    if let Some(scenario) = args.scenario {
        let result = run_scenario(ctx, scenario, args.quick, args.size, sync, args.daemons).await?;
        print_json(&result)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cfg!(debug_assertions) {
        // The README's commands share one debug build; numbers need the optimized one.
        eprintln!(
            "warning: this is a debug build, so these timings say little about vigil; \
             measure with `cargo run --release -- bench`"
        );
    }
    let exe = std::env::current_exe().context("finding the vigil executable")?;
    let mut results = Vec::new();
    for scenario in Scenario::DEFAULT {
        if !ctx.json {
            eprintln!("running {} ...", scenario.name());
        }
        let mut cmd = std::process::Command::new(&exe);
        if let Some(url) = bench_database(ctx) {
            cmd.args(["--database", url]);
        }
        cmd.args(["bench", "--scenario", scenario.name()])
            .args([
                "--synchronous",
                match sync {
                    Synchronous::Normal => "normal",
                    Synchronous::Full => "full",
                },
            ])
            .stderr(Stdio::inherit());
        if args.quick {
            cmd.arg("--quick");
        }
        let out = cmd.output().context("running a benchmark scenario")?;
        if !out.status.success() {
            bail!("benchmark scenario {} failed", scenario.name());
        }
        let result: BenchResult = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("reading the result of scenario {}", scenario.name()))?;
        results.push(result);
    }
    if let Some(path) = &args.save {
        let text = serde_json::to_string_pretty(&results).context("writing the results")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if ctx.json {
        print_json(&results)?;
    } else {
        let rows = results
            .iter()
            .map(|r| {
                vec![
                    r.scenario.name().to_string(),
                    r.size.to_string(),
                    format!("{:.1} ms", r.total_ms),
                    r.max_ms
                        .map(|m| format!("{m:.1} ms"))
                        .unwrap_or_else(|| "-".into()),
                    r.per_task_us
                        .map(|u| format!("{u:.1} µs"))
                        .unwrap_or_else(|| "-".into()),
                    format!("{:.1} MiB", r.peak_rss_mib),
                    r.target.clone(),
                    if r.met { "yes" } else { "NO" }.to_string(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &[
                    "SCENARIO", "SIZE", "TIME", "MAX", "PER TASK", "PEAK RSS", "TARGET", "MET"
                ],
                rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "vigil-bench-{name}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL database the benchmarks run on when `--database` names one; otherwise each
/// scenario makes a SQLite file of its own (never the configured one).
pub(super) fn bench_database(ctx: &Ctx) -> Option<&str> {
    crate::store::is_postgres(&ctx.config.database.url).then_some(ctx.config.database.url.as_str())
}

async fn run_scenario(
    ctx: &Ctx,
    scenario: Scenario,
    quick: bool,
    size: Option<usize>,
    sync: Synchronous,
    daemons: usize,
) -> anyhow::Result<BenchResult> {
    let n = size.unwrap_or_else(|| scenario.size(quick)).max(1);
    let scratch = Scratch::new(scenario.name())?;
    let dir = &scratch.0;
    // (median or total time, slowest repetition, tasks it covered)
    let mut peak = None;
    let mut soak_met = false;
    let mut detail = None;
    let mut worst_a_a = 0.0;
    let (total, max, tasks) = match scenario {
        Scenario::Chain => (
            run_generated(ctx, dir, &chain_dag(n), n, sync).await?,
            None,
            Some(n),
        ),
        // Size counts every task (root, fan-out, join): the default 10,000 is the most a DAG
        // may have (`[limits] tasks_per_dag`).
        Scenario::Fanout => (
            run_generated(
                ctx,
                dir,
                &fanout_dag(n.saturating_sub(2).max(1)),
                n.max(3),
                sync,
            )
            .await?,
            None,
            Some(n.max(3)),
        ),
        Scenario::Process => {
            let (median, max) = process_starts(dir, n, sync)?;
            (median, Some(max), None)
        }
        Scenario::Load => {
            let (median, max) = load_files(ctx, dir, n)?;
            (median, Some(max), None)
        }
        Scenario::Trigger => {
            let (median, max, rss) = trigger_latency(dir, n, bench_database(ctx)).await?;
            peak = Some(rss);
            (median, Some(max), None)
        }
        Scenario::DaemonMemory => {
            let (started, rss) = daemon_memory(dir, n).await?;
            peak = Some(rss);
            (started, None, None)
        }
        Scenario::Lateness => {
            let (median, max, rss) = cron_lateness(dir, n).await?;
            peak = Some(rss);
            (median, Some(max), None)
        }
        Scenario::Soak => {
            let soak = soak(dir, n, if quick { 20 } else { 200 }).await?;
            eprintln!("{}", soak.summary());
            peak = Some(soak.rss_end_mib);
            soak_met = soak.met();
            (soak.p50, Some(soak.max), None)
        }
        Scenario::RiskSearch => (risk_search(dir, n)?, None, None),
        Scenario::RiskScore => (risk_score(dir, n)?, None, None),
        Scenario::RiskArtifact => {
            let (load, json_load) = risk_artifact(dir, n)?;
            (load, Some(json_load), None)
        }
        Scenario::Verdicts => {
            let start = Instant::now();
            let (worst, tables) = verdicts(n)?;
            worst_a_a = worst;
            detail = Some(tables);
            (start.elapsed(), None, None)
        }
        Scenario::Web => {
            let (median, max, rss) = web_pages(dir, n).await?;
            peak = Some(rss);
            (median, Some(max), None)
        }
        Scenario::Throughput => (
            throughput(dir, n, daemons, bench_database(ctx)).await?,
            None,
            Some(n),
        ),
    };
    let per_task_us = tasks.map(|t| total.as_secs_f64() * 1e6 / t as f64);
    let (target, met) = match scenario {
        Scenario::Chain => (
            "≤ 200 µs per task",
            per_task_us.is_some_and(|us| us <= 200.0),
        ),
        Scenario::Fanout => ("< 2 s in all", total < Duration::from_secs(2)),
        Scenario::Process => ("< 50 ms start to exit", total < Duration::from_millis(50)),
        Scenario::Load => ("< 200 ms", total < Duration::from_millis(200)),
        Scenario::Trigger => ("< 5 ms median", total < Duration::from_millis(5)),
        Scenario::DaemonMemory => ("< 20 MiB resident", peak.is_some_and(|mib| mib < 20.0)),
        Scenario::Lateness => ("report median and max", true),
        Scenario::Soak => (
            "every tick a finished run; resident memory flat (end ≤ start + 10 MiB)",
            soak_met,
        ),
        // scikit-learn's GridSearchCV(n_jobs=2) took 7.6 s for this at 2,000 rows on the
        // development machine (bench/README.md).
        Scenario::RiskSearch => (
            "< 7.6 s (scikit-learn, n_jobs=2)",
            total.as_secs_f64() < 7.6,
        ),
        Scenario::RiskScore => (
            "≥ 1,000,000 rows/s",
            n as f64 / total.as_secs_f64().max(1e-9) >= 1e6,
        ),
        Scenario::RiskArtifact => ("load < 1 s", total < Duration::from_secs(1)),
        // Nominal 2.5 %, plus three Monte Carlo standard errors at this many repetitions.
        Scenario::Verdicts => (
            "A/A DEGRADED ≤ 2.5 % (+ 3 Monte Carlo s.e.) in every cell",
            worst_a_a <= 0.025 + 3.0 * (0.025 * 0.975 / n as f64).sqrt(),
        ),
        Scenario::Web => (
            "every page < 100 ms (median)",
            total < Duration::from_millis(100),
        ),
        Scenario::Throughput => (
            "≥ 3,000 task instances/s in all",
            n as f64 / total.as_secs_f64().max(1e-9) >= 3_000.0,
        ),
    };
    Ok(BenchResult {
        scenario,
        size: n,
        total_ms: ms(total),
        max_ms: max.map(ms),
        per_task_us,
        // The process scenario measures the `vigil dags test` children and the daemon ones the
        // daemon, not this process.
        peak_rss_mib: match (scenario, peak) {
            (_, Some(mib)) => mib,
            (Scenario::Process, None) => children_peak_rss_mib(),
            _ => own_peak_rss_mib(),
        },
        target: target.into(),
        met,
        detail,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn own_peak_rss_mib() -> f64 {
    status_field("/proc/self/status", "VmHWM:")
}

/// Largest peak resident memory of any child process waited for, in MiB.
fn children_peak_rss_mib() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given, which points
    // at zeroed memory of the right size; we read it only when the call succeeds.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: the call succeeded, so the struct is initialised.
    let usage = unsafe { usage.assume_init() };
    usage.ru_maxrss as f64 / 1024.0
}
