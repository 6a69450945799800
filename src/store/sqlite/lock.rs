//! One daemon per SQLite database: an exclusive OS lock (`flock`) on the database file
//! itself, and `<database>.lock` beside the file's real path telling other processes who owns
//! it (to refuse a second daemon by name, and to wake the owner when a run is triggered).
//!
//! The lock is taken on the file, not on a name: `flock` locks belong to the inode, so a
//! second daemon reaching the same database through a symbolic or a hard link is refused
//! too. It does not interfere with SQLite's own locks, which are `fcntl` byte-range locks.
//! The OS releases the lock when the process dies, however it dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the daemon's lifetime; dropping it releases the database.
#[derive(Debug)]
pub struct OwnerLock {
    _database: File,
    _info: File,
}

/// The process that holds a database's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// `pid host started_at`, as the holder wrote it.
    pub description: String,
}

use crate::store::StoreError;

/// Where the owner of `database` is described: beside the file the path resolves to, so every
/// link to one database leads to one description.
pub fn lock_path(database: &Path) -> PathBuf {
    let real = std::fs::canonicalize(database).unwrap_or_else(|_| database.to_path_buf());
    let mut name = real.into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl OwnerLock {
    /// Takes the lock of `database` (creating the file, private, if it does not exist) or
    /// says who has it.
    pub fn acquire(database: &Path) -> Result<OwnerLock, StoreError> {
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::LockFile {
                path: path.clone(),
                source,
            }
        };
        if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        crate::store::create_private_file(database).map_err(io_at(database))?;
        let db = File::open(database).map_err(io_at(database))?;
        let path = lock_path(database);
        let held = |path: &Path| StoreError::Owned {
            database: database.to_path_buf(),
            holder: describe(&std::fs::read_to_string(path).unwrap_or_default()),
        };
        // A holder that is already dead on this host can keep the lock for a moment: a child
        // it was starting shares the lock until that child's `exec` closes it. Wait that out
        // (up to 5 s) instead of refusing a restart right after a crash (the crash torture
        // met it); a live holder is refused at once.
        let mut tries = 0;
        loop {
            match db.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 50 && holder_is_dead(&path) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(TryLockError::WouldBlock) => return Err(held(&path)),
                Err(TryLockError::Error(e)) => return Err(io_at(database)(e)),
            }
        }
        let mut info = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at(&path))?;
        // The description file carries its own lock too, so `holder` can tell a live owner
        // from a description a dead one left behind without touching the database file.
        match info.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(held(&path)),
            Err(TryLockError::Error(e)) => return Err(io_at(&path)(e)),
        }
        let io = io_at(&path);
        info.set_len(0).map_err(&io)?;
        info.rewind().map_err(&io)?;
        writeln!(
            info,
            "{} {} {}",
            std::process::id(),
            crate::state::owner::hostname(),
            chrono::Utc::now().to_rfc3339()
        )
        .map_err(&io)?;
        info.sync_all().map_err(&io)?;
        Ok(OwnerLock {
            _database: db,
            _info: info,
        })
    }

    /// Who holds the lock of `database` right now, if anyone.
    pub fn holder(database: &Path) -> Option<Holder> {
        let path = lock_path(database);
        let mut file = File::open(&path).ok()?;
        match file.try_lock_shared() {
            // Nobody holds it (a daemon that died leaves the file but not the lock).
            Ok(()) => None,
            Err(_) => {
                let mut text = String::new();
                file.read_to_string(&mut text).ok()?;
                let pid = text.split_whitespace().next()?.parse().ok()?;
                Some(Holder {
                    pid,
                    description: text.trim().to_string(),
                })
            }
        }
    }
}

/// Whether the lock file names a process on this host that no longer runs.
fn holder_is_dead(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    fields(&text)
        .is_some_and(|(pid, host, _)| crate::state::owner::is_dead_here(&format!("{pid}@{host}")))
}

fn describe(text: &str) -> String {
    match fields(text) {
        Some((pid, host, since)) => format!("pid {pid} on {host}, since {since}"),
        None => "a process that is starting up".into(),
    }
}

/// The lock file's `PID HOST SINCE`, once all three are written.
fn fields(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.split_whitespace();
    Some((parts.next()?, parts.next()?, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_holder_dead_on_this_host_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.db.lock");
        let host = crate::state::owner::hostname();
        std::fs::write(&path, format!("999999999 {host} 2026-12-07T00:00:00Z\n")).unwrap();
        assert!(holder_is_dead(&path));
        std::fs::write(
            &path,
            format!("{} {host} 2026-12-07T00:00:00Z\n", std::process::id()),
        )
        .unwrap();
        assert!(!holder_is_dead(&path), "a live holder is refused at once");
        std::fs::write(&path, "999999999 another-host 2026-12-07T00:00:00Z\n").unwrap();
        assert!(
            !holder_is_dead(&path),
            "another host's process cannot be judged from here"
        );
        std::fs::write(&path, "").unwrap();
        assert!(!holder_is_dead(&path));
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vigil.db");
        let first = OwnerLock::acquire(&db).unwrap();
        let holder = OwnerLock::holder(&db).unwrap();
        assert_eq!(holder.pid, std::process::id() as i32);
        let err = OwnerLock::acquire(&db).unwrap_err().to_string();
        assert!(err.contains("another vigil daemon"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(OwnerLock::holder(&db).is_none());
        OwnerLock::acquire(&db).unwrap();
    }

    #[test]
    fn links_to_a_locked_database_are_refused_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vigil.db");
        let _first = OwnerLock::acquire(&db).unwrap();
        assert_eq!(
            std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let symlink = dir.path().join("sym.db");
        std::os::unix::fs::symlink(&db, &symlink).unwrap();
        let hard = dir.path().join("other/hard.db");
        std::fs::create_dir_all(hard.parent().unwrap()).unwrap();
        std::fs::hard_link(&db, &hard).unwrap();
        for link in [&symlink, &hard] {
            let err = OwnerLock::acquire(link).unwrap_err().to_string();
            assert!(err.contains("another vigil daemon"), "{err}");
        }
        // Through the symbolic link, the owner is found by name too.
        assert_eq!(
            OwnerLock::holder(&symlink).unwrap().pid,
            std::process::id() as i32
        );
    }
}
