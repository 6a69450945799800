//! A private PostgreSQL server for the tests that need one: found on this machine, started
//! once per test process in a temporary directory on a free port, and stopped when the
//! process ends. Each caller gets a database of its own, so parallel tests never race.
//!
//! Without PostgreSQL installed the PostgreSQL cases pass without running and the suite says
//! so once on stderr; `VIGIL_TEST_POSTGRES=required` (set by `.ci/run`) makes that a failure.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running server: where to reach it.
pub struct Server {
    pub port: u16,
}

/// The server of this process, started on first use; `None` when PostgreSQL is not installed.
pub fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| match bin_dir() {
            Some(bin) => Some(start(&bin).unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"))),
            None => {
                let required = std::env::var("VIGIL_TEST_POSTGRES").is_ok_and(|v| v == "required");
                assert!(
                    !required,
                    "VIGIL_TEST_POSTGRES=required but no PostgreSQL binaries were found"
                );
                // Straight to the terminal: the test harness captures eprintln!.
                let _ = std::io::stderr().write_all(
                    b"note: PostgreSQL is not installed, so the PostgreSQL cases were skipped; \
                      install it (apt-get install postgresql) and run the tests again\n",
                );
                None
            }
        })
        .as_ref()
}

/// A new, empty database on this process's server, as a URL; `None` without PostgreSQL.
pub async fn fresh_database() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server()?;
    let name = format!(
        "vigil_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("postgres://vigil@127.0.0.1:{}/postgres", server.port);
    // The port opens before the server accepts sessions ("the database system is starting up").
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        match <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
            Ok(conn) => break conn,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("connect to the test server: {e}"),
        }
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    Some(format!("postgres://vigil@127.0.0.1:{}/{name}", server.port))
}

/// The directory of `initdb` and `postgres`: `VIGIL_PG_BIN`, the `PATH`, or Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest first).
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VIGIL_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|d| d.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

/// The user the server runs as: PostgreSQL refuses to run as root, so root hands it to the
/// `postgres` account the package creates.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid and getpwnam read process and system data; the result is copied at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !pw.is_null(),
            "running as root, and there is no `postgres` user to run PostgreSQL as"
        );
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(bin: &Path, program: &str, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin.join(program));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A new cluster under `root` (initdb), owned by the user the server will run as.
fn init(bin: &Path, root: &Path, user: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(root, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let data = root.join("data");
    let out = command(bin, "initdb", user)
        .args(["-D"])
        .arg(&data)
        .args([
            "-U",
            "vigil",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(data)
}

fn free_port() -> Result<u16, String> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port())
}

/// The server process for the cluster in `root`, on `port`.
fn postgres(bin: &Path, root: &Path, port: u16, user: Option<(u32, u32)>) -> Command {
    let mut cmd = command(bin, "postgres", user);
    cmd.arg("-D")
        .arg(root.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(root)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl only sets this child's parent-death signal; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Immediate shutdown when the thread that started it goes (the shared server's
            // thread lives as long as the process): a server never outlives its tests.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            Ok(())
        });
    }
    cmd
}

fn start(bin: &Path) -> Result<Server, String> {
    let user = run_as();
    reap_stale();
    let root = std::env::temp_dir().join(format!("vigil-pg-{}", std::process::id()));
    init(bin, &root, user)?;
    let port = free_port()?;
    let mut cmd = postgres(bin, &root, port, user);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = cmd.spawn();
        let ok = child.is_ok();
        let _ = tx.send(child.map(|_| ()).map_err(|e| e.to_string()));
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("postgres: {e}"))?;
    wait_for_port(port)?;
    Ok(Server { port })
}

fn wait_for_port(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("the server on port {port} did not come up"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A server of one test's own, which the test stops and starts again (an outage); stopped
/// when dropped.
pub struct OwnServer {
    bin: PathBuf,
    root: PathBuf,
    user: Option<(u32, u32)>,
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnServer {
    /// A new cluster, initialised and not running; `None` without PostgreSQL.
    pub fn new() -> Option<OwnServer> {
        server()?;
        let bin = bin_dir()?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "vigil-pg-{}-own{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let user = run_as();
        init(&bin, &root, user).unwrap_or_else(|e| panic!("initdb: {e}"));
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        Some(OwnServer {
            bin,
            root,
            user,
            port,
            child: None,
        })
    }

    /// `postgres://` URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://vigil@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&mut self) {
        let child = postgres(&self.bin, &self.root, self.port, self.user)
            .spawn()
            .unwrap_or_else(|e| panic!("postgres: {e}"));
        self.child = Some(child);
        wait_for_port(self.port).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Fast shutdown: clients are disconnected, the server exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child: immediate shutdown.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes the directories of test servers whose process is gone (a server dies with its
/// process, its directory stays).
fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("vigil-pg-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
