//! The daemon inside your own program, with your own task types.
//!
//! ```sh
//! cargo run -p vigil-examples --bin embedded_daemon      # until Ctrl-C; reads config/vigil.toml
//! ```

use async_trait::async_trait;
use vigil::{Task, TaskContext, TaskError};

/// A task type of your own (see examples/custom_task.rs for typed configs and outputs).
struct Hello;

#[async_trait]
impl Task for Hello {
    type Config = serde::de::IgnoredAny;
    type Output = String;

    async fn run(&self, ctx: &TaskContext, _: serde::de::IgnoredAny) -> Result<String, TaskError> {
        tracing::info!(run = ctx.run_id, "saying hello");
        Ok(format!("hello from run {}", ctx.run_id))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Your logging, plus vigil's layer that stores events inside a task in its attempt log.
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(vigil::task::CaptureLayer)
        .init();
    let config = vigil::config::Config::load(None)?;
    vigil::Daemon::builder()
        .config(config)
        .task("example.hello", Hello)
        .run()
        .await?;
    Ok(())
}
