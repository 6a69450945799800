//! `vigil risk`: the deployment rollback-risk predictor. Only `simulate` exists so far; the
//! rest (train, evaluate, score, report) is issue 6.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::print_json;
use crate::ml::simulate;

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
    }
}
