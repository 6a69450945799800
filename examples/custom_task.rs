//! Your own Rust task type, with the whole `vigil` command line.
//!
//! A task type is a struct implementing [`vigil::Task`] with a typed config and a typed
//! output. Register it under a name and hand the registry to [`vigil::cli::main`]: the program
//! you build *is* vigil, plus your task. Its config is checked against `GreetConfig` when a
//! DAG loads, and its output is stored and passed downstream like any other.
//!
//! ```sh
//! cargo run -p vigil-examples --bin custom_task -- --dags examples/dags dags test greetings
//! cargo run -p vigil-examples --bin custom_task -- --dags examples/dags dags validate
//! ```

use std::process::ExitCode;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vigil::task::{ConfigError, ResultExt};
use vigil::{Task, TaskContext, TaskError};

/// Greets someone, a number of times.
struct Greet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GreetConfig {
    name: String,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    text: String,
    length: usize,
}

#[async_trait]
impl Task for Greet {
    type Config = GreetConfig;
    type Output = Greeting;

    /// Values the types cannot check, refused when the DAG loads (`dags validate`), not when
    /// the run comes; checked again on the rendered config before each attempt.
    fn check(&self, config: &GreetConfig) -> Result<(), ConfigError> {
        if config.name.trim().is_empty() {
            return Err(ConfigError::at("name", "is empty; give someone to greet"));
        }
        if !(1..=100).contains(&config.times) {
            return Err(ConfigError::at(
                "times",
                format!("must be 1 to 100, got {}", config.times),
            ));
        }
        Ok(())
    }

    async fn run(&self, ctx: &TaskContext, config: GreetConfig) -> Result<Greeting, TaskError> {
        // CPU work goes off the async runtime: it stops when the attempt is cancelled and
        // its progress lines reach the task log as they come.
        let text = ctx
            .run_blocking(move |work| {
                let mut parts = Vec::new();
                for i in 0..config.times {
                    if work.stopped() {
                        break;
                    }
                    parts.push(format!("hello, {}!", config.name));
                    work.info(format!("greeting {}/{}", i + 1, config.times));
                }
                parts.join(" ")
            })
            .await?;
        // One word says whether an error is worth a retry: `.fatal(..)` or `.retryable(..)`.
        let length = u32::try_from(text.len()).fatal("the greeting is too long")? as usize;
        Ok(Greeting { length, text })
    }
}

/// Reads the typed result of the upstream `greet` task.
struct Shout;

#[async_trait]
impl Task for Shout {
    type Config = serde::de::IgnoredAny;
    type Output = String;

    async fn run(&self, ctx: &TaskContext, _: serde::de::IgnoredAny) -> Result<String, TaskError> {
        let greeting: Greeting = ctx.upstream("greet")?;
        Ok(greeting.text.to_uppercase())
    }
}

fn main() -> ExitCode {
    let registry = vigil::tasks::builtin()
        .with("example.greet", Greet)
        .with("example.shout", Shout);
    vigil::cli::main(registry)
}
