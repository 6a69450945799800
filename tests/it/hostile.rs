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
        err.contains("big.toml") && err.contains("larger than 1 MiB"),
        "{err}"
    );
    p.vigil(&["dags", "test", "good"]).expect(0);
}

/// Runs `vigil ARGS` in `p` and returns its exit code and its peak resident memory in KiB,
/// read from its own `VmHWM` while it runs. (Not from wait4: Linux carries the resident size
/// of the forked copy of this large test process across exec into the child's maximum.)
fn vigil_with_peak_rss(p: &Project, args: &[&str]) -> (i32, i64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(p.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // VmHWM only grows, so the last reading before the exit is the peak.
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        }) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A task that prints 60 MB to stderr and one that prints 60 MB as its result: both are
/// read as they come and kept within their budgets, so vigil's memory stays flat and the
/// database small; the oversized result fails its attempt with a clear error.
#[test]
fn floods_of_output_are_capped_and_memory_stays_flat() {
    let p = Project::new();
    p.write(
        "dags/flood.toml",
        r#"[tasks.noisy]
type = "command"
[tasks.noisy.config]
shell = true
command = "yes 'a line of log text that goes on and on' | head -c 60000000 >&2; echo '{\"ok\": true}'"
[tasks.huge]
type = "command"
[tasks.huge.config]
shell = true
command = "printf '\"'; yes x | tr -d '\\n' | head -c 60000000; printf '\"'"
"#,
    );
    p.write("config/vigil.toml", "[executor]\nmax_log_bytes = 1048576\n");
    let (code, peak) = vigil_with_peak_rss(&p, &["dags", "test", "flood"]);
    assert_eq!(code, 1);
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    let huge = shown["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == "huge")
        .unwrap();
    let error = huge["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("was 60000002 bytes, more than the 1024 KiB a result may be"),
        "{error}"
    );
    // The noisy task succeeded with its result; its log was cut with a note.
    let result: serde_json::Value =
        serde_json::from_str(&p.vigil(&["tasks", "xcom", "1", "noisy"]).expect(0).stdout())
            .unwrap();
    assert_eq!(result, serde_json::json!({"ok": true}));
    let logs = p.vigil(&["tasks", "logs", "1", "noisy"]).expect(0).stdout();
    assert!(
        logs.contains("were dropped: an attempt keeps at most 1024 KiB of log"),
        "{}",
        &logs[logs.len().saturating_sub(500)..]
    );
    assert!(logs.len() < 3 << 20, "log shown: {} bytes", logs.len());
    let db = std::fs::metadata(p.path().join("vigil.db")).unwrap().len()
        + std::fs::metadata(p.path().join("vigil.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    assert!(db < 20 << 20, "database grew to {db} bytes");
    assert!(
        peak < 120 * 1024,
        "vigil peaked at {peak} KiB while tasks printed 120 MB"
    );
    eprintln!("peak resident memory of vigil: {peak} KiB");
}

#[test]
fn zero_intervals_and_overflowing_durations_are_refused_with_the_key() {
    let p = Project::new();
    p.write("dags/good.toml", GOOD);
    p.write("config/vigil.toml", "[daemon]\nlease = \"0s\"\n");
    let err = p.vigil(&["dags", "list"]).expect(1).stderr();
    assert!(
        err.contains("lease") && err.contains("more than zero"),
        "{err}"
    );
    p.write("config/vigil.toml", "[retention]\nmax_age = \"300000y\"\n");
    let err = p.vigil(&["dags", "list"]).expect(1).stderr();
    assert!(
        err.contains("max_age") && err.contains("longer than 100 years"),
        "{err}"
    );
    std::fs::remove_file(p.path().join("config/vigil.toml")).unwrap();
    let err = p
        .vigil(&["db", "cleanup", "--older-than", "300000y"])
        .expect(2)
        .stderr();
    assert!(err.contains("longer than 100 years"), "{err}");
    p.write(
        "dags/slow.toml",
        "[tasks.a]\ntype = \"noop\"\ntimeout = \"300000y\"\n",
    );
    let run = p.vigil(&["dags", "validate"]).expect(1);
    let out = run.stdout();
    assert!(
        out.contains("slow.toml")
            && out.contains("tasks.a.timeout")
            && out.contains("longer than 100 years"),
        "{out}"
    );
}
