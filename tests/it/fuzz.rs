//! Property-based fuzzing (proptest) of what input reaches: the DAG loader (with templates),
//! cron expressions, trigger confs, CSV files and risk artifacts. Each property is "returns,
//! without a panic" — an error is fine, a crash or a hang is not. CI runs proptest's default
//! 256 cases a property; `PROPTEST_CASES=100000 cargo test fuzz::` is the long run.

use std::path::Path;

use proptest::prelude::*;

use vigil::dag::{parse_conf, parse_cron, parse_dag};
use vigil::ml::data::Deployments;
use vigil::ml::spec::ModelSpec;

/// Pieces a DAG file is made of, so random files get past the TOML parser often enough to
/// exercise the loader behind it.
fn dag_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "schedule",
        "timezone",
        "retries",
        "timeout",
        "depends_on",
        "trigger_rule",
        "type",
        "config",
        "params",
        "max_active_runs",
        "catchup",
        "start_date",
        "id",
    ]);
    let value = prop_oneof![
        "\"[ -~]{0,20}\"",
        "-?[0-9]{1,22}",
        Just("true".to_string()),
        Just("[\"a\", \"b\"]".to_string()),
        Just("{ command = \"{{ params.x }}\" }".to_string()),
        "\"\\{\\{ [a-z._()0-9 *~]{0,20} \\}\\}\"",
        "\"\\{% for i in range\\([0-9]{1,12}\\) %\\}x\\{% endfor %\\}\"",
    ];
    let line = (key, value).prop_map(|(k, v)| format!("{k} = {v}\n"));
    let table = prop_oneof![
        Just("[tasks.a]\ntype = \"noop\"\n".to_string()),
        Just("[tasks.b]\ntype = \"command\"\ndepends_on = [\"a\"]\n".to_string()),
        Just("[params]\nx = 1\n".to_string()),
        Just("[defaults]\n".to_string()),
        "\\[tasks\\.[a-z/.']{1,6}\\]\n",
    ];
    prop::collection::vec(prop_oneof![line, table], 0..12).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn the_dag_loader_returns_on_any_file(text in dag_text()) {
        let _ = parse_dag(Path::new("dags/fuzz.toml"), &text, &vigil::tasks::builtin());
    }

    #[test]
    fn the_dag_loader_returns_on_any_text(text in "\\PC{0,300}") {
        let _ = parse_dag(Path::new("dags/fuzz.toml"), &text, &vigil::tasks::builtin());
    }

    #[test]
    fn cron_expressions_parse_or_are_refused(
        text in prop_oneof![
            "[0-9*/,\\- ]{0,30}",
            "(@[a-z]{0,10})|([0-9*?LW#/,\\-]{1,6} ){4,6}[0-9A-Z*]{1,4}",
        ]
    ) {
        let _ = parse_cron(&text);
    }

    #[test]
    fn confs_parse_or_are_refused(text in "\\PC{0,200}") {
        let _ = parse_conf(&text);
    }

    #[test]
    fn csv_files_read_or_are_refused(
        rows in prop::collection::vec("[a-zA-Z0-9.,:\\-\" nNaIif]{0,60}", 0..8)
    ) {
        let header = "deployment_id,service,timestamp,latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures,rolled_back\n";
        let text = format!("{header}{}", rows.join("\n"));
        let _ = Deployments::from_csv("fuzz.csv", &ModelSpec::default(), text.as_bytes());
    }
}

/// A small forest's artifact body (CBOR, before deflate) and the rows to score.
fn forest_body() -> (Vec<u8>, ndarray::Array2<f64>) {
    use linfa::traits::Fit;
    let x = ndarray::Array2::from_shape_fn((200, 3), |(i, j)| ((i * 31 + j * 17) % 50) as f64);
    let y = ndarray::Array1::from_iter((0..200).map(|i| x[[i, 0]] > 25.0));
    let forest = vigil::ml::forest::ForestParams {
        trees: 4,
        max_depth: Some(5),
        ..Default::default()
    }
    .fit(&linfa::Dataset::new(x.clone(), y))
    .unwrap();
    let mut body = Vec::new();
    ciborium::into_writer(&forest, &mut body).unwrap();
    (body, x)
}

fn container(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut bytes = b"VIGILART".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    let mut z = flate2::write::DeflateEncoder::new(bytes, flate2::Compression::fast());
    z.write_all(body).unwrap();
    z.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Bytes of a real forest, changed at random places, then packed as an artifact: decoding
    /// and checking either refuse it or give a forest that scores every row (no panic, no
    /// endless walk).
    #[test]
    fn a_damaged_forest_artifact_is_refused_or_scores(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let (mut body, x) = forest_body();
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let path = Path::new("fuzz.bin");
        if let Ok(forest) =
            vigil::ml::artifact::decode::<vigil::ml::forest::Forest>(path, &container(&body), "a forest")
            && forest.check().is_ok()
            && forest.n_features == 3
        {
            let p = forest.predict_proba(x.view());
            prop_assert_eq!(p.len(), 200);
        }
    }

    #[test]
    fn arbitrary_bytes_are_not_an_artifact(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let path = Path::new("fuzz.bin");
        let _ = vigil::ml::artifact::decode::<vigil::ml::forest::Forest>(path, &bytes, "a forest");
        let _ = vigil::ml::artifact::decode::<vigil::ml::forest::Forest>(path, &container(&bytes), "a forest");
    }
}

