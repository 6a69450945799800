//! The executor against a real SQLite file: trigger rules with skip and upstream_failed
//! propagation, retries and backoff, timeouts, panics, results through templates, limits, and
//! resuming a half-done run.

use serde_json::json;
use vigil::state::{RunState, TaskState};
use vigil::store::{Batch, TaskTransition};

use crate::util::Engine;

const OK: &str = "type = \"noop\"";
const BAD: &str = "type = \"fail\"\nconfig = { fatal = true }";
const SKIP: &str = "type = \"command\"\nconfig = { command = [\"sh\", \"-c\", \"exit 99\"] }";

/// Two upstream tasks `u1`, `u2` of the given kinds, and `t` with `rule` downstream of both.
fn two_upstream(u1: &str, u2: &str, rule: &str) -> String {
    format!(
        "[tasks.u1]\n{u1}\n[tasks.u2]\n{u2}\n[tasks.t]\ntype = \"noop\"\ndepends_on = [\"u1\", \"u2\"]\ntrigger_rule = \"{rule}\"\n"
    )
}

#[tokio::test]
async fn every_trigger_rule_decides_as_airflow_does() {
    use TaskState::*;
    let engine = Engine::new().await;
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, TaskState)] = &[
        ("all_success", OK, OK, Success), ("all_success", OK, BAD, UpstreamFailed),
        ("all_success", OK, SKIP, Skipped),
        ("all_failed", BAD, BAD, Success), ("all_failed", BAD, OK, Skipped),
        ("all_done", BAD, SKIP, Success),
        ("one_success", OK, BAD, Success), ("one_success", BAD, BAD, UpstreamFailed),
        ("one_success", SKIP, SKIP, Skipped),
        ("one_failed", OK, BAD, Success), ("one_failed", OK, OK, Skipped),
        ("none_failed", OK, SKIP, Success), ("none_failed", OK, BAD, UpstreamFailed),
        ("none_failed_min_one_success", OK, SKIP, Success),
        ("none_failed_min_one_success", SKIP, SKIP, Skipped),
        ("none_failed_min_one_success", BAD, OK, UpstreamFailed),
        ("none_skipped", OK, BAD, Success), ("none_skipped", OK, SKIP, Skipped),
        ("always", BAD, BAD, Success),
    ];
    for (rule, u1, u2, expected) in table {
        let out = engine.run(&two_upstream(u1, u2, rule)).await;
        assert_eq!(
            out.state_of("t"),
            *expected,
            "{rule} after ({u1}) and ({u2})"
        );
    }
}

#[tokio::test]
async fn failure_and_skip_propagate_down_chains_and_decide_the_run_by_its_leaves() {
    let engine = Engine::new().await;
    let out = engine
        .run(&format!(
            "[tasks.a]\n{BAD}\n[tasks.b]\n{OK}\ndepends_on = [\"a\"]\n[tasks.c]\n{OK}\ndepends_on = [\"b\"]\n[tasks.cleanup]\n{OK}\ndepends_on = [\"c\"]\ntrigger_rule = \"all_done\"\n"
        ))
        .await;
    assert_eq!(out.state_of("a"), TaskState::Failed);
    assert_eq!(out.state_of("b"), TaskState::UpstreamFailed);
    assert_eq!(out.state_of("c"), TaskState::UpstreamFailed);
    assert_eq!(out.state_of("cleanup"), TaskState::Success);
    // The only leaf succeeded, so the run succeeded (Airflow's rule).
    assert_eq!(out.state, RunState::Success);

    let out = engine
        .run(&format!(
            "[tasks.a]\n{SKIP}\n[tasks.b]\n{OK}\ndepends_on = [\"a\"]\n[tasks.c]\n{OK}\ndepends_on = [\"b\"]\n[tasks.d]\n{BAD}\n"
        ))
        .await;
    assert_eq!(out.state_of("b"), TaskState::Skipped);
    assert_eq!(out.state_of("c"), TaskState::Skipped);
    // A failed leaf fails the run.
    assert_eq!(out.state, RunState::Failed);
}

