//! Storage faults under a running daemon on SQLite: the disk fills under the database file, the
//! database's directory turns read-only. Each time: a clear error, nothing half-written, the
//! daemon keeps running, and it finishes the work on its own once the fault clears — the task
//! whose result could not be written is not run again, its result is written when it can be.
//!
//! The faults are real: a small tmpfs mounted for the test (filled, or remounted read-only;
//! root ignores file modes, not a read-only mount). Mounting needs root; without it these
//! tests say so and pass, unless `VIGIL_TEST_MOUNTS=required` (set by `.ci/run`).
//! PostgreSQL stopped and restarted under a daemon: `postgres.rs`; a corrupt or foreign file
//! given as the database: `catalogue.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Project, wait_for, wait_for_secs};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn new(size: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().expect("mount point");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let required = std::env::var("VIGIL_TEST_MOUNTS").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "VIGIL_TEST_MOUNTS=required but mounting a tmpfs failed"
            );
            eprintln!(
                "note: cannot mount a tmpfs (needs root), so the storage-fault cases were skipped"
            );
            return None;
        }
        Some(Mount { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount {options}: {out:?}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A project whose database lives on `mount`, with a DAG whose task prints a 300 KB result
/// after writing its side effect to the ledger (outside the mount).
fn project_on(mount: &Mount) -> (Project, PathBuf) {
    let p = Project::new();
    let db = mount.path().join("vigil.db");
    p.write(
        "config/vigil.toml",
        &format!(
            "[database]\nurl = \"sqlite://{}\"\n\n[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n",
            db.display()
        ),
    );
    p.write(
        "dags/big.toml",
        r#"[tasks.produce]
type = "command"
[tasks.produce.config]
shell = true
output = "text"
command = "echo $VIGIL_RUN_ID >> ../ledger; head -c 300000 /dev/zero | tr '\\0' a"

[tasks.after]
type = "noop"
depends_on = ["produce"]
"#,
    );
    (p, db)
}

fn integrity_ok(db: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert_eq!(rt.block_on(crate::util::sqlite_integrity(db)), "ok");
}

#[test]
fn a_full_disk_under_the_database_holds_the_result_until_space_returns() {
    let Some(mount) = Mount::new("8m") else {
        return;
    };
    let (p, db) = project_on(&mount);
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "big", "--wait"]).expect(0);
    // Fill the disk, leaving too little for a 300 KB result (and its copy in the WAL).
    let filler = mount.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    // Free a little, so the trigger's small write fits and the result does not.
    Command::new("truncate")
        .args(["-s", "-200K"])
        .arg(&filler)
        .status()
        .expect("truncate");
    p.vigil(&["dags", "trigger", "big"]).expect(0);
    wait_for("the task to run", || p.ledger().len() == 2);
    wait_for("the daemon to say the disk is full", || {
        d.logs().contains("full")
    });
    assert!(
        d.logs().contains("holding them and trying again"),
        "{}",
        d.logs()
    );
    // The daemon lives on; the run is not failed for it; nothing half-written.
    assert!(crate::util::alive(d.pid()), "{}", d.logs());
    let run = p.vigil(&["runs", "show", "2", "--json"]).expect(0).json();
    assert_eq!(run["run"]["state"], "running", "{run}");
    // With the last bytes taken too, a user's write fails, saying why.
    let rest = mount.path().join("rest");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", rest.display()))
        .output();
    // A user's write then goes in whole (SQLite reuses the log's free pages) or is refused
    // saying why; nothing in between.
    let third = p.vigil(&["dags", "trigger", "big"]);
    let queued = match third.code() {
        0 => true,
        1 => {
            assert!(third.stderr().contains("full"), "{}", third.stderr());
            false
        }
        code => panic!("exit {code}: {}", third.stderr()),
    };

    // Space comes back: the held result is written, the run finishes, the task did not rerun.
    std::fs::remove_file(&filler).expect("remove the filler");
    std::fs::remove_file(&rest).expect("remove the rest");
    wait_for_secs("the run to succeed once space returns", 60, || {
        p.runs()
            .iter()
            .any(|r| r["id"] == 2 && r["state"] == "success")
    });
    if queued {
        wait_for_secs("the run queued on the full disk to succeed", 60, || {
            p.runs()
                .iter()
                .any(|r| r["id"] == 3 && r["state"] == "success")
        });
    }
    let mut want = vec!["1", "2"];
    if queued {
        want.push("3");
    }
    assert_eq!(p.ledger(), want, "a task ran again");
    let result = p
        .vigil(&["tasks", "xcom", "2", "produce", "--json"])
        .expect(0)
        .json();
    assert_eq!(result["value"].as_str().map(str::len), Some(300_000));
    assert_eq!(d.terminate(), 0);
    integrity_ok(&db);
}

/// A read-only filesystem cannot be remounted under files open for writing, so the fault comes
/// between daemons: one stops, the directory turns read-only, the next cannot start — it says
/// where and why at once, and writes nothing — and starts once the directory is writable
/// again (a service manager's restart does that on its own; see docs/deployment.md).
#[test]
fn a_read_only_database_directory_is_named_and_the_daemon_starts_when_it_is_writable_again() {
    let Some(mount) = Mount::new("16m") else {
        return;
    };
    let (p, db) = project_on(&mount);
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "big", "--wait"]).expect(0);
    assert_eq!(d.terminate(), 0);
    let before = std::fs::read(&db).expect("read the database");
    mount.remount("ro");
    let refused = p.vigil(&["daemon"]);
    assert_eq!(refused.code(), 1, "{}", refused.stderr());
    let err = refused.stderr();
    assert!(err.contains(&mount.path().display().to_string()), "{err}");
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    let refused = p.vigil(&["dags", "trigger", "big"]).expect(1).stderr();
    assert!(refused.to_lowercase().contains("read-only"), "{refused}");
    assert_eq!(std::fs::read(&db).expect("read the database"), before);
    mount.remount("rw");
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "big", "--wait"]).expect(0);
    assert_eq!(p.ledger(), vec!["1", "2"]);
    assert_eq!(d.terminate(), 0);
    integrity_ok(&db);
}
