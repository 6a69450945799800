//! A user's own Rust task type, registered through the library: its config is checked when
//! the DAG loads, its typed output flows downstream.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vigil::dag::parse_dag;
use vigil::state::TaskState;
use vigil::{Registry, Task, TaskContext, TaskError};

use crate::util::Engine;

struct Score;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreConfig {
    model: String,
    threshold: f64,
}

#[derive(Serialize, Deserialize)]
struct ScoreOutput {
    model: String,
    score: f64,
    passed: bool,
}

#[async_trait]
impl Task for Score {
    type Config = ScoreConfig;
    type Output = ScoreOutput;

    async fn run(&self, ctx: &TaskContext, config: ScoreConfig) -> Result<ScoreOutput, TaskError> {
        ctx.info(format!("scoring {}", config.model));
        let score = 0.9;
        Ok(ScoreOutput {
            model: config.model,
            score,
            passed: score >= config.threshold,
        })
    }
}

/// Reads the typed output of an upstream `score` task through the context.
struct Gate;

#[async_trait]
impl Task for Gate {
    type Config = serde::de::IgnoredAny;
    type Output = String;

    async fn run(&self, ctx: &TaskContext, _: serde::de::IgnoredAny) -> Result<String, TaskError> {
        let scored: ScoreOutput = ctx.upstream("score")?;
        if scored.passed {
            Ok(format!("{} may ship", scored.model))
        } else {
            Err(TaskError::fatal("score below threshold"))
        }
    }
}

fn registry() -> Registry {
    vigil::tasks::builtin()
        .with("acme.score", Score)
        .with("acme.gate", Gate)
}

#[tokio::test]
async fn a_registered_rust_task_runs_and_passes_its_typed_result_on() {
    let engine = Engine::with_registry(registry()).await;
    let out = engine
        .run(
            "[params]\nthreshold = 0.5\n[tasks.score]\ntype = \"acme.score\"\nconfig = { model = \"churn\", threshold = \"{{ params.threshold }}\" }\n[tasks.gate]\ntype = \"acme.gate\"\ndepends_on = [\"score\"]\n",
        )
        .await;
    assert_eq!(out.state_of("gate"), TaskState::Success);
    let gate = engine
        .store
        .output(out.run_id, "gate")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gate.value, serde_json::json!("churn may ship"));
}

#[test]
fn its_config_is_checked_against_its_type_when_the_dag_loads() {
    let err = parse_dag(
        std::path::Path::new("dags/acme.toml"),
        "[tasks.score]\ntype = \"acme.score\"\nconfig = { model = \"churn\", threshold = \"high\" }\n",
        &registry(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tasks.score.config.threshold"), "{err}");
    assert!(err.contains("does not fit task type `acme.score`"), "{err}");

    let err = parse_dag(
        std::path::Path::new("dags/acme.toml"),
        "[tasks.score]\ntype = \"acme.score\"\nconfig = { model = \"churn\" }\n",
        &registry(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing field `threshold`"), "{err}");
}

/// Logs through `tracing`, as library code does.
struct Chatty;

#[async_trait]
impl Task for Chatty {
    type Config = serde::de::IgnoredAny;
    type Output = ();

    async fn run(&self, _ctx: &TaskContext, _: serde::de::IgnoredAny) -> Result<(), TaskError> {
        tracing::info!(rows = 42, "loaded the training set");
        tracing::warn!("feature drift above 10%");
        Ok(())
    }
}

#[tokio::test]
async fn tracing_events_inside_a_task_go_to_its_attempt_log() {
    use tracing_subscriber::layer::SubscriberExt;
    // Once per test binary; other tests may have installed it already.
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(vigil::task::CaptureLayer),
    );
    let engine = Engine::with_registry(vigil::tasks::builtin().with("acme.chatty", Chatty)).await;
    let out = engine.run("[tasks.talk]\ntype = \"acme.chatty\"\n").await;
    assert_eq!(out.state_of("talk"), TaskState::Success);
    let logs = engine
        .store
        .logs(out.run_id, "talk", Some(1), None)
        .await
        .unwrap();
    let lines: Vec<(String, String)> = logs
        .iter()
        .map(|l| (l.line.level.as_str().to_string(), l.line.message.clone()))
        .collect();
    assert!(
        lines.contains(&("info".into(), "loaded the training set rows=42".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("warn".into(), "feature drift above 10%".into())),
        "{lines:?}"
    );
}

/// CPU work through the helper for task authors: progress lines reach the log, and a timeout
/// stops the work thread itself, not only the attempt.
struct Crunch {
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Deserialize)]
struct CrunchConfig {
    /// 0: until stopped.
    steps: u32,
}

#[async_trait]
impl Task for Crunch {
    type Config = CrunchConfig;
    type Output = u32;

    async fn run(&self, ctx: &TaskContext, c: CrunchConfig) -> Result<u32, TaskError> {
        let stopped = self.stopped.clone();
        ctx.run_blocking(move |work| {
            let mut done = 0;
            while (c.steps == 0 || done < c.steps) && !work.stopped() {
                done += 1;
                work.info(format!("step {done}"));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            stopped.store(work.stopped(), std::sync::atomic::Ordering::SeqCst);
            done
        })
        .await
    }
}

#[tokio::test]
async fn blocking_work_logs_progress_and_stops_with_its_attempt() {
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut registry = vigil::tasks::builtin();
    registry.register(
        "acme.crunch",
        Crunch {
            stopped: stopped.clone(),
        },
    );
    let engine = Engine::with_registry(registry).await;
    let out = engine
        .run("[tasks.c]\ntype = \"acme.crunch\"\nconfig = { steps = 3 }\n")
        .await;
    assert_eq!(out.state_of("c"), TaskState::Success);
    let logs = engine
        .store
        .logs(out.run_id, "c", None, None)
        .await
        .unwrap();
    let lines: Vec<&str> = logs.iter().map(|l| l.line.message.as_str()).collect();
    assert!(lines.contains(&"step 3"), "{lines:?}");
    assert!(!stopped.load(std::sync::atomic::Ordering::SeqCst));

    let out = engine
        .run("[tasks.c]\ntype = \"acme.crunch\"\ntimeout = \"300ms\"\nconfig = { steps = 0 }\n")
        .await;
    assert_eq!(out.state_of("c"), TaskState::Failed);
    // The thread saw the cancellation and ended on its own.
    crate::util::wait_for("the work thread to stop", || {
        stopped.load(std::sync::atomic::Ordering::SeqCst)
    });
}
