//! The `command` task: JSON in on stdin, JSON out on stdout, failures with the stderr tail,
//! and the whole process group killed on timeout.

use serde_json::json;
use vigil::state::TaskState;

use crate::util::{Engine, alive};

#[tokio::test]
async fn upstream_results_and_params_arrive_on_stdin_and_stdout_json_is_the_result() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            r#"
[params]
model = "churn"
[tasks.up]
type = "noop"
config = { output = { rows = 7 } }
[tasks.echo]
type = "command"
depends_on = ["up"]
config = { command = ["cat"] }
[tasks.env]
type = "command"
depends_on = ["up"]
config = { command = ["sh", "-c", "printf '{\"task\": \"%s\", \"attempt\": %s, \"arg\": \"%s\", \"extra\": \"%s\"}' \"$VIGIL_TASK_ID\" \"$VIGIL_ATTEMPT\" \"$1\" \"$EXTRA\"", "sh", "{{ tasks.up.output.rows }}"], env = { EXTRA = "{{ params.model }}" } }
[tasks.text]
type = "command"
config = { command = ["echo", "  plain words  "], output = "text" }
"#,
        )
        .await;
    for t in ["echo", "env", "text"] {
        assert_eq!(out.state_of(t), TaskState::Success, "{:?}", out.task(t));
    }
    let echoed = engine
        .store
        .output(out.run_id, "echo")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(echoed["upstream"], json!({"up": {"rows": 7}}));
    assert_eq!(echoed["params"], json!({"model": "churn"}));
    assert_eq!(echoed["task_id"], json!("echo"));
    assert_eq!(echoed["attempt"], json!(1));
    let env = engine
        .store
        .output(out.run_id, "env")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        env,
        json!({"task": "env", "attempt": 1, "arg": "7", "extra": "churn"})
    );
    let text = engine
        .store
        .output(out.run_id, "text")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(text, json!("plain words"));
}

#[tokio::test]
async fn a_failing_exit_fails_the_attempt_with_the_stderr_tail_and_logs_it() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            "[tasks.bad]\ntype = \"command\"\nconfig = { command = [\"sh\", \"-c\", \"for i in $(seq 1 30); do echo line $i >&2; done; exit 3\"] }\n[tasks.notjson]\ntype = \"command\"\nconfig = { command = [\"echo\", \"not json\"] }\n",
        )
        .await;
    let bad = out.task("bad");
    assert_eq!(bad.state, TaskState::Failed);
    let err = bad.error.as_deref().unwrap();
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("line 30") && err.contains("line 11"), "{err}");
    assert!(!err.contains("line 10\n"), "only the last 20 lines: {err}");
    let logs = engine
        .store
        .logs(out.run_id, "bad", Some(1), None)
        .await
        .unwrap();
    assert!(logs.iter().any(|l| l.line.message == "line 1"), "{logs:?}");

    let nj = out.task("notjson");
    assert_eq!(nj.state, TaskState::Failed);
    assert!(
        nj.error.as_deref().unwrap().contains("is not JSON"),
        "{nj:?}"
    );
}

#[tokio::test]
async fn exit_code_99_skips_and_shell_mode_runs_a_command_line() {
    let engine = Engine::new().await;
    let out = engine
        .run(
            "[tasks.nothing]\ntype = \"command\"\nconfig = { command = \"exit 99\", shell = true }\n[tasks.piped]\ntype = \"command\"\nconfig = { command = \"echo '{\\\"n\\\": 1}' | cat\", shell = true }\n",
        )
        .await;
    assert_eq!(out.state_of("nothing"), TaskState::Skipped);
    assert_eq!(out.state_of("piped"), TaskState::Success);
}

#[tokio::test]
async fn a_timeout_kills_the_process_and_its_children() {
    let engine = Engine::new().await;
    let pidfile = engine.dir.path().join("pids");
    let src = format!(
        "[tasks.hang]\ntype = \"command\"\ntimeout = \"300ms\"\nconfig = {{ command = [\"sh\", \"-c\", \"sleep 60 & echo $! > {p}; echo $$ >> {p}; wait\"] }}\n",
        p = pidfile.display()
    );
    let out = engine.run(&src).await;
    let hang = out.task("hang");
    assert_eq!(hang.state, TaskState::Failed);
    assert!(
        hang.error.as_deref().unwrap().contains("timed out"),
        "{hang:?}"
    );
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    // The kill is immediate, but reaping may lag a moment.
    for _ in 0..50 {
        if pids.iter().all(|p| !alive(*p)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for p in pids {
        assert!(!alive(p), "process {p} outlived its task");
    }
}
