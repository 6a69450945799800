//! End to end through the real `vigil` binary in a temporary directory.

use crate::util::Project;

const PIPELINE: &str = r#"
id = "pipe"
[params]
n = 3
[tasks.make]
type = "command"
config = { command = ["sh", "-c", "echo making >&2; printf '{\"n\": %s}' \"$1\"", "sh", "{{ params.n }}"] }
[tasks.double]
type = "noop"
depends_on = ["make"]
config = { output = "{{ tasks.make.output.n * 2 }}" }
[tasks.report]
type = "noop"
depends_on = ["double"]
trigger_rule = "all_done"
"#;

#[test]
fn dags_test_runs_records_and_exposes_the_run() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    let run = p
        .vigil(&["dags", "test", "pipe", "--conf", r#"{"n": 5}"#])
        .expect(0);
    let out = run.stdout();
    assert!(out.contains("run 1 of pipe"), "{out}");
    for task in ["make", "double", "report"] {
        assert!(
            out.lines()
                .any(|l| l.contains(task) && l.contains("success") && l.contains("attempt 1/1")),
            "no success line for {task}:\n{out}"
        );
    }
    assert!(out.contains("run success"), "{out}");
    assert!(
        p.path().join("vigil.db").exists(),
        "the embedded default database is ./vigil.db"
    );

    let shown = p.vigil(&["runs", "show", "1", "--json"]).expect(0).json();
    assert_eq!(shown["run"]["state"], "success");
    assert_eq!(shown["run"]["run_type"], "test");
    assert_eq!(shown["run"]["conf"], serde_json::json!({"n": 5}));
    let states: Vec<(&str, &str)> = shown["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["task_id"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("make", "success"),
            ("double", "success"),
            ("report", "success")
        ]
    );

    let xcom = p.vigil(&["tasks", "xcom", "1", "double"]).expect(0);
    assert_eq!(xcom.stdout().trim(), "10");
    let logs = p.vigil(&["tasks", "logs", "1", "make"]).expect(0).stdout();
    assert!(
        logs.contains("--- attempt 1 ---") && logs.contains("making"),
        "{logs}"
    );

    let listed = p.vigil(&["runs", "list", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    p.vigil(&["runs", "list", "--state", "sucess"]).expect(1);
}

#[test]
fn a_failed_run_exits_1_and_json_reports_it() {
    let p = Project::new();
    p.write(
        "dags/broken_run.toml",
        "[tasks.a]\ntype = \"fail\"\nconfig = { message = \"no data today\" }\n",
    );
    let out = p
        .vigil(&["dags", "test", "broken_run", "--json"])
        .expect(1)
        .json();
    assert_eq!(out["state"], "failed");
    assert_eq!(out["tasks"][0]["error"], "no data today");
}

#[test]
fn conf_is_checked_against_params_and_nothing_is_recorded_when_it_is_wrong() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    let run = p
        .vigil(&[
            "dags",
            "test",
            "pipe",
            "--conf",
            r#"{"n": "three", "m": 1}"#,
        ])
        .expect(1);
    let err = run.stderr();
    assert!(
        err.contains("unknown param `m`; declared params: n"),
        "{err}"
    );
    assert!(err.contains("param `n` expects an integer"), "{err}");
    p.vigil(&["dags", "test", "pipe", "--conf", "{not json"])
        .expect(1);
    let runs = p.vigil(&["runs", "list", "--json"]).expect(0).json();
    assert_eq!(
        runs.as_array().unwrap().len(),
        0,
        "a rejected conf must not create a run"
    );
}

#[test]
fn validate_reports_every_error_of_every_file_and_exits_1() {
    let p = Project::new();
    p.write("dags/good.toml", "[tasks.a]\ntype = \"noop\"\n");
    p.write(
        "dags/bad.toml",
        "[tasks.a]\ntype = \"nope\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"c\"]\n",
    );
    let run = p.vigil(&["dags", "validate"]).expect(1);
    let out = run.stdout();
    assert!(out.contains("ok     dags/good.toml"), "{out}");
    assert!(
        out.contains("dags/bad.toml:2: task `a`: `tasks.a.type`: unknown task type `nope`"),
        "{out}"
    );
    assert!(
        out.contains("dags/bad.toml:5: task `b`: `tasks.b.depends_on`: no task named `c`"),
        "{out}"
    );
    assert!(
        out.contains("1 file(s) valid, 1 file(s) with 2 error(s)"),
        "{out}"
    );
    p.vigil(&["dags", "validate", "dags/good.toml"]).expect(0);
    let json = p.vigil(&["dags", "validate", "--json"]).expect(1).json();
    assert_eq!(json["errors"].as_array().unwrap().len(), 2);
}

#[test]
fn a_dag_paused_in_its_file_lists_as_paused_before_any_daemon_saw_it() {
    let p = Project::new();
    p.write(
        "dags/quiet.toml",
        "paused = true\n[tasks.a]\ntype = \"noop\"\n",
    );
    p.write("dags/loud.toml", "[tasks.a]\ntype = \"noop\"\n");
    let list = p.vigil(&["dags", "list", "--json"]).expect(0).json();
    let paused = |id: &str| {
        list["dags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()["paused"]
            .clone()
    };
    assert_eq!(paused("quiet"), true);
    assert_eq!(paused("loud"), false);
    // Once the database knows the DAG, its word counts.
    p.vigil(&["dags", "unpause", "quiet"]).expect(0);
    let list = p.vigil(&["dags", "list"]).expect(0).stdout();
    let quiet = list.lines().find(|l| l.contains("quiet")).unwrap();
    assert!(quiet.contains("no"), "{list}");
}

#[test]
fn one_bad_file_does_not_stop_the_others() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    p.write("dags/zz_broken.toml", "this is not toml = = =\n");
    let list = p.vigil(&["dags", "list"]).expect(0);
    assert!(list.stdout().contains("pipe"), "{}", list.stdout());
    assert!(
        list.stdout().contains("zz_broken.toml"),
        "{}",
        list.stdout()
    );
    assert!(
        list.stderr().contains("zz_broken.toml:1"),
        "{}",
        list.stderr()
    );
    p.vigil(&["dags", "test", "pipe"]).expect(0);
    let err = p.vigil(&["dags", "test", "zz_broken"]).expect(1).stderr();
    assert!(err.contains("DAG `zz_broken` did not load"), "{err}");
    let err = p.vigil(&["dags", "test", "pip"]).expect(1).stderr();
    assert!(
        err.contains("no DAG `pip`") && err.contains("known DAGs: pipe"),
        "{err}"
    );
}

#[test]
fn dags_show_prints_tasks_edges_and_graphviz() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    let table = p.vigil(&["dags", "show", "pipe"]).expect(0).stdout();
    assert!(table.contains("params     n=3"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("report") && l.contains("all_done")),
        "{table}"
    );
    let dot = p
        .vigil(&["dags", "show", "pipe", "--format", "dot"])
        .expect(0)
        .stdout();
    assert!(dot.starts_with("digraph \"pipe\""), "{dot}");
    assert!(
        dot.contains("\"make\" -> \"double\";") && dot.contains("\"double\" -> \"report\";"),
        "{dot}"
    );
    let json = p
        .vigil(&["dags", "show", "pipe", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        json["edges"],
        serde_json::json!([["make", "double"], ["double", "report"]])
    );
}

#[test]
fn config_file_environment_and_flags_choose_the_database() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    p.write(
        "config/vigil.toml",
        "[database]\nurl = \"sqlite://state/from-config.db\"\n",
    );
    p.vigil(&["dags", "test", "pipe"]).expect(0);
    assert!(p.path().join("state/from-config.db").exists());
    p.vigil(&[
        "--database",
        "sqlite://from-flag.db",
        "dags",
        "test",
        "pipe",
    ])
    .expect(0);
    assert!(p.path().join("from-flag.db").exists());
    p.write("config/vigil.toml", "[databse]\nurl = \"x\"\n");
    let err = p.vigil(&["dags", "list"]).expect(1).stderr();
    assert!(
        err.contains("config/vigil.toml") && err.contains("databse"),
        "{err}"
    );
}

