//! `vigil model ...` through the real binary.

use crate::util::Project;

#[test]
fn register_promote_check_and_roll_back_from_the_command_line() {
    let p = Project::new();
    let v1 = p
        .vigil(&[
            "model",
            "register",
            "churn",
            "--version",
            "v1",
            "--metric",
            "rmse=3.0",
            "--metric",
            "r2=0.91",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(v1["metrics"]["rmse"], 3.0);
    p.vigil(&[
        "model",
        "register",
        "churn",
        "--version",
        "v2",
        "--metric",
        "rmse=3.6",
    ])
    .expect(0);
    p.vigil(&["model", "register", "churn", "--metric", "rmse"])
        .expect(1);
    p.vigil(&["model", "promote", "churn", "v1"]).expect(0);
    p.vigil(&["model", "promote", "churn", "v2"]).expect(0);

    // RMSE 3.0 -> 3.6 in the recorded metrics: 20 % worse, DEGRADED, exit 3.
    let check = p.vigil(&["model", "check", "churn"]).expect(3).stdout();
    assert!(
        check.starts_with("DEGRADED: production v2 against v1"),
        "{check}"
    );
    let json = p
        .vigil(&["model", "check", "churn", "--threshold", "25", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        json["judgement"]["verdict"], "PASS",
        "a 25 % threshold tolerates it"
    );
    let dry = p
        .vigil(&["model", "check", "churn", "--threshold", "25", "--dry-run"])
        .expect(0)
        .stdout();
    assert!(
        dry.contains("(dry run: nothing would be rolled back)"),
        "{dry}"
    );

    // Not a terminal and no --yes: nothing changes.
    let refused = p
        .vigil(&["model", "rollback", "churn", "--previous"])
        .expect(1)
        .stderr();
    assert!(refused.contains("pass --yes to confirm"), "{refused}");
    let done = p
        .vigil(&["model", "rollback", "churn", "--previous", "--yes"])
        .expect(0)
        .stdout();
    assert!(done.contains("rolled back churn: v2 → v1"), "{done}");
    let again = p
        .vigil(&["model", "rollback", "churn", "--to", "v1", "--yes"])
        .expect(0)
        .stdout();
    assert!(again.contains("v1 is already in production"), "{again}");

    let status = p
        .vigil(&["model", "status", "churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["model"]["production_version"], "v1");
    let history = p
        .vigil(&["model", "history", "churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(history.as_array().unwrap().len(), 2);
    let err = p.vigil(&["model", "status", "nope"]).expect(1).stderr();
    assert!(err.contains("there is no model `nope`"), "{err}");
}

#[test]
fn predictions_import_from_csv_and_bad_files_name_the_row_and_column() {
    let p = Project::new();
    p.vigil(&["model", "register", "m", "--version", "v1"])
        .expect(0);
    p.write(
        "good.csv",
        "row_key,predicted,actual\nr1,1.5,1.0\nr2,2.5,\nr3,3.0,3.0\n",
    );
    let out = p
        .vigil(&["model", "predictions", "import", "m", "v1", "good.csv"])
        .expect(0)
        .stdout();
    assert!(
        out.contains("imported 3 prediction(s) of m v1 (2 with actual values)"),
        "{out}"
    );
    p.write(
        "bad.csv",
        "row_key,predicted,actual\nr1,1.5,1.0\nr2,abc,2\n",
    );
    let err = p
        .vigil(&["model", "predictions", "import", "m", "v1", "bad.csv"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("row 3, column `predicted`: `abc` is not a finite number"),
        "{err}"
    );
    // Non-finite values are refused with their row and column, not stored or counted.
    for (file, text, place) in [
        (
            "inf.csv",
            "row_key,predicted,actual\nr1,inf,1\n",
            "row 2, column `predicted`: `inf`",
        ),
        (
            "nan.csv",
            "row_key,predicted,actual\nr1,1,1\nr2,2,NaN\n",
            "row 3, column `actual`: `NaN`",
        ),
    ] {
        p.write(file, text);
        let err = p
            .vigil(&["model", "predictions", "import", "m", "v1", file])
            .expect(1)
            .stderr();
        assert!(
            err.contains(place) && err.contains("not a finite number"),
            "{err}"
        );
    }
    p.write("nocol.csv", "id,score\n1,2\n");
    let err = p
        .vigil(&["model", "predictions", "import", "m", "v1", "nocol.csv"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("no `predicted` column (columns: id, score)"),
        "{err}"
    );
    p.write("empty.csv", "predicted,actual\n");
    let err = p
        .vigil(&["model", "predictions", "import", "m", "v1", "empty.csv"])
        .expect(1)
        .stderr();
    assert!(err.contains("no prediction rows"), "{err}");
    let err = p
        .vigil(&["model", "predictions", "import", "m", "v9", "good.csv"])
        .expect(1)
        .stderr();
    assert!(err.contains("has no version `v9`"), "{err}");
}

#[test]
fn the_demo_shows_a_degradation_held_back_until_established_then_rolled_back() {
    let p = Project::new();
    for f in [
        "model_performance_monitoring.toml",
        "post_training_validation.toml",
    ] {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("dags")
                .join(f),
        )
        .unwrap();
        p.write(&format!("dags/{f}"), &text);
    }
    let out = p.vigil(&["demo"]).expect(0).stdout();
    assert!(out.contains("check: DEGRADED"), "{out}");
    // The first rows show the worsening; the guard waits for the sequential test, which the
    // rest of the rows satisfy.
    assert!(
        out.contains(
            "no rollback yet: the evidence since the production change has not yet established"
        ),
        "{out}"
    );
    assert!(out.contains("action: rolled back to v2"), "{out}");
    assert!(out.contains("production is now v2"), "{out}");
    let status = p
        .vigil(&["model", "status", "demo_churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["model"]["production_version"], "v2");
    let err = p.vigil(&["demo"]).expect(1).stderr();
    assert!(err.contains("exists already"), "{err}");
    // The candidate passes validation and is promoted.
    p.vigil(&[
        "dags",
        "test",
        "post_training_validation",
        "--conf",
        r#"{"candidate": "v4"}"#,
    ])
    .expect(0);
    let status = p
        .vigil(&["model", "status", "demo_churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["model"]["production_version"], "v4");
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let p = Project::new();
    p.vigil(&["model", "register", "m", "--version", "v1"])
        .expect(0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(p.path())
        .args(["model", "history", "m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before vigil writes
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_menu_driven_through_a_pseudo_terminal() {
    let p = Project::new();
    for v in ["v1", "v2"] {
        p.vigil(&[
            "model",
            "register",
            "m",
            "--version",
            v,
            "--metric",
            "rmse=1.0",
        ])
        .expect(0);
        p.vigil(&["model", "promote", "m", v]).expect(0);
    }
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.current_dir(p.path()).args(["model", "menu", "m"]);
    // The timeout is a liveness bound for each expected prompt, not a speed assertion.
    let mut s = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty");
    s.exp_string("8. Exit").unwrap();
    s.exp_string("choice> ").unwrap();
    s.send_line("1").unwrap();
    s.exp_string("production  v2").unwrap();
    s.exp_string("choice> ").unwrap();
    s.send_line("3").unwrap();
    s.exp_string("roll m back from v2 to v1? [y/N]").unwrap();
    s.send_line("y").unwrap();
    // rexpect reads the terminal as Latin-1, so match around the UTF-8 arrow.
    s.exp_string("rolled back m: v2 ").unwrap();
    s.exp_string("choice> ").unwrap();
    s.send_line("7").unwrap();
    s.exp_string("IN PRODUCTION").unwrap();
    s.exp_string("choice> ").unwrap();
    s.send_line("5").unwrap();
    s.exp_string("version> ").unwrap();
    s.send_line("v2").unwrap();
    s.exp_string("roll m back from v1 to v2? [y/N]").unwrap();
    s.send_line("n").unwrap();
    s.exp_string("not confirmed; nothing was changed").unwrap();
    s.exp_string("choice> ").unwrap();
    s.send_line("9").unwrap();
    s.exp_string("unknown choice `9`").unwrap();
    s.exp_string("choice> ").unwrap();
    s.send_line("8").unwrap();
    s.exp_eof().unwrap();
    let status = p
        .vigil(&["model", "status", "m", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        status["model"]["production_version"], "v1",
        "only the confirmed rollback happened"
    );
}

#[test]
fn the_monitoring_dag_runs_under_the_daemon() {
    let p = Project::new();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dags/model_performance_monitoring.toml"),
    )
    .unwrap();
    p.write("dags/model_performance_monitoring.toml", &text);
    p.vigil(&["demo"]).expect(0);
    let d = p.daemon(&[]);
    // It ships paused, so a trigger waits; unpausing lets the daemon run it.
    p.vigil(&["dags", "unpause", "model_performance_monitoring"])
        .expect(0);
    let out = p
        .vigil(&[
            "dags",
            "trigger",
            "model_performance_monitoring",
            "--wait",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(out["state"], "success");
    let checks = p
        .vigil(&["model", "status", "demo_churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(checks["last_alert"]["kind"], "check");
    let text = p
        .vigil(&["model", "status", "demo_churn"])
        .expect(0)
        .stdout();
    assert!(
        text.contains("last check  ") && !text.contains("last alert"),
        "{text}"
    );
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_registered_artifact_is_recorded_by_path_checksum_and_size() {
    let p = Project::new();
    p.write("model.bin", "abc");
    let v = p
        .vigil(&[
            "model",
            "register",
            "m",
            "--artifact",
            "model.bin",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        v["artifact"]["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(v["artifact"]["size"], 3);
    assert!(
        v["artifact"]["path"]
            .as_str()
            .unwrap()
            .ends_with("model.bin")
    );
    let err = p
        .vigil(&["model", "register", "m", "--artifact", "missing.bin"])
        .expect(1)
        .stderr();
    assert!(err.contains("reading artifact missing.bin"), "{err}");
}

#[test]
fn compare_names_its_test_in_words_and_json_keeps_the_identifier() {
    let p = Project::new();
    let mut good = String::from("row_key,predicted,actual\n");
    let mut bad = good.clone();
    for i in 0..40 {
        let actual = f64::from(i % 7);
        good.push_str(&format!("r{i},{},{actual}\n", actual + 0.1));
        bad.push_str(&format!("r{i},{},{actual}\n", actual + 2.0));
    }
    p.write("good.csv", &good);
    p.write("bad.csv", &bad);
    for (version, file) in [("v1", "good.csv"), ("v2", "bad.csv")] {
        p.vigil(&[
            "model",
            "register",
            "m",
            "--version",
            version,
            "--metric",
            "rmse=1",
        ])
        .expect(0);
        p.vigil(&["model", "predictions", "import", "m", version, file])
            .expect(0);
    }
    let out = p.vigil(&["model", "compare", "m", "v1", "v2"]).stdout();
    assert!(out.starts_with("DEGRADED (v2 vs v1)"), "{out}");
    assert!(
        out.contains("test: paired t-interval on the same rows, n = 40"),
        "{out}"
    );
    assert!(!out.contains("PairedT"), "{out}");
    let json = p
        .vigil(&["model", "compare", "m", "v1", "v2", "--json"])
        .json();
    assert_eq!(json["test"], "paired_t", "{json}");
}