/// Template pieces: expressions, loops over huge ranges and repeated strings, macros calling
/// themselves, filters, and plain text — the bombs and the ordinary alike.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[ -~]{0,12}",
        Just("{{ params.x }}".to_string()),
        Just("{{ tasks.a.output }}".to_string()),
        Just("{{ run.ds }}{{ run.conf }}".to_string()),
        "\\{\\{ params\\.x \\* [0-9]{1,9} \\}\\}",
        "\\{\\{ 'ab' \\* [0-9]{1,12} \\}\\}",
        "\\{% for i in range\\([0-9]{1,12}\\) %\\}[a-z]\\{% endfor %\\}",
        Just("{% for i in tasks.a.output %}{{ i }}{% endfor %}".to_string()),
        Just("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}".to_string()),
        Just("{{ params.x | tojson | length }}".to_string()),
        "\\{\\{ [a-z._()0-9 *~|+\\[\\]'-]{0,24} \\}\\}",
        "\\{%[ -~]{0,16}%\\}",
    ];
    prop::collection::vec(piece, 1..5).prop_map(|p| p.concat())
}

/// Values a param or an upstream result may hold, nested.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// A run-time template with any params and any upstream result renders or fails with an
    /// error naming where — within its budgets, so no bomb hangs or exhausts memory.
    #[test]
    fn run_time_templates_render_or_fail_within_their_budgets(
        template in template_text(),
        x in json_value(),
        out in json_value(),
    ) {
        use std::collections::BTreeMap;
        use vigil::task::template::{ConfigTemplate, RenderContext, RunVars, Scope, TaskVars};
        let params: BTreeMap<String, serde_json::Value> = [("x".to_string(), x.clone())].into();
        let readable = |_: &str| Ok(());
        let scope = Scope { params: &params, task_readable: &readable };
        let Ok(t) = ConfigTemplate::compile(&serde_json::json!({ "v": template }), &scope) else {
            return Ok(());
        };
        let map = serde_json::Map::from_iter([("x".to_string(), x)]);
        let run = RunVars {
            id: 1,
            dag_id: "d".into(),
            logical_date: "2026-12-07T00:00:00+00:00".into(),
            ds: "2026-12-07".into(),
            data_interval_start: "2026-12-06T00:00:00+00:00".into(),
            data_interval_end: "2026-12-07T00:00:00+00:00".into(),
            conf: serde_json::json!({}),
            run_type: "manual".into(),
        };
        let ctx = RenderContext {
            params: &map,
            run: &run,
            tasks: [("a", TaskVars { output: &out, state: "success" })].into(),
        };
        match t.render(&ctx) {
            Ok(v) => prop_assert!(
                v.to_string().len() <= vigil::state::limits::input_limits().template_output_bytes + 64,
                "an output past the budget"
            ),
            Err(e) => prop_assert_eq!(e.path, "v"),
        }
    }
}

/// One `vigil api` for every case of the API property: a token, a DAG, no daemon needed.
/// Killed when dropped.
struct Api {
    _project: crate::util::Project,
    child: std::process::Child,
    addr: String,
}

impl Api {
    fn start() -> Api {
        let p = crate::util::Project::with_api_token("fuzz-token-0123456789");
        p.write(
            "dags/d.toml",
            "[params]\nn = 1\n\n[tasks.a]\ntype = \"noop\"\n",
        );
        let log = p.path().join("api.log");
        let child = p
            .command(&["api"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("api log"))
            .spawn()
            .expect("start vigil api");
        let mut addr = None;
        crate::util::wait_for("the API to listen", || {
            addr = crate::api::address(&std::fs::read_to_string(&log).unwrap_or_default());
            addr.is_some()
        });
        Api {
            _project: p,
            child,
            addr: addr.unwrap_or_default(),
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bodies near what the routes take: their keys with values of any type, or any JSON at all.
fn api_body() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "conf",
        "logical_date",
        "window",
        "metric",
        "threshold_percent",
        "min_samples",
        "dry_run",
        "version",
        "reason",
        "rows",
        "deployments",
        "csv",
        "model",
        "note",
        "n",
    ]);
    prop_oneof![
        prop::collection::btree_map(key, json_value(), 0..6).prop_map(|m| {
            serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                .to_string()
        }),
        json_value().prop_map(|v| v.to_string()),
        "\\PC{0,64}",
    ]
}

/// Any body posted to any route that takes one: an answer below 500 (a 4xx names what is
/// wrong), and the server still answering. `PROPTEST_CASES` sets the number of requests.
#[test]
fn the_apis_json_bodies_get_an_answer_never_a_server_error() {
    use proptest::test_runner::{Config, TestRunner};
    let api = Api::start();
    let routes = prop::sample::select(vec![
        "/api/v1/dags/d/runs",
        "/api/v1/dags/nope/runs",
        "/api/v1/dags/d/pause",
        "/api/v1/models/m/check",
        "/api/v1/models/m/rollback",
        "/api/v1/models/m/promote",
        "/api/v1/risk/score",
        "/api/v1/outbox/1/retry",
    ]);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(routes, api_body()), |(route, body)| {
        let (status, answer) = crate::api::http(
            &api.addr,
            "POST",
            route,
            Some("fuzz-token-0123456789"),
            &[],
            Some(&body),
        );
        prop_assert!(
            (200..500).contains(&status),
            "{route} {body} -> {status} {answer}"
        );
        if status >= 400 {
            prop_assert!(
                answer["error"]["message"].is_string(),
                "{route} {body} -> {status} {answer}"
            );
        }
        let (health, _) = crate::api::http(&api.addr, "GET", "/healthz", None, &[], None);
        prop_assert_eq!(health, 200);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
