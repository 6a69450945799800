//! Templates in task configs (minijinja).
//!
//! Every string value in a task's `config` is a template over `params`, `run` and
//! `tasks.<id>.output` / `tasks.<id>.state`. A string that is exactly one `{{ expression }}`
//! keeps the expression's own type, so a typed config field can receive a number, a bool or a
//! whole upstream result. Templates are parsed and their variables checked when the DAG loads;
//! they are rendered at the start of each attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::task::probe::Probe;

/// Fields of the `run` variable.
pub const RUN_FIELDS: [&str; 8] = [
    "id",
    "dag_id",
    "logical_date",
    "ds",
    "data_interval_start",
    "data_interval_end",
    "conf",
    "run_type",
];

/// Steps (VM instructions) one template may take per render (`[limits] template_steps`).
fn render_fuel() -> u64 {
    crate::state::limits::input_limits().template_steps
}

/// Bytes one template may produce per render (`[limits] template_output_bytes`).
fn render_output_bytes() -> usize {
    crate::state::limits::input_limits().template_output_bytes
}

/// One environment for the whole process: strict about undefined values, so a typo in a
/// template fails loudly instead of rendering an empty string; every render is budgeted by
/// `[limits] template_steps`. `namespace()` is removed: it is the one way to carry a value from one loop
/// iteration to the next, which would let a trigger's params drive unbounded growth.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_recursion_limit(64);
    env.set_fuel(Some(render_fuel()));
    env.remove_global("namespace");
    env
});

/// Template statements a config template may not use: macros (and `call`) recurse, and the
/// loaders behind `include`/`import`/`extends` do not exist here.
const FORBIDDEN_STATEMENTS: [&str; 6] = ["macro", "call", "include", "import", "from", "extends"];

