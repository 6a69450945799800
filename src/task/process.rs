//! The processes a task starts: tying them to the daemon's life, and finding what a crashed
//! daemon left running so that a retry never runs beside its earlier attempt.
//!
//! Two mechanisms, because each covers what the other cannot:
//! - [`die_with_parent`]: the kernel kills a task's process the moment the process that
//!   started it dies (Linux `PR_SET_PDEATHSIG`), even by `kill -9`. Only that one process,
//!   though; what it started lives on.
//! - [`kill_marked`]: every process of an attempt carries [`ATTEMPT_KEY_ENV`] in its
//!   environment (children inherit it), so before a run is resumed after a crash the processes
//!   of its interrupted attempts are found in `/proc` and killed. The key is a digest of the
//!   database, run, task and attempt: a process is recognised by what it carries, not by a pid
//!   that may have been reused.
//!
//! Under systemd the unit's control group does the same job (see `docs/daemon.md`).

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The environment variable that marks every process of one attempt.
pub const ATTEMPT_KEY_ENV: &str = "VIGIL_ATTEMPT_KEY";

/// The key of one attempt: which database, run, task and attempt, as 32 hex digits (no path
/// or id is readable from it).
pub fn attempt_key(database: &str, run_id: i64, task_id: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{database}\n{run_id}\n{task_id}\n{attempt}"));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes `cmd`'s process die with this process. The signal comes when the *thread* that
/// forked the child ends, so call it from a thread that lives as long as the process (a
/// runtime worker, not a blocking-pool thread that may retire).
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls are made (prctl,
        // getppid, raise), and nothing is allocated.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if libc::getppid() != parent {
                    libc::raise(libc::SIGKILL);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Kills every process on this host whose environment carries attempt key `key`, and the
/// process groups they lead, until none is left or `wait` has passed. Returns how many
/// processes were found. Processes of other users cannot be seen (and were not started by
/// this user's daemon).
pub fn kill_marked(key: &str, wait: Duration) -> usize {
    let needle = format!("{ATTEMPT_KEY_ENV}={key}");
    let deadline = Instant::now() + wait;
    let mut found = 0;
    loop {
        let marked = marked_processes(needle.as_bytes());
        if marked.is_empty() {
            return found;
        }
        found = found.max(marked.len());
        for (pid, leads_group) in marked {
            // SAFETY: kill(2) has no memory effects; a negative pid signals a process group.
            unsafe {
                if leads_group {
                    libc::kill(-pid, libc::SIGKILL);
                }
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes whose environment holds `needle` as one entry, with whether each leads its
/// own process group. A zombie has no environment left, so it is not listed.
fn marked_processes(needle: &[u8]) -> Vec<(libc::pid_t, bool)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as libc::pid_t;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|entry| entry == needle))
        })
        .map(|pid| {
            // SAFETY: getpgid(2) reads a process's group id; no memory effects.
            let pgid = unsafe { libc::getpgid(pid) };
            (pid, pgid == pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_database_run_task_and_attempt() {
        let k = attempt_key("/a.db", 1, "t", 1);
        assert_eq!(k.len(), 32);
        assert_eq!(k, attempt_key("/a.db", 1, "t", 1));
        for other in [
            attempt_key("/b.db", 1, "t", 1),
            attempt_key("/a.db", 2, "t", 1),
            attempt_key("/a.db", 1, "u", 1),
            attempt_key("/a.db", 1, "t", 2),
        ] {
            assert_ne!(k, other);
        }
    }

    #[test]
    fn marked_processes_and_their_children_are_killed_and_others_are_not() {
        let key = attempt_key("/test.db", 1, "t", 1);
        let spawn = |marked: bool| {
            let mut c = std::process::Command::new("sh");
            if marked {
                // A child of the marked shell inherits the mark.
                c.args(["-c", "sleep 60 & wait"]).env(ATTEMPT_KEY_ENV, &key);
            } else {
                c.args(["-c", "exec sleep 60"]);
            }
            c.spawn().unwrap()
        };
        let mut marked = spawn(true);
        let mut other = spawn(false);
        std::thread::sleep(Duration::from_millis(200));
        let found = kill_marked(&key, Duration::from_secs(5));
        assert_eq!(found, 2, "the shell and its sleep");
        assert!(marked.wait().is_ok());
        assert!(
            other.try_wait().unwrap().is_none(),
            "an unmarked process lives"
        );
        assert_eq!(kill_marked(&key, Duration::from_secs(1)), 0);
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
