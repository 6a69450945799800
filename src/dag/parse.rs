//! Turns one DAG file into a validated [`Dag`], or into every problem the file has.
//!
//! The file is parsed into spanned TOML values and walked by hand rather than deserialized
//! with `deny_unknown_fields`: serde stops at the first error, and a person fixing a DAG
//! wants all of them, each with its line.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::dag::diagnostic::{FileErrors, Sink};
use crate::dag::graph::DagGraph;
use crate::dag::spec::{Backoff, Dag, RetryPolicy, Schedule, TaskSpec, TriggerRule};
use crate::state::NotifySpec;
use crate::task::Registry;
use crate::task::template::{ConfigTemplate, RenderContext, RunVars, Scope, TemplateProblem};

const DAG_KEYS: &[&str] = &[
    "id",
    "description",
    "schedule",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "paused",
    "max_active_runs",
    "max_active_tasks",
    "tags",
    "params",
    "defaults",
    "notify",
    "tasks",
];
const DEFAULTS_KEYS: &[&str] = &[
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
];
const TASK_KEYS: &[&str] = &[
    "type",
    "depends_on",
    "trigger_rule",
    "config",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "notify",
];
const NOTIFY_KEYS: &[&str] = &["email_on_failure", "email_on_retry", "webhook_on_failure"];

pub const DEFAULT_MAX_ACTIVE_RUNS: u32 = 16;
pub const DEFAULT_MAX_ACTIVE_TASKS: u32 = 16;

type Value<'i> = Spanned<DeValue<'i>>;

/// Parses and validates the DAG in `src` (the text of `file`).
pub fn parse_dag(file: &Path, src: &str, registry: &Registry) -> Result<Dag, FileErrors> {
    let mut sink = Sink::new(file, src);
    let dag = parse_into(file, src, registry, &mut sink);
    match dag {
        Some(dag) if sink.is_empty() => Ok(dag),
        _ => Err(FileErrors {
            file: file.to_path_buf(),
            diagnostics: sink.diagnostics,
        }),
    }
}

/// Where a task stands while the file is read: raw parts kept with their spans.
struct RawTask<'i> {
    id: String,
    id_span: Range<usize>,
    task_type: Option<(String, Range<usize>)>,
    depends_on: Vec<(String, Range<usize>)>,
    depends_span: Option<Range<usize>>,
    trigger_rule: TriggerRule,
    config: Option<&'i Value<'i>>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    notify: NotifySpec,
}

/// The per-task settings `[defaults]` provides.
#[derive(Clone, Copy)]
struct TaskDefaults {
    retry: RetryPolicy,
    timeout: Option<Duration>,
}

/// The DAG-level settings, read before the tasks.
struct Header {
    id: String,
    description: String,
    schedule: Option<Schedule>,
    timezone: chrono_tz::Tz,
    start_date: Option<chrono::DateTime<chrono::Utc>>,
    end_date: Option<chrono::DateTime<chrono::Utc>>,
    catchup: bool,
    paused: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    tags: Vec<String>,
    params: BTreeMap<String, serde_json::Value>,
    notify: NotifySpec,
    defaults: TaskDefaults,
}

/// What a task's config may refer to, shared by every task of the file.
struct ConfigScope<'a> {
    registry: &'a Registry,
    params: &'a BTreeMap<String, serde_json::Value>,
    param_map: serde_json::Map<String, serde_json::Value>,
    sample_run: RunVars,
    graph: &'a DagGraph,
    known: &'a HashMap<&'a str, usize>,
}