#[tokio::test]
async fn retries_back_off_exponentially_and_a_later_attempt_can_succeed() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            "[tasks.flaky]\ntype = \"fail\"\nconfig = { attempts = 2 }\nretries = 3\nretry_delay = \"150ms\"\nretry_backoff = \"exponential\"\n",
        )
        .await;
    let t = out.task("flaky");
    assert_eq!(t.state, TaskState::Success);
    assert_eq!(t.attempt, 3);
    assert_eq!(t.max_attempts, 4);
    assert_eq!(out.state, RunState::Success);
    let logs = engine
        .store
        .logs(out.run_id, "flaky", None, None)
        .await
        .unwrap();
    let first_of = |a: u32| logs.iter().find(|l| l.attempt == a).unwrap().line.ts;
    let gap1 = (first_of(2) - first_of(1)).num_milliseconds();
    let gap2 = (first_of(3) - first_of(2)).num_milliseconds();
    assert!(
        gap1 >= 150,
        "first retry after {gap1} ms, expected at least 150"
    );
    assert!(
        gap2 >= 300,
        "second retry after {gap2} ms, expected at least 300 (doubled)"
    );
}

#[tokio::test]
async fn retries_run_out_and_fatal_errors_skip_them() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            "[tasks.always_bad]\ntype = \"fail\"\nretries = 2\nretry_delay = \"10ms\"\n[tasks.fatal]\ntype = \"fail\"\nconfig = { fatal = true, message = \"bad input\" }\nretries = 5\n",
        )
        .await;
    let t = out.task("always_bad");
    assert_eq!((t.state, t.attempt), (TaskState::Failed, 3));
    let f = out.task("fatal");
    assert_eq!((f.state, f.attempt), (TaskState::Failed, 1));
    assert_eq!(f.error.as_deref(), Some("bad input"));
}

#[tokio::test]
async fn a_timeout_cancels_the_attempt() {
    let engine = Engine::new().await;
    let out = engine
        .run("[tasks.slow]\ntype = \"sleep\"\nconfig = { duration = \"30s\" }\ntimeout = \"200ms\"\nretries = 1\nretry_delay = \"0s\"\n")
        .await;
    let t = out.task("slow");
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.attempt, 2, "the timed-out attempt is retried");
    assert!(
        t.error
            .as_deref()
            .unwrap()
            .contains("timed out after 200ms"),
        "{t:?}"
    );
    let took = (t.ended_at.unwrap() - t.started_at.unwrap()).num_milliseconds();
    assert!(took < 30_000, "the sleep was not cut short: {took} ms");
}

#[tokio::test]
async fn a_panic_fails_only_its_own_attempt() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            "[tasks.boom]\ntype = \"fail\"\nconfig = { panic = true, message = \"kaboom\" }\nretries = 1\nretry_delay = \"0s\"\n[tasks.fine]\ntype = \"sleep\"\nconfig = { duration = \"50ms\" }\n[tasks.after]\ntype = \"noop\"\ndepends_on = [\"fine\"]\n",
        )
        .await;
    let boom = out.task("boom");
    assert_eq!((boom.state, boom.attempt), (TaskState::Failed, 2));
    assert!(
        boom.error
            .as_deref()
            .unwrap()
            .contains("task panicked: kaboom"),
        "{boom:?}"
    );
    assert_eq!(out.state_of("fine"), TaskState::Success);
    assert_eq!(out.state_of("after"), TaskState::Success);
}

