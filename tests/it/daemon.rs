//! `vigil daemon` as users run it: the real binary, a real SQLite file, signals and all.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, DurationRound, Utc};
use serde_json::Value;

use crate::util::{Project, wait_for};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn store_of(p: &Project) -> std::sync::Arc<dyn vigil::store::Store> {
    let url = format!("sqlite://{}", p.path().join("vigil.db").display());
    block_on(vigil::store::open(&url, vigil::store::Synchronous::Normal)).unwrap()
}

fn instant(v: &Value) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// `vigil runs show RUN --json`.
fn show(p: &Project, run: u32) -> Value {
    p.vigil(&["runs", "show", &run.to_string(), "--json"])
        .expect(0)
        .json()
}

/// Task `id` of a `runs show` document.
fn task(shown: &Value, id: &str) -> Value {
    shown["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["task_id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no task {id} in {shown}"))
}

fn state(run: &Value) -> &str {
    run["state"].as_str().unwrap_or_default()
}

const EVERY_SECOND: &str = "schedule = \"* * * * * *\"\n[tasks.a]\ntype = \"noop\"\n";

#[test]
fn a_run_triggered_from_another_process_is_picked_up_and_waited_for() {
    let p = Project::new();
    p.write(
        "dags/work.toml",
        "[params]\nn = 1\n[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{{ params.n }}\" }\n",
    );
    let d = p.daemon(&[]);
    let out = p
        .vigil(&["dags", "trigger", "work", "--conf", r#"{"n": 7}"#, "--wait"])
        .expect(0)
        .stdout();
    assert!(
        out.contains(&format!(
            "the daemon (pid {}) was told to start it",
            d.pid()
        )),
        "{out}"
    );
    assert!(out.contains("run 1 success"), "{out}");
    assert_eq!(
        p.vigil(&["tasks", "xcom", "1", "a"])
            .expect(0)
            .stdout()
            .trim(),
        "7"
    );
    // A failing run makes --wait exit 1; a bad conf queues nothing.
    p.write("dags/bad.toml", "[tasks.x]\ntype = \"fail\"\n");
    wait_for("the new file to load", || d.logs().contains("DAG added"));
    p.vigil(&["dags", "trigger", "bad", "--wait"]).expect(1);
    p.vigil(&["dags", "trigger", "work", "--conf", r#"{"m": 1}"#])
        .expect(1);
    assert_eq!(p.runs().len(), 2);
    assert_eq!(d.terminate(), 0);
}

#[test]
fn without_a_daemon_a_trigger_queues_and_says_how_to_start_one() {
    let p = Project::new();
    p.write("dags/work.toml", "[tasks.a]\ntype = \"noop\"\n");
    let out = p.vigil(&["dags", "trigger", "work"]).expect(0).stdout();
    assert!(out.contains("queued run 1 of work"), "{out}");
    assert!(out.contains("start one with `vigil daemon`"), "{out}");
    assert_eq!(state(&p.runs()[0]), "queued");
    // The daemon finds it when it starts.
    let d = p.daemon(&[]);
    wait_for("the queued run to finish", || {
        state(&p.runs()[0]) == "success"
    });
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused() {
    let p = Project::new();
    p.write("dags/work.toml", "[tasks.a]\ntype = \"noop\"\n");
    let d = p.daemon(&[]);
    let err = p.vigil(&["daemon"]).expect(1).stderr();
    assert!(err.contains("another vigil daemon owns"), "{err}");
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");
    assert_eq!(d.terminate(), 0);
    // Once it is gone, a new daemon may start.
    let again = p.daemon(&[]);
    assert_eq!(again.terminate(), 0);
}

#[test]
fn racing_processes_never_make_two_runs_for_one_logical_date() {
    let p = Project::new();
    p.write("dags/work.toml", "[tasks.a]\ntype = \"noop\"\n");
    p.vigil(&["db", "migrate"]).expect(0);
    let exe = env!("CARGO_BIN_EXE_vigil");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let dir = p.path().to_path_buf();
            std::thread::spawn(move || {
                std::process::Command::new(exe)
                    .current_dir(dir)
                    .args([
                        "dags",
                        "trigger",
                        "work",
                        "--logical-date",
                        "2026-11-22T15:00:00Z",
                    ])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one concurrent trigger wins");
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("already exists"), "{err}");
    }
    let runs = p.runs();
    assert_eq!(runs.len(), 1, "one run per logical date: {runs:?}");
}

#[test]
fn cron_ticks_make_runs_and_pause_stops_them() {
    let p = Project::new();
    p.write("dags/tick.toml", EVERY_SECOND);
    let d = p.daemon(&[]);
    wait_for("two scheduled runs", || p.runs_of("tick").len() >= 2);
    for r in p.runs_of("tick") {
        assert_eq!(r["run_type"], "scheduled");
        let ld = chrono::DateTime::parse_from_rfc3339(r["logical_date"].as_str().unwrap()).unwrap();
        assert_eq!(
            ld.timestamp_subsec_nanos(),
            0,
            "logical dates are ticks: {ld}"
        );
    }
    // That a paused DAG gets no runs, and what unpausing makes up, is the scheduler's logic:
    // `scheduling.rs` drives it with the time as input. Here: the commands reach the daemon.
    let out = p.vigil(&["dags", "pause", "tick"]).expect(0).stdout();
    assert!(out.contains("tick paused; the daemon"), "{out}");
    let list = p.vigil(&["dags", "list", "--json"]).expect(0).json();
    assert_eq!(list["dags"][0]["paused"], true);
    p.vigil(&["dags", "unpause", "tick"]).expect(0);
    let before = p.runs_of("tick").len();
    wait_for("runs to resume", || p.runs_of("tick").len() > before);
    assert_eq!(d.terminate(), 0);
}

/// Seeds the scheduler state as if the daemon had last run five hours ago.
fn five_hours_down(p: &Project, dag: &str) -> chrono::DateTime<Utc> {
    p.vigil(&["db", "migrate"]).expect(0);
    let store = store_of(p);
    let now = Utc::now();
    let last = now.duration_trunc(ChronoDuration::hours(1)).unwrap() - ChronoDuration::hours(5);
    block_on(async {
        store
            .dag_state(dag, last - ChronoDuration::days(1), false)
            .await
            .unwrap();
        store.set_last_tick(dag, last).await.unwrap();
    });
    last
}

#[test]
fn after_downtime_catchup_runs_every_missed_tick_oldest_first_within_max_active_runs() {
    let p = Project::new();
    p.write(
        "dags/hourly.toml",
        "schedule = \"@hourly\"\ncatchup = true\nmax_active_runs = 2\n[tasks.a]\ntype = \"sleep\"\nconfig = { duration = \"200ms\" }\n",
    );
    let last = five_hours_down(&p, "hourly");
    let d = p.daemon(&[]);
    wait_for("five catch-up runs to finish", || {
        let runs = p.runs_of("hourly");
        runs.len() == 5 && runs.iter().all(|r| state(r) == "success")
    });
    let mut runs = p.runs_of("hourly");
    runs.sort_by_key(|r| r["id"].as_i64());
    let dates: Vec<_> = runs.iter().map(|r| instant(&r["logical_date"])).collect();
    let expected: Vec<_> = (1..=5).map(|h| last + ChronoDuration::hours(h)).collect();
    assert_eq!(
        dates, expected,
        "one run per missed tick, created oldest first"
    );
    // Never more than max_active_runs at once.
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
    assert_eq!(d.terminate(), 0);
}

#[test]
fn dag_files_reload_when_added_changed_broken_or_removed() {
    let p = Project::new();
    p.write("dags/other.toml", "[tasks.a]\ntype = \"noop\"\n");
    let d = p.daemon(&[]);
    let ticking = |version: &str| {
        format!(
            "schedule = \"* * * * * *\"\n[tasks.a]\ntype = \"noop\"\nconfig = {{ output = \"{version}\" }}\n"
        )
    };
    // Added.
    p.write("dags/live.toml", &ticking("v1"));
    wait_for("the added DAG to run", || {
        p.runs_of("live").iter().any(|r| state(r) == "success")
    });
    // Changed: new runs use the new version.
    p.write("dags/live.toml", &ticking("v2"));
    wait_for("a run of the changed DAG", || {
        p.runs_of("live").iter().any(|r| {
            state(r) == "success"
                && p.vigil(&["tasks", "xcom", &r["id"].to_string(), "a"])
                    .stdout()
                    .contains("v2")
        })
    });
    // Broken: reported, and the last good version keeps its schedule.
    p.write(
        "dags/live.toml",
        "schedule = \"* * * * * *\"\n[tasks.a]\ntype = \"nope\"\n",
    );
    wait_for("the broken edit to be reported", || {
        d.logs().contains("keeping the last good version")
    });
    let list = p.vigil(&["dags", "list"]).expect(0);
    assert!(
        list.stderr().contains("unknown task type `nope`"),
        "{}",
        list.stderr()
    );
    let n = p.runs_of("live").len();
    wait_for("runs to continue from the last good version", || {
        p.runs_of("live").len() >= n + 2
    });
    // Removed: no more runs.
    std::fs::remove_file(p.path().join("dags/live.toml")).unwrap();
    wait_for("the removal to be noticed", || {
        d.logs().contains("DAG removed")
    });
    std::thread::sleep(Duration::from_millis(300));
    let n = p.runs_of("live").len();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(p.runs_of("live").len(), n, "a removed DAG gets no new runs");
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_daemon_killed_mid_run_is_recovered_by_the_next_one() {
    let p = Project::new();
    p.write(
        "dags/slow.toml",
        "[tasks.first]\ntype = \"noop\"\n[tasks.slow]\ntype = \"sleep\"\ndepends_on = [\"first\"]\nconfig = { duration = \"2s\" }\nretries = 1\nretry_delay = \"0s\"\n[tasks.after]\ntype = \"noop\"\ndepends_on = [\"slow\"]\n",
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "slow"]).expect(0);
    wait_for("the slow task to run", || {
        task(&show(&p, 1), "slow")["state"] == "running"
    });
    d.kill9();
    assert_eq!(show(&p, 1)["run"]["state"], "running", "nobody finished it");

    let d = p.daemon(&[]);
    wait_for("the run to finish", || state(&p.runs()[0]) == "success");
    let shown = show(&p, 1);
    assert_eq!(
        task(&shown, "first")["attempt"],
        1,
        "finished work is not redone"
    );
    assert_eq!(
        task(&shown, "slow")["attempt"],
        2,
        "the killed attempt counts, the retry ran"
    );
    assert_eq!(task(&shown, "slow")["state"], "success");
    assert_eq!(task(&shown, "after")["state"], "success");
    assert_eq!(d.terminate(), 0);

    // Without retries left, the interrupted task fails and says why.
    let p = Project::new();
    p.write(
        "dags/slow.toml",
        "[tasks.slow]\ntype = \"sleep\"\nconfig = { duration = \"5s\" }\n",
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "slow"]).expect(0);
    wait_for("the task to run", || {
        task(&show(&p, 1), "slow")["state"] == "running"
    });
    d.kill9();
    let d = p.daemon(&[]);
    wait_for("the run to fail", || state(&p.runs()[0]) == "failed");
    let t = task(&show(&p, 1), "slow");
    assert!(
        t["error"]
            .as_str()
            .unwrap()
            .contains("the process running it stopped"),
        "{t}"
    );
    assert_eq!(d.terminate(), 0);
}

#[test]
fn sigterm_lets_short_tasks_finish_and_records_long_ones_to_run_again() {
    let p = Project::new();
    p.write(
        "dags/mixed.toml",
        "[tasks.short]\ntype = \"sleep\"\nconfig = { duration = \"300ms\" }\n[tasks.long]\ntype = \"sleep\"\nconfig = { duration = \"4s\" }\n",
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "mixed"]).expect(0);
    wait_for("both tasks to run", || {
        let shown = show(&p, 1);
        task(&shown, "short")["state"] == "running" && task(&shown, "long")["state"] == "running"
    });
    assert_eq!(d.terminate(), 0, "a clean shutdown exits 0");
    let shown = show(&p, 1);
    assert_eq!(
        task(&shown, "short")["state"],
        "success",
        "finished within the grace period"
    );
    let long = task(&shown, "long");
    assert_eq!(long["state"], "up_for_retry");
    assert_eq!(
        long["max_attempts"], 2,
        "the interrupted attempt does not use up a retry"
    );
    assert!(
        long["error"]
            .as_str()
            .unwrap()
            .contains("interrupted by shutdown"),
        "{long}"
    );
    assert_eq!(shown["run"]["state"], "running");
    assert!(
        shown["run"]["owner"].is_null(),
        "released for the next daemon"
    );

    let d = p.daemon(&[]);
    wait_for("the run to finish after restart", || {
        state(&p.runs()[0]) == "success"
    });
    let long = task(&show(&p, 1), "long");
    assert_eq!(
        (long["attempt"].as_i64(), long["state"].as_str()),
        (Some(2), Some("success"))
    );
    assert_eq!(d.terminate(), 0);
}

#[test]
fn task_logs_hold_command_output_and_daemon_logs_can_be_json() {
    let p = Project::new();
    p.write(
        "dags/talk.toml",
        "[tasks.say]\ntype = \"command\"\nconfig = { command = [\"sh\", \"-c\", \"echo to-stderr >&2; echo to-stdout\"], output = \"none\" }\n",
    );
    let d = p.daemon(&["--log-format", "json"]);
    p.vigil(&["dags", "trigger", "talk", "--wait"]).expect(0);
    let logs = p.vigil(&["tasks", "logs", "1", "say"]).expect(0).stdout();
    assert!(
        logs.contains("to-stderr") && logs.contains("to-stdout"),
        "{logs}"
    );
    let log = d.logs();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{v}");
    }
    assert!(log.contains("\"daemon started\""), "{log}");
    assert_eq!(d.terminate(), 0);
}

#[test]
fn old_runs_are_removed_by_cleanup_and_by_the_daemon() {
    let p = Project::new();
    p.write(
        "dags/work.toml",
        "[tasks.a]\ntype = \"noop\"\nconfig = { output = 1 }\n",
    );
    p.vigil(&["dags", "test", "work"]).expect(0);
    p.vigil(&["dags", "test", "work"]).expect(0);
    p.vigil(&["dags", "trigger", "work"]).expect(0); // queued: never removed
    let kept = p
        .vigil(&["db", "cleanup", "--older-than", "1h", "--json"])
        .expect(0)
        .json();
    assert_eq!(kept["runs"], 0);
    std::thread::sleep(Duration::from_millis(50));
    let removed = p
        .vigil(&["db", "cleanup", "--older-than", "10ms", "--json"])
        .expect(0)
        .json();
    assert_eq!(removed["runs"], 2);
    assert_eq!(removed["task_instances"], 2);
    assert_eq!(removed["results"], 2);
    let runs = p.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(state(&runs[0]), "queued");

    // The daemon applies retention by itself.
    p.write(
        "config/vigil.toml",
        "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n[retention]\nmax_age = \"1s\"\ninterval = \"500ms\"\n",
    );
    let d = p.daemon(&[]);
    wait_for("the queued run to run and then be removed", || {
        p.runs().is_empty()
    });
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_run_in_progress_finishes_with_its_own_dag_version_and_heartbeats() {
    let p = Project::new();
    let version = |v: &str| {
        format!(
            "[tasks.wait]\ntype = \"sleep\"\nconfig = {{ duration = \"2500ms\" }}\n[tasks.stamp]\ntype = \"noop\"\ndepends_on = [\"wait\"]\nconfig = {{ output = \"{v}\" }}\n"
        )
    };
    p.write("dags/versioned.toml", &version("v1"));
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "versioned"]).expect(0);
    wait_for("the run to start", || state(&p.runs()[0]) == "running");
    let first_beat = p.runs()[0]["heartbeat_at"].as_str().map(str::to_string);
    p.write("dags/versioned.toml", &version("v2"));
    wait_for("the change to load", || d.logs().contains("DAG changed"));
    wait_for("a heartbeat", || {
        p.runs()[0]["heartbeat_at"].as_str().map(str::to_string) != first_beat
    });
    wait_for("the run to finish", || state(&p.runs()[0]) == "success");
    assert_eq!(
        p.vigil(&["tasks", "xcom", "1", "stamp"])
            .expect(0)
            .stdout()
            .trim(),
        "\"v1\""
    );
    // A new run uses the new version.
    p.vigil(&["dags", "trigger", "versioned", "--wait"])
        .expect(0);
    assert_eq!(
        p.vigil(&["tasks", "xcom", "2", "stamp"])
            .expect(0)
            .stdout()
            .trim(),
        "\"v2\""
    );
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_run_whose_dag_version_no_longer_loads_is_failed_not_left_waiting() {
    let p = Project::new();
    p.write("dags/work.toml", "[tasks.a]\ntype = \"noop\"\n");
    p.vigil(&["db", "migrate"]).expect(0);
    // A run created by a binary that had a task type this one lacks.
    let store = store_of(&p);
    let now = Utc::now();
    block_on(async {
        store
            .create_run(&vigil::store::NewRun {
                dag_id: "custom".into(),
                logical_date: now,
                data_interval_start: now,
                run_type: vigil::store::RunType::Manual,
                state: vigil::state::RunState::Queued,
                conf: serde_json::json!({}),
                dag_file: "dags/custom.toml".into(),
                dag_source: "[tasks.a]\ntype = \"acme.only_in_another_binary\"\n".into(),
                tasks: vec![("a".into(), 1)],
                max_active_tasks: 16,
                idempotency_key: None,
                owner: None,
            })
            .await
            .unwrap()
    });
    let d = p.daemon(&[]);
    wait_for("the run to be failed", || state(&p.runs()[0]) == "failed");
    assert!(d.logs().contains("no longer loads"), "{}", d.logs());
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_daemon_never_takes_over_a_live_dags_test_run() {
    let p = Project::new();
    // Longer than the test config's 3 s lease: only heartbeats keep the run its owner's.
    p.write(
        "dags/long.toml",
        "[tasks.wait]\ntype = \"sleep\"\nconfig = { duration = \"5s\" }\n",
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "test", "long"]).expect(0);
    let shown = show(&p, 1);
    assert_eq!(
        shown["tasks"][0]["attempt"], 1,
        "the task ran once: {shown}"
    );
    assert!(
        !d.logs().contains("starting run"),
        "the daemon took the run over:\n{}",
        d.logs()
    );
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_dag_that_ships_paused_waits_for_unpause() {
    let p = Project::new();
    p.write(
        "dags/quiet.toml",
        "schedule = \"* * * * * *\"\npaused = true\n[tasks.a]\ntype = \"noop\"\n",
    );
    let d = p.daemon(&[]);
    wait_for("the DAG to be seen", || {
        d.logs().contains("new DAG starts paused")
    });
    assert!(p.runs_of("quiet").is_empty(), "a paused DAG got runs");
    p.vigil(&["dags", "unpause", "quiet"]).expect(0);
    wait_for("runs after unpause", || !p.runs_of("quiet").is_empty());
    assert_eq!(d.terminate(), 0);
}

/// `trigger --wait` with no daemon says how to get one and gives a way out: a timeout (exit
/// 124) or Ctrl-C (exit 130), each saying that the run stays queued — which it does.
#[test]
fn waiting_with_no_daemon_has_a_way_out_and_the_run_stays_queued() {
    let p = Project::new();
    p.write("dags/work.toml", "[tasks.a]\ntype = \"noop\"\n");
    let out = p
        .vigil(&["dags", "trigger", "work", "--wait", "--timeout", "300ms"])
        .expect(124);
    let err = out.stderr();
    assert!(err.contains("waiting for a daemon to run it"), "{err}");
    assert!(
        err.contains("gave up waiting after 300ms; run 1 stays as it is"),
        "{err}"
    );
    assert_eq!(state(&p.runs()[0]), "queued");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(p.path())
        .args(["dags", "trigger", "work", "--wait"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("press Ctrl-C to stop waiting"), "{line}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(
        rest.contains("stopped waiting; run 2 stays as it is"),
        "{rest}"
    );
    let runs = p.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| state(r) == "queued"));
}

/// Ctrl-C with a task running says what the daemon waits for; a second Ctrl-C stops the task
/// now instead of after the grace period, and the task runs again at the next start.
#[test]
fn a_second_ctrl_c_stops_running_tasks_now_and_they_run_again_later() {
    let p = Project::new();
    p.write(
        "config/vigil.toml",
        "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"10m\"\n",
    );
    p.write(
        "dags/long.toml",
        "[tasks.wait]\ntype = \"sleep\"\nconfig = { duration = \"10m\" }\nretries = 1\nretry_delay = \"0s\"\n",
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "long"]).expect(0);
    wait_for("the task to run", || {
        task(&show(&p, 1), "wait")["state"] == "running"
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(d.pid(), libc::SIGINT) };
    wait_for("the shutdown to say what it waits for", || {
        d.logs().contains("Ctrl-C again stops them now")
    });
    unsafe { libc::kill(d.pid(), libc::SIGINT) };
    wait_for("the second Ctrl-C to be heard", || {
        d.logs()
            .contains("SIGINT again: not waiting for running tasks")
    });
    let logs = d.logs();
    assert_eq!(d.terminate(), 0, "{logs}");
    let shown = show(&p, 1);
    assert_eq!(
        state(&shown["run"]),
        "running",
        "the run resumes at the next start"
    );
    assert_eq!(task(&shown, "wait")["state"], "up_for_retry");
}

#[test]
fn vigil_daemons_lists_the_running_daemon_and_forgets_it_when_it_stops() {
    let p = Project::new();
    p.write("config/vigil.toml", "[executor]\nparallelism = 3\n[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n");
    let out = p.vigil(&["daemons"]).expect(0).stdout();
    assert!(out.contains("no daemon serves this database"), "{out}");
    let d = p.daemon(&[]);
    let listed = p.vigil(&["daemons", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["pid"], d.pid(), "{listed}");
    assert_eq!(
        (listed[0]["slots"].clone(), listed[0]["live"].clone()),
        (3.into(), true.into())
    );
    let table = p.vigil(&["daemons"]).expect(0).stdout();
    assert!(table.contains("0/3") && table.contains("live"), "{table}");
    assert_eq!(d.terminate(), 0);
    let out = p.vigil(&["daemons"]).expect(0).stdout();
    assert!(out.contains("no daemon serves this database"), "{out}");
}