/// The first forbidden statement in `src`, if any (`{% macro`, `{%- call`, ...).
fn forbidden_statement(src: &str) -> Option<&'static str> {
    src.match_indices("{%").find_map(|(at, _)| {
        let rest = src[at + 2..]
            .trim_start_matches(['-', '+', '~'])
            .trim_start();
        FORBIDDEN_STATEMENTS.into_iter().find(|kw| {
            rest.strip_prefix(kw)
                .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
    })
}

/// An `io::Write` into a buffer that refuses to grow past the output budget.
struct Budgeted(Vec<u8>);

impl std::io::Write for Budgeted {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + data.len() > render_output_bytes() {
            return Err(std::io::Error::other(OVER_OUTPUT_BUDGET));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const OVER_OUTPUT_BUDGET: &str = "the output budget is used up";

fn over_output_budget() -> String {
    format!(
        "renders more than {}, the budget of one template (`[limits] template_output_bytes`); pass large data between tasks as a whole result (`{{{{ tasks.<id>.output }}}}`) or through a file",
        crate::state::limits::show_bytes(render_output_bytes() as u64)
    )
}

/// A task's config with its templates parsed.
#[derive(Debug, Clone)]
pub struct ConfigTemplate {
    root: Node,
    /// Task ids whose results the templates read.
    reads_tasks: BTreeSet<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Literal(serde_json::Value),
    /// Exactly one `{{ expr }}`: evaluates to a typed value.
    Expr(String),
    /// Any other template: renders to a string.
    Text(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A problem with one template string, found at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Dotted path of the value inside `config`.
    pub path: String,
    pub message: String,
}

/// What templates are checked against at load.
pub struct Scope<'a> {
    pub params: &'a BTreeMap<String, serde_json::Value>,
    /// Decides whether `tasks.<id>` may be read by this task; returns an explanation if not.
    pub task_readable: &'a dyn Fn(&str) -> Result<(), String>,
}

/// Values templates are rendered with.
#[derive(Debug, Serialize)]
pub struct RenderContext<'a> {
    pub params: &'a serde_json::Map<String, serde_json::Value>,
    pub run: &'a RunVars,
    pub tasks: BTreeMap<&'a str, TaskVars<'a>>,
}

/// The `run` variable.
#[derive(Debug, Clone, Serialize)]
pub struct RunVars {
    pub id: i64,
    pub dag_id: String,
    pub logical_date: String,
    pub ds: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub conf: serde_json::Value,
    pub run_type: String,
}

impl RunVars {
    /// The `run` variable of a stored run.
    pub fn of(run: &crate::store::RunRecord) -> RunVars {
        let ld = run.logical_date;
        RunVars {
            id: run.id,
            dag_id: run.dag_id.clone(),
            logical_date: ld.to_rfc3339(),
            ds: ld.format("%Y-%m-%d").to_string(),
            data_interval_start: run.data_interval_start.to_rfc3339(),
            data_interval_end: ld.to_rfc3339(),
            conf: run.conf.clone(),
            run_type: run.run_type.as_str().to_string(),
        }
    }
}

/// One entry of the `tasks` variable.
#[derive(Debug, Serialize)]
pub struct TaskVars<'a> {
    pub output: &'a serde_json::Value,
    pub state: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("template at `config.{path}` failed: {message}")]
pub struct RenderError {
    pub path: String,
    pub message: String,
}

impl crate::state::Kind for RenderError {
    fn kind(&self) -> crate::state::ErrorKind {
        crate::state::ErrorKind::Invalid
    }
}

impl ConfigTemplate {
    /// Parses every template in `config` and checks what it reads against `scope`. All problems
    /// are returned together.
    pub fn compile(
        config: &serde_json::Value,
        scope: &Scope<'_>,
    ) -> Result<ConfigTemplate, Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        let mut reads_tasks = BTreeSet::new();
        let root = compile_node(config, "", scope, &mut reads_tasks, &mut problems);
        if problems.is_empty() {
            Ok(ConfigTemplate { root, reads_tasks })
        } else {
            Err(problems)
        }
    }

    /// An empty config (`{}`), for tasks that declare none.
    pub fn empty() -> ConfigTemplate {
        ConfigTemplate {
            root: Node::Literal(serde_json::Value::Object(Default::default())),
            reads_tasks: BTreeSet::new(),
        }
    }

    /// Task ids whose results the templates read.
    pub fn reads_tasks(&self) -> &BTreeSet<String> {
        &self.reads_tasks
    }

    /// The config as written, with templates as their source text.
    pub fn source(&self) -> serde_json::Value {
        fn walk(n: &Node) -> serde_json::Value {
            match n {
                Node::Literal(v) => v.clone(),
                Node::Expr(s) | Node::Text(s) => serde_json::Value::String(s.clone()),
                Node::Array(items) => items.iter().map(walk).collect(),
                Node::Object(entries) => entries
                    .iter()
                    .map(|(k, v)| (k.clone(), walk(v)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            }
        }
        walk(&self.root)
    }

    /// True when rendering cannot change the value, so it can be used as is.
    pub fn is_static(&self) -> bool {
        matches!(self.root, Node::Literal(_))
    }

    /// The config as known at load time: templates that do not read upstream results are
    /// rendered with `ctx` (the DAG's default params); those that do are unknown, except that
    /// a mixed template is always a string.
    pub fn probe(&self, ctx: &RenderContext<'_>) -> Result<Probe, RenderError> {
        let value = minijinja::Value::from(minijinja::value::Serde(ctx));
        probe_node(&self.root, "", &value)
    }

    /// Renders the config for one attempt.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<serde_json::Value, RenderError> {
        if let Node::Literal(v) = &self.root {
            return Ok(v.clone());
        }
        let value = minijinja::Value::from(minijinja::value::Serde(ctx));
        render_node(&self.root, "", &value)
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `{{ expr }}` with nothing around it, or `None`.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

fn compile_node(
    v: &serde_json::Value,
    path: &str,
    scope: &Scope<'_>,
    reads_tasks: &mut BTreeSet<String>,
    problems: &mut Vec<TemplateProblem>,
) -> Node {
    match v {
        serde_json::Value::String(s) if is_template(s) => {
            if let Some(kw) = forbidden_statement(s) {
                problems.push(TemplateProblem {
                    path: path.to_string(),
                    message: format!(
                        "uses `{{% {kw} %}}`, which config templates do not support; write the value with expressions, `if` and `for`"
                    ),
                });
                return Node::Literal(v.clone());
            }
            let parsed = match single_expression(s) {
                Some(expr) => ENV
                    .compile_expression(expr)
                    .map(|e| (Node::Expr(expr.to_string()), e.undeclared_variables(true))),
                None => ENV
                    .template_from_str(s)
                    .map(|t| (Node::Text(s.clone()), t.undeclared_variables(true))),
            };
            match parsed {
                Ok((node, vars)) => {
                    let mut vars: Vec<String> = vars.into_iter().collect();
                    vars.sort();
                    for var in vars {
                        if let Err(message) = check_variable(&var, scope, reads_tasks) {
                            problems.push(TemplateProblem {
                                path: path.to_string(),
                                message,
                            });
                        }
                    }
                    node
                }
                Err(e) => {
                    problems.push(TemplateProblem {
                        path: path.to_string(),
                        message: format!("template syntax error: {}", describe(&e)),
                    });
                    Node::Literal(v.clone())
                }
            }
        }
        serde_json::Value::Array(items) => {
            let nodes: Vec<Node> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    compile_node(item, &index_path(path, i), scope, reads_tasks, problems)
                })
                .collect();
            collapse_literals(Node::Array(nodes))
        }
        serde_json::Value::Object(map) => {
            let nodes = map
                .iter()
                .map(|(k, item)| {
                    let n = compile_node(item, &child_path(path, k), scope, reads_tasks, problems);
                    (k.clone(), n)
                })
                .collect();
            collapse_literals(Node::Object(nodes))
        }
        other => Node::Literal(other.clone()),
    }
}

/// A container whose children are all literal is itself a literal.
fn collapse_literals(node: Node) -> Node {
    match node {
        Node::Array(items) if items.iter().all(|n| matches!(n, Node::Literal(_))) => Node::Literal(
            items
                .into_iter()
                .map(|n| match n {
                    Node::Literal(v) => v,
                    _ => serde_json::Value::Null,
                })
                .collect(),
        ),
        Node::Object(entries) if entries.iter().all(|(_, n)| matches!(n, Node::Literal(_))) => {
            Node::Literal(
                entries
                    .into_iter()
                    .map(|(k, n)| match n {
                        Node::Literal(v) => (k, v),
                        _ => (k, serde_json::Value::Null),
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            )
        }
        other => other,
    }
}

/// Checks one variable path a template reads (`params.model`, `tasks.a.output.rows`).
fn check_variable(
    var: &str,
    scope: &Scope<'_>,
    reads_tasks: &mut BTreeSet<String>,
) -> Result<(), String> {
    let mut parts = var.split('.');
    let root = parts.next().unwrap_or_default();
    match root {
        "params" => match parts.next() {
            None => Ok(()),
            Some(name) if scope.params.contains_key(name) => Ok(()),
            Some(name) => Err(format!(
                "reads undeclared param `{name}`; declare it under [params] with a default{}",
                known_list("declared params", scope.params.keys().map(String::as_str))
            )),
        },
        "run" => match parts.next() {
            None => Ok(()),
            Some(field) if RUN_FIELDS.contains(&field) => Ok(()),
            Some(field) => Err(format!(
                "reads unknown field `run.{field}`; run has: {}",
                RUN_FIELDS.join(", ")
            )),
        },
        "tasks" => {
            let (Some(task), Some(field)) = (parts.next(), parts.next()) else {
                return Err(
                    "reads `tasks` as a whole; read one upstream result as `tasks.<id>.output`"
                        .to_string(),
                );
            };
            if field != "output" && field != "state" {
                return Err(format!(
                    "reads `tasks.{task}.{field}`; a task exposes `output` and `state`"
                ));
            }
            (scope.task_readable)(task)?;
            reads_tasks.insert(task.to_string());
            Ok(())
        }
        // The environment's functions (`range`, `dict`, ...).
        global if ENV.globals().any(|(name, _)| name == global) => Ok(()),
        other => Err(format!(
            "reads unknown variable `{other}`; templates can read params.<name>, run.<field> and tasks.<id>.output"
        )),
    }
}

fn known_list<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({what}: {})", names.join(", "))
    }
}

/// minijinja's message plus its line within the template, without its debug dump. A render
/// stopped by a budget says which budget and what to do.
fn describe(e: &minijinja::Error) -> String {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "takes more than {} steps, the budget of one template (`[limits] template_steps`); a config template must be small work (no large or nested loops)",
            render_fuel()
        );
    }
    if e.kind() == minijinja::ErrorKind::WriteFailure {
        return over_output_budget();
    }
    let mut s = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

