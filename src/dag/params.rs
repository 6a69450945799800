//! A trigger's `conf` checked against the DAG's declared `[params]`: only declared keys, each
//! with a value of its default's type. The result is the run's params.

use crate::dag::Dag;

/// Problems with a trigger's conf; nothing is run or queued when there are any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid conf for DAG `{dag_id}`: {}", problems.join("; "))]
pub struct ConfError {
    pub dag_id: String,
    pub problems: Vec<String>,
}

impl crate::state::Kind for ConfError {
    fn kind(&self) -> crate::state::ErrorKind {
        crate::state::ErrorKind::Invalid
    }
}

/// A trigger's `conf` from its JSON text, within `[limits] conf_bytes`. The error quotes only
/// the start of the input, never all of it.
pub fn parse_conf(text: &str) -> Result<serde_json::Value, String> {
    let limit = crate::state::limits::input_limits().conf_bytes;
    if text.len() > limit {
        return Err(format!(
            "conf is {} bytes; at most {} is accepted (`[limits] conf_bytes`): pass data through files and their paths as params",
            text.len(),
            crate::state::limits::show_bytes(limit as u64)
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        format!(
            "conf is not valid JSON ({e}): {}; pass an object like '{{\"param\": 1}}'",
            crate::state::shown(text, 80)
        )
    })
}

/// The run's params: the DAG's defaults overridden by `conf`.
pub fn resolve_params(
    dag: &Dag,
    conf: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfError> {
    let fail = |problems: Vec<String>| ConfError {
        dag_id: dag.id.clone(),
        problems,
    };
    let mut params: serde_json::Map<String, serde_json::Value> = dag
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // The same budget however the conf arrived: `--conf` text, an API body, a backfill.
    let limit = crate::state::limits::input_limits().conf_bytes;
    let size = serde_json::to_vec(conf).map_or(0, |v| v.len());
    if size > limit {
        return Err(fail(vec![format!(
            "conf is {size} bytes as JSON; at most {} is accepted (`[limits] conf_bytes`): pass data through files and their paths as params",
            crate::state::limits::show_bytes(limit as u64)
        )]));
    }
    let entries = match conf {
        serde_json::Value::Null => return Ok(params),
        serde_json::Value::Object(map) => map,
        other => {
            return Err(fail(vec![format!(
                "conf must be a JSON object like {{\"param\": value}}, got {}",
                kind(other)
            )]));
        }
    };
    let mut problems = Vec::new();
    for (key, value) in entries {
        let key_shown = crate::state::shown(key, 64);
        match dag.params.get(key) {
            None => {
                let declared: Vec<&str> = dag.params.keys().map(String::as_str).collect();
                problems.push(if declared.is_empty() {
                    format!("unknown param `{key_shown}`; this DAG declares no [params]")
                } else {
                    format!(
                        "unknown param `{key_shown}`; declared params: {}",
                        declared.join(", ")
                    )
                });
            }
            Some(default) if !same_type(default, value) => problems.push(format!(
                "param `{key_shown}` expects {} (its default is {default}), got {}",
                kind(default),
                kind(value)
            )),
            Some(_) => {
                params.insert(key.clone(), value.clone());
            }
        }
    }
    if problems.is_empty() {
        Ok(params)
    } else {
        Err(fail(problems))
    }
}

/// Same JSON kind; an integer is accepted where the default is a float, not the reverse.
fn same_type(default: &serde_json::Value, given: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (default, given) {
        (V::Number(d), V::Number(g)) => !(d.is_i64() || d.is_u64()) || g.is_i64() || g.is_u64(),
        (V::String(_), V::String(_))
        | (V::Bool(_), V::Bool(_))
        | (V::Array(_), V::Array(_))
        | (V::Object(_), V::Object(_)) => true,
        _ => false,
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value as V;
    match v {
        V::Null => "null",
        V::Bool(_) => "a boolean",
        V::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        V::Number(_) => "a number",
        V::String(_) => "a string",
        V::Array(_) => "a list",
        V::Object(_) => "an object",
    }
}