#[test]
fn the_benchmark_runs_every_scenario() {
    let p = Project::new();
    // One command: the table on stdout, the same results as JSON in the file.
    let table = p
        .vigil(&["bench", "--quick", "--save", "bench.json"])
        .expect(0)
        .stdout();
    assert!(
        table.contains("SCENARIO") && table.contains("risk_artifact"),
        "{table}"
    );
    let text = std::fs::read_to_string(p.path().join("bench.json")).unwrap();
    let out: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chain",
            "fanout",
            "process",
            "load",
            "trigger",
            "daemon_memory",
            "web",
            "risk_search",
            "risk_score",
            "risk_artifact",
            "verdicts"
        ]
    );
    for r in out.as_array().unwrap() {
        assert!(r["total_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 0.0, "{r}");
    }
}

/// Copies the repository's `dags/` folder (with its scripts) into the project.
fn copy_example_dags(p: &Project) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(&entry).unwrap();
        p.write(&format!("dags/{}", rel.display()), &text);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_shipped_example_pipeline_runs_as_is() {
    let p = Project::new();
    copy_example_dags(&p);
    p.vigil(&["dags", "validate"]).expect(0);
    let ok = p
        .vigil(&["dags", "test", "example_pipeline", "--json"])
        .expect(0)
        .json();
    let states: Vec<&str> = ok["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert!(states.iter().all(|s| *s == "success"), "{ok}");
    let train = p.vigil(&["tasks", "xcom", "1", "train"]).expect(0).json();
    assert_eq!(train["inputs"]["upstream"]["validate"]["rows"], 1200);
    assert_eq!(train["model"], "sales_forecast");

    // Too few rows: validate fails after its retry, train never runs, report still reports.
    let bad = p
        .vigil(&[
            "dags",
            "test",
            "example_pipeline",
            "--conf",
            r#"{"rows": 50}"#,
            "--json",
        ])
        .json();
    let state_of = |id: &str| {
        bad["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_id"] == id)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state_of("validate"), "failed");
    assert_eq!(state_of("train"), "upstream_failed");
    assert_eq!(state_of("report"), "success");
    let report = p.vigil(&["tasks", "xcom", "2", "report"]).expect(0).json();
    assert_eq!(report["train_state"], "upstream_failed");
}

/// Every segment of an error chain, as the CLI prints it (`error: a: b: c`), appears once:
/// a cause is `source()`'s to say, never also part of its parent's message.
fn assert_causes_once(stderr: &str) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    let segments: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(
            !segments[i + 1..].contains(s),
            "`{s}` is printed twice in: {line}"
        );
    }
}

