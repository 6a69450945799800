//! Scenarios against a real `vigil daemon` child process: trigger latency, resident memory,
//! cron lateness and the soak.

// The scenarios share the runner's imports and helpers.
use super::*;

/// A `vigil daemon` started by a benchmark, on its own database (or the PostgreSQL one given)
/// and DAG folder.
pub(super) struct BenchDaemon {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl BenchDaemon {
    async fn start(dir: &Path) -> anyhow::Result<BenchDaemon> {
        let url = format!("sqlite://{}", dir.join("daemon.db").display());
        Self::start_on(dir, &url, "daemon.log").await
    }

    async fn start_on(dir: &Path, url: &str, log: &str) -> anyhow::Result<BenchDaemon> {
        let log = dir.join(log);
        let child = std::process::Command::new(std::env::current_exe()?)
            .current_dir(dir)
            .args(["--database", url])
            .arg("--dags")
            .arg(dir.join("dags"))
            .arg("daemon")
            // Several bench daemons run at once: each serves its API on a free port.
            .env("VIGIL_API_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting a daemon")?;
        let started = Instant::now();
        while !std::fs::read_to_string(&log)?.contains("daemon started") {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the daemon did not start; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(BenchDaemon {
            child,
            url: url.to_string(),
            log,
        })
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Current resident memory (VmRSS) in MiB.
    fn rss_mib(&self) -> f64 {
        status_field(&format!("/proc/{}/status", self.pid()), "VmRSS:")
    }

    /// The API address the daemon logged (it may log it just after it says it started).
    async fn api_address(&self) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log)?;
            if let Some(rest) = log.split("API listening address=http://").nth(1) {
                return Ok(rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the daemon did not log its API address; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn store(&self) -> anyhow::Result<Arc<dyn crate::store::Store>> {
        Ok(crate::store::open(&self.url, Synchronous::Normal).await?)
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child process; SIGTERM lets it leave `vigil daemons`.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Median and max time from queueing a run (and waking the daemon, as `vigil dags trigger`
/// does) to its first task starting, over `n` triggers one after another.
pub(super) async fn trigger_latency(
    dir: &Path,
    n: usize,
    database: Option<&str>,
) -> anyhow::Result<(Duration, Duration, f64)> {
    std::fs::create_dir_all(dir.join("dags"))?;
    std::fs::write(
        dir.join("dags/one.toml"),
        "id = \"one\"\n[tasks.a]\ntype = \"noop\"\n",
    )?;
    let daemon = match database {
        Some(url) => BenchDaemon::start_on(dir, url, "daemon.log").await?,
        None => BenchDaemon::start(dir).await?,
    };
    let store = daemon.store().await?;
    let registry = crate::tasks::builtin();
    let dag = parse_dag(
        &dir.join("dags/one.toml"),
        "id = \"one\"\n[tasks.a]\ntype = \"noop\"\n",
        &registry,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let new = plan_run(
            &dag,
            serde_json::Value::Null,
            RunType::Manual,
            Utc::now(),
            RunState::Queued,
            None,
        )?;
        let run = store.create_run(&new).await?;
        // As `vigil dags trigger` does: SIGUSR1 on SQLite, NOTIFY on PostgreSQL.
        store.wake_daemons().await;
        let started = loop {
            let tis = store.task_instances(run.id).await?;
            if let Some(at) = tis.first().and_then(|t| t.started_at) {
                break at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push((started - run.queued_at).to_std().unwrap_or_default());
        while !store
            .run(run.id)
            .await?
            .is_some_and(|r| r.state.is_terminal())
        {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    latencies.sort();
    let rss = daemon.rss_mib();
    Ok((
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        rss,
    ))
}

/// Time for a daemon to start with `n` DAG files, and its resident memory a second later.
pub(super) async fn daemon_memory(dir: &Path, n: usize) -> anyhow::Result<(Duration, f64)> {
    std::fs::create_dir_all(dir.join("dags"))?;
    for i in 0..n {
        std::fs::write(dir.join(format!("dags/dag_{i:03}.toml")), generated_dag(i))?;
    }
    let start = Instant::now();
    let daemon = BenchDaemon::start(dir).await?;
    let started = start.elapsed();
    // Settled (start-up over, its code pages trimmed: `daemon::memory`), then serving the
    // page, the DAG list and a scrape, as a daemon with people and Prometheus watching does.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let addr = daemon.api_address().await?;
    for path in ["/", "/ui/app.js", "/api/v1/dags", "/metrics"] {
        http_get(&addr, path).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((started, daemon.rss_mib()))
}

/// Median and max delay between an every-second tick and its run's first task starting,
/// over `secs` seconds.
pub(super) async fn cron_lateness(
    dir: &Path,
    secs: usize,
) -> anyhow::Result<(Duration, Duration, f64)> {
    std::fs::create_dir_all(dir.join("dags"))?;
    std::fs::write(
        dir.join("dags/every_second.toml"),
        "id = \"every_second\"\nschedule = \"* * * * * *\"\n[tasks.a]\ntype = \"noop\"\n",
    )?;
    let daemon = BenchDaemon::start(dir).await?;
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    let store = daemon.store().await?;
    let runs = store
        .runs(&crate::store::RunFilter {
            dag_id: Some("every_second".into()),
            state: None,
            before: None,
            limit: Some(u32::MAX),
        })
        .await?;
    let mut late = Vec::new();
    for run in &runs {
        let tis = store.task_instances(run.id).await?;
        if let Some(at) = tis.first().and_then(|t| t.started_at) {
            late.push((
                (at - run.logical_date).to_std().unwrap_or_default(),
                run.logical_date,
            ));
        }
    }
    if late.is_empty() {
        bail!("no scheduled run started in {secs} s");
    }
    late.sort();
    let pct = |p: usize| ms(late[(late.len() - 1) * p / 100].0);
    eprintln!(
        "lateness: {} runs over {secs} s; p90 {:.1} ms, p99 {:.1} ms; worst at {}",
        late.len(),
        pct(90),
        pct(99),
        late.iter()
            .rev()
            .take(3)
            .map(|(d, at)| format!("{} ({:.0} ms)", at.format("%H:%M:%S"), ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let late: Vec<Duration> = late.into_iter().map(|(d, _)| d).collect();
    Ok((late[late.len() / 2], late[late.len() - 1], daemon.rss_mib()))
}

/// What the soak scenario saw.
pub(super) struct Soak {
    pub(super) dags: usize,
    pub(super) secs: usize,
    /// Ticks due between each DAG's first tick and the end of the soak.
    pub(super) ticks: usize,
    /// Runs created for those ticks, and how many of them finished successfully.
    pub(super) runs: usize,
    pub(super) finished: usize,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
    pub(super) rss_start_mib: f64,
    pub(super) rss_end_mib: f64,
    pub(super) rss_max_mib: f64,
}

impl Soak {
    pub(super) fn met(&self) -> bool {
        self.finished == self.ticks && self.rss_end_mib <= self.rss_start_mib + 10.0
    }

    pub(super) fn summary(&self) -> String {
        format!(
            "soak: {} DAGs × {} s: {} ticks, {} runs, {} finished; lateness p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; resident memory {:.1} MiB after warm-up, {:.1} MiB at the end, {:.1} MiB at most",
            self.dags,
            self.secs,
            self.ticks,
            self.runs,
            self.finished,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.rss_start_mib,
            self.rss_end_mib,
            self.rss_max_mib
        )
    }
}

/// `dags` DAGs with an every-second cron under one daemon with default settings for `secs`
/// seconds; then the DAGs are paused and the runs of the ticks so far given time to finish.
pub(super) async fn soak(dir: &Path, secs: usize, dags: usize) -> anyhow::Result<Soak> {
    std::fs::create_dir_all(dir.join("dags"))?;
    let ids: Vec<String> = (0..dags).map(|i| format!("soak_{i:03}")).collect();
    for id in &ids {
        std::fs::write(
            dir.join(format!("dags/{id}.toml")),
            format!("id = \"{id}\"\nschedule = \"* * * * * *\"\n[tasks.a]\ntype = \"noop\"\n"),
        )?;
    }
    let daemon = BenchDaemon::start(dir).await?;
    let store = daemon.store().await?;
    // Memory after the first ticks have been served, then every second.
    let warm_up = Duration::from_secs(5.min(secs as u64));
    tokio::time::sleep(warm_up).await;
    let rss_start_mib = daemon.rss_mib();
    let mut rss_max_mib = rss_start_mib;
    let end = Instant::now() + Duration::from_secs(secs as u64).saturating_sub(warm_up);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max_mib = rss_max_mib.max(daemon.rss_mib());
    }
    let rss_end_mib = daemon.rss_mib();
    let until = Utc::now().trunc_subsecs(0);
    for id in &ids {
        store.set_paused(id, true).await?;
    }
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(daemon.pid(), libc::SIGUSR1) };
    // The ticks up to the pause; their runs get up to a minute to finish.
    let drain = Instant::now();
    loop {
        let unfinished = store.unfinished_runs().await?;
        if unfinished.iter().all(|r| r.logical_date > until)
            || drain.elapsed() > Duration::from_secs(60)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs: Vec<_> = store
        .runs(&crate::store::RunFilter {
            dag_id: None,
            state: None,
            before: None,
            limit: Some(u32::MAX),
        })
        .await?
        .into_iter()
        .filter(|r| r.logical_date <= until)
        .collect();
    let mut first: std::collections::HashMap<&str, chrono::DateTime<Utc>> = Default::default();
    for r in &runs {
        let f = first.entry(r.dag_id.as_str()).or_insert(r.logical_date);
        *f = (*f).min(r.logical_date);
    }
    let ticks = first
        .values()
        .map(|f| (until - *f).num_seconds().max(0) as usize + 1)
        .sum();
    let mut late = Vec::with_capacity(runs.len());
    for run in &runs {
        let tis = store.task_instances(run.id).await?;
        if let Some(at) = tis.first().and_then(|t| t.started_at) {
            late.push((at - run.logical_date).to_std().unwrap_or_default());
        }
    }
    if late.is_empty() {
        bail!("no scheduled run started in {secs} s");
    }
    late.sort();
    let pct = |p: usize| late[(late.len() - 1) * p / 100];
    Ok(Soak {
        dags,
        secs,
        ticks,
        runs: runs.len(),
        finished: runs.iter().filter(|r| r.state == RunState::Success).count(),
        p50: pct(50),
        p99: pct(99),
        max: late[late.len() - 1],
        rss_start_mib,
        rss_end_mib,
        rss_max_mib,
    })
}

/// A `kB` field of a /proc status file, in MiB.
pub(super) fn status_field(path: &str, field: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// `daemons` daemons on one database executing `tasks` noop task instances (runs of 100
/// tasks, created at once and woken as a trigger would): the time from the wake-up to the last
/// run finished.
pub(super) async fn throughput(
    dir: &Path,
    tasks: usize,
    daemons: usize,
    database: Option<&str>,
) -> anyhow::Result<Duration> {
    const PER_RUN: usize = 100;
    std::fs::create_dir_all(dir.join("dags"))?;
    let mut src = String::from("id = \"wide\"\nmax_active_runs = 1000\nmax_active_tasks = 1000\n");
    for i in 0..PER_RUN {
        src.push_str(&format!("[tasks.t{i}]\ntype = \"noop\"\n"));
    }
    std::fs::write(dir.join("dags/wide.toml"), &src)?;
    let url = match database {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", dir.join("daemon.db").display()),
    };
    let mut running = Vec::new();
    for i in 0..daemons.max(1) {
        running.push(BenchDaemon::start_on(dir, &url, &format!("daemon-{i}.log")).await?);
    }
    let store = running[0].store().await?;
    let dag = parse_dag(&dir.join("dags/wide.toml"), &src, &crate::tasks::builtin())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ids = Vec::new();
    let base = Utc::now();
    for r in 0..tasks.div_ceil(PER_RUN) {
        let new = plan_run(
            &dag,
            serde_json::Value::Null,
            RunType::Manual,
            base + chrono::Duration::microseconds(r as i64),
            RunState::Queued,
            None,
        )?;
        ids.push(store.create_run(&new).await?.id);
    }
    let start = Instant::now();
    store.wake_daemons().await;
    let last = *ids.last().unwrap_or(&0);
    let first = *ids.first().unwrap_or(&0);
    loop {
        let unfinished = store
            .unfinished_runs()
            .await?
            .iter()
            .filter(|r| r.id >= first && r.id <= last)
            .count();
        if unfinished == 0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("{unfinished} run(s) still unfinished after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(start.elapsed())
}

/// The web page with `n` finished runs of 100 DAGs in the database: for each page, the median
/// and slowest time to load it as a browser does — the HTML, then its script and style at
/// once, then the API calls the page makes (each step's requests at once). Returns the slowest
/// page's median, the slowest load of any page, and the daemon's resident memory.
pub(super) async fn web_pages(dir: &Path, n: usize) -> anyhow::Result<(Duration, Duration, f64)> {
    const DAGS: usize = 100;
    const LOADS: usize = 20;
    std::fs::create_dir_all(dir.join("dags"))?;
    let registry = crate::tasks::builtin();
    let mut dags = Vec::with_capacity(DAGS);
    for i in 0..DAGS {
        let path = dir.join(format!("dags/dag_{i:03}.toml"));
        let text = generated_dag(i);
        std::fs::write(&path, &text)?;
        dags.push(parse_dag(&path, &text, &registry).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    // The runs are written before the daemon starts: finished, each task a success.
    let url = format!("sqlite://{}", dir.join("daemon.db").display());
    let mut last = None;
    {
        let store = crate::store::open(&url, Synchronous::Normal).await?;
        let now = Utc::now();
        for k in 0..n {
            let dag = &dags[k % DAGS];
            let at = now - chrono::Duration::minutes((n - k) as i64);
            let new = plan_run(
                dag,
                serde_json::Value::Null,
                RunType::Manual,
                at,
                RunState::Running,
                None,
            )?;
            let run = store.create_run(&new).await?;
            let mut batch = crate::store::Batch::new(run.id);
            for ti in store.task_instances(run.id).await? {
                let mut to = ti.clone();
                to.state = crate::state::TaskState::Success;
                to.attempt = 1;
                to.started_at = Some(at);
                to.ended_at = Some(at + chrono::Duration::milliseconds(40));
                batch
                    .tasks
                    .push(crate::store::TaskTransition::change(&ti, to));
            }
            batch.run = Some(crate::store::RunTransition {
                expect: RunState::Running,
                to: RunState::Success,
                at: at + chrono::Duration::seconds(1),
                note: None,
            });
            store.commit(&batch).await?;
            last = Some((run.id, dag.id.clone(), dag.tasks[0].id.clone()));
        }
    }
    let Some((run, dag, task)) = last else {
        bail!("the web scenario needs at least one run");
    };
    let daemon = BenchDaemon::start(dir).await?;
    let addr = daemon.api_address().await?;
    let shell: [&[&str]; 2] = [&["/"], &["/ui/app.js", "/ui/app.css"]];
    let dag_detail = format!("/api/v1/dags/{dag}");
    let grid = format!("/api/v1/dags/{dag}/grid");
    let run_detail = format!("/api/v1/runs/{run}");
    let log_stream = format!("/api/v1/runs/{run}/tasks/{task}/logs/stream?attempt=1");
    let result = format!("/api/v1/runs/{run}/tasks/{task}/result?attempt=1");
    let pages: [(&str, Vec<Vec<&str>>); 4] = [
        ("DAG list", vec![vec!["/api/v1/dags"]]),
        ("DAG grid and graph", vec![vec![&dag_detail, &grid]]),
        (
            "run with a task's log",
            vec![vec![&run_detail], vec![&log_stream, &result]],
        ),
        (
            "alerts and outbox",
            vec![vec!["/api/v1/models"], vec!["/api/v1/outbox"]],
        ),
    ];
    let mut slowest_median = Duration::ZERO;
    let mut slowest = Duration::ZERO;
    for (name, calls) in &pages {
        let steps: Vec<Vec<&str>> = shell
            .iter()
            .map(|s| s.to_vec())
            .chain(calls.iter().cloned())
            .collect();
        let mut loads = Vec::with_capacity(LOADS);
        for _ in 0..LOADS {
            let start = Instant::now();
            for step in &steps {
                let fetched =
                    futures::future::join_all(step.iter().map(|path| http_get(&addr, path))).await;
                for f in fetched {
                    f?;
                }
            }
            loads.push(start.elapsed());
        }
        loads.sort();
        let median = loads[loads.len() / 2];
        let max = loads[loads.len() - 1];
        eprintln!(
            "  web: {name}: median {:.1} ms, slowest {:.1} ms ({n} runs)",
            ms(median),
            ms(max)
        );
        slowest_median = slowest_median.max(median);
        slowest = slowest.max(max);
    }
    Ok((slowest_median, slowest, daemon.rss_mib()))
}

/// One `GET` to the API over a new connection, read to its end; a 5xx is an error.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let status = String::from_utf8_lossy(&response[..response.len().min(12)]).to_string();
    if !status.starts_with("HTTP/1.1 2") && !status.starts_with("HTTP/1.1 4") {
        bail!("GET {path} answered {status}");
    }
    Ok(response.len())
}
