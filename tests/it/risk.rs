//! `vigil risk` and the ML task types through the real binary: simulate, train, evaluate,
//! score (exit codes for CI gates), report, bad input, and the DAGs.

use crate::util::Project;

#[test]
fn simulate_writes_the_same_files_for_the_same_seed() {
    let p = Project::new();
    p.vigil(&[
        "risk", "simulate", "--rows", "300", "--seed", "7", "--out", "a",
    ])
    .expect(0);
    p.vigil(&[
        "risk", "simulate", "--rows", "300", "--seed", "7", "--out", "b",
    ])
    .expect(0);
    let other = p
        .vigil(&[
            "risk", "simulate", "--rows", "300", "--seed", "8", "--out", "c", "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(other["rows"], 300);
    let read = |f: &str| std::fs::read_to_string(p.path().join(f)).expect("csv written");
    assert_eq!(read("a/deployments.csv"), read("b/deployments.csv"));
    assert_eq!(read("a/new_deployments.csv"), read("b/new_deployments.csv"));
    assert_ne!(read("a/deployments.csv"), read("c/deployments.csv"));

    let history = read("a/deployments.csv");
    let mut lines = history.lines();
    assert_eq!(
        lines.next(),
        Some(
            "deployment_id,service,timestamp,latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures,rolled_back"
        )
    );
    assert_eq!(lines.count(), 300);
    let candidates = read("a/new_deployments.csv");
    assert!(
        candidates
            .lines()
            .next()
            .is_some_and(|h| !h.contains("rolled_back"))
    );
    assert!(candidates.contains("\nnew_risky,") && candidates.contains("\nnew_safe,"));

    let bad = p
        .vigil(&["risk", "simulate", "--rows", "3", "--out", "d"])
        .expect(1);
    assert!(
        bad.stderr().contains("--rows must be at least 10"),
        "{}",
        bad.stderr()
    );
}

/// A small, fast training setup: 600 rows, 8 grid points, 3 folds.
const SMALL: [&str; 10] = [
    "--grid",
    "trees=10,20",
    "--grid",
    "depth=none,4",
    "--grid",
    "min_samples=2,10",
    "--folds",
    "3",
    "--seed",
    "5",
];

/// The artifact path of the newest registered `deployment_risk` version.
pub fn newest_artifact(p: &Project) -> String {
    p.vigil(&["model", "history", "deployment_risk", "--json"])
        .expect(0)
        .json()[0]["version"]["artifact"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn trained() -> Project {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "600", "--out", "data/risk"])
        .expect(0);
    let mut args = vec!["risk", "train"];
    args.extend(SMALL);
    p.vigil(&args).expect(0);
    p
}

#[test]
fn train_registers_a_version_and_the_same_seed_trains_the_same_model() {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "600", "--out", "data/risk"])
        .expect(0);
    let mut args = vec!["risk", "train", "--json"];
    args.extend(SMALL);
    let a = p.vigil(&args).expect(0);
    assert!(
        a.stderr().contains("forests grown"),
        "progress: {}",
        a.stderr()
    );
    let a = a.json();
    let b = p.vigil(&args).expect(0).json();
    assert_eq!(a["search"]["scored"], b["search"]["scored"]);
    assert_eq!(a["holdout"], b["holdout"]);
    assert_eq!(a["search"]["scored"].as_array().map(Vec::len), Some(8));
    let m = &a["metrics"];
    for key in [
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "recall_at_10pct",
        "cv_f1",
        "baseline_f1",
    ] {
        assert!(m[key].is_number(), "{key} in {m}");
    }
    assert!(m["roc_auc"].as_f64().unwrap_or(0.0) > 0.6, "{m}");
    // The hold-out is the latest fifth, by time.
    assert_eq!(a["training"]["holdout_rows"], 120);
    let artifact = a["artifact"].as_str().unwrap_or_default();
    assert!(p.path().join(artifact).is_file(), "{artifact}");

    let history = p
        .vigil(&["model", "history", "deployment_risk", "--json"])
        .expect(0)
        .json();
    assert!(
        history
            .to_string()
            .contains(a["version"].as_str().unwrap_or("?")),
        "{history}"
    );
}

