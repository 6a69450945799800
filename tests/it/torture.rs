//! Crash torture: daemons killed with -9 over and over — at random moments, and at the named
//! crash points between state transitions (`vigil::state::failpoint`, compiled into test
//! builds by the `failpoints` feature) — while they run DAGs with retries, `command` tasks,
//! results, cron ticks and failure mail to a real SMTP server. Then every promise is checked
//! against a side-effect ledger kept outside the database:
//!
//! - every run is terminal, and ended as its DAG says it must, or failed because crashes
//!   interrupted all of one task's attempts (no run lost);
//! - no task ran more than `1 + retries + the crashes during its run` times;
//! - every successful task has its own result;
//! - every cron tick has exactly one run;
//! - every due notification is in the outbox, sent, and reached the SMTP server under its one
//!   Message-ID — twice only when a daemon died after the server accepted it and before the
//!   outbox recorded that (at-least-once delivery; receivers fold a repeated Message-ID);
//! - SQLite's `PRAGMA integrity_check` is `ok`.
//!
//! Size: `VIGIL_TORTURE_RUNS` runs per store (200 by default, what CI runs);
//! `scripts/torture.sh 1000` runs the large size in release mode and prints the report.
//! `VIGIL_TORTURE_SEED` replays a sequence of faults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SubsecRound, Utc};
use vigil::state::failpoint::CRASH_POINTS;
use vigil::state::{RunState, TaskState};
use vigil::store::{OutboxState, RunFilter, RunId, RunType, Store};

use crate::notify::{Smtp, free_port};
use crate::util::Project;

/// Pipeline DAGs, each `extract → flaky → load` (flaky fails its first attempt).
const PIPELINES: usize = 3;
/// Of every this many triggered runs, one is of the `doomed` DAG (fails, mails).
const DOOMED_EVERY: usize = 5;
/// Seconds between the `tick` DAG's cron ticks, and how many it has.
const TICK_EVERY: i64 = 2;
const TICKS: i64 = 30;

/// A tiny deterministic generator (xorshift): the seed is printed so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One daemon death: when, and how (`kill` or the crash point's name).
#[derive(Debug, Clone)]
struct Death {
    at_micros: i64,
    how: String,
}

struct Daemon {
    child: Child,
    log: PathBuf,
    /// When the driver kills it if nothing else has.
    kill_at: Instant,
}

struct Torture {
    p: Project,
    store: Arc<dyn Store>,
    smtp: Smtp,
    rng: Rng,
    deaths: Vec<Death>,
    failpoint_log: PathBuf,
    started: usize,
    tick_start: DateTime<Utc>,
    tick_end: DateTime<Utc>,
    triggered: usize,
    retries: BTreeMap<&'static str, u32>,
}

