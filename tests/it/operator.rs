//! What an operator does when a run went wrong, through the real binary: clear and re-run
//! (with and without a daemon running), rerun a whole run, delete a finished run.

use serde_json::Value;

use crate::util::{Project, alive, wait_for};

/// `b` fails until the file `ok` exists in the project; `c` comes after it.
fn flaky(p: &Project) {
    let ok = p.path().join("ok");
    p.write(
        "dags/flaky.toml",
        &format!(
            r#"
[tasks.a]
type = "noop"
config = {{ output = "a-result" }}
[tasks.b]
type = "command"
depends_on = ["a"]
config = {{ command = ["sh", "-c", "echo trying >&2; test -f '{}' || exit 1; echo '{{\"b\": 1}}'"] }}
[tasks.c]
type = "noop"
depends_on = ["b"]
"#,
            ok.display()
        ),
    );
}

fn task<'a>(shown: &'a Value, id: &str) -> &'a Value {
    shown["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == id)
        .unwrap()
}

#[test]
fn clearing_a_failed_task_and_its_downstream_reruns_exactly_those_and_keeps_history() {
    let p = Project::new();
    flaky(&p);
    p.vigil(&["dags", "test", "flaky"]).expect(1);
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    assert_eq!(shown["run"]["state"], "failed");
    assert_eq!(task(&shown, "c")["state"], "upstream_failed");

    // Refusals first: an unknown task, nothing failed to clear, a run not finished.
    // Why it failed is the end of the command's stderr, shown with the task.
    let text = p.vigil(&["runs", "show", "1"]).expect(0).stdout();
    assert!(text.contains("… trying"), "{text}");
    let err = p.vigil(&["tasks", "clear", "1", "bb"]).expect(1).stderr();
    assert!(
        err.contains("run 1 has no task `bb`; its tasks: a, b, c"),
        "{err}"
    );

    // No daemon: the run is queued and says so.
    std::fs::write(p.path().join("ok"), "").unwrap();
    let out = p
        .vigil(&["tasks", "clear", "1", "b", "--downstream"])
        .expect(0)
        .stdout();
    assert!(
        out.contains("cleared 2 task(s) of run 1 (failed before): b, c"),
        "{out}"
    );
    assert!(out.contains("no daemon is running"), "{out}");
    let err = p.vigil(&["tasks", "clear", "1", "b"]).expect(1).stderr();
    assert!(
        err.contains("run 1 is queued; wait for it to finish"),
        "{err}"
    );
    let err = p.vigil(&["runs", "delete", "1"]).expect(1).stderr();
    assert!(err.contains("run 1 is queued"), "{err}");

    let d = p.daemon(&[]);
    wait_for("the cleared run to finish", || {
        p.vigil(&["runs", "show", "1", "--json"]).json()["run"]["state"] == "success"
    });
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    // `a` was not cleared: still its first attempt; `b` ran a second one, `c` its first.
    let attempts: Vec<(String, u64)> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let t = task(&shown, id);
            (
                t["state"].as_str().unwrap().to_string(),
                t["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("success".to_string(), 1),
            ("success".to_string(), 2),
            ("success".to_string(), 1)
        ]
    );
    let logs = p.vigil(&["tasks", "logs", "1", "b"]).expect(0).stdout();
    assert!(
        logs.contains("--- attempt 1 ---") && logs.contains("--- attempt 2 ---"),
        "both attempts' logs are kept:\n{logs}"
    );
    assert_eq!(
        p.vigil(&["tasks", "xcom", "1", "a"])
            .expect(0)
            .stdout()
            .trim(),
        "\"a-result\""
    );
    assert_eq!(
        p.vigil(&["tasks", "xcom", "1", "b"]).expect(0).json(),
        serde_json::json!({"b": 1})
    );

    // A whole run again, with the daemon woken at once; every task gets a new attempt and
    // the earlier results stay in history.
    let out = p.vigil(&["runs", "rerun", "1"]).expect(0).stdout();
    assert!(
        out.contains("cleared 3 task(s) of run 1 (success before): a, b, c"),
        "{out}"
    );
    assert!(out.contains("the daemon (pid"), "{out}");
    wait_for("the rerun to finish", || {
        p.vigil(&["runs", "show", "1", "--json"]).json()["run"]["state"] == "success"
    });
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    assert_eq!(task(&shown, "b")["attempt"], 3);
    let earlier = p
        .vigil(&["tasks", "xcom", "1", "b", "--attempt", "2", "--json"])
        .expect(0)
        .json();
    assert_eq!(earlier["value"], serde_json::json!({"b": 1}));
    let err = p
        .vigil(&["runs", "rerun", "1", "--failed-only"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("nothing to clear in run 1 (no task failed)"),
        "{err}"
    );
    assert_eq!(d.terminate(), 0);

    let out = p.vigil(&["runs", "delete", "1"]).expect(0).stdout();
    assert!(out.contains("deleted run 1 (success)"), "{out}");
    let err = p.vigil(&["runs", "show", "1"]).expect(1).stderr();
    assert!(err.contains("no run 1"), "{err}");
}

#[test]
fn marking_a_task_decides_its_downstream_again_and_marking_a_run_ends_it_with_a_note() {
    let p = Project::new();
    flaky(&p);
    p.vigil(&["dags", "test", "flaky"]).expect(1);
    let err = p
        .vigil(&["tasks", "mark", "1", "b", "running"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("success, failed or skipped, not running"),
        "{err}"
    );

    let out = p
        .vigil(&[
            "tasks",
            "mark",
            "1",
            "b",
            "success",
            "--reason",
            "loaded by hand",
        ])
        .expect(0)
        .stdout();
    assert!(out.contains("marked: b"), "{out}");
    assert!(
        out.contains("to be decided again by their trigger rules: c"),
        "{out}"
    );
    assert!(out.contains("run 1 is queued"), "{out}");
    let d = p.daemon(&[]);
    wait_for("the run to finish", || {
        p.vigil(&["runs", "show", "1", "--json"]).json()["run"]["state"] == "success"
    });
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    let b = task(&shown, "b");
    assert_eq!(
        (b["state"].as_str(), b["attempt"].as_u64()),
        (Some("success"), Some(1))
    );
    let note = b["note"].as_str().unwrap();
    assert!(
        note.starts_with("marked success by hand (") && note.ends_with("): loaded by hand"),
        "{note}"
    );
    assert_eq!(task(&shown, "c")["state"], "success");
    assert_eq!(d.terminate(), 0);

    // A queued run nobody started: marking it failed ends it, its tasks skipped.
    p.vigil(&["dags", "trigger", "flaky"]).expect(0);
    let err = p
        .vigil(&["tasks", "mark", "2", "a", "success"])
        .expect(1)
        .stderr();
    assert!(err.contains("run 2 is queued"), "{err}");
    let out = p
        .vigil(&[
            "runs",
            "mark",
            "2",
            "failed",
            "--reason",
            "not needed today",
        ])
        .expect(0)
        .stdout();
    assert!(out.contains("run 2 is failed"), "{out}");
    let shown = p.vigil(&["runs", "show", "2", "--json"]).expect(0).json();
    assert_eq!(shown["run"]["state"], "failed");
    assert!(
        shown["run"]["note"]
            .as_str()
            .unwrap()
            .ends_with("not needed today"),
        "{shown}"
    );
    for id in ["a", "b", "c"] {
        assert_eq!(task(&shown, id)["state"], "skipped");
    }
    let text = p.vigil(&["runs", "show", "2"]).expect(0).stdout();
    assert!(
        text.contains("note         marked failed by hand"),
        "{text}"
    );
}

/// `args` followed by `more`.
fn with<'a>(args: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    [args, more].concat()
}

const HOURLY: &str = "schedule = \"@hourly\"\nmax_active_runs = 2\n[tasks.a]\ntype = \"sleep\"\nconfig = { duration = \"150ms\" }\n";

#[test]
fn backfill_makes_one_run_per_tick_and_runs_them_here_within_max_active_runs() {
    let p = Project::new();
    p.write("dags/hourly.toml", HOURLY);
    let range = [
        "--start",
        "2026-01-01T00:00:00Z",
        "--end",
        "2026-01-01T05:00:00Z",
    ];
    let dry = p
        .vigil(&with(
            &["dags", "backfill", "hourly", "--dry-run", "--json"],
            &range,
        ))
        .expect(0)
        .json();
    assert_eq!(dry["ticks"].as_array().unwrap().len(), 6);
    assert!(
        dry["ticks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action"] == "create")
    );
    assert!(p.runs().is_empty(), "a dry run creates nothing");

    let done = p
        .vigil(&with(&["dags", "backfill", "hourly", "--json"], &range))
        .expect(0)
        .json();
    assert_eq!(done["executed_by"], "foreground");
    let mut runs = p.runs();
    runs.sort_by_key(|r| r["id"].as_i64());
    let dates: Vec<&str> = runs
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates.len(), 6);
    for (h, (run, date)) in runs.iter().zip(&dates).enumerate() {
        assert!(
            date.starts_with(&format!("2026-01-01T0{h}:00:00")),
            "{date}"
        );
        assert_eq!(run["state"], "success");
        assert_eq!(run["run_type"], "scheduled");
    }
    assert!(
        runs[1]["data_interval_start"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-01T00:00:00")
    );
    // Never more than max_active_runs (2) at once.
    let spans: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["started_at"].as_str().unwrap().into(),
                r["ended_at"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (s, _) in &spans {
        let overlapping = spans.iter().filter(|(a, b)| a <= s && s < b).count();
        assert!(overlapping <= 2, "{overlapping} runs at once");
    }
    // Again: every tick has its run already.
    let again = p
        .vigil(&with(&["dags", "backfill", "hourly", "--json"], &range))
        .expect(0)
        .json();
    assert!(
        again["ticks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action"] == "skip")
    );
    assert_eq!(p.runs().len(), 6);

    let err = p
        .vigil(&[
            "dags",
            "backfill",
            "hourly",
            "--start",
            "2026-02-01",
            "--end",
            "2026-01-01",
        ])
        .expect(1)
        .stderr();
    assert!(err.contains("--end is before --start"), "{err}");
    let err = p
        .vigil(&[
            "dags",
            "backfill",
            "hourly",
            "--start",
            "2000-01-01",
            "--end",
            "2026-01-01",
        ])
        .expect(1)
        .stderr();
    assert!(err.contains("more than 10000 ticks"), "{err}");
}