/// Reads the whole file, reporting every problem to `sink`; `None` when any was found.
fn parse_into(file: &Path, src: &str, registry: &Registry, sink: &mut Sink<'_>) -> Option<Dag> {
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            sink.push(
                e.span(),
                None,
                "toml",
                format!("{}; fix the TOML syntax", e.message().trim_end()),
            );
            return None;
        }
    };
    let root = doc.get_ref();
    unknown_keys(sink, root, DAG_KEYS, "", None);
    let header = header(file, root, sink);
    let raw_tasks = raw_tasks(sink, root, header.defaults);
    let known: HashMap<&str, usize> = raw_tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    check_references(sink, &raw_tasks, &known, registry);
    let (graph, order) = graph(sink, &raw_tasks, &known)?;

    // Templates and configs, now that "upstream" has a meaning.
    let scope = ConfigScope {
        registry,
        params: &header.params,
        param_map: header
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        sample_run: sample_run_vars(&header.id),
        graph: &graph,
        known: &known,
    };
    let mut tasks: Vec<Option<TaskSpec>> = raw_tasks
        .iter()
        .map(|t| task_spec(sink, t, &scope))
        .collect();
    if !sink.is_empty() {
        return None;
    }
    // `order[i]` names the raw task that sits at graph index `i`.
    let tasks: Vec<TaskSpec> = order
        .iter()
        .map(|&raw| tasks[raw].take())
        .collect::<Option<_>>()?;
    Some(Dag {
        id: header.id,
        description: header.description,
        file: file.to_path_buf(),
        source: src.to_string(),
        schedule: header.schedule,
        timezone: header.timezone,
        start_date: header.start_date,
        end_date: header.end_date,
        catchup: header.catchup,
        paused: header.paused,
        max_active_runs: header.max_active_runs,
        max_active_tasks: header.max_active_tasks,
        tags: header.tags,
        params: header.params,
        notify: header.notify,
        tasks,
        graph,
    })
}

fn header(file: &Path, root: &DeTable<'_>, sink: &mut Sink<'_>) -> Header {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = match get(root, "id") {
        Some(v) => string(sink, v, "id", None).unwrap_or_default(),
        None => stem,
    };
    if let Err(why) = check_id(&id) {
        sink.push(
            get(root, "id").map(|v| v.span()),
            None,
            "id",
            format!("DAG id `{id}` {why}"),
        );
    }
    let description = get(root, "description")
        .and_then(|v| string(sink, v, "description", None))
        .unwrap_or_default();
    let schedule = get(root, "schedule").and_then(|v| {
        let text = string(sink, v, "schedule", None)?;
        match parse_cron(&text) {
            Ok(cron) => Some(Schedule {
                expression: text,
                cron,
            }),
            Err(message) => {
                sink.push(Some(v.span()), None, "schedule", message);
                None
            }
        }
    });
    let timezone = get(root, "timezone")
        .and_then(|v| {
            let text = string(sink, v, "timezone", None)?;
            match chrono_tz::Tz::from_str(&text) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    let hint = suggest(&text, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
                    sink.push(
                        Some(v.span()),
                        None,
                        "timezone",
                        format!(
                            "unknown time zone `{text}`; use an IANA name such as `Europe/Berlin` or `UTC`{hint}"
                        ),
                    );
                    None
                }
            }
        })
        .unwrap_or(chrono_tz::UTC);
    let start_date = get(root, "start_date").and_then(|v| instant(sink, v, "start_date", timezone));
    let end_date = get(root, "end_date").and_then(|v| instant(sink, v, "end_date", timezone));
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        sink.push(
            get(root, "end_date").map(|v| v.span()),
            None,
            "end_date",
            "end_date is before start_date; swap them or remove one",
        );
    }
    Header {
        id,
        description,
        schedule,
        timezone,
        start_date,
        end_date,
        catchup: get(root, "catchup")
            .and_then(|v| boolean(sink, v, "catchup", None))
            .unwrap_or(false),
        paused: get(root, "paused")
            .and_then(|v| boolean(sink, v, "paused", None))
            .unwrap_or(false),
        max_active_runs: get(root, "max_active_runs")
            .and_then(|v| positive(sink, v, "max_active_runs", None))
            .unwrap_or(DEFAULT_MAX_ACTIVE_RUNS),
        max_active_tasks: get(root, "max_active_tasks")
            .and_then(|v| positive(sink, v, "max_active_tasks", None))
            .unwrap_or(DEFAULT_MAX_ACTIVE_TASKS),
        tags: get(root, "tags")
            .and_then(|v| string_list(sink, v, "tags", None))
            .map(|t| t.into_iter().map(|(s, _)| s).collect())
            .unwrap_or_default(),
        params: get(root, "params")
            .and_then(|v| params(sink, v))
            .unwrap_or_default(),
        notify: get(root, "notify")
            .map(|v| notify(sink, v, "notify", None))
            .unwrap_or_default(),
        defaults: get(root, "defaults")
            .map(|v| defaults(sink, v))
            .unwrap_or(TaskDefaults {
                retry: RetryPolicy::default(),
                timeout: None,
            }),
    }
}

