//! Hostile input through the real binary: a DAG file or a trigger built to freeze or crash
//! vigil fails on its own, with a clear error, and everything else goes on.

use crate::util::{Project, wait_for};

/// Nested loops of 10^10 steps: the defect made `dags validate` hang and froze the daemon.
const CPU_BOMB: &str = "[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{% for i in 'x' * 100000 %}{% for j in 'x' * 100000 %}{% endfor %}{% endfor %}\" }\n";

/// A render of about 10 GB of text.
const MEMORY_BOMB: &str = "[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{% for i in range(100) %}{{ 'x' * 100000000 }}{% endfor %}\" }\n";

const GOOD: &str = "[tasks.a]\ntype = \"noop\"\nconfig = { output = 1 }\n";

#[test]
fn bomb_files_fail_validation_with_their_file_task_and_key_and_the_rest_load() {
    let p = Project::new();
    p.write("dags/cpu.toml", CPU_BOMB);
    p.write("dags/memory.toml", MEMORY_BOMB);
    p.write("dags/good.toml", GOOD);
    let run = p.vigil(&["dags", "validate"]).expect(1);
    let err = run.stdout() + &run.stderr();
    assert!(err.contains("cpu.toml"), "{err}");
    assert!(err.contains("steps, the budget of one template"), "{err}");
    assert!(err.contains("memory.toml"), "{err}");
    assert!(err.contains("MiB, the budget of one template"), "{err}");
    assert!(err.contains("task `a`"), "{err}");
    // The good DAG is listed and runs.
    let listed = p.vigil(&["dags", "list", "--json"]).json();
    let ids: Vec<&str> = listed["dags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert!(ids.contains(&"good"), "{listed}");
    p.vigil(&["dags", "test", "good"]).expect(0);
}

#[test]
fn a_bomb_dropped_into_a_running_daemons_folder_stops_nothing() {
    let p = Project::new();
    p.write(
        "dags/tick.toml",
        "schedule = \"* * * * * *\"\n[tasks.a]\ntype = \"noop\"\n",
    );
    let d = p.daemon(&[]);
    wait_for("a scheduled run", || !p.runs_of("tick").is_empty());
    p.write("dags/cpu.toml", CPU_BOMB);
    p.write("dags/memory.toml", MEMORY_BOMB);
    wait_for("the bombs to be reported", || {
        let logs = d.logs();
        logs.contains("steps, the budget") && logs.contains("MiB, the budget")
    });
    // Scheduling went on meanwhile and goes on after.
    let before = p.runs_of("tick").len();
    wait_for("more scheduled runs", || {
        p.runs_of("tick").len() >= before + 2
    });
    assert_eq!(d.terminate(), 0, "SIGTERM is obeyed");
}

#[test]
fn a_conf_that_turns_a_template_into_a_bomb_fails_that_attempt_only() {
    let p = Project::new();
    p.write(
        "dags/shaped.toml",
        "[params]\nn = 3\n[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{% for i in 'x' * params.n %}{% for j in 'x' * params.n %}.{% endfor %}{% endfor %}\" }\n",
    );
    p.write("dags/good.toml", GOOD);
    let d = p.daemon(&[]);
    // Harmless with its default.
    p.vigil(&["dags", "trigger", "shaped", "--wait"]).expect(0);
    assert_eq!(
        p.vigil(&["tasks", "xcom", "1", "a"])
            .expect(0)
            .stdout()
            .trim(),
        "\".........\""
    );
    // A bomb with a large n: that attempt fails with the budget named, and is not retried.
    p.vigil(&[
        "dags",
        "trigger",
        "shaped",
        "--conf",
        r#"{"n": 100000}"#,
        "--wait",
    ])
    .expect(1);
    let shown = p.vigil(&["runs", "show", "2", "--json"]).expect(0).json();
    let error = shown["tasks"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("config.output"), "{shown}");
    assert!(error.contains("steps, the budget"), "{shown}");
    // The daemon still works and stops on SIGTERM.
    p.vigil(&["dags", "trigger", "good", "--wait"]).expect(0);
    assert_eq!(d.terminate(), 0);
}

#[test]
fn conf_errors_quote_only_the_start_of_the_input_and_large_confs_are_refused() {
    let p = Project::new();
    p.write("dags/good.toml", GOOD);
    let long = format!("{{\"x\": \"{}\"", "y".repeat(5000));
    let err = p
        .vigil(&["dags", "trigger", "good", "--conf", &long])
        .expect(1)
        .stderr();
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(err.contains("more bytes"), "{err}");
    assert!(
        err.len() < 1000,
        "the input is not echoed whole: {} bytes",
        err.len()
    );
    let huge = format!("{{\"x\": \"{}\"}}", "y".repeat(100_000));
    let err = p
        .vigil(&["dags", "trigger", "good", "--conf", &huge])
        .expect(1)
        .stderr();
    assert!(err.contains("at most 64 KiB"), "{err}");
    assert!(p.runs().is_empty(), "nothing was queued");
}

#[test]
fn odd_and_oversized_toml_entries_are_reported_not_skipped_or_read() {
    let p = Project::new();
    p.write("dags/good.toml", GOOD);
    std::fs::create_dir_all(p.path().join("dags/folder.toml")).unwrap();
    let fifo = p.path().join("dags/pipe.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let big = format!("{GOOD}# {}\n", "x".repeat(2 << 20));
    p.write("dags/big.toml", &big);
    let run = p.vigil(&["dags", "validate"]).expect(1);
    let err = run.stdout() + &run.stderr();
    assert!(
        err.contains("folder.toml") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(err.contains("pipe.toml"), "{err}");
    assert!(
        err.contains("big.toml") && err.contains("larger than 1024 KiB"),
        "{err}"
    );
    p.vigil(&["dags", "test", "good"]).expect(0);
}