#[test]
fn errors_print_each_cause_once() {
    let p = Project::new();
    p.write("dags/a.toml", "[tasks.a]\ntype = \"noop\"\n");
    // A missing config file, a database that cannot be created, and the
    // risk model trained on data that is gone.
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--config", "nope.toml", "dags", "list"],
            "No such file or directory",
        ),
        (
            vec!["--database", "sqlite:///proc/vigil/x.db", "runs", "list"],
            "cannot create",
        ),
    ];
    for (args, cause) in cases {
        let err = p.vigil(&args).expect(1).stderr();
        assert!(err.contains(cause), "{args:?}: {err}");
        assert_causes_once(&err);
    }
    p.vigil(&["risk", "simulate", "--rows", "300", "--out", "data"])
        .expect(0);
    p.vigil(&[
        "risk",
        "train",
        "--data",
        "data/deployments.csv",
        "--grid",
        "trees=5",
        "--folds",
        "2",
    ])
    .expect(0);
    let err = p
        .vigil(&["risk", "report", "--data", "gone.csv"])
        .expect(1)
        .stderr();
    assert!(err.contains("gone.csv"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert_causes_once(&err);
}

#[test]
fn the_cli_adds_what_to_type_next_to_a_library_error() {
    let p = Project::new();
    let err = p.vigil(&["model", "status", "churn"]).expect(1).stderr();
    assert!(err.contains("error: there is no model `churn`"), "{err}");
    assert!(
        err.contains("hint: `vigil model register churn ...` creates it"),
        "{err}"
    );
}

/// `runs list` pages by cursor, and its JSON keeps the documented fields of a run (the API's
/// shape): renaming or dropping one fails here.
#[test]
fn runs_list_pages_by_cursor_with_a_stable_shape() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    for n in 0..5 {
        let date = format!("2026-01-0{}T00:00:00Z", n + 1);
        p.vigil(&["dags", "trigger", "pipe", "--logical-date", &date])
            .expect(0);
    }
    let first = p.vigil(&["runs", "list", "--limit", "2"]).expect(0);
    assert!(
        first.stderr().contains("more runs: add `--before 4`"),
        "{}",
        first.stderr()
    );
    let page = p
        .vigil(&["runs", "list", "--limit", "2", "--before", "4", "--json"])
        .expect(0)
        .json();
    let ids: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2]);
    let mut keys: Vec<&str> = page[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "conf",
            "dag_file",
            "dag_id",
            "data_interval_start",
            "ended_at",
            "heartbeat_at",
            "id",
            "logical_date",
            "note",
            "owner",
            "queued_at",
            "run_type",
            "started_at",
            "state"
        ]
    );
    let last = p.vigil(&["runs", "list", "--before", "2"]).expect(0);
    assert!(!last.stderr().contains("more runs"), "{}", last.stderr());
    let err = p
        .vigil(&["runs", "list", "--limit", "0"])
        .expect(1)
        .stderr();
    assert!(err.contains("a page holds 1 to 1000 runs, not 0"), "{err}");
    let err = p.vigil(&["runs", "show", "99"]).expect(1).stderr();
    assert!(err.contains("error: no run 99"), "{err}");
    assert!(
        err.contains("hint: `vigil runs list` shows the runs there are"),
        "{err}"
    );
}

