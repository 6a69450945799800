//! `vigil model ...`: the model registry from the command line (the seed's
//! `monitor_model_performance.py` flags, in vigil's form).
//!
//! Exit codes: 0 success; 1 an error; 3 `check` found production DEGRADED (whatever it did
//! about it), so a cron job or CI step can react.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::{print_json, table, time};
use crate::ops::registry::{self as ops, Action, CheckOptions, Rollback};
use crate::quality::metrics::Metric;
use crate::quality::verdict::{IntervalMethod, Rules, Verdict};
use crate::state::Audience;
use crate::store::Store;
use crate::store::registry::{NewArtifact, NewPrediction, NewVersion};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Production version, the version before it, and the latest check or change
    Status {
        /// The model
        name: String,
    },
    /// Versions, newest first, with their metrics and when each was in production
    History {
        /// The model
        name: String,
        /// At most this many
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Is V2 worse than V1? (the verdict, with its evidence)
    Compare {
        /// The model
        name: String,
        /// The first version
        v1: String,
        /// The second version
        v2: String,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Check production against the version before it; record the verdict; roll back if asked
    Check {
        /// The model
        name: String,
        #[command(flatten)]
        rules: RuleArgs,
        /// Roll back when the verdict is DEGRADED and the guards allow it
        #[arg(long)]
        auto_rollback: bool,
        /// Record what would be done, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Which labelled predictions: `since-change` (since production last changed), `all`,
        /// or a duration such as 24h
        #[arg(long, default_value = "since-change")]
        window: ops::Window,
    },
    /// Make an earlier version production again
    Rollback {
        /// The model
        name: String,
        /// The version before the current production one
        #[arg(long, conflicts_with = "to", required_unless_present = "to")]
        previous: bool,
        /// A given version
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Say what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Why (kept with the deployment event)
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// Make a version production
    Promote {
        /// The model
        name: String,
        version: String,
        /// Why (kept with the deployment event)
        #[arg(long, default_value = "manual promotion")]
        reason: String,
    },
    /// Register a new version with its metrics (and artifact)
    Register {
        /// The model
        name: String,
        /// NAME=VALUE, e.g. --metric r2=0.91 --metric rmse=3.2
        #[arg(long = "metric", value_name = "NAME=VALUE")]
        metrics: Vec<String>,
        /// [default: YYYYMMDD_HHMMSS now]
        #[arg(long)]
        version: Option<String>,
        /// The model file: its path, SHA-256 and size are recorded
        #[arg(long, value_name = "FILE")]
        artifact: Option<PathBuf>,
        /// Where the version comes from (a training run, a path)
        #[arg(long)]
        source: Option<String>,
        /// Free text kept with the version
        #[arg(long)]
        notes: Option<String>,
    },
    /// Logged predictions of a version
    #[command(subcommand)]
    Predictions(PredictionsCommand),
    /// The interactive menu: status, check, quick rollback, full monitoring, rollback to a
    /// version, compare, history
    Menu {
        /// The model [default: asked]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PredictionsCommand {
    /// Import predictions from a CSV file with columns `predicted` and optionally `actual`,
    /// `row_key` (identifies the scored row) and `at` (RFC 3339)
    Import {
        /// The model
        name: String,
        version: String,
        /// The CSV file
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct RuleArgs {
    /// The smallest worsening that matters, in percent
    #[arg(long, default_value_t = 5.0)]
    threshold: f64,
    /// Labelled predictions needed for a verdict from predictions
    #[arg(long, default_value_t = 30)]
    min_samples: usize,
    /// The metric to judge [default: accuracy for classes, else rmse]
    #[arg(long, value_parser = ["rmse", "mae", "r2", "accuracy"])]
    metric: Option<String>,
    /// The interval: `t` (paired t or Welch, on per-row terms) or `bootstrap` (percentile;
    /// under-covers below ~200 rows, kept for comparison)
    #[arg(long, default_value = "t", value_parser = ["t", "bootstrap"])]
    interval: String,
}

impl RuleArgs {
    fn rules(&self) -> anyhow::Result<Rules> {
        if !(self.threshold > 0.0 && self.threshold < 100.0) {
            bail!(
                "--threshold must be a percentage between 0 and 100, got {}",
                self.threshold
            );
        }
        Ok(Rules {
            threshold_percent: self.threshold,
            min_samples: self.min_samples.max(1),
            metric: self.metric.as_deref().and_then(Metric::parse),
            interval: if self.interval == "bootstrap" {
                IntervalMethod::Bootstrap
            } else {
                IntervalMethod::T
            },
            ..Rules::default()
        })
    }
}

fn actor() -> String {
    std::env::var("USER")
        .map(|u| format!("{u} (cli)"))
        .unwrap_or_else(|_| "cli".into())
}

pub async fn run(ctx: &Ctx, cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let store: &dyn Store = &*store;
    // Who hears about verdicts and rollbacks started from the command line.
    let audience = ctx.config.notify.defaults().alert_audience();
    let audience = &audience;
    match cmd {
        ModelCommand::Status { name } => {
            let s = ops::status(store, &name).await?;
            if ctx.json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
        }
        ModelCommand::History { name, limit } => {
            let h = ops::history(store, &name, limit).await?;
            if ctx.json {
                print_json(&h)?;
            } else {
                print_history(&h);
            }
        }
        ModelCommand::Compare {
            name,
            v1,
            v2,
            rules,
        } => {
            let j = ops::compare(store, &name, &v1, &v2, &rules.rules()?, None).await?;
            if ctx.json {
                print_json(&j)?;
            } else {
                print_judgement(&j, &v1, &v2);
            }
        }
        ModelCommand::Check {
            name,
            rules,
            auto_rollback,
            dry_run,
            window,
        } => {
            let opts = CheckOptions {
                rules: rules.rules()?,
                auto_rollback,
                dry_run,
                window,
                notify: audience.clone(),
                ..CheckOptions::default()
            };
            let out = ops::check(store, &name, &opts, &actor()).await?;
            if ctx.json {
                print_json(&out)?;
            } else {
                print_check(&out, dry_run);
            }
            if out.judgement.verdict == Verdict::Degraded {
                return Ok(ExitCode::from(3));
            }
        }
        ModelCommand::Rollback {
            name,
            previous: _,
            to,
            yes,
            dry_run,
            reason,
        } => {
            let r = rollback_confirmed(store, &name, to, yes, dry_run, &reason, audience).await?;
            if ctx.json {
                print_json(&r)?;
            } else {
                print_rollback(&name, &r);
            }
            if matches!(r, Rollback::Refused { .. }) {
                return Ok(ExitCode::FAILURE);
            }
        }
        ModelCommand::Promote {
            name,
            version,
            reason,
        } => match ops::promote(store, &name, &version, &reason, &actor()).await? {
            Some(d) if ctx.json => print_json(&d)?,
            Some(d) => println!(
                "{name}: {} → {} is production",
                d.from_version.as_deref().unwrap_or("(none)"),
                d.to_version
            ),
            None => println!("{version} is already in production; nothing to do"),
        },
        ModelCommand::Register {
            name,
            metrics,
            version,
            artifact,
            source,
            notes,
        } => {
            crate::dag::check_id(&name)
                .map_err(|why| anyhow::anyhow!("model name `{name}` {why}"))?;
            let metrics = parse_metrics(&metrics)?;
            let artifact = artifact.map(|p| file_artifact(&p)).transpose()?;
            let v = store
                .register_version(&NewVersion {
                    model: name.clone(),
                    version,
                    metrics,
                    artifact,
                    source,
                    notes,
                })
                .await?;
            if ctx.json {
                print_json(&v)?;
            } else {
                println!(
                    "registered {name} {} {}",
                    v.version,
                    metrics_text(&v.metrics)
                );
            }
        }
        ModelCommand::Predictions(PredictionsCommand::Import {
            name,
            version,
            file,
        }) => {
            let rows = read_predictions(&file)?;
            let n = store.add_predictions(&name, &version, &rows).await?;
            let labelled = rows.iter().filter(|r| r.actual.is_some()).count();
            if ctx.json {
                print_json(&serde_json::json!({"imported": n, "labelled": labelled}))?;
            } else {
                println!(
                    "imported {n} prediction(s) of {name} {version} ({labelled} with actual values)"
                );
            }
        }
        ModelCommand::Menu { name } => menu(store, name, audience).await?,
    }
    Ok(ExitCode::SUCCESS)
}

const MENU: &str = "
  1. Show model status
  2. Check degradation
  3. Quick rollback (to the previous version)
  4. Full monitoring (check, and roll back if the guards allow)
  5. Rollback to a version
  6. Compare versions
  7. Show history
  8. Exit";

/// Reads one trimmed line after printing `prompt`; `None` at the end of input.
fn ask(prompt: &str) -> anyhow::Result<Option<String>> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_string()))
}

/// The seed's interactive menu. Every action goes through the same operations as the
/// subcommands; a rollback is confirmed first; an error is shown and the menu goes on.
async fn menu(store: &dyn Store, name: Option<String>, audience: &Audience) -> anyhow::Result<()> {
    let defaults = CheckOptions {
        notify: audience.clone(),
        ..CheckOptions::default()
    };
    let name = match name {
        Some(n) => n,
        None => {
            let models: Vec<String> = store.models().await?.into_iter().map(|m| m.name).collect();
            println!(
                "models: {}",
                if models.is_empty() {
                    "(none)".into()
                } else {
                    models.join(", ")
                }
            );
            match ask("model> ")? {
                Some(n) if !n.is_empty() => n,
                _ => return Ok(()),
            }
        }
    };
    ops::model(store, &name).await?;
    loop {
        println!("\nvigil model menu — {name}{MENU}");
        let Some(choice) = ask("choice> ")? else {
            return Ok(());
        };
        // `Ok(true)`: leave the menu.
        let result: anyhow::Result<bool> = async {
            match choice.as_str() {
                "1" => print_status(&ops::status(store, &name).await?),
                "2" => print_check(
                    &ops::check(store, &name, &defaults, &actor()).await?,
                    defaults.dry_run,
                ),
                "3" => print_rollback(
                    &name,
                    &rollback_confirmed(
                        store,
                        &name,
                        None,
                        false,
                        false,
                        "quick rollback (menu)",
                        audience,
                    )
                    .await?,
                ),
                "4" => {
                    confirm("check, and roll back automatically if the verdict and guards allow?")?;
                    let opts = CheckOptions {
                        auto_rollback: true,
                        ..defaults.clone()
                    };
                    print_check(
                        &ops::check(store, &name, &opts, &actor()).await?,
                        opts.dry_run,
                    );
                }
                "5" => {
                    let Some(v) = ask("version> ")? else {
                        return Ok(true);
                    };
                    print_rollback(
                        &name,
                        &rollback_confirmed(
                            store,
                            &name,
                            Some(v),
                            false,
                            false,
                            "rollback to a version (menu)",
                            audience,
                        )
                        .await?,
                    );
                }
                "6" => {
                    let (Some(v1), Some(v2)) =
                        (ask("baseline version> ")?, ask("candidate version> ")?)
                    else {
                        return Ok(true);
                    };
                    print_judgement(
                        &ops::compare(store, &name, &v1, &v2, &Rules::default(), None).await?,
                        &v1,
                        &v2,
                    );
                }
                "7" => print_history(&ops::history(store, &name, 20).await?),
                "8" | "q" | "exit" => return Ok(true),
                other => println!("unknown choice `{other}`; type 1 to 8"),
            }
            Ok(false)
        }
        .await;
        match result {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => println!("error: {e:#}"),
        }
    }
}

fn print_status(s: &ops::Status) {
    let show = |v: &Option<crate::store::registry::ModelVersion>| match v {
        Some(v) => format!("{} {}", v.version, metrics_text(&v.metrics)),
        None => "-".into(),
    };
    println!("model       {}", s.model.name);
    println!("production  {}", show(&s.production));
    println!("previous    {}", show(&s.previous));
    println!("versions    {}", s.versions);
    if let Some(a) = &s.last_alert {
        // A PASS check is not an alert: name the event by its kind, and say a dry run.
        println!(
            "{:<11} {}{}{}: {}",
            format!("last {}", a.kind),
            time(Some(a.at)),
            a.verdict
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default(),
            if a.dry_run { " (dry run)" } else { "" },
            a.message
        );
    }
}

fn print_history(h: &[ops::HistoryEntry]) {
    let rows = h
        .iter()
        .map(|e| {
            vec![
                e.version.version.clone(),
                if e.in_production { "yes" } else { "" }.into(),
                metrics_text(&e.version.metrics),
                time(Some(e.version.created_at)),
                e.production_periods
                    .iter()
                    .map(|(from, until)| {
                        format!(
                            "{} → {}",
                            from.format("%Y-%m-%d %H:%M"),
                            until.map_or("now".into(), |u| u.format("%Y-%m-%d %H:%M").to_string())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "VERSION",
                "PRODUCTION",
                "METRICS",
                "CREATED",
                "IN PRODUCTION"
            ],
            rows
        )
    );
}

fn print_judgement(j: &crate::quality::verdict::Judgement, v1: &str, v2: &str) {
    println!("{} ({v2} vs {v1}): {}", j.verdict.as_str(), j.reason);
    println!("test: {}, n = {}", j.test.describe(), j.n);
    print_evidence(j);
}

/// The sequential test's state and, for INCONCLUSIVE, the rows still needed.
fn print_evidence(j: &crate::quality::verdict::Judgement) {
    if let Some(s) = j.sequential {
        // Rows that differ by exactly the same amount make Λ astronomically large.
        let statistic = if s.statistic.abs() < 1e4 {
            format!("{:.2}", s.statistic)
        } else {
            format!("{:.2e}", s.statistic)
        };
        println!(
            "sequential test (valid at every look): worsening between {:.4} and {:.4}; ln Λ = {statistic}, {:.2} establishes it{}",
            s.lower,
            s.upper,
            s.threshold,
            if s.crossed() { " — established" } else { "" }
        );
    }
    if let Some(more) = j.more_rows_needed {
        println!("about {more} more labelled rows would settle it");
    }
}

fn print_check(out: &ops::CheckOutcome, dry_run: bool) {
    println!(
        "{}: production {} against {}",
        out.judgement.verdict.as_str(),
        out.production,
        out.baseline.as_deref().unwrap_or("(no earlier version)")
    );
    println!("{}", out.judgement.reason);
    print_evidence(&out.judgement);
    match &out.action {
        Action::None => {}
        Action::RolledBack { to } => println!("rolled back to {to}"),
        Action::WouldRollBack { to } => println!("dry run: would roll back to {to}"),
        Action::Refused { why } => println!("no rollback: {why}"),
    }
    if dry_run && !matches!(out.action, Action::WouldRollBack { .. }) {
        println!("(dry run: nothing would be rolled back)");
    }
}

fn print_rollback(name: &str, r: &Rollback) {
    match r {
        Rollback::Done { from, to } => println!("rolled back {name}: {from} → {to}"),
        Rollback::AlreadyInProduction { version } => {
            println!("{version} is already in production; nothing to do")
        }
        Rollback::WouldRollBack { from, to } => {
            println!("dry run: would roll back {name}: {from} → {to}")
        }
        Rollback::Refused { why } => println!("refused: {why}"),
    }
}

/// Rolls back to `to` (or the previous version), asking for confirmation unless `yes` or
/// `dry_run`.
async fn rollback_confirmed(
    store: &dyn Store,
    name: &str,
    to: Option<String>,
    yes: bool,
    dry_run: bool,
    reason: &str,
    audience: &Audience,
) -> anyhow::Result<Rollback> {
    let status = ops::status(store, name).await?;
    let target = match to {
        Some(v) => v,
        None => status
            .previous
            .as_ref()
            .map(|v| v.version.clone())
            .context(format!(
                "model `{name}` has no earlier version to roll back to"
            ))?,
    };
    if !yes && !dry_run {
        confirm(&format!(
            "roll {name} back from {} to {target}?",
            status
                .model
                .production_version
                .as_deref()
                .unwrap_or("(none)")
        ))?;
    }
    Ok(ops::rollback(
        store,
        name,
        Some(&target),
        reason,
        &actor(),
        dry_run,
        audience,
    )
    .await?)
}

/// Metrics for a table, four significant digits each (`--json` keeps them whole).
fn metrics_text(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", significant(*v, 4)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `v` with `digits` significant digits, trailing zeros dropped: 0.912345 → 0.9123,
/// 1234.56 → 1235, 3.0 → 3.
fn significant(v: f64, digits: i32) -> String {
    if !v.is_finite() || v == 0.0 {
        return v.to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).clamp(0, 15) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `--metric NAME=VALUE`s as a map, with a clear error for each malformed one.
pub fn parse_metrics(args: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("--metric `{a}` is not NAME=VALUE (e.g. --metric r2=0.91)");
        };
        let value: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .with_context(|| format!("--metric `{a}`: `{v}` is not a number"))?;
        out.insert(k.trim().to_string(), value);
    }
    Ok(out)
}

fn file_artifact(path: &Path) -> anyhow::Result<NewArtifact> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading artifact {}", path.display()))?;
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(NewArtifact::file(full.display().to_string(), &bytes))
}

/// Reads a predictions CSV; every error names the row and the column.
pub fn read_predictions(path: &Path) -> anyhow::Result<Vec<NewPrediction>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let Some(predicted) = col("predicted") else {
        bail!(
            "{}: no `predicted` column (columns: {}); expected predicted and optionally actual, row_key, at",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    };
    let (actual, key, at) = (col("actual"), col("row_key"), col("at"));
    let now = Utc::now();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}: row {line}", path.display()))?;
        let number = |c: usize, name: &str| -> anyhow::Result<Option<f64>> {
            let text = record.get(c).unwrap_or("").trim();
            if text.is_empty() {
                return Ok(None);
            }
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(anyhow::anyhow!(
                    "{}: row {line}, column `{name}`: `{}` is not a finite number; write a plain number such as 0.42, or leave `actual` empty for an unlabelled row",
                    path.display(),
                    crate::state::shown(text, 40)
                )),
            }
        };
        let p = number(predicted, "predicted")?.with_context(|| {
            format!(
                "{}: row {line}, column `predicted` is empty",
                path.display()
            )
        })?;
        let a = match actual {
            Some(c) => number(c, "actual")?,
            None => None,
        };
        let when = match at
            .and_then(|c| record.get(c))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "{}: row {line}, column `at`: `{text}` is not an RFC 3339 time",
                        path.display()
                    )
                })?,
            None => now,
        };
        rows.push(NewPrediction {
            row_key: key
                .and_then(|c| record.get(c))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            predicted: p,
            actual: a,
            at: when,
        });
    }
    if rows.is_empty() {
        bail!("{}: no prediction rows", path.display());
    }
    Ok(rows)
}

/// Asks on the terminal; refuses to guess when there is none.
pub fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("{question} — not a terminal, so nothing was changed; pass --yes to confirm");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed; nothing was changed")
    }
}

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn four_significant_digits_without_trailing_zeros() {
        let cases = [
            (0.912345678, "0.9123"),
            (1234.5678, "1235"),
            (3.0, "3"),
            (0.000123456, "0.0001235"),
            (-0.19741234, "-0.1974"),
            (0.0, "0"),
            (1e20, "100000000000000000000"),
        ];
        for (v, want) in cases {
            assert_eq!(significant(v, 4), want, "{v}");
        }
    }
}