fn runs_wanted() -> usize {
    std::env::var("VIGIL_TORTURE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// A `command` task that writes `RUN TASK ATTEMPT` to the ledger and prints its result.
fn task(id: &str, upstream: Option<&str>, fail_first: bool, always_fail: bool) -> String {
    // The pause widens the window in which a kill finds the task running.
    let mut cmd =
        String::from("echo $VIGIL_RUN_ID $VIGIL_TASK_ID $VIGIL_ATTEMPT >> ../ledger; sleep 0.1; ");
    if fail_first {
        cmd.push_str("[ $VIGIL_ATTEMPT -gt 1 ] || exit 1; ");
    }
    if always_fail {
        cmd.push_str("exit 3; ");
    }
    cmd.push_str("echo '{\\\"run\\\": '$VIGIL_RUN_ID', \\\"task\\\": \\\"'$VIGIL_TASK_ID'\\\"}'");
    let deps = upstream.map_or(String::new(), |u| format!("depends_on = [\"{u}\"]\n"));
    format!(
        "\n[tasks.{id}]\ntype = \"command\"\n{deps}[tasks.{id}.config]\nshell = true\ncommand = \"{cmd}\"\n"
    )
}

impl Torture {
    async fn new(database: Option<String>) -> Torture {
        let port = free_port();
        let smtp = Smtp::start(port);
        let p = Project::new();
        let db_line = database.as_ref().map_or(String::new(), |url| {
            format!("[database]\nurl = \"{url}\"\n\n")
        });
        p.write(
            "config/vigil.toml",
            &format!(
                r#"{db_line}[daemon]
heartbeat_interval = "500ms"
lease = "2s"
shutdown_grace = "1s"

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "vigil <vigil@vigil.test>"
timeout = "2s"

[notify]
poll_interval = "200ms"
retry_delay = "200ms"
max_retry_delay = "1s"
"#
            ),
        );
        let mut retries = BTreeMap::new();
        for i in 0..PIPELINES {
            let mut dag = String::from("[defaults]\nretries = 3\nretry_delay = \"0s\"\n");
            dag.push_str(&task("extract", None, false, false));
            dag.push_str(&task("flaky", Some("extract"), true, false));
            dag.push_str(&task("load", Some("flaky"), false, false));
            p.write(&format!("dags/work{i}.toml"), &dag);
        }
        retries.insert("extract", 3);
        retries.insert("flaky", 3);
        retries.insert("load", 3);
        let mut doomed = String::from(
            "[notify]\nemail_on_failure = [\"oncall@example.com\"]\n\n[defaults]\nretries = 1\nretry_delay = \"0s\"\n",
        );
        doomed.push_str(&task("broken", None, false, true));
        p.write("dags/doomed.toml", &doomed);
        retries.insert("broken", 1);
        // Ticks from a few seconds from now: the first daemons are killed while they make them.
        let soon = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(4);
        let tick_start = soon
            + chrono::Duration::seconds((TICK_EVERY - soon.timestamp() % TICK_EVERY) % TICK_EVERY);
        let tick_end = tick_start + chrono::Duration::seconds(TICK_EVERY * (TICKS - 1));
        let mut tick = format!(
            "schedule = \"*/{TICK_EVERY} * * * * *\"\ntimezone = \"UTC\"\nstart_date = \"{}\"\nend_date = \"{}\"\ncatchup = true\nmax_active_runs = 32\n\n[defaults]\nretries = 1\nretry_delay = \"0s\"\n",
            tick_start.to_rfc3339(),
            tick_end.to_rfc3339()
        );
        tick.push_str(&task("beat", None, false, false));
        p.write("dags/tick.toml", &tick);
        retries.insert("beat", 1);
        p.vigil(&["dags", "validate"]).expect(0);
        p.vigil(&["db", "migrate"]).expect(0);
        let url =
            database.unwrap_or_else(|| format!("sqlite://{}", p.path().join("vigil.db").display()));
        let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
            .await
            .expect("open the store");
        let seed = std::env::var("VIGIL_TORTURE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| (now_micros() as u64) | 1);
        eprintln!("torture seed {seed} (VIGIL_TORTURE_SEED replays it)");
        let failpoint_log = p.path().join("failpoints.log");
        Torture {
            p,
            store,
            smtp,
            rng: Rng(seed),
            deaths: Vec::new(),
            failpoint_log,
            started: 0,
            tick_start,
            tick_end,
            triggered: 0,
            retries,
        }
    }

    /// Starts a daemon; with `faults`, armed with a random crash point or none, and due to be
    /// killed after a random 0.3–3 s if it is still alive then.
    fn start(&mut self, faults: bool) -> Daemon {
        let mut cmd = self.p.command(&["daemon"]);
        let log_path = self.p.path().join(format!("daemon-{}.log", self.started));
        let log = std::fs::File::create(&log_path).expect("daemon log");
        self.started += 1;
        cmd.stdout(Stdio::null()).stderr(log);
        cmd.env("VIGIL_FAILPOINT_LOG", &self.failpoint_log);
        let mut life = Duration::from_secs(3600);
        if faults {
            life = Duration::from_millis(300 + self.rng.below(2700));
            // Two starts in three arm a crash point: often enough that each point fires, rarely
            // enough that a daemon also gets to finish work before it dies.
            if self.rng.below(3) > 0 {
                let point = CRASH_POINTS[self.rng.below(CRASH_POINTS.len() as u64) as usize];
                let percent = match point {
                    // Passed many times a second under load.
                    "executor.before_commit" | "executor.after_commit" | "attempt.after_task" => 15,
                    _ => 50,
                };
                cmd.env("FAILPOINTS", format!("{point}={percent}%return"));
            } else {
                cmd.env_remove("FAILPOINTS");
            }
        } else {
            cmd.env_remove("FAILPOINTS");
        }
        let child = cmd.spawn().expect("start the daemon");
        Daemon {
            child,
            log: log_path,
            kill_at: Instant::now() + life,
        }
    }

    /// Kills `d` if it is due; records its death (by kill or by its crash point) if it died.
    /// Whether it is dead.
    fn reap(&mut self, d: &mut Daemon) -> bool {
        if let Ok(Some(_)) = d.child.try_wait() {
            // Died on its own: at its crash point, or (a bug the check reports) otherwise.
            let death = self.at_crash_point(d.child.id()).unwrap_or(Death {
                at_micros: now_micros(),
                how: "exit".into(),
            });
            self.deaths.push(death);
            return true;
        }
        if Instant::now() >= d.kill_at {
            let at = now_micros();
            let _ = d.child.kill();
            let _ = d.child.wait();
            // The crash point may have fired just before the kill.
            let death = self.at_crash_point(d.child.id()).unwrap_or(Death {
                at_micros: at,
                how: "kill".into(),
            });
            self.deaths.push(death);
            return true;
        }
        false
    }

    /// How process `pid` died at its crash point, from the crash-point log.
    fn at_crash_point(&self, pid: u32) -> Option<Death> {
        let log = std::fs::read_to_string(&self.failpoint_log).unwrap_or_default();
        log.lines().find_map(|l| {
            let mut f = l.split(' ');
            let (name, p, at) = (f.next()?, f.next()?, f.next()?);
            (p == pid.to_string()).then_some(Death {
                at_micros: at.parse().ok()?,
                how: name.to_string(),
            })
        })
    }

    /// Triggers runs from another thread until `wanted` are triggered.
    fn trigger_in_background(
        &self,
        wanted: usize,
        done: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<usize> {
        let mut cmds = Vec::new();
        for i in 0..wanted {
            let dag = if i % DOOMED_EVERY == DOOMED_EVERY - 1 {
                "doomed".to_string()
            } else {
                format!("work{}", i % PIPELINES)
            };
            cmds.push(dag);
        }
        let exe = env!("CARGO_BIN_EXE_vigil");
        let dir = self.p.path().to_path_buf();
        let count = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for dag in cmds {
                // A busy or briefly locked database is retried: the trigger is the user's.
                loop {
                    let out = Command::new(exe)
                        .current_dir(&dir)
                        .args(["dags", "trigger", &dag])
                        .env("VIGIL_API_LISTEN", "127.0.0.1:0")
                        .output()
                        .expect("run vigil dags trigger");
                    if out.status.success() {
                        break;
                    }
                    eprintln!(
                        "trigger {dag} failed, again: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            done.store(true, Ordering::Relaxed);
            count.load(Ordering::Relaxed)
        })
    }

    async fn ended_runs(&self) -> usize {
        let n = self.store.count_runs(RunState::Success).await.unwrap_or(0)
            + self.store.count_runs(RunState::Failed).await.unwrap_or(0);
        n as usize
    }

    async fn all_runs(&self) -> Vec<vigil::store::RunRecord> {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .store
                .runs(&RunFilter {
                    before,
                    limit: Some(500),
                    ..RunFilter::default()
                })
                .await
                .expect("list runs");
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            all.extend(page);
        }
        all
    }

    /// Drives `daemons` daemons through faults until every run is triggered and every tick
    /// due, then lets clean daemons finish the work.
    async fn run(&mut self, daemons: usize) -> Report {
        let wanted = runs_wanted();
        let triggered_wanted = wanted.saturating_sub(TICKS as usize);
        let done = Arc::new(AtomicBool::new(false));
        let trigger = self.trigger_in_background(triggered_wanted, done.clone());
        let mut live: Vec<Daemon> = (0..daemons).map(|_| self.start(true)).collect();
        let faults_until_ticks = self.tick_end + chrono::Duration::seconds(2);
        // Faults go on until the last tick is due, every run is triggered, and nine in ten runs
        // have ended under them; clean daemons finish the rest.
        let nine_in_ten = (triggered_wanted + TICKS as usize) * 9 / 10;
        let mut ended = 0;
        let mut looked = Instant::now();
        while !done.load(Ordering::Relaxed)
            || Utc::now() < faults_until_ticks
            || ended < nine_in_ten
        {
            for d in live.iter_mut() {
                if self.reap(d) {
                    *d = self.start(true);
                }
            }
            if looked.elapsed() > Duration::from_millis(500) {
                ended = self.ended_runs().await;
                looked = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.triggered = trigger.join().expect("the trigger thread");
        // The faults stop: one last death each, then clean daemons finish what is left.
        for mut d in live {
            d.kill_at = Instant::now();
            self.reap(&mut d);
        }
        let clean: Vec<Daemon> = (0..daemons).map(|_| self.start(false)).collect();
        let total = self.triggered + TICKS as usize;
        let bound = std::env::var("VIGIL_TORTURE_DRAIN_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300 + total as u64);
        let deadline = Instant::now() + Duration::from_secs(bound);
        loop {
            let ended = self.ended_runs().await;
            let pending = self
                .store
                .outbox(Some(OutboxState::Pending))
                .await
                .map_or(1, |o| o.len());
            if ended == total && pending == 0 {
                break;
            }
            // A liveness bound, not a speed assertion.
            if Instant::now() >= deadline {
                let mut stuck = Vec::new();
                for r in self.store.unfinished_runs().await.unwrap_or_default() {
                    let tis = self.store.task_instances(r.id).await.unwrap_or_default();
                    let states: Vec<String> = tis
                        .iter()
                        .map(|t| format!("{}={}#{}", t.task_id, t.state.as_str(), t.attempt))
                        .collect();
                    stuck.push(format!(
                        "run {} of {} {:?} {states:?}",
                        r.id, r.dag_id, r.state
                    ));
                }
                panic!(
                    "after {bound} s: {ended} of {total} runs ended, {pending} messages pending; unfinished: {stuck:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for mut d in clean {
            // Started (its signal handlers are in place) before it is asked to stop.
            while !std::fs::read_to_string(&d.log)
                .unwrap_or_default()
                .contains("daemon started")
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
            let status = d.child.wait().expect("wait for the daemon");
            assert_eq!(
                status.code(),
                Some(0),
                "a clean daemon did not stop cleanly"
            );
        }
        self.check().await
    }

    /// Checks every promise; returns what happened.
    async fn check(&self) -> Report {
        let runs = self.all_runs().await;
        let total = self.triggered + TICKS as usize;
        assert_eq!(runs.len(), total, "runs lost or made up");

        // Every run terminal, and ended as its DAG says — or failed because crashes
        // interrupted one task's every attempt (an attempt cut short by a dead daemon counts:
        // the attempt count stays bounded, as in Airflow).
        let mut exhausted = 0;
        for r in &runs {
            let want = if r.dag_id == "doomed" {
                RunState::Failed
            } else {
                RunState::Success
            };
            if r.state == want {
                continue;
            }
            let tis = self.store.task_instances(r.id).await.unwrap_or_default();
            let by_crashes = r.state == RunState::Failed
                && tis.iter().any(|t| {
                    t.state == TaskState::Failed
                        && t.error
                            .as_deref()
                            .is_some_and(|e| e.contains("was interrupted"))
                });
            let states: Vec<String> = tis
                .iter()
                .map(|t| {
                    format!(
                        "{}={}#{} {:?}",
                        t.task_id,
                        t.state.as_str(),
                        t.attempt,
                        t.error
                    )
                })
                .collect();
            assert!(
                by_crashes,
                "run {} of {} ended {:?}: {states:?}",
                r.id, r.dag_id, r.state
            );
            exhausted += 1;
        }

        // Exactly one run per cron tick, and one for every tick.
        let mut ticks: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.dag_id == "tick") {
            assert_eq!(r.run_type, RunType::Scheduled);
            *ticks.entry(r.logical_date).or_default() += 1;
        }
        let want_ticks: BTreeSet<DateTime<Utc>> = (0..TICKS)
            .map(|k| self.tick_start + chrono::Duration::seconds(TICK_EVERY * k))
            .collect();
        assert_eq!(
            ticks.keys().copied().collect::<BTreeSet<_>>(),
            want_ticks,
            "ticks without a run, or runs without a tick"
        );
        assert!(
            ticks.values().all(|&n| n == 1),
            "a tick has two runs: {ticks:?}"
        );

        // Executions from the ledger, bounded by retries and the crashes during the run.
        let ledger = std::fs::read_to_string(self.p.path().join("ledger")).unwrap_or_default();
        let mut executions: BTreeMap<(RunId, String), u32> = BTreeMap::new();
        for line in ledger.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 3, "ledger line {line:?}");
            let run: RunId = f[0].parse().expect("run id");
            *executions.entry((run, f[1].to_string())).or_default() += 1;
        }
        let mut reruns = 0;
        for r in &runs {
            let from = r.queued_at.timestamp_micros();
            let to = r.ended_at.map_or(i64::MAX, |e| e.timestamp_micros());
            let crashes = self
                .deaths
                .iter()
                .filter(|d| d.at_micros >= from && d.at_micros <= to)
                .count() as u32;
            let tis = self
                .store
                .task_instances(r.id)
                .await
                .expect("task instances");
            let outputs = self.store.outputs(r.id).await.expect("outputs");
            for ti in &tis {
                let n = executions
                    .get(&(r.id, ti.task_id.clone()))
                    .copied()
                    .unwrap_or(0);
                let retries = self.retries[ti.task_id.as_str()];
                // What the DAG asks for: flaky fails once, broken is retried once.
                let legit = if matches!(ti.task_id.as_str(), "flaky" | "broken") {
                    2
                } else {
                    1
                };
                assert!(
                    n <= 1 + retries + crashes,
                    "run {} task {} ran {n} times: 1 + {retries} retries + {crashes} crashes allowed",
                    r.id,
                    ti.task_id
                );
                if ti.state == TaskState::Success {
                    assert!(n >= 1, "run {} task {} succeeded unrun", r.id, ti.task_id);
                }
                reruns += n.saturating_sub(legit);
                if ti.state == TaskState::Success {
                    let out = outputs
                        .iter()
                        .find(|o| o.task_id == ti.task_id && o.attempt == ti.attempt)
                        .unwrap_or_else(|| {
                            panic!(
                                "run {} task {} succeeded without its result",
                                r.id, ti.task_id
                            )
                        });
                    assert_eq!(
                        out.value,
                        serde_json::json!({"run": r.id, "task": ti.task_id}),
                        "run {} task {}",
                        r.id,
                        ti.task_id
                    );
                }
            }
        }

        // Notifications: one per doomed run, all sent; each reached the server under its
        // Message-ID, twice only after a death in the window between the server's reply and
        // the outbox update.
        let outbox = self.store.outbox(None).await.expect("the outbox");
        let doomed = runs.iter().filter(|r| r.dag_id == "doomed").count();
        assert_eq!(outbox.len(), doomed, "one failure message per doomed run");
        assert!(
            outbox.iter().all(|m| m.state == OutboxState::Sent),
            "unsent mail"
        );
        let from: lettre::message::Mailbox = "vigil <vigil@vigil.test>".parse().expect("from");
        let expected: BTreeSet<String> = outbox
            .iter()
            .map(|m| vigil::notify::email::message_id(m, &from))
            .collect();
        let mut received: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.smtp.mails() {
            let id = m.header("Message-ID").expect("a Message-ID");
            *received.entry(id).or_default() += 1;
        }
        assert_eq!(
            received.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "mail lost, or mail that is in no outbox row"
        );
        let repeated: usize = received.values().map(|n| n - 1).sum();
        let windows = self
            .deaths
            .iter()
            .filter(|d| d.how == "sender.after_send" || d.how == "kill")
            .count();
        assert!(
            repeated <= windows,
            "{repeated} repeated messages, only {windows} deaths could have caused them"
        );

        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for d in &self.deaths {
            *by_kind.entry(d.how.clone()).or_default() += 1;
        }
        Report {
            runs: runs.len(),
            deaths: by_kind,
            reruns: reruns as usize,
            exhausted,
            mails: outbox.len(),
            repeated_mails: repeated,
        }
    }
}

/// A failed torture keeps its project (database, ledger, daemon logs) for a post-mortem.
impl Drop for Torture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = std::env::temp_dir().join(format!("vigil-torture-{}", now_micros()));
            let _ = Command::new("cp")
                .arg("-r")
                .arg(self.p.path())
                .arg(&kept)
                .status();
            eprintln!("the tortured project is kept in {}", kept.display());
        }
    }
}

#[derive(Debug)]
struct Report {
    runs: usize,
    deaths: BTreeMap<String, usize>,
    /// Task executions beyond those the DAG asks for (crash-interrupted attempts run again).
    reruns: usize,
    /// Runs that failed because crashes used up a task's attempts.
    exhausted: usize,
    mails: usize,
    repeated_mails: usize,
}

impl Report {
    fn print(&self, store: &str) {
        eprintln!(
            "torture[{store}]: {} runs completed ({} failed because crashes used up a task's attempts); deaths {:?} (total {}); {} task executions repeated after a crash; {} mails sent, {} repeated at the wire; nothing lost",
            self.runs,
            self.exhausted,
            self.deaths,
            self.deaths.values().sum::<usize>(),
            self.reruns,
            self.mails,
            self.repeated_mails
        );
    }

    /// The faults must actually have happened: a torture that killed nothing proves nothing.
    fn assert_faults(&self) {
        assert!(
            !self.deaths.contains_key("exit"),
            "a daemon exited by itself (see its daemon-N.log): {:?}",
            self.deaths
        );
        let total: usize = self.deaths.values().sum();
        assert!(total >= 5, "too few faults injected: {:?}", self.deaths);
        let at_points: usize = self
            .deaths
            .iter()
            .filter(|(k, _)| CRASH_POINTS.contains(&k.as_str()))
            .map(|(_, n)| n)
            .sum();
        assert!(at_points >= 1, "no crash point fired: {:?}", self.deaths);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_daemon_killed_over_and_over_loses_and_doubles_nothing() {
    let mut t = Torture::new(None).await;
    let report = t.run(1).await;
    report.print("sqlite");
    report.assert_faults();
    let db = t.p.path().join("vigil.db");
    assert_eq!(crate::util::sqlite_integrity(&db).await, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_postgres_daemons_killed_over_and_over_lose_and_double_nothing() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let mut t = Torture::new(Some(url)).await;
    let report = t.run(3).await;
    report.print("postgres");
    report.assert_faults();
}