/// The `[tasks.<id>]` tables as read, before they refer to each other.
fn raw_tasks<'i>(
    sink: &mut Sink<'_>,
    root: &'i DeTable<'i>,
    defaults: TaskDefaults,
) -> Vec<RawTask<'i>> {
    let mut raw_tasks = Vec::new();
    let max_tasks = crate::state::limits::input_limits().tasks_per_dag;
    match get(root, "tasks") {
        None => sink.push(
            None,
            None,
            "tasks",
            "a DAG needs at least one task; add a [tasks.<id>] table with a `type`",
        ),
        Some(v) => match v.get_ref().as_table() {
            Some(table) if table.len() > max_tasks => sink.push(
                Some(v.span()),
                None,
                "tasks",
                format!(
                    "{} tasks, more than the {max_tasks} a DAG may have (`[limits] tasks_per_dag`; each run records every one); split the work into several DAGs, or loop inside a task",
                    table.len(),
                ),
            ),
            Some(table) if !table.is_empty() => {
                for (key, value) in table.iter() {
                    if let Some(t) = task(sink, key, value, defaults) {
                        raw_tasks.push(t);
                    }
                }
            }
            Some(_) => sink.push(
                Some(v.span()),
                None,
                "tasks",
                "a DAG needs at least one task; add a [tasks.<id>] table with a `type`",
            ),
            None => sink.push(
                Some(v.span()),
                None,
                "tasks",
                format!(
                    "expected a table of tasks, found {}; write each task as [tasks.<id>]",
                    v.get_ref().type_str()
                ),
            ),
        },
    }

    raw_tasks
}