#[test]
fn evaluate_reports_the_matrix_report_and_importance() {
    let p = trained();
    let out = p.vigil(&["risk", "evaluate"]).expect(0).stdout();
    for want in [
        "PREDICTED ROLLED BACK",
        "rolled back (1)",
        "macro avg",
        "weighted avg",
        "ROC AUC",
        "PR AUC",
        "Brier",
        "recall in riskiest 10%",
        "error_rate",
        "expected calibration error",
        "MEAN PREDICTED",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    let j = p.vigil(&["risk", "evaluate", "--json"]).expect(0).json();
    let e = &j["evaluation"];
    assert_eq!(j["rows_used"], 120);
    let c = &e["confusion"];
    let total: u64 = ["tp", "fp", "tn", "fn"]
        .iter()
        .map(|k| c[k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 120);
    assert_eq!(j["importance"].as_array().map(Vec::len), Some(7));
    // The reliability table covers every row, and its ECE is a weighted gap in [0, 1].
    let cal = &e["calibration"];
    let binned: u64 = cal["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["rows"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(binned, 120, "{cal}");
    let ece = cal["ece"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ece), "{cal}");
    // --all uses the training rows too.
    let all = p
        .vigil(&["risk", "evaluate", "--all", "--json"])
        .expect(0)
        .json();
    assert_eq!(all["rows_used"], 600);
}

#[test]
fn score_exit_codes_gate_a_pipeline() {
    let p = trained();
    // Drivers only where a person will look (the default), everywhere, or nowhere.
    let file = "data/risk/new_deployments.csv";
    let drivers_of = |mode: &str| -> Vec<(String, String, usize)> {
        p.vigil(&["risk", "score", file, "--json", "--drivers", mode])
            .json()["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["deployment_id"].as_str().unwrap_or("").to_string(),
                    r["band"].as_str().unwrap_or("").to_string(),
                    r["drivers"].as_array().map_or(0, Vec::len),
                )
            })
            .collect()
    };
    let flagged = drivers_of("flagged");
    assert!(
        flagged
            .iter()
            .all(|(_, band, n)| band != "proceed" || *n == 0),
        "{flagged:?}"
    );
    assert!(
        flagged.iter().any(|(id, _, n)| id == "new_risky" && *n > 0),
        "{flagged:?}"
    );
    assert!(drivers_of("none").iter().all(|(_, _, n)| *n == 0));
    let all = drivers_of("all");
    assert!(
        all.iter().map(|(_, _, n)| n).sum::<usize>()
            >= flagged.iter().map(|(_, _, n)| n).sum::<usize>()
    );
    let file = "data/risk/new_deployments.csv";
    let block = p.vigil(&["risk", "score", file]);
    assert_eq!(block.code(), 4, "{}{}", block.stdout(), block.stderr());
    assert!(block.stdout().contains("BLOCK"), "{}", block.stdout());
    let review = p.vigil(&[
        "risk",
        "score",
        file,
        "--block-above",
        "1",
        "--review-above",
        "0",
    ]);
    assert_eq!(review.code(), 3, "{}", review.stdout());
    let proceed = p.vigil(&[
        "risk",
        "score",
        file,
        "--block-above",
        "1",
        "--review-above",
        "1",
    ]);
    assert_eq!(proceed.code(), 0, "{}", proceed.stdout());

    let j = p.vigil(&["risk", "score", file, "--json"]).json();
    let rows = j["deployments"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 10);
    let risky = rows
        .iter()
        .find(|r| r["deployment_id"] == "new_risky")
        .cloned()
        .unwrap_or_default();
    let safe = rows
        .iter()
        .find(|r| r["deployment_id"] == "new_safe")
        .cloned()
        .unwrap_or_default();
    assert!(
        risky["probability"].as_f64() > safe["probability"].as_f64(),
        "{risky} {safe}"
    );
    assert_eq!(safe["band"], "proceed");
    assert_ne!(risky["band"], "proceed");
    // The error rate is what makes new_risky risky.
    assert!(
        risky["drivers"].to_string().contains("error_rate"),
        "{risky}"
    );
    for r in &rows {
        let prob = r["probability"].as_f64().unwrap_or(-1.0);
        let band = if prob > 0.6 {
            "block"
        } else if prob > 0.3 {
            "review"
        } else {
            "proceed"
        };
        assert_eq!(r["band"], band, "{r}");
    }
    let bad = p.vigil(&[
        "risk",
        "score",
        file,
        "--block-above",
        "0.2",
        "--review-above",
        "0.5",
    ]);
    assert_eq!(bad.code(), 1);
    assert!(
        bad.stderr().contains("review (0.5) <= block (0.2)"),
        "{}",
        bad.stderr()
    );
}

