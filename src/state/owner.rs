//! A process as the owner of runs, deliveries and databases: `pid@host`, and whether such an
//! owner is certainly gone.

/// This process, as a run owner.
pub fn current() -> String {
    format!("{}@{}", std::process::id(), hostname())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the process named by `owner` is certainly gone: it ran on this host and no
/// process has its pid. Owners on other hosts are judged by their heartbeat only.
pub fn is_dead_here(owner: &str) -> bool {
    let Some((pid, host)) = owner.split_once('@') else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if host != hostname() || pid <= 0 {
        return false;
    }
    if pid == std::process::id() as i32 {
        return false;
    }
    // A zombie (exited, not yet reaped) is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_pid_is_dead() {
        let me = current();
        assert!(!is_dead_here(&me));
        // pid_max is at most 2^22; this pid cannot exist.
        assert!(is_dead_here(&format!("{}@{}", 1 << 23, hostname())));
        assert!(!is_dead_here(&format!("{}@another-host", 1 << 23)));
        assert!(!is_dead_here("garbage"));
    }
}
