//! The engine's own scenarios: a long chain and a wide fan-out executed in-process, process
//! start to exit, and loading a large DAG folder.

// The scenarios share the runner's imports and helpers.
use super::*;

pub(super) fn chain_dag(n: usize) -> String {
    let mut s = String::from("id = \"bench_chain\"\n[tasks.t0]\ntype = \"noop\"\n");
    for i in 1..n {
        s.push_str(&format!(
            "[tasks.t{i}]\ntype = \"noop\"\ndepends_on = [\"t{}\"]\n",
            i - 1
        ));
    }
    s
}

pub(super) fn fanout_dag(n: usize) -> String {
    let mut s = String::from(
        "id = \"bench_fanout\"\nmax_active_tasks = 64\n[tasks.root]\ntype = \"noop\"\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "[tasks.f{i}]\ntype = \"noop\"\ndepends_on = [\"root\"]\n"
        ));
    }
    s.push_str("[tasks.join]\ntype = \"noop\"\ndepends_on = [");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"f{i}\""));
    }
    s.push_str("]\n");
    s
}

/// Parses `src`, then times creating and executing one run of it to the end.
pub(super) async fn run_generated(
    ctx: &Ctx,
    dir: &Path,
    src: &str,
    tasks: usize,
    sync: Synchronous,
) -> anyhow::Result<Duration> {
    let dag = Arc::new(
        parse_dag(&dir.join("bench.toml"), src, &ctx.registry)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let url = match super::bench_database(ctx) {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", dir.join("bench.db").display()),
    };
    let store = crate::store::open(&url, sync).await?;
    let executor = Executor::new(
        store.clone(),
        ctx.registry.clone(),
        Arc::new(Limits::new(64)),
    );
    let start = Instant::now();
    let new = plan_run(
        &dag,
        serde_json::Value::Null,
        RunType::Test,
        Utc::now(),
        RunState::Running,
        Some(crate::state::owner::current()),
    )?;
    let run = store.create_run(&new).await?;
    let state = executor.execute(dag, run.clone(), None).await?;
    let elapsed = start.elapsed();
    let done = store
        .task_instances(run.id)
        .await?
        .iter()
        .filter(|t| t.state == crate::state::TaskState::Success)
        .count();
    if state != RunState::Success || done != tasks {
        bail!("benchmark run ended {state} with {done} of {tasks} tasks successful");
    }
    Ok(elapsed)
}

/// Median and max wall time of `vigil dags test` on a 3-task DAG, after one warm-up start
/// that creates the database.
pub(super) fn process_starts(
    dir: &Path,
    n: usize,
    sync: Synchronous,
) -> anyhow::Result<(Duration, Duration)> {
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("three.toml"),
        "id = \"three\"\n[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\n[tasks.c]\ntype = \"noop\"\ndepends_on = [\"b\"]\n",
    )?;
    let exe = std::env::current_exe()?;
    let db = format!("sqlite://{}", dir.join("process.db").display());
    let once = || -> anyhow::Result<Duration> {
        let start = Instant::now();
        let status = std::process::Command::new(&exe)
            .current_dir(dir)
            .env(
                "VIGIL_DATABASE_SYNCHRONOUS",
                match sync {
                    Synchronous::Normal => "normal",
                    Synchronous::Full => "full",
                },
            )
            .args(["--database", &db, "--dags"])
            .arg(&dags)
            .args(["dags", "test", "three"])
            .stdout(Stdio::null())
            .status()?;
        let elapsed = start.elapsed();
        if !status.success() {
            bail!("`vigil dags test three` failed");
        }
        Ok(elapsed)
    };
    once()?;
    let mut times = (0..n).map(|_| once()).collect::<anyhow::Result<Vec<_>>>()?;
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// Median and max time to load and validate `n` generated DAG files, over 5 repetitions.
pub(super) fn load_files(ctx: &Ctx, dir: &Path, n: usize) -> anyhow::Result<(Duration, Duration)> {
    for i in 0..n {
        std::fs::write(dir.join(format!("dag_{i:05}.toml")), generated_dag(i))?;
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let set = DagSet::load_folder(dir, &ctx.registry)?;
        times.push(start.elapsed());
        if set.dags.len() != n || !set.errors.is_empty() {
            bail!(
                "generated DAGs did not all load: {} loaded, first error: {}",
                set.dags.len(),
                set.errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            );
        }
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// A realistic small DAG: schedule, time zone, params, defaults, templates and a command.
pub(super) fn generated_dag(i: usize) -> String {
    format!(
        r#"id = "generated_{i}"
description = "generated for the load benchmark"
schedule = "{minute} * * * *"
timezone = "Europe/Berlin"
tags = ["bench"]

[params]
model = "m{i}"
threshold = 5.0

[defaults]
retries = 2
retry_delay = "10s"
timeout = "5m"

[tasks.extract]
type = "command"
config = {{ command = ["echo", "{{{{ params.model }}}}"], output = "text" }}

[tasks.check]
type = "noop"
depends_on = ["extract"]
config = {{ output = {{ threshold = "{{{{ params.threshold }}}}", source = "{{{{ tasks.extract.output }}}}" }} }}

[tasks.wait]
type = "sleep"
depends_on = ["extract"]
config = {{ duration = "1s" }}

[tasks.join]
type = "noop"
depends_on = ["check", "wait"]
trigger_rule = "all_done"
config = {{ output = "{{{{ tasks.check.output }}}}" }}

[tasks.report]
type = "noop"
depends_on = ["join"]
"#,
        minute = i % 60
    )
}