/// Every `depends_on` names a task of the file and every `type` a registered task type.
fn check_references(
    sink: &mut Sink<'_>,
    raw_tasks: &[RawTask<'_>],
    known: &HashMap<&str, usize>,
    registry: &Registry,
) {
    for t in raw_tasks {
        for (dep, span) in &t.depends_on {
            if !known.contains_key(dep.as_str()) {
                let hint = suggest(dep, known.keys().copied());
                sink.push(
                    Some(span.clone()),
                    Some(&t.id),
                    format!("tasks.{}.depends_on", t.id),
                    format!("no task named `{dep}` in this DAG{hint}"),
                );
            }
        }
        if let Some((ty, span)) = &t.task_type
            && registry.get(ty).is_none()
        {
            let hint = suggest(ty, registry.names());
            sink.push(
                Some(span.clone()),
                Some(&t.id),
                format!("tasks.{}.type", t.id),
                format!(
                    "unknown task type `{ty}`{hint}; known types: {}",
                    registry.names().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}

/// The task graph with the order of its nodes, or every cycle reported.
fn graph(
    sink: &mut Sink<'_>,
    raw_tasks: &[RawTask<'_>],
    known: &HashMap<&str, usize>,
) -> Option<(DagGraph, Vec<usize>)> {
    let edges: Vec<(String, Vec<String>)> = raw_tasks
        .iter()
        .map(|t| {
            let deps = t
                .depends_on
                .iter()
                .filter(|(d, _)| known.contains_key(d.as_str()))
                .map(|(d, _)| d.clone())
                .collect();
            (t.id.clone(), deps)
        })
        .collect();
    match DagGraph::build(&edges) {
        Ok(built) => Some(built),
        Err(cycles) => {
            for cycle in cycles {
                let Some(first) = cycle.0.first() else {
                    continue;
                };
                let at = known.get(first.as_str()).map(|&i| &raw_tasks[i]);
                sink.push(
                    at.and_then(|t| t.depends_span.clone()),
                    Some(first),
                    format!("tasks.{first}.depends_on"),
                    format!("dependency cycle: {cycle}; remove one of these depends_on entries"),
                );
            }
            None
        }
    }
}

/// One task's spec: its config compiled as a template that reads only what is upstream, and
/// checked against its task type with the default params.
fn task_spec(sink: &mut Sink<'_>, t: &RawTask<'_>, scope: &ConfigScope<'_>) -> Option<TaskSpec> {
    let (graph, known, registry, params) = (scope.graph, scope.known, scope.registry, scope.params);
    let me = graph.index_of(&t.id)?;
    let readable = |other: &str| -> Result<(), String> {
        if t.trigger_rule == TriggerRule::Always {
            return Err(format!(
                "reads `tasks.{other}`, but trigger_rule `always` starts this task without waiting for upstream tasks; use `all_done` to run after them whatever their state"
            ));
        }
        match graph.index_of(other) {
            None => Err(format!(
                "reads `tasks.{other}`, but this DAG has no task `{other}`{}",
                suggest(other, known.keys().copied())
            )),
            Some(o) if graph.is_upstream_of(o, me) => Ok(()),
            Some(_) => Err(format!(
                "reads the result of `{other}`, which is not upstream of `{}`; add `{other}` to depends_on (directly or through another task)",
                t.id
            )),
        }
    };
    let config_json = match t.config {
        Some(v) => match v.get_ref() {
            DeValue::Table(_) => to_json(v),
            other => {
                sink.push(
                    Some(v.span()),
                    Some(&t.id),
                    format!("tasks.{}.config", t.id),
                    format!(
                        "expected a table, found {}; write config = {{ key = value }}",
                        other.type_str()
                    ),
                );
                return None;
            }
        },
        None => serde_json::Value::Object(Default::default()),
    };
    let config_key = |path: &str| {
        if path.is_empty() {
            format!("tasks.{}.config", t.id)
        } else {
            format!("tasks.{}.config.{path}", t.id)
        }
    };
    let config_span = |path: &str| {
        t.config
            .map(|v| span_at(v, path))
            .or(Some(t.id_span.clone()))
    };
    let template = match ConfigTemplate::compile(
        &config_json,
        &Scope {
            params,
            task_readable: &readable,
        },
    ) {
        Ok(template) => template,
        Err(problems) => {
            for TemplateProblem { path, message } in problems {
                sink.push(config_span(&path), Some(&t.id), config_key(&path), message);
            }
            return None;
        }
    };
    if let Some((ty, _)) = &t.task_type
        && let Some(erased) = registry.get(ty)
    {
        let ctx = RenderContext {
            params: &scope.param_map,
            run: &scope.sample_run,
            tasks: BTreeMap::new(),
        };
        match template.probe(&ctx) {
            Err(e) => sink.push(
                config_span(&e.path),
                Some(&t.id),
                config_key(&e.path),
                format!("template fails with the default params: {}", e.message),
            ),
            Ok(probe) => {
                for e in erased.check_config(&probe).err().unwrap_or_default() {
                    sink.push(
                        config_span(&e.path),
                        Some(&t.id),
                        config_key(&e.path),
                        format!("config does not fit task type `{ty}`: {}", e.message),
                    );
                }
            }
        }
    }
    Some(TaskSpec {
        id: t.id.clone(),
        task_type: t
            .task_type
            .as_ref()
            .map(|(s, _)| s.clone())
            .unwrap_or_default(),
        depends_on: t.depends_on.iter().map(|(d, _)| d.clone()).collect(),
        trigger_rule: t.trigger_rule,
        config: template,
        retry: t.retry,
        timeout: t.timeout,
        notify: t.notify.clone(),
    })
}

/// DAG, task and param ids: letters, digits, `_`, `.` and `-` so they are safe in paths, URLs
/// and templates.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > 200 {
        return Err("is longer than 200 characters".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "contains `{c}`; ids may use only letters, digits, `_`, `.` and `-`"
        ));
    }
    if id.chars().all(|c| c == '.') {
        return Err("may not consist of dots only".into());
    }
    Ok(())
}

/// Parses a cron expression as the scheduler will: 5 fields, 6 with seconds, or a nickname.
/// An expression that never fires (February 30th, April 31st) is refused: a DAG that silently
/// never runs is the surprise a load-time check exists to prevent.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| {
            let why = e.to_string();
            format!(
                "invalid cron expression `{text}` ({}); use 5 fields (minute hour day month weekday), 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly",
                why.trim_end_matches('.')
            )
        })?;
    // Eight years from a leap year hold every date a calendar has (February 29th included;
    // 2100 skips one, so a window that never crosses a century year is taken).
    let from = chrono::DateTime::<chrono::Utc>::from_timestamp(946_684_800, 0) // 2000-01-01
        .unwrap_or_default();
    match cron.find_next_occurrence(&from, true) {
        Ok(t) if t < from + chrono::Duration::days(8 * 366) => Ok(cron),
        _ => Err(format!(
            "cron expression `{text}` never fires: no date matches its day and month fields (is it a day the month does not have, like February 30th?)"
        )),
    }
}