#[tokio::test]
async fn results_flow_through_templates_keeping_their_types() {
    let engine = Engine::new().await;
    let src = r#"
[params]
threshold = 5.5
model = "churn"
[tasks.produce]
type = "noop"
config = { output = { rows = 42, ok = true, tags = ["a", "b"] } }
[tasks.consume]
type = "noop"
depends_on = ["produce"]
[tasks.consume.config.output]
whole = "{{ tasks.produce.output }}"
rows_doubled = "{{ tasks.produce.output.rows * 2 }}"
ok = "{{ tasks.produce.output.ok }}"
threshold = "{{ params.threshold }}"
text = "{{ params.model }} has {{ tasks.produce.output.rows }} rows"
state = "{{ tasks.produce.state }}"
"#;
    let dag = engine.dag(src);
    let run = engine.create(&dag, json!({"threshold": 7})).await;
    let state = engine
        .executor(4)
        .execute(dag, run.clone(), None)
        .await
        .unwrap();
    assert_eq!(state, RunState::Success);
    let out = engine
        .store
        .output(run.id, "consume")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.value,
        json!({
            "whole": {"rows": 42, "ok": true, "tags": ["a", "b"]},
            "rows_doubled": 84,
            "ok": true,
            "threshold": 7,
            "text": "churn has 42 rows",
            "state": "success",
        })
    );
}

#[tokio::test]
async fn a_template_that_fails_at_run_time_fails_the_task_with_its_key() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            "[tasks.a]\ntype = \"noop\"\nconfig = { output = { n = 1 } }\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\nretries = 3\nconfig = { output = \"{{ tasks.a.output.missing }}\" }\n",
        )
        .await;
    let b = out.task("b");
    assert_eq!(b.state, TaskState::Failed);
    assert_eq!(b.attempt, 1, "a template error is not retried");
    let err = b.error.as_deref().unwrap();
    assert!(
        err.contains("config.output") && err.contains("undefined"),
        "{err}"
    );
}

#[tokio::test]
async fn max_active_tasks_bounds_concurrency() {
    let engine = Engine::new().await;
    let mut src = String::from("max_active_tasks = 2\n");
    for i in 0..6 {
        src.push_str(&format!(
            "[tasks.s{i}]\ntype = \"sleep\"\nconfig = {{ duration = \"100ms\" }}\n"
        ));
    }
    let out = engine.run(&src).await;
    assert_eq!(out.state, RunState::Success);
    let spans: Vec<_> = out
        .tasks
        .values()
        .map(|t| (t.started_at.unwrap(), t.ended_at.unwrap()))
        .collect();
    let max_overlap = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap();
    assert!(max_overlap <= 2, "{max_overlap} tasks ran at once");
    assert!(max_overlap >= 2, "tasks did not run concurrently at all");
}

#[tokio::test]
async fn a_run_interrupted_mid_attempt_resumes_and_retries_that_attempt() {
    let engine = Engine::new().await;
    let dag = engine.dag(
        "[tasks.a]\ntype = \"noop\"\nretries = 1\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\n[tasks.solo]\ntype = \"noop\"\n",
    );
    let run = engine.create(&dag, json!({})).await;
    // Simulate a process that marked `a` and `solo` running, then died.
    let mut batch = Batch::new(run.id);
    for (id, _) in [("a", ()), ("solo", ())] {
        let mut ti = engine
            .store
            .task_instances(run.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.task_id == id)
            .unwrap();
        ti.state = TaskState::Running;
        ti.attempt = 1;
        ti.started_at = Some(chrono::Utc::now());
        batch.tasks.push(TaskTransition {
            expect_state: TaskState::Scheduled,
            expect_attempt: 0,
            to: ti,
            output: None,
            logs: vec![],
            logs_attempt: 1,
            logs_from: 0,
        });
    }
    engine.store.commit(&batch).await.unwrap();

    let state = engine
        .executor(4)
        .execute(dag, run.clone(), None)
        .await
        .unwrap();
    let out = engine.outcome(run.id, state).await;
    // `a` had a retry left: attempt 2 ran and succeeded. `solo` had none: failed, saying why.
    assert_eq!(
        (out.state_of("a"), out.task("a").attempt),
        (TaskState::Success, 2)
    );
    assert_eq!(out.state_of("b"), TaskState::Success);
    let solo = out.task("solo");
    assert_eq!(solo.state, TaskState::Failed);
    assert!(
        solo.error
            .as_deref()
            .unwrap()
            .contains("process running it stopped"),
        "{solo:?}"
    );
    assert_eq!(out.state, RunState::Failed);
}
