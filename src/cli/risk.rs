//! `vigil risk`: the deployment rollback-risk predictor — simulate history, train (search,
//! baseline, hold-out), evaluate, score candidates for a CI gate, and write the report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::{print_json, table};
use crate::ml::metrics::Evaluation;
use crate::ml::risk::{self, Band, Bands, Importance, RiskModel};
use crate::ml::search::Progress;
use crate::ml::{forest, report, simulate};
use crate::ops::risk::{self as risk_ops, TrainRequest};

/// Exit codes of `vigil risk score`, for CI gates.
pub const EXIT_REVIEW: u8 = 3;
pub const EXIT_BLOCK: u8 = 4;

#[derive(Debug, Subcommand)]
pub enum RiskCommand {
    /// Write a deterministic synthetic deployment history (deployments.csv) and undecided
    /// candidates (new_deployments.csv)
    Simulate {
        /// Historical deployments to generate
        #[arg(long, default_value_t = 2000)]
        rows: usize,
        /// The same seed writes the same files
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Folder to write into (created if missing)
        #[arg(long, value_name = "DIR", default_value = "data/risk")]
        out: PathBuf,
    },
    /// Search forest hyperparameters by stratified k-fold cross-validation on F1, measure the
    /// best on the latest deployments, save it and register it as a version of
    /// `deployment_risk`
    Train {
        /// Labelled history (the columns of `risk simulate`'s deployments.csv)
        #[arg(long, value_name = "FILE", default_value = "data/risk/deployments.csv")]
        data: PathBuf,
        /// Cross-validation folds
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Values to search, KEY=V1,V2 (repeatable): trees=50,100,200 depth=none,5,10
        /// min_samples=2,10 [default: all three, as shown]
        #[arg(long, value_name = "KEY=V1,V2")]
        grid: Vec<String>,
        /// Seeds the folds and the forests: the same seed trains the same model
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Share of the latest deployments held out for the final measurement
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// Folder for the model artifact [default: `models` beside the data]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        columns: SpecArgs,
        /// Which model to keep: the forest, the logistic baseline, or `best` — the baseline
        /// when it is as good on the hold-out (within 0.01 F1 and 0.005 ROC AUC)
        #[arg(long, value_enum, default_value_t = ModelArg::Forest)]
        model: ModelArg,
    },
    /// Measure a registered model on labelled deployments it did not learn from
    Evaluate {
        /// Labelled deployments; only those at or after the model's training cutoff are used
        /// unless --all [default: the file the model was trained on]
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Use every row, including ones the model was trained on (optimistic)
        #[arg(long)]
        all: bool,
        /// Model version [default: production, else the newest]
        #[arg(long)]
        version: Option<String>,
    },
    /// Score candidate deployments: risk, band and what pushes it up. Exit 0 all proceed,
    /// 3 something needs review, 4 something is blocked
    Score {
        /// Candidates (the columns of new_deployments.csv)
        file: PathBuf,
        /// Block above this probability
        #[arg(long, value_name = "P", default_value_t = 0.6)]
        block_above: f64,
        /// Ask for review above this probability
        #[arg(long, value_name = "Q", default_value_t = 0.3)]
        review_above: f64,
        /// Model version [default: production, else the newest]
        #[arg(long)]
        version: Option<String>,
        /// Which deployments get "pushed up by" drivers: those in the review or block band or
        /// unfamiliar (`flagged`), `all`, or `none` (fastest on large files)
        #[arg(long, value_enum, default_value_t = DriversArg::Flagged)]
        drivers: DriversArg,
    },
    /// Write plots (PNG and SVG) and an HTML report explaining the model
    Report {
        /// Folder to write into [default: `report` beside the training data]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Labelled history the model is measured and plotted on [default: the file the model
        /// was trained on]
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Candidates to show against the history [default: new_deployments.csv beside the
        /// history]
        #[arg(long, value_name = "FILE")]
        candidates: Option<PathBuf>,
        /// Model version [default: production, else the newest]
        #[arg(long)]
        version: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: RiskCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RiskCommand::Simulate { rows, seed, out } => {
            let s = simulate::write(&out, rows, seed)?;
            if ctx.json {
                print_json(&s)?;
            } else {
                println!(
                    "wrote {} ({} deployments, {:.1}% rolled back) and {} (10 candidates: new_risky, new_safe, new_01..new_08)",
                    s.history,
                    s.rows,
                    100.0 * s.rollback_rate,
                    s.candidates
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RiskCommand::Train {
            data,
            folds,
            grid,
            seed,
            holdout,
            out,
            columns,
            model,
        } => {
            let out = out.unwrap_or_else(|| {
                data.parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join("models")
            });
            let request = TrainRequest {
                data,
                folds,
                grid,
                seed,
                holdout,
                threads: forest::threads(),
                spec: columns.spec(&ctx.config.risk),
                choice: match model {
                    ModelArg::Forest => risk::ModelChoice::Forest,
                    ModelArg::Logistic => risk::ModelChoice::Logistic,
                    ModelArg::Best => risk::ModelChoice::Best,
                },
            };
            train(ctx, request, out).await
        }
        RiskCommand::Evaluate { data, all, version } => {
            let store = ctx.store().await?;
            let (v, model) = risk_ops::load_registered(&*store, version.as_deref()).await?;
            let data = data.unwrap_or_else(|| trained_on(&model));
            let d = model.unseen(&model.read(&data, true)?, &data, all)?;
            let e = risk::evaluate(&model, &d);
            if ctx.json {
                print_json(&serde_json::json!({
                    "model": risk::MODEL_NAME,
                    "version": v.version,
                    "data": data,
                    "rows_used": d.len(),
                    "evaluation": e.evaluation,
                    "importance": e.importance,
                    "baseline_at_training": model.baseline,
                }))?;
            } else {
                println!(
                    "{} version {} on {} deployments of {}{}",
                    risk::MODEL_NAME,
                    v.version,
                    d.len(),
                    data.display(),
                    if all {
                        " (all rows, including training ones: optimistic)"
                    } else {
                        " (at or after the training cutoff)"
                    }
                );
                print_evaluation(&e.evaluation);
                println!(
                    "\npermutation importance (drop of ROC AUC when the feature is shuffled):"
                );
                print_importance(&e.importance);
                println!(
                    "\nlogistic baseline at training time: F1 {:.3}, ROC AUC {}",
                    model.baseline.f1,
                    opt(model.baseline.roc_auc)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RiskCommand::Score {
            file,
            block_above,
            review_above,
            version,
            drivers,
        } => {
            let drivers = match drivers {
                DriversArg::Flagged => risk::Drivers::Flagged,
                DriversArg::All => risk::Drivers::All,
                DriversArg::None => risk::Drivers::None,
            };
            let bands = Bands {
                block: block_above,
                review: review_above,
            };
            bands.check()?;
            let store = ctx.store().await?;
            let (v, model) = risk_ops::load_registered(&*store, version.as_deref()).await?;
            // Streamed: a chunk of rows is read, scored and printed before the next is read,
            // so a file of millions of deployments takes constant memory. The first chunk is
            // read before anything is printed, so a file with a wrong header or a bad row in
            // its first SCORE_CHUNK rows prints nothing on stdout (only the error); a bad row
            // later ends the output where it is, with exit 1.
            let mut chunks = model.read_chunks(&file, SCORE_CHUNK)?.peekable();
            if let Some(Err(_)) = chunks.peek()
                && let Some(Err(e)) = chunks.next()
            {
                return Err(e.into());
            }
            let mut worst = Band::Proceed;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if ctx.json {
                write!(
                    out,
                    "{{\"model\": {}, \"version\": {}, \"block_above\": {}, \"review_above\": {}, \"deployments\": [",
                    serde_json::to_string(risk::MODEL_NAME)?,
                    serde_json::to_string(&v.version)?,
                    serde_json::to_string(&block_above)?,
                    serde_json::to_string(&review_above)?,
                )?;
            }
            let mut first = true;
            for chunk in chunks {
                let scored = model.score_with(&chunk?, &bands, drivers);
                worst = scored.iter().map(|s| s.band).fold(worst, Band::max);
                if ctx.json {
                    for s in &scored {
                        if !std::mem::take(&mut first) {
                            out.write_all(b",")?;
                        }
                        out.write_all(b"\n  ")?;
                        serde_json::to_writer(&mut out, s)?;
                    }
                    continue;
                }
                let rows = scored.iter().map(score_row).collect();
                let header: &[&str] = if std::mem::take(&mut first) {
                    &[
                        "DEPLOYMENT",
                        "SERVICE",
                        "RISK",
                        "BAND",
                        "PUSHED UP BY",
                        "UNFAMILIAR",
                    ]
                } else {
                    &[]
                };
                writeln!(out, "{}", table(header, rows))?;
            }
            if ctx.json {
                writeln!(out, "\n], \"worst\": {}}}", serde_json::to_string(&worst)?)?;
            } else {
                writeln!(
                    out,
                    "model {} version {}; block above {:.0}%, review above {:.0}%",
                    risk::MODEL_NAME,
                    v.version,
                    100.0 * block_above,
                    100.0 * review_above
                )?;
            }
            out.flush()?;
            Ok(match worst {
                Band::Proceed => ExitCode::SUCCESS,
                Band::Review => ExitCode::from(EXIT_REVIEW),
                Band::Block => ExitCode::from(EXIT_BLOCK),
            })
        }
        RiskCommand::Report {
            out,
            data,
            candidates,
            version,
        } => {
            let store = ctx.store().await?;
            let (v, model) = risk_ops::load_registered(&*store, version.as_deref()).await?;
            let data = data.unwrap_or_else(|| trained_on(&model));
            let beside = data.parent().unwrap_or(std::path::Path::new("."));
            let candidates = candidates.unwrap_or_else(|| beside.join("new_deployments.csv"));
            let out = out.unwrap_or_else(|| beside.join("report"));
            let history = model.read(&data, true)?;
            let new = model.read(&candidates, false)?;
            let written = tokio::task::spawn_blocking(move || {
                report::write(
                    &out,
                    &v.version,
                    &model,
                    (&history, &data),
                    &new,
                    &Bands::default(),
                )
            })
            .await
            .context("the report thread failed")??;
            if ctx.json {
                print_json(&written)?;
            } else {
                println!("wrote {}", written.html.display());
                for f in &written.plots {
                    println!("      {}", f.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Which columns of the history `risk train` reads (the simulator's by default).
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// Feature columns, comma-separated (numbers) [default: `[risk] features`, else
    /// latency_ms, error_rate, cpu_pct, memory_pct, change_size, hour, recent_failures]
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    features: Vec<String>,
    /// Text feature columns, comma-separated (service, team, region), each encoded by its
    /// levels' share of rollbacks [default: `[risk] categorical`, else none]
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    categorical: Vec<String>,
    /// The outcome column [default: rolled_back]
    #[arg(long, value_name = "COLUMN")]
    label: Option<String>,
    /// The label's value that means "rolled back"; any other means kept [default: 1, which
    /// also reads true/false]
    #[arg(long, value_name = "VALUE")]
    positive: Option<String>,
    /// Each deployment's id [default: deployment_id]
    #[arg(long, value_name = "COLUMN")]
    id_column: Option<String>,
    /// When each deployment happened, RFC 3339 [default: timestamp]
    #[arg(long, value_name = "COLUMN")]
    time_column: Option<String>,
    /// A column shown beside each score, such as the service [default: service]
    #[arg(long, value_name = "COLUMN")]
    group_column: Option<String>,
    /// Empty feature cells: refuse the file (naming line and column), or impute the training
    /// median (numeric) or most common value (categorical), in scoring too [default: refuse]
    #[arg(long, value_enum)]
    missing: Option<MissingArg>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModelArg {
    Forest,
    Logistic,
    Best,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DriversArg {
    Flagged,
    All,
    None,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MissingArg {
    Refuse,
    Impute,
}

impl SpecArgs {
    /// `base` (the config's `[risk]`) with each column given on the command line replaced.
    fn spec(self, base: &crate::ml::spec::ModelSpec) -> crate::ml::spec::ModelSpec {
        let d = base.clone();
        crate::ml::spec::ModelSpec {
            features: if self.features.is_empty() {
                d.features
            } else {
                self.features
            },
            categorical: if self.categorical.is_empty() {
                d.categorical
            } else {
                self.categorical
            },
            label: self.label.unwrap_or(d.label),
            positive: self.positive.unwrap_or(d.positive),
            id: self.id_column.unwrap_or(d.id),
            time: self.time_column.unwrap_or(d.time),
            group: self.group_column.or(d.group),
            missing: match self.missing {
                Some(MissingArg::Refuse) => crate::ml::spec::Missing::Refuse,
                Some(MissingArg::Impute) => crate::ml::spec::Missing::Impute,
                None => d.missing,
            },
        }
    }
}

async fn train(ctx: &Ctx, request: TrainRequest, out: PathBuf) -> anyhow::Result<ExitCode> {
    let data = request.data.clone();
    let folds = request.folds;
    let points = request.check()?.points();
    let store = ctx.store().await?;
    // Progress goes to stderr, so `--json` output stays parseable.
    let tty = std::io::stderr().is_terminal();
    eprintln!(
        "searching {points} grid points × {folds} folds on {} ({} threads)…",
        data.display(),
        request.threads
    );
    let model = tokio::task::spawn_blocking(move || {
        let progress = move |p: Progress| {
            let line = format!(
                "  fold {}/{folds}: {}/{} forests grown, best mean F1 so far {}",
                p.fold,
                p.done,
                p.total,
                opt(p.best_f1)
            );
            if tty {
                eprint!("\r{line}   ");
                if p.done == p.total {
                    eprintln!();
                }
            } else if p.fold_finished {
                eprintln!("{line}");
            }
        };
        risk_ops::train(&request, &progress, &|| false)
    })
    .await
    .context("the training thread failed")??;
    let version = risk_ops::register(
        &*store,
        &model,
        &out,
        Some(format!("vigil risk train --data {}", data.display())),
    )
    .await?;
    let artifact = version
        .artifact
        .as_ref()
        .and_then(|a| a.path.clone())
        .unwrap_or_default();
    if ctx.json {
        print_json(&serde_json::json!({
            "model": risk::MODEL_NAME,
            "version": version.version,
            "artifact": artifact,
            "metrics": version.metrics,
            "kept": model.kind,
            "search": model.search,
            "holdout": model.holdout,
            "baseline": model.baseline,
            "importance": model.importance,
            "training": model.training,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    print_training(&model);
    println!(
        "\nregistered {} version {} (artifact {})",
        risk::MODEL_NAME,
        version.version,
        artifact
    );
    // The simulator's candidates when they are there; a team's own file otherwise.
    let candidates = data
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("new_deployments.csv");
    let candidates = if candidates.is_file() {
        candidates.display().to_string()
    } else {
        "CANDIDATES.csv".to_string()
    };
    println!(
        "next: `vigil risk evaluate`, `vigil risk score {candidates}`, `vigil risk report`, `vigil model promote {} {}`",
        risk::MODEL_NAME,
        version.version
    );
    Ok(ExitCode::SUCCESS)
}

/// The labelled history a model was trained on, as `risk train` was given it.
fn trained_on(model: &RiskModel) -> PathBuf {
    PathBuf::from(&model.training.data)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Deployments scored per chunk by `risk score`.
const SCORE_CHUNK: usize = 16_384;

/// One row of the `risk score` table.
fn score_row(s: &risk::Scored) -> Vec<String> {
    vec![
        s.deployment_id.clone(),
        s.service.clone(),
        format!("{:.0}%", 100.0 * s.probability),
        // `?`: the model has no basis for this score (see UNFAMILIAR).
        format!(
            "{}{}",
            s.band.as_str().to_uppercase(),
            if s.unfamiliar.is_empty() { "" } else { " ?" }
        ),
        s.drivers
            .iter()
            .take(3)
            .map(|d| {
                format!(
                    "{} {} (typical {}) +{:.0} pts",
                    d.feature,
                    num(d.value),
                    num(d.typical),
                    100.0 * d.adds
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        s.unfamiliar.join("; "),
    ]
}

fn num(v: f64) -> String {
    crate::state::plain(v, 2)
}

fn depth(d: Option<usize>) -> String {
    d.map_or("none".into(), |d| d.to_string())
}

fn print_training(m: &RiskModel) {
    let s = &m.search;
    let rows = s
        .scored
        .iter()
        .take(5)
        .map(|c| {
            vec![
                c.trees.to_string(),
                depth(c.max_depth),
                c.min_samples_split.to_string(),
                format!("{:.3} ± {:.3}", c.mean_f1, c.std_f1),
                format!("{:.3}", c.mean_auc),
            ]
        })
        .collect();
    println!(
        "searched {} grid points × {} folds in {:.1}s; best 5 by mean F1:",
        s.scored.len(),
        s.folds,
        s.seconds
    );
    println!(
        "{}",
        table(
            &["TREES", "MAX DEPTH", "MIN SPLIT", "CV F1", "CV ROC AUC"],
            rows
        )
    );
    println!(
        "logistic baseline (scaled), same folds: F1 {:.3}, ROC AUC {:.3}",
        s.baseline_f1, s.baseline_auc
    );
    let t = &m.training;
    println!(
        "\nhold-out: the latest {} of {} deployments (from {}), never seen in training or search:",
        t.holdout_rows,
        t.rows,
        t.cutoff.format("%Y-%m-%d %H:%M UTC")
    );
    let kept = match m.kind {
        risk::ModelKind::Forest => "the forest",
        risk::ModelKind::Logistic => "the logistic baseline",
    };
    println!("model kept: {kept}");
    print_evaluation(&m.holdout);
    println!(
        "logistic baseline on the hold-out: F1 {:.3}, ROC AUC {}",
        m.baseline.f1,
        opt(m.baseline.roc_auc)
    );
    if m.kind == risk::ModelKind::Forest && risk::as_good(&m.baseline, &m.holdout) {
        println!(
            "note: on the hold-out the simpler logistic baseline is as good as the forest (F1 {:.3} vs {:.3}, ROC AUC {} vs {}); `--model best` (or `logistic`) keeps it instead",
            m.baseline.f1,
            m.holdout.report.classes[1].f1,
            opt(m.baseline.roc_auc),
            opt(m.holdout.roc_auc)
        );
    }
    println!("\npermutation importance on the hold-out:");
    print_importance(&m.importance);
}

fn print_evaluation(e: &Evaluation) {
    let c = &e.confusion;
    println!(
        "{}",
        table(
            &["", "PREDICTED KEPT", "PREDICTED ROLLED BACK"],
            vec![
                vec!["actually kept".into(), c.tn.to_string(), c.fp.to_string()],
                vec![
                    "actually rolled back".into(),
                    c.fn_.to_string(),
                    c.tp.to_string()
                ],
            ]
        )
    );
    let r = &e.report;
    let line = |name: &str, k: &crate::ml::metrics::ClassScores| {
        vec![
            name.to_string(),
            format!("{:.3}", k.precision),
            format!("{:.3}", k.recall),
            format!("{:.3}", k.f1),
            k.support.to_string(),
        ]
    };
    println!(
        "{}",
        table(
            &["", "PRECISION", "RECALL", "F1", "SUPPORT"],
            vec![
                line("kept (0)", &r.classes[0]),
                line("rolled back (1)", &r.classes[1]),
                line("macro avg", &r.macro_avg),
                line("weighted avg", &r.weighted_avg),
            ]
        )
    );
    println!(
        "accuracy {:.3}  ROC AUC {}  PR AUC {}  Brier {:.4}  recall in riskiest 10% {}",
        r.accuracy,
        opt(e.roc_auc),
        opt(e.pr_auc),
        e.brier,
        opt(e.recall_at_10pct)
    );
    if let Some(c) = &e.calibration {
        println!(
            "\ncalibration: expected calibration error {:.3} (0 is perfect; a probability of 0.3 should roll back about 30% of the time)",
            c.ece
        );
        let rows = c
            .bins
            .iter()
            .map(|b| {
                vec![
                    format!("{:.1}–{:.1}", b.from, b.to),
                    b.rows.to_string(),
                    format!("{:.3}", b.mean_predicted),
                    format!("{:.3}", b.observed),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &["PREDICTED", "ROWS", "MEAN PREDICTED", "ROLLED BACK"],
                rows
            )
        );
    }
}

fn print_importance(imp: &[Importance]) {
    let rows = imp
        .iter()
        .map(|i| {
            vec![
                i.feature.clone(),
                format!("{:+.4}", i.auc_drop),
                format!("{:.4}", i.std),
            ]
        })
        .collect();
    println!("{}", table(&["FEATURE", "AUC DROP", "± STD"], rows));
}