fn sample_run_vars(dag_id: &str) -> RunVars {
    RunVars {
        id: 0,
        dag_id: dag_id.to_string(),
        logical_date: "2000-01-01T00:00:00+00:00".into(),
        ds: "2000-01-01".into(),
        data_interval_start: "2000-01-01T00:00:00+00:00".into(),
        data_interval_end: "2000-01-01T00:00:00+00:00".into(),
        conf: serde_json::Value::Object(Default::default()),
        run_type: "manual".into(),
    }
}

fn task<'i>(
    sink: &mut Sink<'_>,
    key: &Spanned<std::borrow::Cow<'i, str>>,
    value: &'i Value<'i>,
    defaults: TaskDefaults,
) -> Option<RawTask<'i>> {
    let id = key.get_ref().to_string();
    let prefix = format!("tasks.{id}");
    if let Err(why) = check_id(&id) {
        sink.push(
            Some(key.span()),
            Some(&id),
            prefix.clone(),
            format!("task id `{id}` {why}"),
        );
        return None;
    }
    let Some(table) = value.get_ref().as_table() else {
        sink.push(
            Some(value.span()),
            Some(&id),
            prefix,
            format!(
                "expected a table, found {}; write the task as [tasks.{id}] with a `type`",
                value.get_ref().type_str()
            ),
        );
        return None;
    };
    let t = Some(id.as_str());
    unknown_keys(sink, table, TASK_KEYS, &prefix, t);

    let task_type = match get(table, "type") {
        Some(v) => string(sink, v, &format!("{prefix}.type"), t).map(|s| (s, v.span())),
        None => {
            sink.push(
                Some(key.span()),
                t,
                format!("{prefix}.type"),
                "missing `type`; name the task type, e.g. type = \"command\"",
            );
            None
        }
    };
    let depends_span = get(table, "depends_on").map(|v| v.span());
    let depends_on = get(table, "depends_on")
        .and_then(|v| string_list(sink, v, &format!("{prefix}.depends_on"), t))
        .unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for (dep, span) in &depends_on {
        if !seen.insert(dep.as_str()) {
            sink.push(
                Some(span.clone()),
                t,
                format!("{prefix}.depends_on"),
                format!("`{dep}` is listed twice; list each upstream task once"),
            );
        }
    }
    let trigger_rule = get(table, "trigger_rule")
        .and_then(|v| {
            let key = format!("{prefix}.trigger_rule");
            let s = string(sink, v, &key, t)?;
            match s.parse() {
                Ok(rule) => Some(rule),
                Err(()) => {
                    let hint = suggest(&s, TriggerRule::ALL.map(TriggerRule::as_str).into_iter());
                    sink.push(
                        Some(v.span()),
                        t,
                        key,
                        format!(
                            "unknown trigger rule `{s}`{hint}; expected one of: {}",
                            TriggerRule::names()
                        ),
                    );
                    None
                }
            }
        })
        .unwrap_or(TriggerRule::AllSuccess);
    let (retry, timeout) = retry_settings(sink, table, &prefix, t, defaults);
    let notify = get(table, "notify")
        .map(|v| notify(sink, v, &format!("{prefix}.notify"), t))
        .unwrap_or_default();

    Some(RawTask {
        id: id.clone(),
        id_span: key.span(),
        task_type,
        depends_on,
        depends_span,
        trigger_rule,
        config: get(table, "config"),
        retry,
        timeout,
        notify,
    })
}

fn defaults(sink: &mut Sink<'_>, v: &Value<'_>) -> TaskDefaults {
    let base = TaskDefaults {
        retry: RetryPolicy::default(),
        timeout: None,
    };
    let Some(table) = v.get_ref().as_table() else {
        sink.push(
            Some(v.span()),
            None,
            "defaults",
            format!("expected a table, found {}", v.get_ref().type_str()),
        );
        return base;
    };
    unknown_keys(sink, table, DEFAULTS_KEYS, "defaults", None);
    let (retry, timeout) = retry_settings(sink, table, "defaults", None, base);
    TaskDefaults { retry, timeout }
}