fn eval_expr(expr: &str, ctx: &minijinja::Value) -> Result<serde_json::Value, String> {
    let compiled = ENV.compile_expression(expr).map_err(|e| describe(&e))?;
    let value = compiled.eval(ctx).map_err(|e| describe(&e))?;
    if value.is_undefined() {
        return Err(format!(
            "`{expr}` is undefined; check the names in the expression against what the upstream task returned"
        ));
    }
    // Measured through the budgeted writer, so an oversized value is refused before a
    // second copy of it is made.
    let mut out = Budgeted(Vec::new());
    if let Err(e) = serde_json::to_writer(&mut out, &value) {
        return Err(if e.is_io() {
            over_output_budget()
        } else {
            e.to_string()
        });
    }
    serde_json::from_slice(&out.0).map_err(|e| e.to_string())
}

fn render_text(src: &str, ctx: &minijinja::Value) -> Result<String, String> {
    let template = ENV.template_from_str(src).map_err(|e| describe(&e))?;
    let mut out = Budgeted(Vec::new());
    template
        .render_captured_to(ctx, &mut out)
        .map_err(|e| describe(&e))?;
    String::from_utf8(out.0).map_err(|e| e.to_string())
}

fn render_node(
    node: &Node,
    path: &str,
    ctx: &minijinja::Value,
) -> Result<serde_json::Value, RenderError> {
    let fail = |message: String| RenderError {
        path: path.to_string(),
        message,
    };
    Ok(match node {
        Node::Literal(v) => v.clone(),
        Node::Expr(expr) => eval_expr(expr, ctx).map_err(fail)?,
        Node::Text(src) => serde_json::Value::String(render_text(src, ctx).map_err(fail)?),
        Node::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| render_node(n, &index_path(path, i), ctx))
            .collect::<Result<_, _>>()?,
        Node::Object(entries) => entries
            .iter()
            .map(|(k, n)| Ok((k.clone(), render_node(n, &child_path(path, k), ctx)?)))
            .collect::<Result<serde_json::Map<_, _>, RenderError>>()?
            .into(),
    })
}

