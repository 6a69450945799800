//! A daemon killed with -9 while tasks run: its task processes die with it or are killed
//! before the retry, so no attempt ever runs beside the next one. And at shutdown tasks get
//! SIGTERM before SIGKILL.

use std::time::Duration;

use crate::util::{Project, wait_for, wait_for_secs};

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// The task's first process dies with the daemon (no restart needed); what it started is
/// killed before the retry, so attempt 1 never writes after attempt 2 began.
#[test]
fn after_kill_9_no_attempt_overlaps_the_next() {
    let p = Project::new();
    // The shell records its pid and leaves a grandchild that would finish the side effect
    // two seconds later.
    p.write(
        "dags/side.toml",
        r#"[defaults]
retries = 2
retry_delay = "0s"
[tasks.effect]
type = "command"
[tasks.effect.config]
shell = true
output = "none"
command = "echo start $VIGIL_ATTEMPT >> ../ledger; echo $$ > ../pid.$VIGIL_ATTEMPT; (sleep 2; echo end $VIGIL_ATTEMPT >> ../ledger) & wait"
"#,
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "side"]).expect(0);
    wait_for("attempt 1 to start", || {
        p.ledger().contains(&"start 1".to_string())
    });
    let pid: i32 = std::fs::read_to_string(p.path().join("pid.1"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    d.kill9();
    wait_for("the task's shell to die with the daemon", || {
        !pid_alive(pid)
    });
    let again = p.daemon(&[]);
    wait_for_secs("the run to succeed", 60, || {
        p.runs().first().is_some_and(|r| r["state"] == "success")
    });
    // Give a surviving grandchild of attempt 1 time to show itself.
    std::thread::sleep(Duration::from_secs(3));
    let lines = p.ledger();
    assert!(
        !lines.contains(&"end 1".to_string()),
        "attempt 1 finished its side effect after the crash: {lines:?}"
    );
    assert_eq!(lines, vec!["start 1", "start 2", "end 2"], "{lines:?}");
    let logs = again.logs();
    assert!(
        logs.contains("killed what the interrupted attempt left running"),
        "{logs}"
    );
    assert_eq!(again.terminate(), 0);
}

/// At shutdown a task's processes get SIGTERM (and time to clean up) before SIGKILL, and the
/// interrupted attempt does not use up a retry.
#[test]
fn shutdown_sends_sigterm_before_sigkill() {
    let p = Project::new();
    p.write(
        "dags/trap.toml",
        r#"[tasks.t]
type = "command"
[tasks.t.config]
shell = true
output = "none"
command = "trap 'echo got TERM >> ../ledger; exit 1' TERM; echo up >> ../ledger; while true; do sleep 0.1; done"
"#,
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "trap"]).expect(0);
    wait_for("the task to start", || {
        p.ledger().contains(&"up".to_string())
    });
    assert_eq!(d.terminate(), 0);
    assert!(
        p.ledger().contains(&"got TERM".to_string()),
        "{:?}",
        p.ledger()
    );
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    let t = &shown["tasks"][0];
    assert_eq!(t["state"], "up_for_retry", "{shown}");
    assert!(
        t["error"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted by shutdown"),
        "{shown}"
    );
    assert_eq!(
        t["max_attempts"], 2,
        "the interrupted attempt is given back: {shown}"
    );
}

/// The one-daemon lock holds whatever path reaches the database: a second daemon through a
/// symbolic or a hard link is refused. The database and its WAL are private to their owner.
#[test]
fn a_second_daemon_through_a_link_is_refused_and_the_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.write("dags/work.toml", "[tasks.a]\ntype = \"noop\"\n");
    let d = p.daemon(&[]);
    std::os::unix::fs::symlink(p.path().join("vigil.db"), p.path().join("sym.db")).unwrap();
    std::fs::create_dir_all(p.path().join("elsewhere")).unwrap();
    std::fs::hard_link(
        p.path().join("vigil.db"),
        p.path().join("elsewhere/hard.db"),
    )
    .unwrap();
    for link in ["sym.db", "elsewhere/hard.db"] {
        let err = p
            .vigil(&["--database", &format!("sqlite://{link}"), "daemon"])
            .expect(1)
            .stderr();
        assert!(err.contains("another vigil daemon owns"), "{link}: {err}");
    }
    p.vigil(&["dags", "trigger", "work", "--wait"]).expect(0);
    for file in ["vigil.db", "vigil.db-wal"] {
        let mode = std::fs::metadata(p.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    assert_eq!(d.terminate(), 0);
}

/// One failure is one message, across a crash too: a task's failure mail goes out with its
/// failure, and the run's own failure message, made by the daemon that takes over, leaves out
/// the people that mail already told (found by the crash torture).
#[test]
fn after_a_crash_the_runs_failure_message_does_not_repeat_a_tasks() {
    let p = Project::new();
    p.write(
        "dags/doomed.toml",
        r#"[notify]
email_on_failure = ["oncall@example.com"]

[tasks.broken]
type = "command"
config = { command = ["sh", "-c", "exit 3"] }

[tasks.slow]
type = "command"
retries = 1
retry_delay = "0s"
config = { command = ["sh", "-c", "echo up >> ../ledger; sleep 2"], output = "none" }
"#,
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "doomed"]).expect(0);
    let queued = || {
        p.vigil(&["notify", "list", "--json"])
            .expect(0)
            .json()
            .as_array()
            .map_or(0, Vec::len)
    };
    wait_for("the task's failure message", || queued() == 1);
    wait_for("the slow task to start", || {
        p.ledger().contains(&"up".to_string())
    });
    d.kill9();
    let again = p.daemon(&[]);
    wait_for_secs("the run to fail", 60, || {
        p.runs().first().is_some_and(|r| r["state"] == "failed")
    });
    let list = p.vigil(&["notify", "list", "--json"]).expect(0).json();
    assert_eq!(queued(), 1, "{list}");
    assert_eq!(again.terminate(), 0);
}