/// Reads retries, delays, backoff and timeout from `table`, falling back to `base`.
fn retry_settings(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    prefix: &str,
    task: Option<&str>,
    base: TaskDefaults,
) -> (RetryPolicy, Option<Duration>) {
    let mut retry = base.retry;
    let key = |k: &str| format!("{prefix}.{k}");
    if let Some(n) = get(table, "retries").and_then(|v| whole(sink, v, &key("retries"), task)) {
        retry.retries = n;
    }
    if let Some(d) =
        get(table, "retry_delay").and_then(|v| duration(sink, v, &key("retry_delay"), task))
    {
        retry.delay = d;
    }
    if let Some(d) =
        get(table, "max_retry_delay").and_then(|v| duration(sink, v, &key("max_retry_delay"), task))
    {
        retry.max_delay = d;
    }
    if let Some(v) = get(table, "retry_backoff")
        && let Some(s) = string(sink, v, &key("retry_backoff"), task)
    {
        match s.parse::<Backoff>() {
            Ok(b) => retry.backoff = b,
            Err(()) => sink.push(
                Some(v.span()),
                task,
                key("retry_backoff"),
                format!("unknown backoff `{s}`; expected `fixed` or `exponential`"),
            ),
        }
    }
    let mut timeout = base.timeout;
    if let Some(v) = get(table, "timeout") {
        timeout = duration(sink, v, &key("timeout"), task).or(timeout);
    }
    (retry, timeout)
}

fn params(sink: &mut Sink<'_>, v: &Value<'_>) -> Option<BTreeMap<String, serde_json::Value>> {
    let Some(table) = v.get_ref().as_table() else {
        sink.push(
            Some(v.span()),
            None,
            "params",
            format!(
                "expected a table of parameter defaults, found {}",
                v.get_ref().type_str()
            ),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, val) in table.iter() {
        let name = k.get_ref();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            sink.push(
                Some(k.span()),
                None,
                format!("params.{name}"),
                "parameter names must start with a letter or `_` and use only letters, digits and `_`, so templates can read them as params.<name>",
            );
            continue;
        }
        out.insert(name.to_string(), to_json(val));
    }
    Some(out)
}

fn notify(sink: &mut Sink<'_>, v: &Value<'_>, prefix: &str, task: Option<&str>) -> NotifySpec {
    let Some(table) = v.get_ref().as_table() else {
        sink.push(
            Some(v.span()),
            task,
            prefix,
            format!("expected a table, found {}", v.get_ref().type_str()),
        );
        return NotifySpec::default();
    };
    unknown_keys(sink, table, NOTIFY_KEYS, prefix, task);
    // Addresses and URLs are checked here, so a typo fails the load and not the first
    // message, at night, when something broke.
    let mut list = |k: &str| {
        let key = format!("{prefix}.{k}");
        let items = get(table, k)
            .and_then(|v| string_list(sink, v, &key, task))
            .unwrap_or_default();
        for (item, span) in &items {
            let check = if k.starts_with("webhook") {
                crate::notify::address::check_url(item).map(|_| ())
            } else {
                crate::notify::address::check_email(item).map(|_| ())
            };
            if let Err(e) = check {
                sink.push(Some(span.clone()), task, &key, e);
            }
        }
        items.into_iter().map(|(s, _)| s).collect()
    };
    NotifySpec {
        email_on_failure: list("email_on_failure"),
        email_on_retry: list("email_on_retry"),
        webhook_on_failure: list("webhook_on_failure"),
    }
}

fn get<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Value<'i>> {
    table.get(key)
}