fn reads_any_task(src: &str, single: bool) -> bool {
    let vars = if single {
        ENV.compile_expression(src)
            .map(|e| e.undeclared_variables(false))
    } else {
        ENV.template_from_str(src)
            .map(|t| t.undeclared_variables(false))
    };
    vars.map(|v| v.contains("tasks")).unwrap_or(true)
}

fn probe_node(node: &Node, path: &str, ctx: &minijinja::Value) -> Result<Probe, RenderError> {
    let fail = |message: String| RenderError {
        path: path.to_string(),
        message,
    };
    Ok(match node {
        Node::Literal(v) => Probe::Known(v.clone()),
        Node::Expr(expr) if reads_any_task(expr, true) => Probe::Unknown,
        Node::Expr(expr) => Probe::Known(eval_expr(expr, ctx).map_err(fail)?),
        Node::Text(src) if reads_any_task(src, false) => {
            Probe::Known(serde_json::Value::String(String::new()))
        }
        Node::Text(src) => Probe::Known(serde_json::Value::String(
            render_text(src, ctx).map_err(fail)?,
        )),
        Node::Array(items) => Probe::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| probe_node(n, &index_path(path, i), ctx))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(entries) => Probe::Object(
            entries
                .iter()
                .map(|(k, n)| Ok((k.clone(), probe_node(n, &child_path(path, k), ctx)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params() -> BTreeMap<String, serde_json::Value> {
        [
            ("model".to_string(), json!("churn")),
            ("threshold".to_string(), json!(5.0)),
        ]
        .into()
    }

    fn upstream_only_a(task: &str) -> Result<(), String> {
        if task == "a" {
            Ok(())
        } else {
            Err(format!("`{task}` is not upstream"))
        }
    }

    fn compile(config: serde_json::Value) -> Result<ConfigTemplate, Vec<TemplateProblem>> {
        let p = params();
        ConfigTemplate::compile(
            &config,
            &Scope {
                params: &p,
                task_readable: &upstream_only_a,
            },
        )
    }

    fn run_vars() -> RunVars {
        RunVars {
            id: 7,
            dag_id: "d".into(),
            logical_date: "2026-11-22T14:00:00+00:00".into(),
            ds: "2026-11-22".into(),
            data_interval_start: "2026-11-22T13:00:00+00:00".into(),
            data_interval_end: "2026-11-22T14:00:00+00:00".into(),
            conf: json!({}),
            run_type: "manual".into(),
        }
    }

    /// A render context where upstream task `a` succeeded with `out`.
    fn with_a<'a>(
        params: &'a serde_json::Map<String, serde_json::Value>,
        run: &'a RunVars,
        out: &'a serde_json::Value,
    ) -> RenderContext<'a> {
        RenderContext {
            params,
            run,
            tasks: [(
                "a",
                TaskVars {
                    output: out,
                    state: "success",
                },
            )]
            .into(),
        }
    }

    #[test]
    fn single_expressions_keep_their_type_and_mixed_text_is_a_string() {
        let t = compile(json!({
            "n": "{{ params.threshold }}",
            "whole": "{{ tasks.a.output }}",
            "flag": "{{- tasks.a.output.ok -}}",
            "text": "model={{ params.model }} run={{ run.id }}",
            "plain": "no template",
            "list": ["{{ tasks.a.output.rows * 2 }}", 3],
        }))
        .unwrap();
        assert!(t.reads_tasks().contains("a"));
        let p = serde_json::Map::from_iter(params());
        let out = json!({"rows": 21, "ok": true});
        let run = run_vars();
        assert_eq!(
            t.render(&with_a(&p, &run, &out)).unwrap(),
            json!({
                "n": 5.0,
                "whole": {"rows": 21, "ok": true},
                "flag": true,
                "text": "model=churn run=7",
                "plain": "no template",
                "list": [42, 3],
            })
        );
    }

    #[test]
    fn load_checks_find_every_bad_reference() {
        let problems = compile(json!({
            "x": "{{ params.modle }}",
            "y": "{{ tasks.b.output }}",
            "z": ["{{ nope }}", "{{ run.logicaldate }}"],
            "w": "{{ tasks.a.outptu }}",
            "v": "{% if %}",
        }))
        .unwrap_err();
        let shown: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(shown.len(), 6, "{shown:#?}");
        assert!(
            shown[0].starts_with("v: template syntax error"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("w: reads `tasks.a.outptu`"),
            "{shown:#?}"
        );
        assert!(
            shown[2].starts_with("x: reads undeclared param `modle`"),
            "{shown:#?}"
        );
        assert!(shown[2].contains("declared params: model, threshold"));
        assert_eq!(shown[3], "y: `b` is not upstream");
        assert!(shown[4].starts_with("z[0]: reads unknown variable `nope`"));
        assert!(shown[5].starts_with("z[1]: reads unknown field `run.logicaldate`"));
    }

    #[test]
    fn probe_marks_upstream_results_unknown_and_renders_the_rest() {
        let t = compile(json!({"a": "{{ tasks.a.output }}", "b": "{{ params.threshold }}", "c": "x{{ tasks.a.output }}"}))
            .unwrap();
        let p = serde_json::Map::from_iter(params());
        let run = run_vars();
        let probe = t
            .probe(&RenderContext {
                params: &p,
                run: &run,
                tasks: BTreeMap::new(),
            })
            .unwrap();
        assert_eq!(
            probe,
            Probe::Object(vec![
                ("a".into(), Probe::Unknown),
                ("b".into(), Probe::Known(json!(5.0))),
                ("c".into(), Probe::Known(json!(""))),
            ])
        );
    }

    #[test]
    fn strict_undefined_fails_the_render_with_the_key_path() {
        let t = compile(json!({"deep": {"k": "{{ tasks.a.output.missing }}"}})).unwrap();
        let p = serde_json::Map::new();
        let out = json!({});
        let run = run_vars();
        let err = t.render(&with_a(&p, &run, &out)).unwrap_err();
        assert_eq!(err.path, "deep.k");
        assert!(err.message.contains("undefined"), "{}", err.message);
    }

    fn render_one(template: &str, n: i64) -> Result<serde_json::Value, RenderError> {
        let t = compile(json!({ "v": template })).unwrap();
        let p = serde_json::Map::from_iter([("threshold".to_string(), json!(n))]);
        let out = json!({});
        let run = run_vars();
        t.render(&with_a(&p, &run, &out))
    }

    #[test]
    fn a_runaway_loop_is_stopped_by_the_step_budget_and_a_small_one_renders() {
        let bomb = "{% for i in 'x' * params.threshold %}{% for j in 'x' * params.threshold %}{% endfor %}{% endfor %}";
        let err = render_one(bomb, 100_000).unwrap_err();
        assert_eq!(err.path, "v");
        assert!(err.message.contains("steps, the budget"), "{}", err.message);
        // The same template with a small param is ordinary work.
        assert_eq!(render_one(bomb, 30).unwrap(), json!({"v": ""}));
    }

    #[test]
    fn output_past_the_budget_is_refused_for_text_and_for_values() {
        let text = "{% for i in range(params.threshold) %}{{ 'x' * 1000000 }}{% endfor %}";
        let err = render_one(text, 100).unwrap_err();
        assert!(err.message.contains("MiB, the budget"), "{}", err.message);
        let value = "{{ 'x' * 50000000 }}";
        let err = render_one(value, 0).unwrap_err();
        assert!(err.message.contains("MiB, the budget"), "{}", err.message);
        // Within the budget both render.
        assert_eq!(
            render_one(text, 2).unwrap()["v"].as_str().unwrap().len(),
            2_000_000
        );
        assert_eq!(
            render_one("{{ 'ab' * 3 }}", 0).unwrap(),
            json!({"v": "ababab"})
        );
    }

    #[test]
    fn macros_and_namespace_are_refused_at_load() {
        let problems = compile(json!({
            "m": "{% macro d(s) %}{{ s ~ s }}{% endmacro %}{{ d('x') }}",
            "c": "{%- call x() %}{% endcall %}",
            "n": "{% set ns = namespace(a='x') %}{{ ns.a }}",
        }))
        .unwrap_err();
        let shown: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert!(
            shown.iter().any(|s| s.starts_with("m: uses `{% macro %}`")),
            "{shown:#?}"
        );
        assert!(
            shown.iter().any(|s| s.starts_with("c: uses `{% call %}`")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("n: reads unknown variable `namespace`")),
            "{shown:#?}"
        );
        // A word that merely starts like a keyword is fine.
        assert_eq!(forbidden_statement("{% if macros %}{% endif %}"), None);
        assert_eq!(forbidden_statement("{%- macro x() %}"), Some("macro"));
    }
}
