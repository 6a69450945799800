//! Keeping a long-running daemon's resident memory to what it uses.
//!
//! Most of an idle daemon's resident memory is its own machine code, not its data (measured:
//! 12 of 22 MiB with 100 DAGs and the API, `/proc/PID/smaps`): the kernel maps file pages in
//! blocks around each page touched (fault-around, whole large folios), so code run once at
//! start-up — DAG parsing, migrations, the CLI — stays resident in 64 KiB-and-larger blocks of a
//! 20 MB text section. Two hints fix that without changing what runs:
//!
//! - [`map_code_on_demand`] (at start): `MADV_RANDOM` on the executable's mappings, so a page
//!   read back in comes alone, without read-ahead;
//! - [`trim_loop`]: `MADV_PAGEOUT` on them once start-up is over and every ten minutes, which
//!   drops the code pages only this process maps (clean file pages: nothing is written
//!   anywhere); the ones the daemon keeps running fault back in within microseconds.
//!
//! Both are best effort (Linux 5.4 and later; elsewhere nothing happens). Measured with
//! `vigil bench --scenario daemon_memory`; short-lived commands keep the kernel's defaults.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the code pages are trimmed again, for code that ran since (a retention sweep, a
/// rare API route).
const TRIM_EVERY: Duration = Duration::from_secs(600);
/// Start-up (loading the DAGs, recovering runs, the first scheduler steps) is over by then.
const FIRST_TRIM_AFTER: Duration = Duration::from_secs(2);

/// Asks the kernel to read this executable's pages back one at a time (no read-ahead).
pub fn map_code_on_demand() {
    advise_executable(libc::MADV_RANDOM);
}

/// Drops the executable's resident code pages after start-up and then periodically, until
/// `stop`.
pub async fn trim_loop(stop: CancellationToken) {
    let mut wait = FIRST_TRIM_AFTER;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // A few syscalls over the process's own mappings; off the scheduler's thread anyway.
        let _ = tokio::task::spawn_blocking(|| advise_executable(libc::MADV_PAGEOUT)).await;
        wait = TRIM_EVERY;
    }
}

/// `madvise(advice)` on every read-only mapping of this process's executable.
fn advise_executable(advice: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        let exe = exe.to_string_lossy();
        for line in maps.lines() {
            // `start-end perms offset dev inode path`
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                continue;
            };
            // Writable mappings hold the process's own data, never dropped.
            if perms.contains('w') || fields.nth(3) != Some(exe.as_ref()) {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            // SAFETY: madvise on a read-only range the kernel just listed as mapped in this
            // process; MADV_RANDOM and MADV_PAGEOUT change only which pages are resident and
            // how they are read back, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, advice);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = advice;
}
