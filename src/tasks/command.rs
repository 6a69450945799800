//! `command`: run any executable as a task — the way to write a task in any language.
//!
//! The process gets the run's params and its direct upstream results as one JSON document on
//! stdin, and its stdout (one JSON value) becomes the task's result. It runs without a shell
//! unless the DAG says `shell = true`, so templated arguments cannot inject shell syntax. It
//! runs in its own process group, and the whole group is killed when the attempt times out or
//! is cancelled, so no grandchild outlives its task.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::state::LogLevel;
use crate::task::{Task, TaskContext, TaskError, process};

/// Lines of stderr quoted in the error of a failed attempt.
const STDERR_TAIL: usize = 20;

pub struct Command;

/// Config of a `command` task, as written in the DAG file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawConfig")]
pub struct CommandConfig {
    pub program: Program,
    /// Extra environment variables; `None` values are nulls, refused when the task runs.
    pub env: BTreeMap<String, Option<String>>,
    pub cwd: Option<PathBuf>,
    pub output: OutputMode,
    pub skip_exit_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// An executable and its arguments, run directly. `None` is a null, refused at run time.
    Argv(Vec<Option<String>>),
    /// A command line run by `sh -c`.
    Shell(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    command: CommandLine,
    #[serde(default)]
    shell: bool,
    #[serde(default)]
    env: BTreeMap<String, Arg>,
    cwd: Option<PathBuf>,
    #[serde(default)]
    output: OutputMode,
    #[serde(default = "default_skip_exit_code")]
    skip_exit_code: Option<i32>,
}

#[derive(Debug)]
enum CommandLine {
    Argv(Vec<Arg>),
    Line(String),
}

impl<'de> Deserialize<'de> for CommandLine {
    /// serde's own message for an untagged enum ("did not match any variant") names no type a
    /// user wrote; this one says what to write.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CommandLine, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Argv(Vec<Arg>),
            Line(String),
        }
        match Written::deserialize(d) {
            Ok(Written::Argv(argv)) => Ok(CommandLine::Argv(argv)),
            Ok(Written::Line(line)) => Ok(CommandLine::Line(line)),
            // Only the "matched neither form" error is replaced; a missing key stays one.
            Err(e) if e.to_string().starts_with("data did not match any variant") => {
                Err(serde::de::Error::custom(
                    "expected the command as a list of arguments (`[\"echo\", \"hi\"]`) or, with `shell = true`, a string",
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// An argument or environment value: a string, or a number or bool written as text, so
/// `"{{ params.rows }}"` (which keeps its number type) works as an argument. `None` is a null,
/// refused when the task runs (at load time it stands for a value not known yet).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arg(Option<String>);

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Arg, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Arg;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Arg, E> {
                Ok(Arg(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Arg, E> {
                Ok(Arg(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Arg, E> {
                Ok(Arg(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Arg, E> {
                Ok(Arg(Some(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Arg, E> {
                Ok(Arg(Some(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Arg, E> {
                Ok(Arg(None))
            }
            fn visit_none<E>(self) -> Result<Arg, E> {
                Ok(Arg(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the process's stdout means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// One JSON value: the task's result (empty stdout is `null`).
    #[default]
    Json,
    /// The trimmed text is the result, as a string.
    Text,
    /// No result; stdout goes to the task log.
    None,
}

/// Exit code that means "nothing to do": the task ends `skipped` (Airflow's convention).
fn default_skip_exit_code() -> Option<i32> {
    Some(99)
}

impl TryFrom<RawConfig> for CommandConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let program = match (raw.command, raw.shell) {
            (CommandLine::Argv(argv), false) => {
                let Some(first) = argv.first() else {
                    return Err("`command` is empty; give the program and its arguments, e.g. [\"python3\", \"train.py\"]".into());
                };
                if let Arg(Some(program)) = first {
                    check_program(program)?;
                }
                Program::Argv(argv.into_iter().map(|a| a.0).collect())
            }
            (CommandLine::Line(line), true) => Program::Shell(line),
            (CommandLine::Line(line), false) => {
                return Err(format!(
                    "`command` is a string ({line:?}) but `shell` is false; write it as a list like [\"prog\", \"arg\"], or set shell = true to run it with sh -c"
                ));
            }
            (CommandLine::Argv(_), true) => {
                return Err("with shell = true, write `command` as one string for sh -c".into());
            }
        };
        Ok(CommandConfig {
            program,
            env: raw.env.into_iter().map(|(k, v)| (k, v.0)).collect(),
            cwd: raw.cwd,
            output: raw.output,
            skip_exit_code: raw.skip_exit_code,
        })
    }
}

/// A bare program name must be on PATH: a typo is caught when the DAG loads. Paths and
/// templated names (empty when checked at load) are checked when the task runs.
fn check_program(program: &str) -> Result<(), String> {
    if program.is_empty() || program.contains('/') {
        return Ok(());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program))) {
        Ok(())
    } else {
        Err(format!(
            "program `{program}` is not on PATH; install it, fix the name, or give its full path"
        ))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What the process reads on stdin.
#[derive(Serialize)]
struct Stdin<'a> {
    dag_id: &'a str,
    run_id: i64,
    task_id: &'a str,
    attempt: u32,
    logical_date: String,
    params: &'a serde_json::Map<String, serde_json::Value>,
    upstream: BTreeMap<&'a str, &'a serde_json::Value>,
}

/// Kills the process group when dropped, unless disarmed: an attempt that is cancelled or
/// times out is dropped mid-await, and this is what stops its processes.
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
            // effects. The group was created for this child by `process_group(0)`.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// What was read from one of a process's pipes.
#[derive(Default)]
struct Captured {
    /// The first bytes, up to the budget.
    kept: Vec<u8>,
    /// Bytes read past the budget and dropped.
    dropped: u64,
    /// The last lines, for the error of a failed attempt (when the pipe goes to the log).
    tail: Vec<String>,
}

/// Longest line passed to the log as it is; a longer one is cut there.
const MAX_LINE: usize = 64 << 10;

/// Reads `pipe` to its end, keeping at most `keep` bytes and, with `log`, passing each line to
/// the attempt's log (which has its own budget). Everything is read, so the process never
/// blocks on a full pipe, but memory stays flat however much it prints.
async fn read_capped(
    pipe: Option<impl AsyncRead + Unpin>,
    keep: usize,
    log: Option<&TaskContext>,
) -> Captured {
    let mut got = Captured::default();
    let Some(pipe) = pipe else {
        return got;
    };
    let mut reader = tokio::io::BufReader::with_capacity(64 << 10, pipe);
    let mut line = Vec::new();
    let mut tail = std::collections::VecDeque::with_capacity(STDERR_TAIL);
    loop {
        line.clear();
        // Reads up to a newline, but never more than MAX_LINE bytes into memory.
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = keep.saturating_sub(got.kept.len());
        got.kept.extend_from_slice(&line[..n.min(room)]);
        got.dropped += n.saturating_sub(room) as u64;
        if let Some(ctx) = log {
            let text = String::from_utf8_lossy(&line);
            ctx.log(LogLevel::Info, text.trim_end_matches(['\n', '\r']));
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line[..n.min(500)].to_vec());
        }
    }
    got.tail = tail
        .iter()
        .map(|l| {
            crate::state::shown(
                String::from_utf8_lossy(l).trim_end_matches(['\n', '\r']),
                500,
            )
        })
        .collect();
    got
}

/// Waits for the process to exit. When the attempt is cancelled (shutdown), its process group
/// gets SIGTERM and `grace` to exit, then SIGKILL.
async fn wait_or_terminate(
    child: &mut tokio::process::Child,
    pgid: Option<i32>,
    ctx: &TaskContext,
    grace: std::time::Duration,
) -> std::io::Result<std::process::ExitStatus> {
    tokio::select! {
        status = child.wait() => return status,
        _ = ctx.cancelled() => {}
    }
    if let Some(pgid) = pgid {
        // SAFETY: kill(2) on the process group created for this child; no memory effects.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            if let Some(pgid) = pgid {
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            child.wait().await
        }
    }
}

#[async_trait]
impl Task for Command {
    type Config = CommandConfig;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &TaskContext,
        config: CommandConfig,
    ) -> Result<serde_json::Value, TaskError> {
        let (mut cmd, shown) = match &config.program {
            Program::Argv(argv) => {
                let argv: Vec<&str> = argv
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        a.as_deref().ok_or_else(|| {
                            TaskError::fatal(format!(
                                "argument {i} of `command` rendered to null; check the template that fills it"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let Some((program, args)) = argv.split_first() else {
                    return Err(TaskError::fatal("`command` is empty"));
                };
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                (c, argv.join(" "))
            }
            Program::Shell(line) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(line);
                (c, line.clone())
            }
        };
        for name in crate::state::secret_env::hidden_from_tasks() {
            cmd.env_remove(name);
        }
        let cwd = match &config.cwd {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => ctx.dag_folder.join(dir),
            None => ctx.dag_folder.clone(),
        };
        let cwd = if cwd.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            cwd
        };
        for (name, value) in &config.env {
            let Some(value) = value else {
                return Err(TaskError::fatal(format!(
                    "env `{name}` rendered to null; check the template that fills it"
                )));
            };
            cmd.env(name, value);
        }
        cmd.current_dir(&cwd)
            .env("VIGIL_DAG_ID", &ctx.dag_id)
            .env("VIGIL_RUN_ID", ctx.run_id.to_string())
            .env("VIGIL_TASK_ID", &ctx.task_id)
            .env("VIGIL_ATTEMPT", ctx.attempt.to_string())
            .env("VIGIL_LOGICAL_DATE", ctx.logical_date.to_rfc3339())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if !ctx.attempt_key().is_empty() {
            cmd.env(process::ATTEMPT_KEY_ENV, ctx.attempt_key());
        }
        process::die_with_parent(&mut cmd);
        ctx.info(format!("running `{shown}` in {}", cwd.display()));

        let mut child = cmd.spawn().map_err(|e| {
            TaskError::fatal(format!(
                "cannot start `{shown}` in {}: {e}; check the program path and the working directory",
                cwd.display()
            ))
        })?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        let mut killer = GroupKiller(pgid);

        let payload = serde_json::to_vec(&Stdin {
            dag_id: &ctx.dag_id,
            run_id: ctx.run_id,
            task_id: &ctx.task_id,
            attempt: ctx.attempt,
            logical_date: ctx.logical_date.to_rfc3339(),
            params: &ctx.params,
            upstream: ctx
                .upstream_results()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_ref()))
                .collect(),
        })
        .map_err(|e| TaskError::fatal(format!("cannot encode stdin: {e}")))?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A program that does not read stdin closes it early; that is not an error.
                let _ = stdin.write_all(&payload).await;
            }
        };
        let limits = ctx.limits();
        // stdout is the result unless it goes to the log; either way it is read as it comes
        // and kept only within its budget, so a task that prints without end costs no memory.
        let stdout_to_log = config.output == OutputMode::None;
        let stdout = read_capped(
            child.stdout.take(),
            if stdout_to_log {
                0
            } else {
                limits.max_result_bytes
            },
            stdout_to_log.then_some(ctx),
        );
        let stderr = read_capped(child.stderr.take(), 0, Some(ctx));
        let wait = wait_or_terminate(&mut child, pgid, ctx, limits.kill_grace);
        let (_, stdout, stderr, status) = tokio::join!(feed, stdout, stderr, wait);
        let status =
            status.map_err(|e| TaskError::failed(format!("lost track of `{shown}`: {e}")))?;
        killer.disarm();

        if !status.success() {
            let code = status.code();
            if code.is_some() && code == config.skip_exit_code {
                return Err(TaskError::Skip(format!(
                    "`{shown}` exited with code {} (the skip code)",
                    code.unwrap_or_default()
                )));
            }
            let how = match code {
                Some(code) => format!("exited with code {code}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!(
                        "was killed by signal {}",
                        status.signal().unwrap_or_default()
                    )
                }
            };
            let tail = stderr.tail.join("\n");
            return Err(TaskError::failed(if tail.is_empty() {
                format!("`{shown}` {how} (no stderr)")
            } else {
                format!("`{shown}` {how}; stderr ends with:\n{tail}")
            }));
        }
        if !stdout_to_log && stdout.dropped > 0 {
            return Err(TaskError::fatal(format!(
                "stdout of `{shown}` was {} bytes, more than the {} KiB a result may be ([executor] max_result_bytes); write large data to a file and print its path",
                stdout.kept.len() as u64 + stdout.dropped,
                limits.max_result_bytes >> 10
            )));
        }
        let stdout = String::from_utf8_lossy(&stdout.kept);
        match config.output {
            OutputMode::Json if stdout.trim().is_empty() => Ok(serde_json::Value::Null),
            OutputMode::Json => serde_json::from_str(stdout.trim()).map_err(|e| {
                let shown_out: String = stdout.chars().take(200).collect();
                TaskError::fatal(format!(
                    "stdout of `{shown}` is not JSON ({e}): {shown_out:?}; print one JSON value, or set output = \"text\" or \"none\""
                ))
            }),
            OutputMode::Text => Ok(serde_json::Value::String(stdout.trim().to_string())),
            OutputMode::None => Ok(serde_json::Value::Null),
        }
    }
}