/// Completions and the man page come from the clap definitions and need nothing else (not
/// even a readable config); the bash script is valid bash and knows the subcommands.
#[test]
fn completions_and_the_man_page_are_generated_from_the_commands() {
    let p = Project::new();
    p.write("config/vigil.toml", "this is not toml");
    let bash = p.vigil(&["completions", "bash"]).expect(0).stdout();
    assert!(bash.contains("_vigil()"), "{bash}");
    for word in ["dags", "trigger", "next", "completions"] {
        assert!(bash.contains(word), "no `{word}` in the bash completions");
    }
    let script = p.write("vigil.bash", &bash);
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let fish = p.vigil(&["completions", "fish"]).expect(0).stdout();
    assert!(fish.contains("complete -c vigil"), "{fish}");
    let zsh = p.vigil(&["completions", "zsh"]).expect(0).stdout();
    assert!(zsh.starts_with("#compdef vigil"), "{zsh}");
    let man = p.vigil(&["man"]).expect(0).stdout();
    assert!(man.starts_with(".ie") || man.contains(".TH vigil"), "{man}");
    assert!(man.contains("dags") && man.contains("Exit codes"), "{man}");
    p.vigil(&["completions", "tcsh"]).expect(2);
}

/// `tasks test` runs one task with its config rendered, reads upstream results from an
/// earlier run when asked, and records nothing.
#[test]
fn tasks_test_runs_one_task_and_records_nothing() {
    let p = Project::new();
    p.write("dags/pipe.toml", PIPELINE);
    let made = p
        .vigil(&[
            "tasks",
            "test",
            "pipe",
            "make",
            "--conf",
            r#"{"n": 7}"#,
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(made["state"], "success");
    assert_eq!(made["output"], serde_json::json!({"n": 7}));
    assert!(
        made["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "making"),
        "{made}"
    );
    assert!(
        !p.path().join("vigil.db").exists() || p.runs().is_empty(),
        "nothing recorded"
    );

    // `double` reads `make`'s result: without a run to take it from, it says so.
    let out = p
        .vigil(&["tasks", "test", "pipe", "double"])
        .expect(1)
        .stdout();
    assert!(
        out.contains("double failed") && out.contains("tasks.make"),
        "{out}"
    );

    p.vigil(&["dags", "test", "pipe", "--conf", r#"{"n": 5}"#])
        .expect(0);
    let logs_before = p
        .vigil(&["tasks", "logs", "1", "double", "--json"])
        .expect(0)
        .stdout();
    let doubled = p
        .vigil(&["tasks", "test", "pipe", "double", "--upstream-from", "1"])
        .expect(0)
        .stdout();
    assert!(
        doubled.contains("double success") && doubled.contains("result: 10"),
        "{doubled}"
    );
    assert!(doubled.contains("(nothing was recorded)"), "{doubled}");
    assert_eq!(p.runs().len(), 1);
    let logs_after = p
        .vigil(&["tasks", "logs", "1", "double", "--json"])
        .expect(0)
        .stdout();
    assert_eq!(logs_before, logs_after);

    let err = p
        .vigil(&["tasks", "test", "pipe", "dubble"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("has no task `dubble`; its tasks: make, double, report"),
        "{err}"
    );
    let err = p
        .vigil(&["tasks", "test", "pipe", "make", "--conf", r#"{"m": 1}"#])
        .expect(1)
        .stderr();
    assert!(err.contains("invalid conf"), "{err}");
}

/// A `command` task that exits without reading its stdin (here 2 MB of upstream results) must
/// not kill the vigil process that feeds it — in `tasks test` and in a foreground backfill as
/// in `dags test` (a regression: those commands once restored SIGPIPE's default).
#[test]
fn a_task_that_ignores_its_stdin_does_not_kill_the_foreground_commands() {
    let p = Project::new();
    // A 2 MB result (past the 1 MiB default) is the point: large enough to fill any pipe.
    p.write(
        "config/vigil.toml",
        "[executor]\nmax_result_bytes = 4194304\n",
    );
    p.write(
        "dags/big.toml",
        r#"
schedule = "@daily"
[tasks.big]
type = "command"
config = { command = ["sh", "-c", "printf '\"'; head -c 2000000 /dev/zero | tr '\\0' x; printf '\"'"] }
[tasks.quick]
type = "command"
depends_on = ["big"]
config = { command = ["true"], output = "none" }
"#,
    );
    p.vigil(&["dags", "test", "big"]).expect(0);
    for _ in 0..3 {
        p.vigil(&["tasks", "test", "big", "quick", "--upstream-from", "1"])
            .expect(0);
    }
    p.vigil(&[
        "dags",
        "backfill",
        "big",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-03",
    ])
    .expect(0);
}

/// Every argument of every command says what it is in `--help` (no bare `<NAME>`).
#[test]
fn every_argument_has_a_description_in_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                missing.push(format!("{path} {} (no about)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let cmd = <vigil::cli::Cli as clap::CommandFactory>::command();
    let mut missing = Vec::new();
    walk(&cmd, "vigil", &mut missing);
    assert!(
        missing.is_empty(),
        "arguments without help:\n{}",
        missing.join("\n")
    );
}
