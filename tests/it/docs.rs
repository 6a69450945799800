//! The documentation's examples are checked: every error example in docs/dags.md prints
//! exactly what the docs say, and the DAG in the README loads.

use std::path::Path;

use vigil::dag::parse_dag;

/// Fenced blocks of a Markdown file as (info string, body).
fn fenced_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push((info.trim().to_string(), body.join("\n")));
        }
    }
    blocks
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn every_documented_load_error_is_what_vigil_prints() {
    let doc = read("docs/dags.md");
    let section = doc
        .split("## Errors found at load")
        .nth(1)
        .expect("errors section");
    let blocks = fenced_blocks(section);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for pair in blocks.windows(2) {
        let [(lang, toml), (out_lang, expected)] = pair else {
            continue;
        };
        if lang != "toml" || out_lang != "text" {
            continue;
        }
        let got = match parse_dag(
            Path::new("dags/example.toml"),
            toml,
            &vigil::tasks::builtin(),
        ) {
            Ok(_) => panic!("documented error example loads fine:\n{toml}"),
            Err(e) => e
                .diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        };
        if got != *expected {
            wrong.push(format!(
                "example:\n{toml}\ndocs say:\n{expected}\nvigil prints:\n{got}\n"
            ));
        }
        checked += 1;
    }
    assert!(
        wrong.is_empty(),
        "docs/dags.md is out of date:\n\n{}",
        wrong.join("\n")
    );
    assert!(checked >= 14, "only {checked} examples found");
}

#[test]
fn the_readme_dag_loads() {
    let readme = read("README.md");
    let toml: Vec<String> = fenced_blocks(&readme)
        .into_iter()
        .filter(|(lang, _)| lang == "toml")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(toml.len(), 1);
    if let Err(e) = parse_dag(
        Path::new("dags/nightly_training.toml"),
        &toml[0],
        &vigil::tasks::builtin(),
    ) {
        panic!("the README's DAG does not load:\n{e}");
    }
}
