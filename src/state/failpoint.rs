//! Named crash points between state transitions, for the crash-torture test
//! (`tests/it/torture.rs`).
//!
//! A kill at a random moment rarely lands in the narrow windows that matter — between a task's
//! side effect and the commit of its success, between an SMTP server's `250` and the outbox
//! update. These points put a `kill -9` exactly there. They exist only in builds with the
//! `failpoints` cargo feature, which only test builds turn on; in any other build
//! [`crash_point`] compiles to nothing.
//!
//! The binary reads `FAILPOINTS` at start (the [`fail`](https://docs.rs/fail) crate's format,
//! `name=5%return;other=return`); a point set to `return` kills the process with SIGKILL, after
//! appending `NAME PID MICROS-SINCE-EPOCH` to the file `VIGIL_FAILPOINT_LOG` names, so the torture driver can count
//! which point fired.

/// Every point, in the order a task's life passes them.
pub const CRASH_POINTS: &[&str] = &[
    "scheduler.after_run_created",
    "executor.before_commit",
    "executor.after_commit",
    "store.inside_commit",
    "attempt.after_task",
    "worker.after_claim",
    "sender.after_claim",
    "sender.after_send",
];

/// Dies here with SIGKILL when the torture test configured point `name` and it fires.
#[inline]
pub fn crash_point(name: &'static str) {
    debug_assert!(CRASH_POINTS.contains(&name), "unlisted crash point {name}");
    #[cfg(feature = "failpoints")]
    fail::eval(name, |_| die(name));
}

/// Reads `FAILPOINTS` for the life of the process (test builds only).
pub fn configure_crash_points() {
    #[cfg(feature = "failpoints")]
    {
        let scenario = fail::FailScenario::setup();
        // Held for the process's life: tearing it down would clear the points.
        std::mem::forget(scenario);
    }
}

#[cfg(feature = "failpoints")]
fn die(name: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("VIGIL_FAILPOINT_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let _ = writeln!(f, "{name} {} {micros}", std::process::id());
        let _ = f.sync_all();
    }
    // SAFETY: kill(2) on this very process; SIGKILL cannot be caught, so nothing after it runs.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