fn load_png(path: &std::path::Path) -> resvg::tiny_skia::Pixmap {
    resvg::tiny_skia::Pixmap::load_png(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_dark(px: &resvg::tiny_skia::PremultipliedColorU8, below: u8) -> bool {
    px.alpha() > 200 && px.red() < below && px.green() < below && px.blue() < below
}

#[test]
fn report_writes_non_empty_plots_with_text_and_an_html_page() {
    let p = trained();
    p.vigil(&["risk", "report", "--out", "rep"]).expect(0);
    let names = [
        "confusion_matrix",
        "feature_importance",
        "predictions_scatter",
        "new_deployments",
        "risk_over_time",
    ];
    for name in names {
        let png = load_png(&p.path().join(format!("rep/{name}.png")));
        let dark = png.pixels().iter().filter(|px| is_dark(px, 80)).count();
        assert!(
            dark > 200,
            "{name}.png has {dark} dark pixels: no axes or text drawn"
        );
        let svg =
            std::fs::read_to_string(p.path().join(format!("rep/{name}.svg"))).unwrap_or_default();
        assert!(svg.contains("<svg") && svg.contains("<text"), "{name}.svg");
        // Axis labels are written as people write them: `200`, not `200.0`.
        for label in svg
            .split('>')
            .filter_map(|t| t.split('<').next())
            .map(str::trim)
        {
            let whole_with_zero = label.strip_suffix(".0").is_some_and(|head| {
                !head.is_empty() && head.chars().all(|c| c.is_ascii_digit() || c == '-')
            });
            assert!(!whole_with_zero, "{name}.svg has the label `{label}`");
        }
    }
    // Each candidate's markers carry its number, and the key names it.
    let new = std::fs::read_to_string(p.path().join("rep/new_deployments.svg")).unwrap_or_default();
    assert!(
        new.contains("\n1 new_"),
        "the key lacks the first candidate"
    );
    // Labels are text: the confusion matrix's left strip (its row labels) has dark pixels.
    let cm = load_png(&p.path().join("rep/confusion_matrix.png"));
    let label_ink = (0..140)
        .flat_map(|x| (60..460).map(move |y| (x, y)))
        .filter(|&(x, y)| cm.pixel(x, y).is_some_and(|px| is_dark(&px, 100)))
        .count();
    assert!(
        label_ink > 50,
        "row labels not rendered ({label_ink} dark pixels)"
    );
    let html = std::fs::read_to_string(p.path().join("rep/report.html")).unwrap_or_default();
    for want in [
        "new_risky",
        "new_safe",
        "Limitations",
        "<svg",
        "precision",
        "riskiest 10%",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
}

#[test]
fn bad_csv_files_get_errors_naming_the_line_and_column() {
    let p = Project::new();
    let header = "deployment_id,service,timestamp,latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures,rolled_back";
    let row = |id: &str, err: &str, label: &str| {
        format!("{id},checkout,2026-01-01T00:00:00Z,200,{err},50,60,100,12,0,{label}")
    };
    let cases = [
        (
            "missing.csv",
            format!(
                "{}\n{}\n",
                header.replace(",cpu_pct", ""),
                row("a", "0.5", "0").replacen(",50,", ",", 1)
            ),
            "line 1 has no column `cpu_pct`",
        ),
        (
            "text.csv",
            format!(
                "{header}\n{}\n{}\n",
                row("a", "0.5", "0"),
                row("b", "n/a", "1")
            ),
            "line 3, column `error_rate`: `n/a` is not a number",
        ),
        ("empty.csv", format!("{header}\n"), "has no data rows"),
        ("nothing.csv", String::new(), "has no data rows"),
        (
            "one_class.csv",
            format!(
                "{header}\n{}\n{}\n",
                row("a", "0.5", "0"),
                row("b", "0.7", "0")
            ),
            "every row of `rolled_back` is kept",
        ),
        (
            "label.csv",
            format!(
                "{header}\n{}\n{}\n",
                row("a", "0.5", "0"),
                row("b", "0.7", "yes")
            ),
            "line 3, column `rolled_back`: `yes` is not 0 or 1",
        ),
    ];
    for (name, text, want) in cases {
        p.write(name, &text);
        let r = p.vigil(&["risk", "train", "--data", name]);
        assert_eq!(r.code(), 1, "{name}");
        assert!(r.stderr().contains(want), "{name}: {}", r.stderr());
        assert!(
            r.stderr().contains(name),
            "{name} not named: {}",
            r.stderr()
        );
        assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
    }
    // Scoring needs the features but not the label.
    let r = p.vigil(&["risk", "score", "missing.csv"]);
    assert_eq!(r.code(), 1);
}

fn copy_dag(p: &Project, name: &str) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dags")
        .join(name);
    let text = std::fs::read_to_string(src).expect("shipped DAG");
    p.write(&format!("dags/{name}"), &text);
}

#[test]
fn the_shipped_ml_dags_train_validate_promote_and_score() {
    let p = Project::new();
    copy_dag(&p, "deployment_risk.toml");
    copy_dag(&p, "latency_regression.toml");
    // The shipped DAG with a smaller search, so the debug build stays quick.
    let dag =
        std::fs::read_to_string(p.path().join("dags/deployment_risk.toml")).unwrap_or_default();
    let dag = dag.replace(
        "folds = 5, seed",
        "folds = 3, grid = [\"trees=10,20\", \"depth=none,5\", \"min_samples=2\"], seed",
    );
    assert!(dag.contains("trees=10,20"));
    p.write("dags/deployment_risk.toml", &dag);
    let run = p.vigil(&["dags", "test", "deployment_risk"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    let status = p
        .vigil(&["model", "status", "deployment_risk", "--json"])
        .expect(0)
        .json();
    assert!(
        status["production"].is_object() || status["production_version"].is_string(),
        "{status}"
    );
    let logs = p.vigil(&["tasks", "logs", "1", "train"]).expect(0).stdout();
    assert!(logs.contains("fold 3/3 done"), "{logs}");
    assert!(
        logs.contains("registered deployment_risk version"),
        "{logs}"
    );
    let logs = p.vigil(&["tasks", "logs", "1", "score"]).expect(0).stdout();
    assert!(logs.contains("new_risky"), "{logs}");

    let run = p.vigil(&["dags", "test", "latency_regression"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    let versions = p
        .vigil(&["model", "history", "deployment_latency", "--json"])
        .expect(0)
        .stdout();
    assert!(
        versions.contains("r2") && versions.contains("rmse"),
        "{versions}"
    );
    // The gate's other side: without the service column the models learn next to nothing,
    // and validation on fresh deployments fails them.
    let dag = std::fs::read_to_string(p.path().join("dags/latency_regression.toml"))
        .unwrap_or_default()
        .replace(", categorical = [\"service\"]", "");
    assert!(!dag.contains("categorical = "));
    p.write("dags/latency_regression.toml", &dag);
    let run = p.vigil(&["dags", "test", "latency_regression"]);
    assert_eq!(run.code(), 1, "{}{}", run.stdout(), run.stderr());
    let shown = p.vigil(&["runs", "show", "3", "--json"]).expect(0).stdout();
    assert!(shown.contains("is below the minimum 0.5"), "{shown}");
}

#[test]
fn a_validation_gate_fails_the_run_and_a_timeout_stops_training() {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "400", "--out", "data"])
        .expect(0);
    p.write(
        "dags/gate.toml",
        r#"
id = "gate"
[tasks.train]
type = "risk.train"
config = { data = "../data/deployments.csv", folds = 3, grid = ["trees=10", "depth=4", "min_samples=2"] }
[tasks.validate]
type = "ml.evaluate"
depends_on = ["train"]
config = { model = "deployment_risk", version = "{{ tasks.train.output.version }}", data = "../data/deployments.csv", min = { roc_auc = 0.999 } }
"#,
    );
    let run = p.vigil(&["dags", "test", "gate"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    let show = p.vigil(&["runs", "show", "1", "--json"]).expect(0).stdout();
    assert!(show.contains("failed validation: roc_auc"), "{show}");
    assert!(show.contains("is below the minimum 0.999"), "{show}");

    // A search far too big for its timeout: the attempt times out and the training thread
    // stops (the command returns instead of waiting for the search to finish).
    p.vigil(&["risk", "simulate", "--rows", "30000", "--out", "big"])
        .expect(0);
    p.write(
        "dags/slow.toml",
        r#"
id = "slow"
[tasks.train]
type = "risk.train"
timeout = "1s"
config = { data = "../big/deployments.csv", grid = ["trees=500", "depth=none", "min_samples=2"] }
"#,
    );
    let run = p.vigil(&["dags", "test", "slow"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    let show = p.vigil(&["runs", "show", "2", "--json"]).expect(0).stdout();
    assert!(show.contains("timed out"), "{show}");
}

/// The artifact is private and registered by its absolute path, so `risk score` works from any
/// directory; a deployment id carrying terminal escapes is shown escaped.
#[test]
fn artifacts_are_private_absolute_and_scores_show_no_raw_escapes() {
    use std::os::unix::fs::PermissionsExt;
    let p = trained();
    let path = newest_artifact(&p);
    assert!(std::path::Path::new(&path).is_absolute(), "{path}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{path}");
    let db_mode = std::fs::metadata(p.path().join("vigil.db"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(db_mode, 0o600);
    // From another directory, naming the same database.
    let elsewhere = tempfile::tempdir().unwrap();
    let csv = elsewhere.path().join("evil.csv");
    std::fs::write(
        &csv,
        "deployment_id,service,timestamp,latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures\n\
         \u{1b}[2Jwiped,pay\u{1b}[31mments,2026-01-05T10:00:00Z,950.0,6.5,93.0,90.0,2400,2,3\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(elsewhere.path())
        .args(["--database"])
        .arg(format!("sqlite://{}", p.path().join("vigil.db").display()))
        .args(["risk", "score"])
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 3 | 4)),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains('\u{1b}'), "raw escape in {stdout:?}");
    assert!(stdout.contains("\\u{1b}[2Jwiped"), "{stdout}");
}

/// The artifact is the compact binary one; a JSON artifact written before it still loads and
/// scores the same; a damaged one is refused naming the file, and nothing is scored.
#[test]
fn the_artifact_is_compact_binary_and_a_json_one_of_before_still_scores() {
    let p = trained();
    let history = p
        .vigil(&["model", "history", "deployment_risk", "--json"])
        .expect(0)
        .json();
    let bin = std::path::PathBuf::from(newest_artifact(&p));
    assert!(bin.to_string_lossy().ends_with(".bin"), "{history}");
    let bytes = std::fs::read(&bin).unwrap();
    assert!(bytes.starts_with(b"VIGILART"));
    // The same model as the JSON of format 1, registered as its own version.
    let model = vigil::ml::risk::RiskModel::load(&bin, None).unwrap();
    let (json, _, json_size) =
        vigil::ml::artifact::save_json(&model, &p.path().join("legacy"), "deployment_risk")
            .unwrap();
    assert!(
        (bytes.len() as u64) * 5 < json_size,
        "binary {} bytes, JSON {json_size}",
        bytes.len()
    );
    let json = json.to_string_lossy();
    p.vigil(&[
        "model",
        "register",
        "deployment_risk",
        "--version",
        "legacy",
        "--artifact",
        &json,
    ])
    .expect(0);
    let candidates = "data/risk/new_deployments.csv";
    let score = |version: &str| {
        let out = p.vigil(&[
            "risk",
            "score",
            candidates,
            "--json",
            "--drivers",
            "all",
            "--version",
            version,
        ]);
        assert!(matches!(out.code(), 0 | 3 | 4), "{}", out.stderr());
        out.json()["deployments"].clone()
    };
    let newest = history[0]["version"]["version"].as_str().unwrap_or("?");
    let scored = score(newest);
    assert_eq!(scored.as_array().map(Vec::len), Some(10), "{scored}");
    assert_eq!(scored, score("legacy"));

    // Damage in the compressed body: refused, naming the file.
    let mut damaged = bytes.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x55;
    damaged.truncate(damaged.len() - 7);
    let broken = p.path().join("broken.bin");
    std::fs::write(&broken, &damaged).unwrap();
    p.vigil(&[
        "model",
        "register",
        "deployment_risk",
        "--version",
        "broken",
        "--artifact",
        "broken.bin",
    ])
    .expect(0);
    let out = p
        .vigil(&["risk", "score", candidates, "--json", "--version", "broken"])
        .expect(1);
    assert!(out.stderr().contains("broken.bin"), "{}", out.stderr());
    assert!(out.stdout().is_empty(), "{}", out.stdout());
}

#[test]
fn after_training_on_another_folder_evaluate_and_report_use_that_data() {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "600", "--out", "elsewhere"])
        .expect(0);
    let mut args = vec!["risk", "train", "--data", "elsewhere/deployments.csv"];
    args.extend(SMALL);
    let out = p.vigil(&args).expect(0).stdout();
    assert!(
        out.contains("vigil risk score elsewhere/new_deployments.csv"),
        "{out}"
    );
    p.vigil(&["risk", "evaluate"]).expect(0);
    p.vigil(&["risk", "report"]).expect(0);
    assert!(p.path().join("elsewhere/report/report.html").is_file());
    assert!(!p.path().join("data").exists());
}

/// When the logistic baseline is as good as the forest on the hold-out, `risk train` says so
/// instead of registering the forest silently (here the label is a linear rule the baseline
/// fits exactly and a small forest only approximates).
#[test]
fn training_says_when_the_simpler_baseline_does_as_well() {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "300"]).expect(0);
    let mut reader = csv::Reader::from_path(p.path().join("data/risk/deployments.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (err, cpu, mem, label) = (
        col("error_rate"),
        col("cpu_pct"),
        col("memory_pct"),
        col("rolled_back"),
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let score = |r: &csv::StringRecord| {
        r[err].parse::<f64>().unwrap() / 0.6 + r[cpu].parse::<f64>().unwrap() / 60.0
            - r[mem].parse::<f64>().unwrap() / 60.0
    };
    let mut scores: Vec<f64> = rows.iter().map(score).collect();
    scores.sort_by(|a, b| a.total_cmp(b));
    let median = scores[scores.len() / 2];
    let mut writer = csv::Writer::from_path(p.path().join("data/risk/linear.csv")).unwrap();
    writer.write_record(&headers).unwrap();
    for r in &rows {
        let mut fields: Vec<String> = r.iter().map(str::to_string).collect();
        fields[label] = if score(r) > median { "1" } else { "0" }.into();
        writer.write_record(&fields).unwrap();
    }
    writer.flush().unwrap();
    let args = [
        "risk",
        "train",
        "--data",
        "data/risk/linear.csv",
        "--grid",
        "trees=5",
        "--grid",
        "depth=2",
        "--grid",
        "min_samples=2",
        "--folds",
        "3",
    ];
    let out = p.vigil(&args).expect(0).stdout();
    assert!(
        out.contains("model kept: the forest")
            && out.contains(
                "note: on the hold-out the simpler logistic baseline is as good as the forest"
            )
            && out.contains("`--model best`"),
        "{out}"
    );
    // Asked for the best, training keeps the simpler one, and says so.
    let mut best = args.to_vec();
    best.extend(["--model", "best"]);
    let out = p.vigil(&best).expect(0).stdout();
    assert!(out.contains("model kept: the logistic baseline"), "{out}");
    assert!(!out.contains("note: on the hold-out"), "{out}");
    let summary = p.vigil(&["risk", "evaluate", "--json"]).expect(0).json();
    assert!(
        summary["evaluation"]["roc_auc"].as_f64().unwrap_or(0.0) > 0.9,
        "{summary}"
    );
}

/// Rewrites a simulated file into the seeds' shape: `id, service, timestamp, latency_ms,
/// error_rate, cpu_usage, memory_usage` and `rollback` as `yes`/`no` (when labelled), plus a
/// column the model does not read.
fn seed_shaped(p: &Project, from: &str, to: &str) {
    let mut reader = csv::Reader::from_path(p.path().join(from)).expect("read the simulated file");
    let headers = reader.headers().expect("headers").clone();
    let at = |name: &str| headers.iter().position(|h| h == name);
    let labelled = at("rolled_back").is_some();
    let mut writer = csv::Writer::from_path(p.path().join(to)).expect("write");
    let mut head = vec![
        "id",
        "service",
        "timestamp",
        "latency_ms",
        "error_rate",
        "cpu_usage",
        "memory_usage",
        "owner",
    ];
    if labelled {
        head.push("rollback");
    }
    writer.write_record(&head).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        let get = |name: &str| at(name).and_then(|i| row.get(i)).unwrap_or("").to_string();
        let mut out = vec![
            get("deployment_id"),
            get("service"),
            get("timestamp"),
            get("latency_ms"),
            get("error_rate"),
            get("cpu_pct"),
            get("memory_pct"),
            "team-a".to_string(),
        ];
        if labelled {
            out.push(
                if get("rolled_back") == "1" {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            );
        }
        writer.write_record(&out).unwrap();
    }
    writer.flush().unwrap();
}

/// A project with simulated history and candidates rewritten into the seeds' shape:
/// `history.csv` and `candidates.csv`.
fn seed_shaped_project() -> Project {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "600", "--out", "data/risk"])
        .expect(0);
    seed_shaped(&p, "data/risk/deployments.csv", "history.csv");
    seed_shaped(&p, "data/risk/new_deployments.csv", "candidates.csv");
    p
}

#[test]
fn a_teams_own_columns_train_and_score_through_the_spec() {
    let p = seed_shaped_project();

    // The simulator's columns are not there: the first missing one is named with what is.
    let wrong = p.vigil(&["risk", "train", "--data", "history.csv", "--folds", "2"]);
    assert_eq!(wrong.code(), 1, "{}", wrong.stderr());
    assert!(
        wrong.stderr().contains("no column `deployment_id`")
            && wrong.stderr().contains("cpu_usage"),
        "{}",
        wrong.stderr()
    );
    // A spec that reads a column twice is refused before any data is read.
    let twice = p.vigil(&[
        "risk",
        "train",
        "--data",
        "history.csv",
        "--features",
        "latency_ms,latency_ms",
    ]);
    assert_eq!(twice.code(), 1, "{}", twice.stderr());
    assert!(
        twice.stderr().contains("listed twice"),
        "{}",
        twice.stderr()
    );

    let spec = [
        "--features",
        "latency_ms,error_rate,cpu_usage,memory_usage",
        "--label",
        "rollback",
        "--positive",
        "yes",
        "--id-column",
        "id",
    ];
    let mut train = vec!["risk", "train", "--data", "history.csv"];
    train.extend(spec);
    train.extend([
        "--folds",
        "2",
        "--grid",
        "trees=20",
        "--grid",
        "depth=none,6",
        "--json",
    ]);
    let trained = p.vigil(&train).expect(0).json();
    assert!(
        trained["metrics"]["roc_auc"].as_f64().unwrap_or(0.0) > 0.6,
        "{trained}"
    );

    // The model keeps its spec: scoring reads the team's file with no flags.
    let summary = p.vigil(&["risk", "evaluate", "--json"]).expect(0).json();
    let importance: Vec<&str> = summary["importance"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["feature"].as_str())
        .collect();
    assert_eq!(importance.len(), 4, "{summary}");
    assert!(importance.contains(&"cpu_usage"), "{summary}");
    let scored = p.vigil(&["risk", "score", "candidates.csv", "--json"]);
    assert!(matches!(scored.code(), 0 | 3 | 4), "{}", scored.stderr());
    let scored = scored.json();
    let rows = scored["deployments"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().any(|r| r["deployment_id"] == "new_risky"),
        "{scored}"
    );
    assert!(rows.iter().all(|r| r["service"].is_string()), "{scored}");
    let risky = rows
        .iter()
        .find(|r| r["deployment_id"] == "new_risky")
        .unwrap();
    let safe = rows
        .iter()
        .find(|r| r["deployment_id"] == "new_safe")
        .unwrap();
    assert!(
        risky["probability"].as_f64() > safe["probability"].as_f64(),
        "{scored}"
    );
    // A candidate file the spec cannot read is named with the column it lacks.
    p.write("bad.csv", "id,service,timestamp,latency_ms,error_rate,memory_usage\nx,api,2026-01-01T00:00:00Z,1,2,3\n");
    let bad = p.vigil(&["risk", "score", "bad.csv"]);
    assert_eq!(bad.code(), 1, "{}", bad.stderr());
    assert!(
        bad.stderr().contains("no column `cpu_usage`"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn an_empty_cell_is_refused_with_its_line_or_imputed_when_asked() {
    let p = seed_shaped_project();
    // Empty the cpu_usage of every tenth row and the service of every seventh.
    let text = std::fs::read_to_string(p.path().join("history.csv")).unwrap();
    let gappy: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let mut cells: Vec<&str> = line.split(',').collect();
            if n > 0 && n % 10 == 0 {
                cells[5] = "";
            }
            if n > 0 && n % 7 == 0 {
                cells[1] = "";
            }
            cells.join(",")
        })
        .collect();
    p.write("gappy.csv", &(gappy.join("\n") + "\n"));
    let columns = [
        "--features",
        "latency_ms,error_rate,cpu_usage,memory_usage",
        "--categorical",
        "service",
        "--label",
        "rollback",
        "--positive",
        "yes",
        "--id-column",
        "id",
        "--folds",
        "2",
        "--grid",
        "trees=10",
        "--grid",
        "depth=4",
    ];
    let mut refuse = vec!["risk", "train", "--data", "gappy.csv"];
    refuse.extend(columns);
    let refused = p.vigil(&refuse);
    assert_eq!(refused.code(), 1, "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("line 8, column `service` is empty")
            || refused
                .stderr()
                .contains("line 11, column `cpu_usage` is empty"),
        "{}",
        refused.stderr()
    );
    assert!(
        refused.stderr().contains("--missing impute"),
        "{}",
        refused.stderr()
    );

    let mut impute = refuse.clone();
    impute.extend(["--missing", "impute"]);
    p.vigil(&impute).expect(0);
    // The model imputes in scoring too: a candidate with empty cells is scored.
    let mut cand = std::fs::read_to_string(p.path().join("candidates.csv")).unwrap();
    cand.push_str("gap,,2030-01-01T00:00:00Z,,1,50,50,team-a\n");
    p.write("gap.csv", &cand);
    let scored = p.vigil(&["risk", "score", "gap.csv", "--json"]);
    assert!(matches!(scored.code(), 0 | 3 | 4), "{}", scored.stderr());
    let scored = scored.json();
    let gap = scored["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["deployment_id"] == "gap")
        .cloned()
        .unwrap_or_default();
    assert!(gap["probability"].is_number(), "{scored}");
}