#[test]
fn a_running_daemon_executes_a_backfill_and_failed_runs_can_be_run_again() {
    let p = Project::new();
    flaky(&p);
    let src = std::fs::read_to_string(p.path().join("dags/flaky.toml")).unwrap();
    p.write(
        "dags/flaky.toml",
        &format!("schedule = \"0 0 * * *\"\n{src}"),
    );
    let d = p.daemon(&[]);
    let range = ["--start", "2026-03-01", "--end", "2026-03-03"];
    let out = p
        .vigil(&with(&["dags", "backfill", "flaky"], &range))
        .expect(0)
        .stdout();
    assert!(
        out.contains("3 tick(s) of flaky; run by: daemon (pid"),
        "{out}"
    );
    wait_for("the daemon to run the backfill", || {
        let runs = p.runs();
        runs.len() == 3 && runs.iter().all(|r| r["state"] == "failed")
    });
    std::fs::write(p.path().join("ok"), "").unwrap();
    let again = p
        .vigil(&with(
            &["dags", "backfill", "flaky", "--rerun-failed", "--json"],
            &range,
        ))
        .expect(0)
        .json();
    assert!(
        again["ticks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action"] == "rerun")
    );
    wait_for("the failed runs to run again", || {
        let runs = p.runs();
        runs.len() == 3 && runs.iter().all(|r| r["state"] == "success")
    });
    assert_eq!(d.terminate(), 0);
}

