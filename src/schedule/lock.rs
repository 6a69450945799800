//! One daemon per SQLite database: an exclusive OS lock on `<database>.lock`, which also
//! tells other processes who owns the database (to refuse a second daemon by name, and to
//! wake the owner when a run is triggered). The OS releases the lock when the process dies,
//! however it dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the daemon's lifetime; dropping it releases the database.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
    pub path: PathBuf,
}

/// The process that holds a database's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// `pid host started_at`, as the holder wrote it.
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another vigil daemon owns {}: {}; stop it first, or give this one another database", database.display(), holder)]
    Held { database: PathBuf, holder: String },
    #[error("cannot use the lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl OwnerLock {
    /// Takes the lock of `database` or says who has it.
    pub fn acquire(database: &Path) -> Result<OwnerLock, LockError> {
        let path = lock_path(database);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    database: database.to_path_buf(),
                    holder: describe(&text),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(
            file,
            "{} {} {}",
            std::process::id(),
            crate::run::owner::current()
                .split_once('@')
                .map(|(_, h)| h.to_string())
                .unwrap_or_default(),
            chrono::Utc::now().to_rfc3339()
        )
        .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(OwnerLock { _file: file, path })
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

fn describe(text: &str) -> String {
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(pid), Some(host), Some(since)) => format!("pid {pid} on {host}, since {since}"),
        _ => "a process that is starting up".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vigil.db");
        let first = OwnerLock::acquire(&db).unwrap();
        let holder = OwnerLock::holder(&db).unwrap();
        assert_eq!(holder.pid, std::process::id() as i32);
        let err = OwnerLock::acquire(&db).unwrap_err().to_string();
        assert!(err.contains("another vigil daemon owns"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(OwnerLock::holder(&db).is_none());
        OwnerLock::acquire(&db).unwrap();
    }
}
