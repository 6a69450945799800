//! `vigil demo`: demo data for the model registry, and the monitoring DAG run on it, so a
//! newcomer sees a degradation detected and a rollback recorded in seconds.
//!
//! The data is labelled as demo data everywhere it is stored (version notes, source).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Args;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cli::Ctx;
use crate::cli::output::print_json;
use crate::ops::registry as ops;
use crate::run::plan_run;
use crate::state::RunState;
use crate::state::owner;
use crate::store::RunType;
use crate::store::registry::{NewPrediction, NewVersion};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Name of the demo model (the registry never deletes, so a second demo needs a new name)
    #[arg(long, default_value = "demo_churn")]
    model: String,
    /// Seed of the simulated predictions
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// The demo versions: (version, recorded RMSE, recorded R², live error scale).
const VERSIONS: [(&str, f64, f64, f64); 4] = [
    ("v1", 1.06, 0.90, 1.05),
    ("v2", 1.00, 0.91, 1.00),
    // Looked better offline, degrades on live data: the case monitoring exists for.
    ("v3", 0.97, 0.92, 1.18),
    // A retrained candidate, not yet promoted (for post_training_validation).
    ("v4", 0.95, 0.92, 0.90),
];

const ROWS: usize = 400;
/// Rows labelled before the first check.
const FIRST: usize = 80;

pub async fn run(ctx: &Ctx, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let name = args.model;
    crate::dag::check_id(&name).map_err(|why| anyhow::anyhow!("model name `{name}` {why}"))?;
    let store = ctx.store().await?;
    if store.model(&name).await?.is_some() {
        bail!(
            "model `{name}` exists already, and the registry never deletes; run `vigil demo --model {name}_2` for a fresh demo"
        );
    }
    let dag = crate::cli::dags::find_dag(ctx, "model_performance_monitoring")
        .context("the demo runs dags/model_performance_monitoring.toml")?;

    // The same labelled rows scored by every version (shadow scoring), so versions compare
    // pairwise.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let actuals: Vec<f64> = (0..ROWS)
        .map(|i| 50.0 + (i % 23) as f64 * 2.0 + rng.random_range(-5.0..5.0))
        .collect();
    for (v, rmse, r2, _) in VERSIONS {
        store
            .register_version(&NewVersion {
                model: name.clone(),
                version: Some(v.into()),
                metrics: BTreeMap::from([("rmse".into(), rmse), ("r2".into(), r2)]),
                artifact: None,
                source: Some("vigil demo".into()),
                notes: Some("demo data (simulated)".into()),
            })
            .await?;
    }
    for (v, why) in [
        ("v1", "demo: first release"),
        ("v2", "demo: retrained"),
        ("v3", "demo: retrained, better offline"),
    ] {
        ops::promote(&*store, &name, v, why, "vigil demo").await?;
    }
    // Each version's predictions on the same rows, drawn now so the data does not depend on
    // when each batch is logged.
    let predictions: Vec<Vec<NewPrediction>> = VERSIONS
        .iter()
        .map(|(_, _, _, live_error)| {
            actuals
                .iter()
                .enumerate()
                .map(|(i, a)| NewPrediction {
                    row_key: Some(format!("demo-{i}")),
                    predicted: a + rng.random_range(-1.7..1.7) * live_error,
                    actual: Some(*a),
                    at: Utc::now(),
                })
                .collect()
        })
        .collect();
    if !ctx.json {
        crate::say!(
            "demo data: model `{name}` with versions v1, v2, v3 (production) and v4 (a candidate); every version scores the same live rows, {FIRST} labelled before the first check and {} more before the second",
            ROWS - FIRST
        );
        crate::say!(
            "v3 looked better offline (RMSE 0.97) but errs about 18% more than v2 on live data.\n"
        );
    }

    // The monitoring DAG, twice, as labelled rows arrive after the production change: on the
    // first rows the worsening is not yet established across looks and the guard holds it;
    // with the rest, the sequential test establishes it and the check rolls back.
    let executor = ctx.executor().await?;
    let conf = serde_json::json!({"model": name, "cooldown": "0s"});
    let mut results = Vec::new();
    for (attempt, rows) in [(1, 0..FIRST), (2, FIRST..ROWS)] {
        for ((v, ..), all) in VERSIONS.iter().zip(&predictions) {
            let batch: Vec<NewPrediction> = all[rows.clone()]
                .iter()
                .map(|p| NewPrediction {
                    at: Utc::now(),
                    ..p.clone()
                })
                .collect();
            store.add_predictions(&name, v, &batch).await?;
        }
        let new = plan_run(
            &dag,
            conf.clone(),
            RunType::Test,
            Utc::now(),
            RunState::Running,
            Some(owner::current()),
        )?;
        let run = executor.store().create_run(&new).await?;
        let state = executor
            .execute(Arc::clone(&dag), run.clone(), None)
            .await?;
        let check = executor.store().output(run.id, "check_performance").await?;
        let action = executor.store().output(run.id, "handle_alert").await?;
        let verdict = check
            .as_ref()
            .and_then(|c| c.value["judgement"]["verdict"].as_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let reason = check
            .as_ref()
            .and_then(|c| c.value["judgement"]["reason"].as_str().map(str::to_string))
            .unwrap_or_default();
        let action = action.map(|a| a.value).unwrap_or_default();
        if !ctx.json {
            crate::say!("run {} of model_performance_monitoring ({state}):", run.id);
            crate::say!("  check: {verdict}: {reason}");
            crate::say!("  action: {}", describe(&action));
        }
        results.push(serde_json::json!({"run_id": run.id, "state": state, "verdict": verdict, "action": action, "attempt": attempt}));
    }
    let status = ops::status(&*store, &name).await?;
    if ctx.json {
        print_json(
            &serde_json::json!({"model": name, "runs": results, "production": status.model.production_version}),
        )?;
    } else {
        crate::say!(
            "\nproduction is now {}. Look around:",
            status
                .model
                .production_version
                .as_deref()
                .unwrap_or("(none)")
        );
        crate::say!("  vigil model status {name}");
        crate::say!("  vigil model history {name}");
        crate::say!("  vigil model compare {name} v2 v3");
        crate::say!(
            "  vigil dags test post_training_validation --conf '{{\"model\": \"{name}\", \"candidate\": \"v4\"}}'"
        );
        crate::say!(
            "  vigil dags unpause model_performance_monitoring   # check it hourly under the daemon"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(action: &serde_json::Value) -> String {
    match action["kind"].as_str() {
        Some("rolled_back") => format!("rolled back to {}", action["to"].as_str().unwrap_or("?")),
        Some("refused") => format!("no rollback yet: {}", action["why"].as_str().unwrap_or("")),
        Some("would_roll_back") => format!(
            "dry run: would roll back to {}",
            action["to"].as_str().unwrap_or("?")
        ),
        Some("none") => "none".into(),
        _ => action.to_string(),
    }
}
