//! The bad-input catalogue (`tests/bad-inputs/cases.toml`), through the real binary and the
//! API: every case fails with a clear error containing its expected fragments, no panic, no
//! hang (each command is killed after a generous deadline — a hang guard, not a speed test),
//! nothing written for the rejected input, and the good DAG beside the bad files keeps running
//! on schedule under a daemon.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::api::{api_of, http};
use crate::util::{Project, wait_for_secs};

const TOKEN: &str = "catalogue-token-0123456789";
/// Long enough for a loaded CI machine; a hang would pass it.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
struct Catalogue {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    kind: String,
    file: Option<String>,
    value: Option<String>,
    args: Option<Vec<String>>,
    path: Option<String>,
    status: Option<u16>,
    expect: Vec<String>,
}

fn catalogue() -> (PathBuf, Vec<Case>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-inputs");
    let text = std::fs::read_to_string(dir.join("cases.toml")).unwrap();
    let c: Catalogue = toml::from_str(&text).unwrap();
    (dir, c.case)
}

fn cases(kind: &str) -> Vec<Case> {
    catalogue()
        .1
        .into_iter()
        .filter(|c| c.kind == kind)
        .collect()
}

/// What a case's input is: its file's bytes, or the generated content.
fn input(case: &Case) -> Vec<u8> {
    let (dir, _) = catalogue();
    if let Some(f) = &case.file {
        return std::fs::read(dir.join(f)).unwrap();
    }
    match (case.name.as_str(), case.value.as_deref()) {
        ("huge-file", _) => format!(
            "description = \"{}\"\n[tasks.a]\ntype = \"noop\"\n",
            "x".repeat(2 << 20)
        )
        .into_bytes(),
        ("too-many-tasks", _) => {
            let tasks: Vec<String> = (0..20_000)
                .map(|i| format!("t{i}={{type=\"noop\"}}"))
                .collect();
            format!("tasks = {{{}}}\n", tasks.join(",")).into_bytes()
        }
        ("deeply-nested-toml", _) => format!(
            "[tasks.a]\ntype = \"noop\"\nconfig = {{ x = {}{} }}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        )
        .into_bytes(),
        ("conf-too-large", _) => format!("{{\"name\": \"{}\"}}", "x".repeat(70_000)).into_bytes(),
        ("conf-nested-too-deep", _) => {
            format!("{}1{}", "{\"a\":".repeat(500), "}".repeat(500)).into_bytes()
        }
        ("api-body-too-large", _) => {
            format!("{{\"conf\": {{\"name\": \"{}\"}}}}", "x".repeat(2 << 20)).into_bytes()
        }
        (_, Some(v)) => v.as_bytes().to_vec(),
        _ => panic!("case {} has no input", case.name),
    }
}

/// Runs `vigil ARGS` in `p`, killed after [`DEADLINE`]; `(exit code, stdout, stderr)`.
fn run(p: &Project, args: &[&str]) -> (i32, String, String) {
    finish(p.command(args), args)
}

fn finish(mut cmd: std::process::Command, args: &[&str]) -> (i32, String, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() >= DEADLINE {
            let _ = child.kill();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "`vigil {}` did not finish within {DEADLINE:?}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failure that says what the case expects, and never a panic.
fn assert_refused(case: &Case, (code, out, err): &(i32, String, String), codes: &[i32]) {
    let all = format!("{out}{err}");
    assert!(
        codes.contains(code),
        "{}: exit {code}, expected one of {codes:?}\n{all}",
        case.name
    );
    assert!(!all.contains("panicked"), "{}: a panic\n{all}", case.name);
    for f in &case.expect {
        assert!(
            all.contains(f.as_str()),
            "{}: `{f}` not in:\n{all}",
            case.name
        );
    }
}

const GOOD: &str = "schedule = \"* * * * * *\"\ncatchup = false\n[tasks.a]\ntype = \"noop\"\n";

#[test]
fn every_bad_dag_file_is_refused_with_its_line_and_key_and_the_good_dag_keeps_its_schedule() {
    let p = Project::new();
    p.write(
        "config/vigil.toml",
        "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n",
    );
    let dags = cases("dag");
    assert!(dags.len() >= 30, "{} DAG cases", dags.len());
    for case in &dags {
        let file = format!("dags/{}.toml", case.name);
        std::fs::create_dir_all(p.path().join("dags")).unwrap();
        std::fs::write(p.path().join(&file), input(case)).unwrap();
        let result = run(&p, &["dags", "validate", &file]);
        assert_refused(case, &result, &[1]);
        assert!(
            result.1.contains(&file),
            "{}: the file is not named",
            case.name
        );
    }
    assert!(
        !p.path().join("vigil.db").exists(),
        "validating wrote a database"
    );
    // The limit's other side: a DAG of exactly 10,000 tasks loads.
    let tasks: Vec<String> = (0..10_000)
        .map(|i| format!("t{i}={{type=\"noop\"}}"))
        .collect();
    p.write(
        "big/at-limit.toml",
        &format!("tasks = {{{}}}\n", tasks.join(",")),
    );
    let (code, out, err) = run(&p, &["dags", "validate", "big/at-limit.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("10000 tasks"), "{out}");
    // Every bad file in the folder at once, beside one good every-second DAG: the daemon
    // lists each broken file and keeps the good one on schedule.
    p.write("dags/good.toml", GOOD);
    let listed = run(&p, &["dags", "list", "--json"]);
    assert_eq!(listed.0, 0, "{}", listed.2);
    let list: serde_json::Value = serde_json::from_str(&listed.1).unwrap();
    let text = list.to_string();
    assert!(text.contains("\"good\""), "{text}");
    for case in &dags {
        assert!(
            text.contains(&format!("{}.toml", case.name)),
            "{} not among the broken files",
            case.name
        );
    }
    let d = p.daemon(&[]);
    wait_for_secs("three runs of the good DAG to succeed", 60, || {
        p.runs_of("good")
            .iter()
            .filter(|r| r["state"] == "success")
            .count()
            >= 3
    });
    assert_eq!(d.terminate(), 0);
    let runs = p.runs();
    assert!(
        runs.iter().all(|r| r["dag_id"] == "good"),
        "a bad DAG made a run: {runs:?}"
    );
}

#[test]
fn every_bad_config_is_refused_naming_its_key_before_anything_is_written() {
    for case in cases("config") {
        let p = Project::new();
        std::fs::create_dir_all(p.path().join("config")).unwrap();
        std::fs::write(p.path().join("config/vigil.toml"), input(&case)).unwrap();
        let args: Vec<String> = case
            .args
            .clone()
            .unwrap_or_else(|| vec!["dags".into(), "list".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // The config's own `[api] listen`, not the free port tests give the API.
        let mut cmd = p.command(&args);
        cmd.env_remove("VIGIL_API_LISTEN");
        assert_refused(&case, &finish(cmd, &args), &[1]);
        let written: Vec<String> = std::fs::read_dir(p.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "config" && n != "dags")
            .collect();
        assert!(written.is_empty(), "{}: wrote {written:?}", case.name);
    }
}

#[test]
fn every_bad_csv_and_artifact_is_refused_naming_the_file_and_row_and_nothing_is_scored() {
    let p = Project::new();
    p.vigil(&["risk", "simulate", "--rows", "300", "--out", "data/risk"])
        .expect(0);
    p.vigil(&[
        "risk", "train", "--folds", "2", "--grid", "trees=5", "--grid", "depth=3",
    ])
    .expect(0);
    let csvs = cases("csv");
    for case in &csvs {
        let file = p.path().join(format!("{}.csv", case.name));
        std::fs::write(&file, input(case)).unwrap();
        let file = file.to_string_lossy().to_string();
        let result = run(&p, &["risk", "score", &file, "--json"]);
        assert_refused(case, &result, &[1]);
        assert!(
            result.2.contains(&file),
            "{}: the file is not named",
            case.name
        );
        assert!(result.1.is_empty(), "{}: scored {}", case.name, result.1);
    }
    let trained = crate::risk::newest_artifact(&p);
    for case in cases("artifact") {
        let bytes = if case.value.as_deref() == Some("generated") {
            cyclic_forest(&trained)
        } else {
            input(&case)
        };
        let name = case
            .file
            .as_deref()
            .and_then(|f| Path::new(f).file_name())
            .map_or_else(
                || format!("{}.json", case.name),
                |f| f.to_string_lossy().to_string(),
            );
        let file = p.path().join(&name);
        std::fs::write(&file, bytes).unwrap();
        let version = format!("bad-{}", case.name);
        p.vigil(&[
            "model",
            "register",
            "deployment_risk",
            "--version",
            &version,
            "--artifact",
            &file.to_string_lossy(),
        ])
        .expect(0);
        let result = run(
            &p,
            &[
                "risk",
                "score",
                "data/risk/new_deployments.csv",
                "--json",
                "--version",
                &version,
            ],
        );
        assert_refused(&case, &result, &[1]);
        assert!(
            result.2.contains(&name),
            "{}: the file is not named",
            case.name
        );
        assert!(result.1.is_empty(), "{}: scored {}", case.name, result.1);
    }
}

/// The trained model as JSON with one tree's first split pointing back at the root: a walk
/// that would never end, if the loader let it through.
fn cyclic_forest(trained: &str) -> Vec<u8> {
    let mut model = vigil::ml::risk::RiskModel::load(Path::new(trained), None).unwrap();
    let tree = &mut model.forest.trees[0];
    let split = (0..tree.nodes.len())
        .find(|&i| i > 0 && !tree.is_leaf(i))
        .expect("a split");
    tree.nodes[split].left = 0;
    serde_json::to_vec(&model).unwrap()
}

#[test]
fn every_bad_conf_and_api_body_is_refused_and_creates_no_run() {
    let p = Project::with_api_token(TOKEN);
    p.write(
        "dags/hello.toml",
        "[params]\nname = \"world\"\n\n[tasks.greet]\ntype = \"noop\"\n",
    );
    for case in cases("conf") {
        let conf = String::from_utf8(input(&case)).unwrap();
        assert_refused(
            &case,
            &run(&p, &["dags", "trigger", "hello", "--conf", &conf]),
            &[1, 2],
        );
    }
    assert!(p.runs().is_empty(), "a refused conf made a run");
    p.vigil(&[
        "model",
        "register",
        "m",
        "--version",
        "v1",
        "--metric",
        "rmse=1",
    ])
    .expect(0);
    p.vigil(&["model", "promote", "m", "v1"]).expect(0);
    let d = p.daemon(&[]);
    let api = api_of(&d);
    for case in cases("api") {
        let body = String::from_utf8(input(&case)).unwrap();
        let path = case.path.as_deref().unwrap_or("/");
        let (status, answer) = http(&api, "POST", path, Some(TOKEN), &[], Some(&body));
        assert_eq!(Some(status), case.status, "{}: {answer}", case.name);
        let text = answer.to_string();
        assert!(!text.contains("panicked"), "{}: {text}", case.name);
        for f in &case.expect {
            assert!(
                text.contains(f.as_str()),
                "{}: `{f}` not in {text}",
                case.name
            );
        }
    }
    assert_eq!(d.terminate(), 0);
    assert!(p.runs().is_empty(), "a refused body made a run");
    assert_eq!(
        p.vigil(&["model", "status", "m", "--json"])
            .expect(0)
            .json()["model"]["production_version"],
        "v1"
    );
}

#[test]
fn the_catalogue_has_the_cases_the_issue_asks_for() {
    let (_, all) = catalogue();
    assert!(all.len() >= 60, "{} cases", all.len());
    let mut names = std::collections::BTreeSet::new();
    for c in &all {
        assert!(names.insert(c.name.clone()), "two cases named {}", c.name);
        assert!(
            c.file.is_some() || c.value.is_some(),
            "{} has no input",
            c.name
        );
    }
}

/// A file that is not vigil's database — random bytes, a text file, another program's SQLite
/// database — is refused with a clear error and left byte for byte as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_or_corrupt_file_given_as_the_database_is_refused_and_left_as_it_was() {
    let p = Project::new();
    let foreign = p.path().join("their.db");
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}?mode=rwc", foreign.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(p.path().join("noise.db"), &noise).unwrap();
    std::fs::write(p.path().join("notes.db"), "# not a database\n").unwrap();
    for (file, expect) in [
        (
            "their.db",
            "another program's SQLite database (its tables: invoices)",
        ),
        ("noise.db", "file is not a database"),
        ("notes.db", "file is not a database"),
    ] {
        let path = p.path().join(file);
        let before = std::fs::read(&path).unwrap();
        let url = format!("sqlite://{}", path.display());
        let result = run(&p, &["--database", &url, "runs", "list"]);
        let case = Case {
            name: file.into(),
            kind: "database".into(),
            file: None,
            value: None,
            args: None,
            path: None,
            status: None,
            expect: vec![expect.into(), file.into()],
        };
        assert_refused(&case, &result, &[1]);
        assert_eq!(std::fs::read(&path).unwrap(), before, "{file} was changed");
        assert!(
            !p.path().join(format!("{file}-wal")).exists(),
            "{file} was opened for writing"
        );
    }
}

/// Every input limit is configurable in `[limits]`: set small, each refuses what is past it
/// naming its key — and lets through what is at it.
#[test]
fn configured_limits_refuse_past_them_naming_the_key_and_pass_at_them() {
    let p = Project::with_api_token("limits-token-0123456789");
    let config = std::fs::read_to_string(p.path().join("config/vigil.toml")).unwrap();
    p.write(
        "config/vigil.toml",
        &format!(
            "{config}\n[limits]\ndag_file_bytes = 4096\ntasks_per_dag = 3\nconf_bytes = 100\napi_body_bytes = 2000\ntemplate_steps = 2000\ntemplate_output_bytes = 1000\n"
        ),
    );
    let three =
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\n[tasks.c]\ntype = \"noop\"\n";
    p.write("dags/three.toml", three);
    p.vigil(&["dags", "validate"]).expect(0);

    let refused = |file: &str, text: &str, key: &str| {
        p.write(&format!("dags/{file}.toml"), text);
        let err = p.vigil(&["dags", "validate"]).expect(1).stdout();
        assert!(
            err.contains(&format!("{file}.toml")) && err.contains(key),
            "{key}: {err}"
        );
        std::fs::remove_file(p.path().join(format!("dags/{file}.toml"))).unwrap();
    };
    refused(
        "padded",
        &format!("{three}# {}\n", "x".repeat(4096)),
        "dag_file_bytes",
    );
    refused(
        "four",
        &format!("{three}[tasks.d]\ntype = \"noop\"\n"),
        "tasks_per_dag",
    );
    let looped = |n: usize| {
        format!(
            "[tasks.a]\ntype = \"noop\"\nconfig = {{ output = \"{{% for i in range({n}) %}}x{{% endfor %}}\" }}\n"
        )
    };
    refused("steps", &looped(5000), "template_steps");
    refused(
        "wide",
        "[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{{ 'x' * 1001 }}\" }\n",
        "template_output_bytes",
    );
    // At the limits: a file of exactly 4 KiB, 3 tasks, a 100-byte conf, a small loop, and a
    // value of 1000 bytes as JSON (998 characters and their quotes).
    let at = format!("{three}#");
    let pad = 4096 - at.len() - 1;
    p.write("dags/full.toml", &format!("{at}{}\n", "x".repeat(pad)));
    assert_eq!(
        std::fs::metadata(p.path().join("dags/full.toml"))
            .unwrap()
            .len(),
        4096
    );
    p.write("dags/small.toml", &looped(50));
    p.write(
        "dags/wide.toml",
        "[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{{ 'x' * 998 }}\" }\n",
    );
    p.write(
        "dags/withp.toml",
        "[params]\np = \"\"\n\n[tasks.a]\ntype = \"noop\"\n",
    );
    p.vigil(&["dags", "validate"]).expect(0);
    p.vigil(&["dags", "test", "wide"]).expect(0);

    let conf = |n: usize| format!("{{\"p\": \"{}\"}}", "y".repeat(n - 9));
    let err = p
        .vigil(&["dags", "trigger", "withp", "--conf", &conf(101)])
        .expect(1)
        .stderr();
    assert!(err.contains("conf_bytes"), "{err}");
    p.vigil(&["dags", "trigger", "withp", "--conf", &conf(100)])
        .expect(0);

    let d = p.daemon(&[]);
    let api = crate::api::api_of(&d);
    let body = |n: usize| format!("{{\"conf\": {{\"p\": \"{}\"}}}}", "z".repeat(n - 19));
    let (status, _) = crate::api::http(
        &api,
        "POST",
        "/api/v1/dags/withp/runs",
        Some("limits-token-0123456789"),
        &[],
        Some(&body(2001)),
    );
    assert_eq!(status, 413);
    let (status, answer) = crate::api::http(
        &api,
        "POST",
        "/api/v1/dags/withp/runs",
        Some("limits-token-0123456789"),
        &[],
        Some(&body(2000)),
    );
    // Past the body limit is the conf's own (100 bytes): the body was read and judged.
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("conf_bytes"), "{answer}");
    assert_eq!(d.terminate(), 0);

    let zero = Project::new();
    zero.write("config/vigil.toml", "[limits]\ntasks_per_dag = 0\n");
    let err = zero.vigil(&["dags", "list"]).expect(1).stderr();
    assert!(err.contains("limits.tasks_per_dag"), "{err}");
}