fn unknown_keys(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    allowed: &[&str],
    prefix: &str,
    task: Option<&str>,
) {
    for key in table.keys() {
        let name = key.get_ref();
        if !allowed.contains(&name.as_ref()) {
            let hint = suggest(name, allowed.iter().copied());
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            sink.push(
                Some(key.span()),
                task,
                path,
                format!(
                    "unknown key `{name}`{hint}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// ` (did you mean `x`?)` when a known name is close to `given`.
fn suggest<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (strsim::jaro_winkler(given, k), k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn type_error(sink: &mut Sink<'_>, v: &Value<'_>, key: &str, task: Option<&str>, expected: &str) {
    sink.push(
        Some(v.span()),
        task,
        key,
        format!("expected {expected}, found {}", v.get_ref().type_str()),
    );
}

fn string(sink: &mut Sink<'_>, v: &Value<'_>, key: &str, task: Option<&str>) -> Option<String> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        _ => {
            type_error(sink, v, key, task, "a string");
            None
        }
    }
}

fn boolean(sink: &mut Sink<'_>, v: &Value<'_>, key: &str, task: Option<&str>) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            type_error(sink, v, key, task, "true or false");
            None
        }
    }
}

fn integer(v: &DeValue<'_>) -> Option<i64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// A whole number `>= 0` that fits in u32.
fn whole(sink: &mut Sink<'_>, v: &Value<'_>, key: &str, task: Option<&str>) -> Option<u32> {
    match integer(v.get_ref()).map(u32::try_from) {
        Some(Ok(n)) => Some(n),
        _ => {
            type_error(sink, v, key, task, "a whole number (0 or more)");
            None
        }
    }
}

/// A whole number `>= 1`.
fn positive(sink: &mut Sink<'_>, v: &Value<'_>, key: &str, task: Option<&str>) -> Option<u32> {
    match integer(v.get_ref()).map(u32::try_from) {
        Some(Ok(n)) if n >= 1 => Some(n),
        _ => {
            type_error(sink, v, key, task, "a whole number of 1 or more");
            None
        }
    }
}

/// `"30s"`, `"5m"`, `"1h 30m"` (humantime), or a whole number of seconds.
fn duration(sink: &mut Sink<'_>, v: &Value<'_>, key: &str, task: Option<&str>) -> Option<Duration> {
    match v.get_ref() {
        DeValue::String(s) => match crate::state::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                sink.push(Some(v.span()), task, key, e);
                None
            }
        },
        other => match integer(other)
            .and_then(|n| u64::try_from(n).ok())
            .and_then(|secs| crate::state::check_duration(Duration::from_secs(secs)).ok())
        {
            Some(d) => Some(d),
            None => {
                type_error(sink, v, key, task, "a duration such as \"30s\" or \"5m\"");
                None
            }
        },
    }
}

fn string_list(
    sink: &mut Sink<'_>,
    v: &Value<'_>,
    key: &str,
    task: Option<&str>,
) -> Option<Vec<(String, Range<usize>)>> {
    let Some(items) = v.get_ref().as_array() else {
        type_error(sink, v, key, task, "a list of strings");
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        match item.get_ref() {
            DeValue::String(s) => out.push((s.to_string(), item.span())),
            _ => type_error(sink, item, key, task, "a string"),
        }
    }
    Some(out)
}

/// A point in time: a TOML datetime or a string, RFC 3339 (`2026-11-01T00:00:00Z`), a local
/// date-time or a date (both read in the DAG's time zone).
fn instant(
    sink: &mut Sink<'_>,
    v: &Value<'_>,
    key: &str,
    tz: chrono_tz::Tz,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let text = match v.get_ref() {
        DeValue::Datetime(d) => d.to_string(),
        DeValue::String(s) => s.to_string(),
        _ => {
            type_error(
                sink,
                v,
                key,
                None,
                "a date like 2026-11-01 or 2026-11-01T00:00:00Z",
            );
            return None;
        }
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            let local = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })?;
            tz.from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc))
        });
    if parsed.is_none() {
        sink.push(
            Some(v.span()),
            None,
            key,
            format!("invalid date `{text}`; write 2026-11-01, 2026-11-01T06:00:00 (in the DAG's time zone) or 2026-11-01T06:00:00Z"),
        );
    }
    parsed
}

/// A TOML value as JSON. Datetimes become their RFC 3339 text.
fn to_json(v: &Value<'_>) -> serde_json::Value {
    match v.get_ref() {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Integer(_) => integer(v.get_ref())
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Boolean(b) => serde_json::Value::Bool(*b),
        DeValue::Datetime(d) => serde_json::Value::String(d.to_string()),
        DeValue::Array(items) => items.iter().map(to_json).collect(),
        DeValue::Table(t) => t
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// The span of the value at `path` (`a.b[2].c`) under `v`, or the closest enclosing one.
fn span_at(v: &Value<'_>, path: &str) -> Range<usize> {
    let mut node = v;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            match node.get_ref().as_table().and_then(|t| t.get(name)) {
                Some(next) => node = next,
                None => return node.span(),
            }
        }
        for idx in indices
            .split(['[', ']'])
            .filter_map(|s| s.parse::<usize>().ok())
        {
            match node.get_ref().as_array().and_then(|a| a.get(idx)) {
                Some(next) => node = next,
                None => return node.span(),
            }
        }
    }
    node.span()
}
