//! Your own Rust task type, with the whole `vigil` command line.
//!
//! A task type is a struct implementing [`vigil::Task`] with a typed config and a typed
//! output. Register it under a name and hand the registry to [`vigil::cli::main`]: the program
//! you build *is* vigil, plus your task. Its config is checked against `GreetConfig` when a
//! DAG loads, and its output is stored and passed downstream like any other.
//!
//! ```sh
//! cargo run --example custom_task -- --dags examples/dags dags test greetings
//! cargo run --example custom_task -- --dags examples/dags dags validate
//! ```

use std::process::ExitCode;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
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

    async fn run(&self, ctx: &TaskContext, config: GreetConfig) -> Result<Greeting, TaskError> {
        if config.name.trim().is_empty() {
            // Fatal: retrying cannot give an empty name a value.
            return Err(TaskError::fatal("`name` is empty"));
        }
        let text = vec![format!("hello, {}!", config.name); config.times as usize].join(" ");
        ctx.info(format!("greeting {} time(s)", config.times));
        Ok(Greeting {
            length: text.len(),
            text,
        })
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
