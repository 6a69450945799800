//! Several daemons on one PostgreSQL database, through the real binary: they share the runs,
//! execute each task once, take over from a daemon killed with -9, and race cron ticks
//! without ever making two runs of one tick or missing one. Each test has a database of its
//! own on the tests' private server (`crate::pg`) and passes without running where
//! PostgreSQL is not installed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{SubsecRound, Utc};

use crate::util::{DaemonProcess, Project, alive, wait_for_secs};

/// A project whose config points at a fresh PostgreSQL database, with test-sized daemon
/// timings (1 s heartbeats, 3 s lease).
async fn project() -> Option<Project> {
    project_with_url().await.map(|(p, _)| p)
}

/// [`project`], and the database's URL.
async fn project_with_url() -> Option<(Project, String)> {
    let url = crate::pg::fresh_database().await?;
    Some((project_on(&url, ""), url))
}

/// A project on the database `url` with test-sized daemon timings, plus `extra` config.
fn project_on(url: &str, extra: &str) -> Project {
    let p = Project::new();
    p.write(
        "config/vigil.toml",
        &format!(
            "[database]\nurl = \"{url}\"\n\n[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n{extra}"
        ),
    );
    p
}

/// One line per side effect, written outside the database: `start|end RUN TASK ATTEMPT PID`
/// (PID: the daemon that ran the task).
fn ledger(p: &Project) -> Vec<Vec<String>> {
    std::fs::read_to_string(p.path().join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

/// A DAG of `tasks` command tasks after one `start`, each recording its start and end in the
/// ledger, sleeping `sleep` seconds in between, with one retry (which an attempt interrupted
/// by a dead daemon uses: the attempt counts).
fn fan_out(p: &Project, tasks: usize, sleep: &str) {
    let mut dag = String::from(
        "schedule = \"@daily\"\nend_date = \"2021-01-01T00:00:00Z\"\ncatchup = false\nmax_active_runs = 64\n\n[defaults]\nretries = 1\nretry_delay = \"0s\"\n\n[tasks.start]\ntype = \"noop\"\n",
    );
    for i in 0..tasks {
        dag.push_str(&format!(
            "\n[tasks.t{i}]\ntype = \"command\"\ndepends_on = [\"start\"]\n[tasks.t{i}.config]\nshell = true\noutput = \"none\"\ncommand = \"echo start $VIGIL_RUN_ID $VIGIL_TASK_ID $VIGIL_ATTEMPT $PPID >> ../ledger; sleep {sleep}; echo end $VIGIL_RUN_ID $VIGIL_TASK_ID $VIGIL_ATTEMPT $PPID >> ../ledger\"\n"
        ));
    }
    p.write("dags/fan.toml", &dag);
}

fn all_succeeded(p: &Project, runs: usize) -> bool {
    let list = p.runs_of("fan");
    list.len() == runs && list.iter().all(|r| r["state"] == "success")
}

/// One run per day from 2020-01-01, `days` of them (the DAG's own schedule makes none: no
/// catch-up, and it ended in 2021 — a test running across midnight once got the day's tick
/// as an extra run).
fn backfill(p: &Project, days: i64) {
    let first = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
    let end = (first + chrono::Duration::days(days - 1)).to_string();
    p.vigil(&[
        "dags",
        "backfill",
        "fan",
        "--start",
        "2020-01-01",
        "--end",
        &end,
    ])
    .expect(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_on_one_database_execute_every_task_exactly_once() {
    let Some(p) = project().await else { return };
    fan_out(&p, 10, "0");
    p.vigil(&["db", "migrate"]).expect(0);
    let daemons: Vec<DaemonProcess> = (0..3).map(|_| p.daemon(&[])).collect();
    let pids: BTreeSet<String> = daemons.iter().map(|d| d.pid().to_string()).collect();
    // `vigil daemons` lists the three, live.
    let listed = p.vigil(&["daemons", "--json"]).expect(0).json();
    let live: BTreeSet<String> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["live"] == true && d["role"] == "scheduler+worker")
        .map(|d| d["pid"].to_string())
        .collect();
    assert_eq!(live, pids, "{listed}");
    backfill(&p, 200);
    let (runs, tasks) = (200, 10);
    wait_for_secs("every run to succeed", 300, || all_succeeded(&p, runs));
    let lines = ledger(&p);
    let mut executions: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut by = BTreeSet::new();
    for l in lines.iter().filter(|l| l[0] == "start") {
        executions
            .entry((l[1].clone(), l[2].clone()))
            .or_default()
            .push(l[3].clone());
        by.insert(l[4].clone());
    }
    assert_eq!(executions.len(), runs * tasks, "{lines:?}");
    for (key, attempts) in &executions {
        assert_eq!(attempts, &vec!["1".to_string()], "{key:?} ran {attempts:?}");
    }
    // Every daemon executed some, and nobody else did.
    assert_eq!(
        by, pids,
        "tasks ran on {by:?}, not on each of the daemons {pids:?}"
    );
    for d in daemons {
        assert_eq!(d.terminate(), 0);
    }
    // Stopped cleanly, they leave the list.
    let out = p.vigil(&["daemons"]).expect(0).stdout();
    assert!(out.contains("no daemon serves this database"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_with_9_leaves_its_runs_to_the_two_others_and_only_its_running_tasks_run_again()
 {
    let Some((p, url)) = project_with_url().await else {
        return;
    };
    fan_out(&p, 10, "0.5");
    p.vigil(&["db", "migrate"]).expect(0);
    let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
        .await
        .unwrap();
    // The victim alone takes the runs; the survivor joins while the victim's tasks run.
    let victim = p.daemon(&[]);
    let victim_pid = victim.pid().to_string();
    backfill(&p, 200);
    wait_for_secs("the victim to be running tasks", 60, || {
        ledger(&p)
            .iter()
            .any(|l| l[0] == "start" && l[4] == victim_pid)
    });
    let survivor = p.daemon(&[]);
    let other = p.daemon(&[]);
    victim.kill9();
    // What the database had in flight when the victim died (read at once: the victim's
    // attempts stay `running` until its 3 s lease runs out). A task of the victim's can have
    // finished its work — even written its `end` — and still be running here, when the kill
    // fell between the process exiting and the success being committed: at-least-once means
    // it runs again.
    let mut in_flight: BTreeSet<(String, String)> = BTreeSet::new();
    for run in store.unfinished_runs().await.unwrap() {
        for t in store.task_instances(run.id).await.unwrap() {
            if t.state == vigil::state::TaskState::Running {
                in_flight.insert((run.id.to_string(), t.task_id));
            }
        }
    }
    let at_kill = ledger(&p);
    // Tasks the victim had started and not finished when it died: certainly run again.
    let interrupted: BTreeSet<(String, String)> = at_kill
        .iter()
        .filter(|l| l[0] == "start" && l[4] == victim_pid)
        .map(|l| (l[1].clone(), l[2].clone()))
        .filter(|k| {
            !at_kill
                .iter()
                .any(|l| l[0] == "end" && (l[1].clone(), l[2].clone()) == *k)
        })
        .collect();
    wait_for_secs("every run to succeed", 300, || all_succeeded(&p, 200));
    let lines = ledger(&p);
    let mut starts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for l in lines.iter().filter(|l| l[0] == "start") {
        *starts.entry((l[1].clone(), l[2].clone())).or_default() += 1;
    }
    assert_eq!(starts.len(), 200 * 10, "{} starts", lines.len());
    for (key, n) in &starts {
        // At most 1 + the crashes during it; exactly once for every task not in flight.
        let allowed = if interrupted.contains(key) {
            2..=2
        } else if in_flight.contains(key) {
            1..=2
        } else {
            1..=1
        };
        assert!(
            allowed.contains(n),
            "{key:?} started {n} times; interrupted: {interrupted:?}; in flight: {in_flight:?}"
        );
    }
    assert!(
        !interrupted.is_empty(),
        "the kill interrupted nothing: {at_kill:?}"
    );
    assert_eq!(survivor.terminate(), 0);
    assert_eq!(other.terminate(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_cron_ticks_raced_by_three_daemons_make_exactly_one_run_each() {
    let Some((p, url)) = project_with_url().await else {
        return;
    };
    // Every second, from 2,000 seconds ago to a second ago: catch-up makes every tick at once.
    let end = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(1);
    let start = end - chrono::Duration::seconds(1999);
    p.write(
        "dags/tick.toml",
        &format!(
            "schedule = \"* * * * * *\"\ntimezone = \"UTC\"\nstart_date = \"{}\"\nend_date = \"{}\"\ncatchup = true\nmax_active_runs = 64\n\n[tasks.t]\ntype = \"noop\"\n",
            start.format("%Y-%m-%dT%H:%M:%SZ"),
            end.format("%Y-%m-%dT%H:%M:%SZ"),
        ),
    );
    p.vigil(&["db", "migrate"]).expect(0);
    let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
        .await
        .unwrap();
    let daemons: Vec<DaemonProcess> = (0..3).map(|_| p.daemon(&[])).collect();
    let start_wait = std::time::Instant::now();
    loop {
        let done = store
            .count_runs(vigil::state::RunState::Success)
            .await
            .unwrap();
        let open = store.unfinished_runs().await.unwrap().len();
        if done >= 2000 && open == 0 {
            break;
        }
        assert!(
            start_wait.elapsed() < std::time::Duration::from_secs(300),
            "timed out: {done} runs succeeded, {open} unfinished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for d in daemons {
        assert_eq!(d.terminate(), 0);
    }
    let runs = store
        .runs(&vigil::store::RunFilter {
            dag_id: Some("tick".into()),
            state: None,
            before: None,
            limit: Some(10_000),
        })
        .await
        .unwrap();
    let dates: Vec<String> = runs.iter().map(|r| r.logical_date.to_rfc3339()).collect();
    let distinct: BTreeSet<&String> = dates.iter().collect();
    assert_eq!(distinct.len(), dates.len(), "two runs of one tick");
    let expected: BTreeSet<String> = (0..2000)
        .map(|s| (start + chrono::Duration::seconds(s)).to_rfc3339())
        .collect();
    let got: BTreeSet<String> = dates.into_iter().collect();
    assert_eq!(got, expected, "missing or extra ticks");
}

/// JSON as both stores show it: timestamps to the microsecond (PostgreSQL's precision).
fn normalized(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Value::String(
                t.with_timezone(&Utc)
                    .trunc_subsecs(6)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            Err(_) => Value::String(s),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalized(v))).collect()),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn db_copy_moves_a_sqlite_history_into_postgres_and_the_cli_shows_the_same() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let p = Project::new();
    // History on SQLite: a run with results, logs, a failure and its mail; a model with
    // versions, production changes, predictions and alerts.
    p.write(
        "config/vigil.toml",
        "[notify]\nemail_on_failure = [\"ops@example.com\"]\n",
    );
    p.write(
        "dags/mixed.toml",
        "[tasks.make]\ntype = \"noop\"\nconfig = { output = { n = 3 } }\n\n[tasks.say]\ntype = \"command\"\ndepends_on = [\"make\"]\nconfig = { command = [\"sh\", \"-c\", \"echo hello >&2; echo '{\\\"ok\\\": true}'\"] }\n\n[tasks.boom]\ntype = \"fail\"\ndepends_on = [\"make\"]\n",
    );
    p.vigil(&["dags", "test", "mixed"]).expect(1);
    p.vigil(&["dags", "pause", "mixed"]).expect(0);
    // 1,200 predictions in all: more than one page of the copy.
    let mut csv = String::from("row_key,predicted,actual\n");
    for i in 0..600 {
        csv.push_str(&format!("r{i},{},{}\n", f64::from(i) + 0.5, i));
    }
    p.write("pred.csv", &csv);
    for v in ["v1", "v2"] {
        p.vigil(&[
            "model",
            "register",
            "m",
            "--version",
            v,
            "--metric",
            "rmse=1",
        ])
        .expect(0);
        p.vigil(&["model", "predictions", "import", "m", v, "pred.csv"])
            .expect(0);
        p.vigil(&["model", "promote", "m", v]).expect(0);
    }
    p.vigil(&["model", "check", "m"]).expect(0);
    let sqlite = format!("sqlite://{}", p.path().join("vigil.db").display());
    let views = |db: &str| -> Vec<serde_json::Value> {
        [
            vec!["runs", "list", "--json"],
            vec!["runs", "show", "1", "--json"],
            vec!["tasks", "logs", "1", "say", "--json"],
            vec!["tasks", "xcom", "1", "say", "--json"],
            vec!["dags", "list", "--json"],
            vec!["model", "history", "m", "--json"],
            vec!["model", "status", "m", "--json"],
            vec!["notify", "list", "--json"],
        ]
        .iter()
        .map(|args| {
            let mut all = vec!["--database", db];
            all.extend(args);
            normalized(p.vigil(&all).expect(0).json())
        })
        .collect()
    };
    let before = views(&sqlite);

    let copied = p
        .vigil(&["db", "copy", "--from", &sqlite, "--to", &url, "--json"])
        .expect(0)
        .json();
    let rows = |table: &str| {
        copied["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["table"] == table))
            .map(|t| t["rows"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert_eq!(rows("dag_runs"), 1, "{copied}");
    assert_eq!(rows("task_instances"), 3, "{copied}");
    assert_eq!(rows("model_predictions"), 1200, "{copied}");
    assert!(rows("outbox") >= 1 && rows("task_logs") >= 1, "{copied}");
    assert_eq!(views(&url), before, "the copy reads differently");

    // The copy continues where the source stopped: new ids follow the copied ones.
    let run = p
        .vigil(&["--database", &url, "dags", "test", "mixed", "--json"])
        .json();
    assert_eq!(run["run_id"], 2, "{run}");
    // Only into an empty database, and only from SQLite into PostgreSQL.
    let again = p
        .vigil(&["db", "copy", "--from", &sqlite, "--to", &url])
        .expect(1);
    assert!(
        again.stderr().contains("copy into an empty database"),
        "{}",
        again.stderr()
    );
    let wrong = p
        .vigil(&["db", "copy", "--from", &url, "--to", &sqlite])
        .expect(1);
    assert!(
        wrong
            .stderr()
            .contains("copies a SQLite database into a PostgreSQL one"),
        "{}",
        wrong.stderr()
    );
}

/// Retention sweeps on one daemon at a time: while another holds the sweep's advisory lock a
/// sweep removes nothing, and once it is released the next sweep does the work.
#[tokio::test]
async fn retention_sweeps_on_one_daemon_at_a_time() {
    use crate::conformance::{create, instance, transition};
    use vigil::state::{RunState, TaskState};
    use vigil::store::{Batch, RunTransition};

    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
        .await
        .unwrap();
    let run = create(store.as_ref(), "d", &["a"]).await;
    let a = instance(store.as_ref(), run.id, "a").await;
    let mut b = Batch::new(run.id);
    b.tasks.push(transition(&a, TaskState::Success, 1));
    b.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Success,
        at: Utc::now(),
        note: None,
    });
    store.commit(&b).await.unwrap();
    let later = Utc::now() + chrono::Duration::days(1);

    // Another daemon's sweep, holding the lock.
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(8532464671517536884)")
        .fetch_one(&mut *held)
        .await
        .unwrap();
    assert!(got);
    assert_eq!(store.cleanup(later).await.unwrap().runs, 0);
    assert!(store.run(run.id).await.unwrap().is_some());
    held.rollback().await.unwrap();
    assert_eq!(store.cleanup(later).await.unwrap().runs, 1);
    assert!(store.run(run.id).await.unwrap().is_none());
}

/// `vigil bench --scenario throughput` runs several daemons on a PostgreSQL database, and
/// refuses more than one daemon on SQLite.
#[tokio::test(flavor = "multi_thread")]
async fn the_throughput_benchmark_shares_a_postgres_database_between_daemons() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let p = Project::new();
    let r = p
        .vigil(&[
            "--database",
            &url,
            "bench",
            "--scenario",
            "throughput",
            "--quick",
            "--daemons",
            "2",
        ])
        .expect(0)
        .json();
    assert_eq!(r["size"], 400, "{r}");
    assert!(r["total_ms"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    let runs = p
        .vigil(&[
            "--database",
            &url,
            "runs",
            "list",
            "--state",
            "success",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(runs.as_array().map(Vec::len), Some(4), "{runs}");
    let refused = p
        .vigil(&[
            "bench",
            "--scenario",
            "throughput",
            "--quick",
            "--daemons",
            "2",
        ])
        .expect(1);
    assert!(
        refused.stderr().contains("needs a shared database"),
        "{}",
        refused.stderr()
    );
}

/// A daemon started while PostgreSQL is down waits for it, saying so; a restart of the server
/// under a running daemon loses nothing: the runs it was executing finish, with their results.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_waits_for_postgres_and_rides_out_a_restart() {
    let Some(mut server) = crate::pg::OwnServer::new() else {
        return;
    };
    let p = project_on(&server.url(), "");
    p.write(
        "dags/slow.toml",
        "[tasks.a]\ntype = \"command\"\n[tasks.a.config]\nshell = true\ncommand = \"echo start $VIGIL_RUN_ID >> ../ledger; sleep 2; echo '{\\\"run\\\": '$VIGIL_RUN_ID'}'\"\n\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\n",
    );
    let log = p.path().join("daemon.log");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(p.path())
        .arg("daemon")
        .env_remove("VIGIL_DATABASE_URL")
        .env("VIGIL_API_LISTEN", crate::util::FREE_PORT)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for_secs("the daemon to say it waits for PostgreSQL", 30, || {
        logs().contains("PostgreSQL is not reachable yet")
    });
    assert!(!logs().contains("daemon started"), "{}", logs());
    server.start();
    wait_for_secs("the daemon to start once PostgreSQL is up", 60, || {
        logs().contains("daemon started")
    });
    for _ in 0..3 {
        p.vigil(&["dags", "trigger", "slow"]).expect(0);
    }
    let started = || {
        std::fs::read_to_string(p.path().join("ledger"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for_secs("the tasks to be running", 30, || started() == 3);
    // The server goes away while the tasks run, and comes back.
    server.stop();
    std::thread::sleep(std::time::Duration::from_secs(2));
    server.start();
    wait_for_secs("every run to succeed after the restart", 90, || {
        let runs = p.runs_of("slow");
        runs.len() == 3 && runs.iter().all(|r| r["state"] == "success")
    });
    for run in ["1", "2", "3"] {
        let result = p
            .vigil(&["tasks", "xcom", run, "a", "--json"])
            .expect(0)
            .json();
        assert_eq!(result["value"]["run"].to_string(), run, "{result}");
    }
    assert_eq!(started(), 3, "a task ran again although nothing was lost");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert_eq!(daemon.wait().unwrap().code(), Some(0), "{}", logs());
}

/// One run's fan-out spreads over every daemon with free slots, and the DAG's
/// `max_active_tasks` holds across them (judged from the attempts' stored start and end).
#[tokio::test(flavor = "multi_thread")]
async fn one_runs_fan_out_spreads_over_the_daemons_within_the_dags_limit() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let p = project_on(&url, "\n[executor]\nparallelism = 4\n");
    let (tasks, limit) = (30, 10);
    fan_out(&p, tasks, "0.5");
    let dag = std::fs::read_to_string(p.path().join("dags/fan.toml")).unwrap();
    p.write(
        "dags/fan.toml",
        &dag.replacen(
            "max_active_runs = 64\n",
            &format!("max_active_runs = 64\nmax_active_tasks = {limit}\n"),
            1,
        ),
    );
    p.vigil(&["db", "migrate"]).expect(0);
    let daemons: Vec<DaemonProcess> = (0..3).map(|_| p.daemon(&[])).collect();
    p.vigil(&["dags", "trigger", "fan"]).expect(0);
    wait_for_secs("the run to succeed", 120, || all_succeeded(&p, 1));
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    let fan: Vec<&serde_json::Value> = shown["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["task_id"] != "start")
        .collect();
    assert_eq!(fan.len(), tasks);
    // Who ran what: the ledger (outside the database) and the stored worker agree.
    let by: BTreeSet<String> = ledger(&p)
        .iter()
        .filter(|l| l[0] == "start")
        .map(|l| l[4].clone())
        .collect();
    let workers: BTreeSet<String> = fan
        .iter()
        .map(|t| t["worker"].as_str().unwrap_or_default().to_string())
        .collect();
    let pids: BTreeSet<String> = daemons.iter().map(|d| d.pid().to_string()).collect();
    assert_eq!(
        by, pids,
        "one run's tasks ran on {by:?}, not on all of {pids:?}"
    );
    assert_eq!(workers.len(), 3, "{workers:?}");
    // The most attempts running at one instant, from the stored times.
    let mut edges: Vec<(chrono::DateTime<Utc>, i32)> = Vec::new();
    for t in &fan {
        assert_eq!(t["attempt"], 1, "{t}");
        let at = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(t[k].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        };
        edges.push((at("started_at"), 1));
        edges.push((at("ended_at"), -1));
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert!(
        most <= limit,
        "{most} attempts ran at once; the limit is {limit}"
    );
    assert!(
        most > 4,
        "only {most} at once: the daemons did not run the fan-out together"
    );
    for d in daemons {
        assert_eq!(d.terminate(), 0);
    }
}

/// The owner of a run and the worker running its task are different daemons: a cancel still
/// kills the attempt's processes, and a worker stopped with SIGTERM hands its interrupted
/// attempt to another worker (without using up a retry).
#[tokio::test(flavor = "multi_thread")]
async fn cancel_and_shutdown_reach_an_attempt_on_another_daemon() {
    let Some(p) = project().await else { return };
    let pid_file = p.path().join("child.pid");
    p.write(
        "dags/slow.toml",
        &format!(
            "[tasks.slow]\ntype = \"command\"\nconfig = {{ command = [\"sh\", \"-c\", \"sleep 300 & echo $! > '{}'; wait\"] }}\n[tasks.after]\ntype = \"noop\"\ndepends_on = [\"slow\"]\n",
            pid_file.display()
        ),
    );
    p.write(
        "dags/short.toml",
        "[tasks.work]\ntype = \"command\"\n[tasks.work.config]\nshell = true\ncommand = \"echo start $VIGIL_ATTEMPT $PPID >> ../ledger; sleep 4; echo end $VIGIL_ATTEMPT $PPID >> ../ledger\"\n",
    );
    p.vigil(&["db", "migrate"]).expect(0);
    let scheduler = p.daemon(&["--scheduler-only"]);
    let first = p.daemon(&["--worker-only"]);
    p.vigil(&["dags", "trigger", "slow"]).expect(0);
    wait_for_secs("the slow task's child to start", 30, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(child));
    p.vigil(&["runs", "cancel", "1"]).expect(0);
    wait_for_secs("the run to end", 30, || {
        p.vigil(&["runs", "show", "1", "--json"]).json()["run"]["state"] == "failed"
    });
    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    let tasks = shown["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["state"], "failed", "{shown}");
    assert_eq!(tasks[1]["state"], "skipped", "{shown}");
    wait_for_secs(
        "the worker to kill the cancelled attempt's child",
        30,
        || !alive(child),
    );

    p.vigil(&["dags", "trigger", "short"]).expect(0);
    wait_for_secs("the task to start on the first worker", 30, || {
        ledger(&p).iter().any(|l| l[0] == "start")
    });
    let second = p.daemon(&["--worker-only"]);
    assert_eq!(
        first.terminate(),
        0,
        "the first worker stops within its grace"
    );
    wait_for_secs("the run to succeed on the second worker", 60, || {
        p.runs_of("short")
            .first()
            .is_some_and(|r| r["state"] == "success")
    });
    let shown = p.vigil(&["runs", "show", "2", "--json"]).expect(0).json();
    let work = &shown["tasks"][0];
    assert_eq!(work["attempt"], 2, "{work}");
    assert_eq!(
        work["max_attempts"], 2,
        "the interrupted attempt did not use up a retry"
    );
    assert!(
        work["worker"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{}@", second.pid())),
        "{work}"
    );
    let starts: Vec<String> = ledger(&p)
        .iter()
        .filter(|l| l[0] == "start")
        .map(|l| l[1].clone())
        .collect();
    assert_eq!(starts, ["1", "2"]);
    assert_eq!(second.terminate(), 0);
    assert_eq!(scheduler.terminate(), 0);
}

/// One `--scheduler-only` daemon creates the runs, one `--worker-only` daemon executes them;
/// `vigil daemons` shows who is which. On SQLite a role is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_only_and_a_worker_only_daemon_split_the_work() {
    let Some(p) = project().await else { return };
    let end = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(1);
    let start = end - chrono::Duration::seconds(19);
    p.write(
        "dags/tick.toml",
        &format!(
            "schedule = \"* * * * * *\"\ntimezone = \"UTC\"\nstart_date = \"{}\"\nend_date = \"{}\"\ncatchup = true\n\n[tasks.t]\ntype = \"noop\"\n",
            start.format("%Y-%m-%dT%H:%M:%SZ"),
            end.format("%Y-%m-%dT%H:%M:%SZ"),
        ),
    );
    p.vigil(&["db", "migrate"]).expect(0);
    let worker = p.daemon(&["--worker-only"]);
    // A worker alone makes no scheduled runs.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        p.runs_of("tick").is_empty(),
        "a worker-only daemon scheduled runs"
    );
    let scheduler = p.daemon(&["--scheduler-only"]);
    wait_for_secs("20 runs to succeed", 60, || {
        let runs = p.runs_of("tick");
        runs.len() == 20 && runs.iter().all(|r| r["state"] == "success")
    });
    // The scheduler owns the runs (decides what is ready); the worker runs every task.
    let runs = p.runs_of("tick");
    let owners: BTreeSet<String> = runs
        .iter()
        .map(|r| r["owner"].as_str().unwrap_or_default().to_string())
        .collect();
    let (worker_name, scheduler_name) = (
        format!("{}@", worker.pid()),
        format!("{}@", scheduler.pid()),
    );
    assert!(
        owners.iter().all(|o| o.starts_with(&scheduler_name)),
        "runs owned by {owners:?}, not only the scheduler {scheduler_name}"
    );
    let workers: BTreeSet<String> = runs
        .iter()
        .map(|r| {
            let id = r["id"].to_string();
            let shown = p.vigil(&["runs", "show", &id, "--json"]).expect(0).json();
            shown["tasks"][0]["worker"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        workers.iter().all(|w| w.starts_with(&worker_name)),
        "tasks run by {workers:?}, not only the worker {worker_name}"
    );
    let listed = p.vigil(&["daemons", "--json"]).expect(0).json();
    let roles: BTreeMap<String, String> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["pid"].to_string(),
                d["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles.get(&worker.pid().to_string()).map(String::as_str),
        Some("worker")
    );
    assert_eq!(
        roles.get(&scheduler.pid().to_string()).map(String::as_str),
        Some("scheduler")
    );
    assert_eq!(worker.terminate(), 0);
    assert_eq!(scheduler.terminate(), 0);

    let sqlite = Project::new();
    let refused = sqlite.vigil(&["daemon", "--worker-only"]).expect(1);
    assert!(
        refused
            .stderr()
            .contains("needs a database other daemons share"),
        "{}",
        refused.stderr()
    );
}

/// A daemon killed while it delivers a failure mail: once its claim's lease runs out another
/// daemon sends it, and the mail server receives it once.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_daemons_claimed_mail_is_sent_by_another_once() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    // SMTP timeout 3 s, webhook timeout 1 s: a claimed delivery is held for 12 s.
    let p = project_on(
        &url,
        &format!(
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"vigil <vigil@vigil.test>\"\ntimeout = \"3s\"\n\n[notify]\npoll_interval = \"200ms\"\nretry_delay = \"200ms\"\nwebhook_timeout = \"1s\"\n"
        ),
    );
    p.write(
        "dags/fails.toml",
        "[notify]\nemail_on_failure = [\"oncall@example.com\"]\n\n[tasks.boom]\ntype = \"fail\"\n",
    );
    // A server that accepts and says nothing: the first daemon's delivery hangs in it.
    let staller = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let first = p.daemon(&[]);
    let first_pid = first.pid();
    p.vigil(&["dags", "trigger", "fails"]).expect(0);
    let (held, _) = staller.accept().unwrap();
    first.kill9();
    drop(held);
    drop(staller);
    // The dead daemon's claim stands until its lease runs out.
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    let holders: Vec<Option<String>> =
        sqlx::query_scalar("SELECT lease_owner FROM outbox WHERE state = 'pending'")
            .fetch_all(&raw)
            .await
            .unwrap();
    let victim = format!("{first_pid}@");
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert!(
        holders[0]
            .as_deref()
            .is_some_and(|h| h.starts_with(&victim)),
        "not claimed by the dead daemon: {holders:?}"
    );

    let smtp = crate::notify::Smtp::start(port);
    let second = p.daemon(&[]);
    wait_for_secs("the mail to arrive from the second daemon", 60, || {
        !smtp.mails().is_empty()
    });
    // Long enough for a second delivery, were there one.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "delivered {} times", mails.len());
    assert!(
        mails[0]
            .header("Subject")
            .unwrap_or_default()
            .contains("fails"),
        "{:?}",
        mails[0].header("Subject")
    );
    let sent = p.vigil(&["notify", "list", "--json"]).expect(0).json();
    assert_eq!(sent[0]["state"], "sent", "{sent}");
    assert_eq!(second.terminate(), 0);
}

/// The API on PostgreSQL: two daemons each serve it; a trigger through one runs on either,
/// and both report the same database in `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_a_shared_database_from_every_daemon() {
    use crate::api::{api_of, http};
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let p = project_on(&url, "\n[api]\ntoken_file = \"api.token\"\n");
    p.write("api.token", "pg-token-0123456789abcdef\n");
    p.write("dags/hello.toml", "[tasks.a]\ntype = \"noop\"\n");
    p.vigil(&["db", "migrate"]).expect(0);
    let (first, second) = (p.daemon(&[]), p.daemon(&[]));
    let (a, b) = (api_of(&first), api_of(&second));
    let (s, body) = http(
        &a,
        "POST",
        "/api/v1/dags/hello/runs",
        Some("pg-token-0123456789abcdef"),
        &[("Idempotency-Key", "k1")],
        None,
    );
    assert_eq!(s, 201, "{body}");
    let run = body["run"]["id"].as_i64().unwrap();
    // The same key through the other daemon: the same run.
    let (s, again) = http(
        &b,
        "POST",
        "/api/v1/dags/hello/runs",
        Some("pg-token-0123456789abcdef"),
        &[("Idempotency-Key", "k1")],
        None,
    );
    assert_eq!(
        (s, again["run"]["id"].as_i64()),
        (200, Some(run)),
        "{again}"
    );
    crate::util::wait_for("the run to succeed", || {
        http(&b, "GET", &format!("/api/v1/runs/{run}"), None, &[], None).1["run"]["state"]
            == "success"
    });
    for api in [&a, &b] {
        let (s, body) = http(api, "GET", "/readyz", None, &[], None);
        assert_eq!(s, 200, "{body}");
        let (_, metrics) = http(api, "GET", "/metrics", None, &[], None);
        let text = metrics.as_str().unwrap_or_default();
        assert!(
            text.contains("vigil_runs{dag_id=\"hello\",state=\"success\"} 1"),
            "{text}"
        );
    }
    assert_eq!(first.terminate(), 0);
    assert_eq!(second.terminate(), 0);
}

/// Every feature SQLite runs, on PostgreSQL: `vigil demo`, each shipped DAG in the foreground,
/// and the model monitoring and risk DAGs under a daemon (their tasks claimed by its worker).
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_and_every_shipped_dag_run_on_postgres() {
    let Some(p) = project().await else { return };
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            p.write(
                &format!("dags/{name}"),
                &std::fs::read_to_string(&path).unwrap(),
            );
            ids.push(name.trim_end_matches(".toml").to_string());
        }
    }
    if shipped.join("scripts").is_dir() {
        for entry in std::fs::read_dir(shipped.join("scripts")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            p.write(
                &format!("dags/scripts/{name}"),
                &std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
    let out = p.vigil(&["demo"]).expect(0).stdout();
    assert!(out.contains("action: rolled back to v2"), "{out}");
    let status = p
        .vigil(&["model", "status", "demo_churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["model"]["production_version"], "v2");
    for id in &ids {
        let run = p.vigil(&["dags", "test", id]);
        assert_eq!(run.code(), 0, "{id}: {}{}", run.stdout(), run.stderr());
    }
    let d = p.daemon(&[]);
    for id in ["model_performance_monitoring", "deployment_risk"] {
        p.vigil(&["dags", "unpause", id]).expect(0);
        let out = p
            .vigil(&["dags", "trigger", id, "--wait", "--json"])
            .expect(0)
            .json();
        assert_eq!(out["state"], "success", "{id}: {out}");
    }
    assert_eq!(d.terminate(), 0);
}

/// The database password, a sentinel in `database.url`, is in no output: not in the daemon's
/// log, any CLI output (an error for a database that does not exist included), any API
/// response, the task's environment and log, or anything stored in the database.
#[tokio::test(flavor = "multi_thread")]
async fn the_database_password_never_appears_in_any_output() {
    const SENTINEL: &str = "SENTINEL-pg-9b31e7";
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let with_password = url.replacen(
        "postgres://vigil@",
        &format!("postgres://vigil:{SENTINEL}@"),
        1,
    );
    assert!(with_password.contains(SENTINEL));
    let p = project_on(&with_password, "");
    p.write(
        "dags/leaky.toml",
        "[tasks.show]\ntype = \"command\"\nconfig = { command = [\"sh\", \"-c\", \"env >&2; exit 1\"] }\n",
    );
    p.vigil(&["db", "migrate"]).expect(0);
    let d = p.daemon(&[]);
    let mut seen = String::new();
    let r = p.vigil(&["dags", "trigger", "leaky", "--wait"]);
    seen.push_str(&r.stdout());
    seen.push_str(&r.stderr());
    let api = crate::api::api_of(&d);
    for path in [
        "/api/v1/runs",
        "/api/v1/runs/1",
        "/api/v1/runs/1/tasks/show/logs",
        "/healthz",
        "/metrics",
        "/api/v1/dags/leaky",
    ] {
        let (_, body) = crate::api::http(&api, "GET", path, None, &[], None);
        seen.push_str(&body.to_string());
    }
    for args in [
        vec!["runs", "list", "--json"],
        vec!["runs", "show", "1", "--json"],
        vec!["tasks", "logs", "1", "show"],
        vec!["daemons", "--json"],
        vec!["daemons"],
        vec!["notify", "list", "--json"],
        vec!["dags", "list"],
    ] {
        let r = p.vigil(&args);
        seen.push_str(&r.stdout());
        seen.push_str(&r.stderr());
    }
    // A database that does not exist: the error names it, not the password.
    let missing = with_password
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/no_such_db"))
        .unwrap_or_default();
    let r = p.vigil(&["--database", &missing, "runs", "list"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("no_such_db"), "{}", r.stderr());
    seen.push_str(&r.stderr());
    let logs = d.log.clone();
    assert_eq!(d.terminate(), 0);
    seen.push_str(&std::fs::read_to_string(logs).unwrap_or_default());
    let store = sqlx::PgPool::connect(&url).await.expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&store)
    .await
    .expect("tables");
    for t in &tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM \"{t}\" t"
        )))
        .fetch_all(&store)
        .await
        .expect("rows");
        seen.push_str(&rows.join("\n"));
    }
    // The search covered real output: the task's environment is in its stored log.
    assert!(seen.contains("VIGIL_TASK_ID=show"), "{seen}");
    assert!(!seen.contains(SENTINEL), "the password leaked");
}
