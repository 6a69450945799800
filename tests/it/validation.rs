//! Every class of load-time error: each names the file, the line, the task and the key, and
//! says what to do. All errors of a file come together; one bad file does not stop the others.

use std::path::Path;

use vigil::dag::{DagSet, Diagnostic, parse_dag};

use crate::util::Project;

/// Parses `src` as `dags/bad.toml` and returns its diagnostics (it must fail).
fn errors(src: &str) -> Vec<Diagnostic> {
    match parse_dag(Path::new("dags/bad.toml"), src, &vigil::tasks::builtin()) {
        Ok(_) => panic!("expected errors, but the DAG loaded:\n{src}"),
        Err(e) => {
            for d in &e.diagnostics {
                assert_eq!(d.file, Path::new("dags/bad.toml"), "{d}");
            }
            e.diagnostics
        }
    }
}

/// Asserts that exactly one diagnostic exists and that it has this line, task, key, and a
/// message containing every fragment.
#[track_caller]
fn check(src: &str, line: usize, task: Option<&str>, key: &str, fragments: &[&str]) {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "expected one error, got: {errs:#?}");
    let d = &errs[0];
    assert_eq!(d.line, Some(line), "line of {d}");
    assert_eq!(d.task.as_deref(), task, "task of {d}");
    assert_eq!(d.key, key, "key of {d}");
    for f in fragments {
        assert!(d.message.contains(f), "`{f}` not in: {d}");
    }
    let shown = d.to_string();
    assert!(
        shown.starts_with(&format!("dags/bad.toml:{line}: ")),
        "{shown}"
    );
    if let Some(t) = task {
        assert!(shown.contains(&format!("task `{t}`")), "{shown}");
    }
}

