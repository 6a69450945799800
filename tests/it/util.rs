//! Shared test helpers: a temp directory with a `vigil` command that runs the real binary in
//! it, and an in-process engine over a real SQLite file.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use vigil::dag::{Dag, parse_dag};
use vigil::run::{Executor, Limits, plan_run};
use vigil::state::RunState;
use vigil::store::{RunRecord, RunType, Store, TaskInstance};
use vigil::task::Registry;

/// A temporary project directory: `dags/`, a SQLite database, and the real binary.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A project whose daemon has test-sized timings and whose API takes `token` (from a
    /// token file).
    pub fn with_api_token(token: &str) -> Project {
        let p = Project::new();
        p.write(
            "config/vigil.toml",
            "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n\n[api]\ntoken_file = \"api.token\"\n",
        );
        p.write("api.token", &format!("{token}\n"));
        p
    }

    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("dags")).expect("dags dir");
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// Runs `vigil ARGS` in the project directory with a clean VIGIL_* environment (and the
    /// API, if it serves, on a free port: tests run side by side).
    pub fn vigil(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().expect("run vigil"))
    }

    /// `vigil ARGS` as [`Project::vigil`] runs it, for a test that starts it and reads it as
    /// it goes.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.current_dir(self.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("VIGIL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("VIGIL_API_LISTEN", FREE_PORT);
        cmd
    }
}

/// The output of one `vigil` invocation.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code ({:?})\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// An engine over a real SQLite file in a temp directory.
pub struct Engine {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
}

impl Engine {
    pub async fn new() -> Engine {
        Engine::with_registry(vigil::tasks::builtin()).await
    }

    pub async fn with_registry(registry: Registry) -> Engine {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
        let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
            .await
            .expect("open store");
        Engine {
            dir,
            store,
            registry: Arc::new(registry),
        }
    }

    /// Parses a DAG (as if from `dags/test.toml` in the engine's directory).
    pub fn dag(&self, src: &str) -> Arc<Dag> {
        let file = self.dir.path().join("test.toml");
        match parse_dag(&file, src, &self.registry) {
            Ok(dag) => Arc::new(dag),
            Err(e) => panic!("DAG does not load:\n{e}"),
        }
    }

    pub fn executor(&self, parallelism: usize) -> Executor {
        Executor::new(
            self.store.clone(),
            self.registry.clone(),
            Arc::new(Limits::new(parallelism)),
        )
    }

    pub async fn create(&self, dag: &Dag, conf: serde_json::Value) -> RunRecord {
        self.create_with(dag, conf, chrono::Utc::now()).await
    }

    /// A manual run of `dag` at `logical_date`.
    pub async fn create_at(
        &self,
        dag: &Dag,
        logical_date: chrono::DateTime<chrono::Utc>,
    ) -> RunRecord {
        self.create_with(dag, serde_json::Value::Null, logical_date)
            .await
    }

    async fn create_with(
        &self,
        dag: &Dag,
        conf: serde_json::Value,
        logical_date: chrono::DateTime<chrono::Utc>,
    ) -> RunRecord {
        let new = plan_run(
            dag,
            conf,
            RunType::Manual,
            logical_date,
            RunState::Queued,
            None,
        )
        .expect("plan run");
        self.store.create_run(&new).await.expect("create run")
    }

    /// Creates and executes one run; returns its state and task instances by id.
    pub async fn run(&self, src: &str) -> Outcome {
        let dag = self.dag(src);
        let run = self.create(&dag, serde_json::Value::Null).await;
        let state = self
            .executor(32)
            .execute(dag, run.clone(), None)
            .await
            .expect("execute");
        self.outcome(run.id, state).await
    }

    pub async fn outcome(&self, run_id: i64, state: RunState) -> Outcome {
        let tis = self
            .store
            .task_instances(run_id)
            .await
            .expect("task instances");
        Outcome {
            run_id,
            state,
            tasks: tis.into_iter().map(|t| (t.task_id.clone(), t)).collect(),
        }
    }
}

pub struct Outcome {
    pub run_id: i64,
    pub state: RunState,
    pub tasks: std::collections::BTreeMap<String, TaskInstance>,
}

impl Outcome {
    pub fn task(&self, id: &str) -> &TaskInstance {
        self.tasks
            .get(id)
            .unwrap_or_else(|| panic!("no task {id} in {:?}", self.tasks.keys()))
    }

    pub fn state_of(&self, id: &str) -> vigil::state::TaskState {
        self.task(id).state
    }
}

/// A `vigil daemon` process running in a project; killed if the test forgets to stop it.
pub struct DaemonProcess {
    child: std::process::Child,
    pub log: PathBuf,
}

impl Project {
    /// Starts `vigil daemon ARGS` with a config suited to tests (1 s heartbeats, 3 s lease,
    /// 1 s shutdown grace) unless the project has its own config.
    pub fn daemon(&self, args: &[&str]) -> DaemonProcess {
        let config = self.path().join("config/vigil.toml");
        if !config.exists() {
            self.write(
                "config/vigil.toml",
                "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n",
            );
        }
        let log = self.path().join(format!(
            "daemon-{}.log",
            chrono::Utc::now().timestamp_micros()
        ));
        let file = std::fs::File::create(&log).expect("daemon log");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.current_dir(self.path())
            .arg("daemon")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(file);
        for (k, _) in std::env::vars() {
            if k.starts_with("VIGIL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("VIGIL_API_LISTEN", FREE_PORT);
        let child = cmd.spawn().expect("start daemon");
        let d = DaemonProcess { child, log };
        wait_for("the daemon to start", || {
            d.logs().contains("daemon started")
        });
        d
    }
}

impl DaemonProcess {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = self.child.wait().expect("wait for daemon");
        status.code().unwrap_or(-1)
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds; panics naming `what` after 30 s. A liveness bound, not a
/// speed assertion: on a loaded machine things take longer, never forever.
pub fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    wait_for_secs(what, 30, cond)
}

/// [`wait_for`] with a longer liveness bound, for work that takes many seconds by design.
pub fn wait_for_secs(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Project {
    /// `vigil runs list --json` as (id, dag, logical date, type, state).
    pub fn runs(&self) -> Vec<serde_json::Value> {
        self.vigil(&["runs", "list", "--limit", "1000", "--json"])
            .expect(0)
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The lines tasks appended to the project's `ledger` file: their side effects, counted
    /// outside the database.
    pub fn ledger(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("ledger"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn runs_of(&self, dag: &str) -> Vec<serde_json::Value> {
        self.runs()
            .into_iter()
            .filter(|r| r["dag_id"] == dag)
            .collect()
    }
}

/// Whether process `pid` is running (a zombie counts as gone: it has ended, and only waits
/// for its parent to reap it).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// `[api] listen` for test processes: any free port (the daemon logs the one it got).
pub const FREE_PORT: &str = "127.0.0.1:0";

/// SQLite's `PRAGMA integrity_check` of the database file `db`, opened read-only: `ok` when
/// every page and index is whole.
pub async fn sqlite_integrity(db: &Path) -> String {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("open the database");
    sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("integrity check")
}