#[test]
fn cancel_kills_the_running_attempt_and_nothing_downstream_starts() {
    let p = Project::new();
    let pid_file = p.path().join("child.pid");
    p.write(
        "dags/slow.toml",
        &format!(
            r#"
[tasks.slow]
type = "command"
config = {{ command = ["sh", "-c", "sleep 300 & echo $! > '{}'; wait"] }}
[tasks.after]
type = "noop"
depends_on = ["slow"]
"#,
            pid_file.display()
        ),
    );
    // Without a daemon, a queued run is cancelled at once.
    p.vigil(&["dags", "trigger", "slow"]).expect(0);
    let out = p.vigil(&["runs", "cancel", "1"]).expect(0).stdout();
    assert!(
        out.contains("run 1 (queued) is cancelled: it ended failed"),
        "{out}"
    );
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    assert_eq!(shown["run"]["state"], "failed");
    assert!(
        shown["run"]["note"]
            .as_str()
            .unwrap()
            .starts_with("cancelled: by hand (")
    );
    assert_eq!(task(&shown, "slow")["state"], "skipped");
    let err = p.vigil(&["runs", "cancel", "1"]).expect(1).stderr();
    assert!(
        err.contains("run 1 already ended failed; there is nothing to cancel"),
        "{err}"
    );

    // Under a daemon: the running attempt's process group is killed, `after` never starts.
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "slow"]).expect(0);
    wait_for("the slow task's child to start", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(child));
    let out = p.vigil(&["runs", "cancel", "2"]).expect(0).stdout();
    assert!(out.contains("run 2 (running): the daemon (pid"), "{out}");
    wait_for("the run to end", || {
        p.vigil(&["runs", "show", "2", "--json"]).json()["run"]["state"] == "failed"
    });
    let shown = p.vigil(&["runs", "show", "2", "--json"]).expect(0).json();
    let slow = task(&shown, "slow");
    assert_eq!(slow["state"], "failed");
    assert!(
        slow["error"]
            .as_str()
            .unwrap()
            .starts_with("cancelled: by hand"),
        "{slow}"
    );
    assert_eq!(task(&shown, "after")["state"], "skipped");
    wait_for("the attempt's child process to be gone", || !alive(child));
    // The daemon carries on with other work.
    p.vigil(&["dags", "trigger", "slow", "--logical-date", "2026-01-01"])
        .expect(0);
    wait_for("the next run to start", || {
        p.vigil(&["runs", "show", "3", "--json"]).json()["run"]["state"] == "running"
    });
    p.vigil(&["runs", "cancel", "3"]).expect(0);
    wait_for("the third run to end", || {
        p.vigil(&["runs", "show", "3", "--json"]).json()["run"]["state"] == "failed"
    });
    assert_eq!(d.terminate(), 0);
}