#[test]
fn unknown_keys_suggest_the_closest_known_one() {
    check(
        "id = \"d\"\nshedule = \"@daily\"\n[tasks.a]\ntype = \"noop\"\n",
        2,
        None,
        "shedule",
        &[
            "unknown key `shedule`",
            "did you mean `schedule`?",
            "expected one of",
        ],
    );
    check(
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepnds_on = [\"a\"]\n",
        5,
        Some("b"),
        "tasks.b.depnds_on",
        &["unknown key `depnds_on`", "did you mean `depends_on`?"],
    );
    check(
        "[defaults]\nretrys = 3\n[tasks.a]\ntype = \"noop\"\n",
        2,
        None,
        "defaults.retrys",
        &["did you mean `retries`?"],
    );
}

#[test]
fn invalid_ids_are_refused() {
    check(
        "id = \"../etc\"\n[tasks.a]\ntype = \"noop\"\n",
        1,
        None,
        "id",
        &["contains `/`", "letters, digits"],
    );
    check(
        "[tasks.\"my task\"]\ntype = \"noop\"\n",
        1,
        Some("my task"),
        "tasks.my task",
        &["contains ` `"],
    );
}

#[test]
fn duplicate_task_ids_and_dependencies_are_refused() {
    // TOML itself refuses a second [tasks.a]; the error says where.
    let errs = errors("[tasks.a]\ntype = \"noop\"\n[tasks.a]\ntype = \"noop\"\n");
    assert_eq!(errs[0].line, Some(3), "{errs:?}");
    assert_eq!(errs[0].key, "toml");
    assert!(errs[0].message.contains("fix the TOML syntax"), "{errs:?}");
    check(
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\", \"a\"]\n",
        5,
        Some("b"),
        "tasks.b.depends_on",
        &["`a` is listed twice"],
    );
}

#[test]
fn duplicate_dag_ids_across_files_keep_the_first_and_name_it() {
    let p = Project::new();
    let first = p.write("dags/a.toml", "id = \"same\"\n[tasks.x]\ntype = \"noop\"\n");
    let second = p.write("dags/b.toml", "id = \"same\"\n[tasks.y]\ntype = \"noop\"\n");
    let set = DagSet::load_folder(&p.path().join("dags"), &vigil::tasks::builtin()).unwrap();
    assert_eq!(set.dags["same"].file, first);
    assert_eq!(set.errors.len(), 1);
    let d = &set.errors[0].diagnostics[0];
    assert_eq!(d.file, second);
    assert_eq!(d.key, "id");
    assert!(d.message.contains(&first.display().to_string()), "{d}");
}

#[test]
fn unknown_task_types_list_the_known_ones() {
    check(
        "[tasks.a]\ntype = \"comand\"\n",
        2,
        Some("a"),
        "tasks.a.type",
        &[
            "unknown task type `comand`",
            "did you mean `command`?",
            "known types: command, fail, ml.evaluate, ml.train_regressor, model.check_performance, model.compare_versions, model.evaluate, model.handle_alert, model.promote_if_better, model.register, noop, risk.score, risk.simulate, risk.train, sleep",
        ],
    );
}

#[test]
fn configs_that_do_not_fit_the_task_type_name_the_key_path() {
    check(
        "[tasks.a]\ntype = \"sleep\"\nconfig = { duraton = \"1s\" }\n",
        3,
        Some("a"),
        "tasks.a.config.duraton",
        &["does not fit task type `sleep`", "unknown field `duraton`"],
    );
    check(
        "[tasks.a]\ntype = \"sleep\"\n\n[tasks.a.config]\nduration = true\n",
        5,
        Some("a"),
        "tasks.a.config.duration",
        &["invalid type"],
    );
    check(
        "[tasks.a]\ntype = \"command\"\nconfig = { command = \"echo hi\" }\n",
        3,
        Some("a"),
        "tasks.a.config",
        &["`shell` is false", "set shell = true"],
    );
    check(
        "[tasks.a]\ntype = \"command\"\nconfig = { command = [\"definitely-not-a-program-xyz\"] }\n",
        3,
        Some("a"),
        "tasks.a.config",
        &["`definitely-not-a-program-xyz` is not on PATH"],
    );
}

#[test]
fn a_template_over_an_upstream_result_is_checked_at_run_time_but_the_rest_now() {
    // `duration` comes from an upstream result: unknown at load, so not an error; but the
    // misspelt key beside it is.
    check(
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"sleep\"\ndepends_on = [\"a\"]\nconfig = { duration = \"{{ tasks.a.output }}\", extra = 1 }\n",
        6,
        Some("b"),
        "tasks.b.config.extra",
        &["unknown field `extra`"],
    );
}

#[test]
fn depends_on_a_missing_task_is_refused() {
    check(
        "[tasks.train]\ntype = \"noop\"\n[tasks.report]\ntype = \"noop\"\ndepends_on = [\"trian\"]\n",
        5,
        Some("report"),
        "tasks.report.depends_on",
        &["no task named `trian`", "did you mean `train`?"],
    );
}

#[test]
fn cycles_are_printed_as_a_chain() {
    check(
        "[tasks.a]\ntype = \"noop\"\ndepends_on = [\"c\"]\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\n[tasks.c]\ntype = \"noop\"\ndepends_on = [\"b\"]\n",
        3,
        Some("a"),
        "tasks.a.depends_on",
        &["dependency cycle: a -> b -> c -> a"],
    );
}

#[test]
fn templates_may_read_only_upstream_results() {
    check(
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\nconfig = { output = \"{{ tasks.a.output }}\" }\n",
        5,
        Some("b"),
        "tasks.b.config.output",
        &["not upstream of `b`", "add `a` to depends_on"],
    );
    // Upstream through another task is fine.
    let ok = parse_dag(
        Path::new("x.toml"),
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\n[tasks.c]\ntype = \"noop\"\ndepends_on = [\"b\"]\nconfig = { output = \"{{ tasks.a.output }}\" }\n",
        &vigil::tasks::builtin(),
    );
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
    check(
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\ntrigger_rule = \"always\"\nconfig = { output = \"{{ tasks.a.output }}\" }\n",
        7,
        Some("b"),
        "tasks.b.config.output",
        &[
            "`always` starts this task without waiting",
            "use `all_done`",
        ],
    );
}

#[test]
fn templates_may_read_only_declared_params() {
    check(
        "[params]\nmodel = \"churn\"\n[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{{ params.modle }}\" }\n",
        5,
        Some("a"),
        "tasks.a.config.output",
        &["undeclared param `modle`", "declared params: model"],
    );
}

#[test]
fn template_syntax_errors_are_reported() {
    check(
        "[tasks.a]\ntype = \"noop\"\nconfig = { output = \"{{ 1 + }}\" }\n",
        3,
        Some("a"),
        "tasks.a.config.output",
        &["template syntax error"],
    );
}

#[test]
fn bad_durations_are_reported() {
    check(
        "[tasks.a]\ntype = \"noop\"\ntimeout = \"5 minits\"\n",
        3,
        Some("a"),
        "tasks.a.timeout",
        &["invalid duration `5 minits`", "\"30s\""],
    );
    check(
        "[defaults]\nretry_delay = -3\n[tasks.a]\ntype = \"noop\"\n",
        2,
        None,
        "defaults.retry_delay",
        &["expected a duration"],
    );
}

#[test]
fn bad_trigger_rules_are_reported() {
    check(
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\ntrigger_rule = \"all_sucess\"\n",
        6,
        Some("b"),
        "tasks.b.trigger_rule",
        &[
            "unknown trigger rule `all_sucess`",
            "did you mean `all_success`?",
            "none_failed_min_one_success",
        ],
    );
}

#[test]
fn bad_cron_expressions_and_time_zones_are_reported() {
    check(
        "schedule = \"61 * * * *\"\n[tasks.a]\ntype = \"noop\"\n",
        1,
        None,
        "schedule",
        &["invalid cron expression `61 * * * *`", "5 fields"],
    );
    // A schedule that never fires is refused, not left to never run.
    for never in ["0 0 30 2 *", "0 0 31 4 *"] {
        check(
            &format!("schedule = \"{never}\"\n[tasks.a]\ntype = \"noop\"\n"),
            1,
            None,
            "schedule",
            &["never fires", "February 30th"],
        );
    }
    // February 29th fires, once every four years.
    assert!(
        parse_dag(
            Path::new("dags/leap.toml"),
            "schedule = \"0 0 29 2 *\"\n[tasks.a]\ntype = \"noop\"\n",
            &vigil::tasks::builtin()
        )
        .is_ok()
    );
    // A command of the wrong type says what to write.
    check(
        "[tasks.a]\ntype = \"command\"\nconfig = { command = 42 }\n",
        3,
        Some("a"),
        "tasks.a.config.command",
        &["a list of arguments", "a string"],
    );
    check(
        "timezone = \"Europe/Berln\"\n[tasks.a]\ntype = \"noop\"\n",
        1,
        None,
        "timezone",
        &[
            "unknown time zone `Europe/Berln`",
            "did you mean `Europe/Berlin`?",
        ],
    );
}

#[test]
fn all_errors_of_a_file_are_reported_together() {
    let errs = errors(
        "shedule = \"@daily\"\ntimezone = \"Mars/Base\"\n[tasks.a]\ntype = \"nop\"\ntimeout = \"soon\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"zzz\"]\ntrigger_rule = \"sometimes\"\n",
    );
    let keys: Vec<&str> = errs.iter().map(|d| d.key.as_str()).collect();
    for key in [
        "shedule",
        "timezone",
        "tasks.a.type",
        "tasks.a.timeout",
        "tasks.b.depends_on",
        "tasks.b.trigger_rule",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

#[test]
fn a_valid_dag_keeps_every_setting() {
    let dag = parse_dag(
        Path::new("dags/full.toml"),
        r#"
id = "full"
description = "every key"
schedule = "*/5 * * * *"
timezone = "Europe/Berlin"
catchup = true
max_active_runs = 2
max_active_tasks = 3
tags = ["ml"]
[params]
model = "churn"
[defaults]
retries = 2
retry_delay = "30s"
retry_backoff = "exponential"
max_retry_delay = "5m"
timeout = "10m"
[notify]
email_on_failure = ["mlops@example.com"]
[tasks.a]
type = "noop"
[tasks.b]
type = "noop"
depends_on = ["a"]
trigger_rule = "one_failed"
retries = 0
timeout = "1m"
notify = { email_on_retry = ["oncall@example.com"] }
"#,
        &vigil::tasks::builtin(),
    )
    .expect("valid");
    assert_eq!(dag.id, "full");
    assert_eq!(dag.schedule.as_ref().unwrap().expression, "*/5 * * * *");
    assert_eq!(dag.timezone, chrono_tz::Europe::Berlin);
    assert!(dag.catchup);
    assert_eq!((dag.max_active_runs, dag.max_active_tasks), (2, 3));
    assert_eq!(dag.notify.email_on_failure, ["mlops@example.com"]);
    let a = dag.task("a").unwrap();
    assert_eq!(a.retry.retries, 2);
    assert_eq!(a.retry.max_delay.as_secs(), 300);
    assert_eq!(a.timeout.unwrap().as_secs(), 600);
    let b = dag.task("b").unwrap();
    assert_eq!(b.retry.retries, 0);
    assert_eq!(b.retry.delay.as_secs(), 30, "inherited from [defaults]");
    assert_eq!(b.timeout.unwrap().as_secs(), 60);
    assert_eq!(b.notify.email_on_retry, ["oncall@example.com"]);
}

#[test]
fn start_and_end_dates_are_checked() {
    check(
        "start_date = \"yesterday\"\n[tasks.a]\ntype = \"noop\"\n",
        1,
        None,
        "start_date",
        &["invalid date `yesterday`", "2026-11-01"],
    );
    check(
        "start_date = 2026-11-10\nend_date = 2026-11-01\n[tasks.a]\ntype = \"noop\"\n",
        2,
        None,
        "end_date",
        &["end_date is before start_date"],
    );
    let dag = parse_dag(
        Path::new("dags/d.toml"),
        "timezone = \"Europe/Berlin\"\nstart_date = 2026-11-01\nend_date = \"2026-12-01T00:00:00Z\"\n[tasks.a]\ntype = \"noop\"\n",
        &vigil::tasks::builtin(),
    )
    .expect("valid dates");
    // A bare date is midnight in the DAG's time zone.
    assert_eq!(
        dag.start_date.unwrap().to_rfc3339(),
        "2026-10-31T23:00:00+00:00"
    );
    assert_eq!(
        dag.end_date.unwrap().to_rfc3339(),
        "2026-12-01T00:00:00+00:00"
    );
}

#[test]
fn notify_addresses_and_urls_are_checked_at_load() {
    check(
        "id = \"d\"\n[notify]\nemail_on_failure = [\"ops@example.com\", \"oncall.example.com\"]\n[tasks.a]\ntype = \"noop\"\n",
        3,
        None,
        "notify.email_on_failure",
        &[
            "`oncall.example.com` is not an email address",
            "name@example.com",
        ],
    );
    check(
        "id = \"d\"\n[tasks.a]\ntype = \"noop\"\nnotify = { webhook_on_failure = [\"hooks.slack.com/x\"] }\n",
        4,
        Some("a"),
        "tasks.a.notify.webhook_on_failure",
        &["is not a URL"],
    );
}

#[test]
fn every_wrong_key_of_a_config_is_reported_not_only_the_first() {
    let errs = errors(
        "[tasks.a]\ntype = \"fail\"\n[tasks.a.config]\nmesage = \"x\"\nattempts = \"two\"\nfatal = 3\n",
    );
    let mut errs = errs;
    errs.sort_by_key(|d| d.line);
    let keys: Vec<(&str, Option<usize>)> = errs.iter().map(|d| (d.key.as_str(), d.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("tasks.a.config.mesage", Some(4)),
            ("tasks.a.config.attempts", Some(5)),
            ("tasks.a.config.fatal", Some(6)),
        ],
        "{errs:#?}"
    );
    assert!(
        errs[0].message.contains("unknown field `mesage`"),
        "{}",
        errs[0]
    );
    // A missing required key is still reported when it is the only problem.
    check(
        "[tasks.a]\ntype = \"sleep\"\nconfig = {}\n",
        3,
        Some("a"),
        "tasks.a.config",
        &["missing field `duration`"],
    );
}

#[test]
fn a_task_refuses_a_wrong_value_at_load_and_accepts_the_right_one() {
    // A literal, and a param default the template renders at load.
    check(
        "[tasks.c]\ntype = \"model.check_performance\"\nconfig = { model = \"churn\", threshold_percent = -3 }\n",
        3,
        Some("c"),
        "tasks.c.config.threshold_percent",
        &["must be between 0 and 100", "-3"],
    );
    check(
        "[params]\nshare = 1.5\n[tasks.t]\ntype = \"risk.train\"\nconfig = { data = \"d.csv\", holdout = \"{{ params.share }}\" }\n",
        5,
        Some("t"),
        "tasks.t.config.holdout",
        &["between 0.05 and 0.5", "1.5"],
    );
    // Good values, and a value only an upstream result decides, load.
    for ok in [
        "[tasks.c]\ntype = \"model.check_performance\"\nconfig = { model = \"churn\", threshold_percent = 5 }\n",
        "[tasks.a]\ntype = \"noop\"\n[tasks.t]\ntype = \"risk.train\"\ndepends_on = [\"a\"]\nconfig = { data = \"d.csv\", holdout = \"{{ tasks.a.output }}\" }\n",
    ] {
        parse_dag(Path::new("dags/ok.toml"), ok, &vigil::tasks::builtin())
            .unwrap_or_else(|e| panic!("{ok}\n{e}"));
    }
}

#[test]
fn a_wrong_value_that_arrives_with_the_conf_fails_the_attempt_for_good() {
    let p = Project::new();
    p.write(
        "dags/check.toml",
        "[params]\nt = 5.0\n[tasks.c]\ntype = \"model.check_performance\"\nretries = 3\nconfig = { model = \"churn\", threshold_percent = \"{{ params.t }}\" }\n",
    );
    let run = p
        .vigil(&["dags", "test", "check", "--conf", "{\"t\": 250}", "--json"])
        .expect(1)
        .json();
    let task = &run["tasks"][0];
    assert_eq!(task["state"], "failed", "{run}");
    assert_eq!(task["attempt"], 1, "fatal: no retries used; {run}");
    let error = task["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("config `threshold_percent`: must be between 0 and 100"),
        "{error}"
    );
}
