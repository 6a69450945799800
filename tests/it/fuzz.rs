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
