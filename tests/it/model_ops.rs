//! Registry operations end to end on a real SQLite file: rollback (previous, to, idempotent,
//! concurrent, refused), history, and checks with their guards.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use vigil::ops::registry::{self as ops, Action, CheckOptions, Rollback};
use vigil::quality::verdict::Verdict;
use vigil::state::Audience;
use vigil::store::Store;
use vigil::store::registry::{NewPrediction, NewVersion};

use crate::util::Engine;

async fn register(store: &dyn Store, model: &str, v: &str, rmse: f64) {
    store
        .register_version(&NewVersion {
            model: model.into(),
            version: Some(v.into()),
            metrics: BTreeMap::from([("rmse".into(), rmse)]),
            artifact: None,
            source: None,
            notes: None,
        })
        .await
        .unwrap();
}

/// `n` labelled predictions of `v` on rows r0.., with absolute error `err` (alternating sign).
async fn scored(store: &dyn Store, model: &str, v: &str, n: usize, err: f64) {
    logged(store, model, v, 0..n, |i| {
        err * (1.0 + (i % 5) as f64 / 10.0) * if i % 2 == 0 { 1.0 } else { -1.0 }
    })
    .await;
}

/// Labelled predictions of `v` on rows `r{i}` for `i` in `rows`, erring by `error(i)`, logged
/// now.
async fn logged(
    store: &dyn Store,
    model: &str,
    v: &str,
    rows: std::ops::Range<usize>,
    error: impl Fn(usize) -> f64,
) {
    let rows: Vec<NewPrediction> = rows
        .map(|i| {
            let actual = 10.0 + (i % 13) as f64;
            NewPrediction {
                row_key: Some(format!("r{i}")),
                predicted: actual + error(i),
                actual: Some(actual),
                at: Utc::now(),
            }
        })
        .collect();
    store.add_predictions(model, v, &rows).await.unwrap();
}

/// v1 then v2 in production; then, live, v2 errs `v2_err` where v1 errs 1.0, on the same
/// 200 rows.
async fn two_versions(e: &Engine, v2_err: f64) {
    let s = &*e.store;
    register(s, "m", "v1", 1.0).await;
    register(s, "m", "v2", 1.0).await;
    ops::promote(s, "m", "v1", "first", "test").await.unwrap();
    ops::promote(s, "m", "v2", "retrained", "test")
        .await
        .unwrap();
    scored(s, "m", "v1", 200, 1.0).await;
    scored(s, "m", "v2", 200, v2_err).await;
}

/// Live rows `rows` of a 15 % RMSE worsening with spread: v1 errs ±1 on every row, v2
/// alternately 1.435 and 0.765 (RMSE 1.15). Forty rows make a DEGRADED verdict the
/// sequential test cannot yet back; eighty establish it.
async fn spread_worsening(e: &Engine, rows: std::ops::Range<usize>) {
    let s = &*e.store;
    let sign = |i: usize| if i % 4 < 2 { 1.0 } else { -1.0 };
    logged(s, "m", "v1", rows.clone(), sign).await;
    logged(s, "m", "v2", rows, |i| {
        sign(i) * if i % 2 == 0 { 1.435 } else { 0.765 }
    })
    .await;
}

/// v1 then v2 in production, with no live rows yet.
async fn promoted(e: &Engine) {
    let s = &*e.store;
    register(s, "m", "v1", 1.0).await;
    register(s, "m", "v2", 1.0).await;
    ops::promote(s, "m", "v1", "first", "test").await.unwrap();
    ops::promote(s, "m", "v2", "retrained", "test")
        .await
        .unwrap();
}

/// Whether a notification whose subject satisfies `is` is queued.
async fn mailed(e: &Engine, is: impl Fn(&str) -> bool) -> bool {
    e.store
        .outbox(None)
        .await
        .unwrap()
        .iter()
        .any(|m| is(&m.subject))
}

/// Model `m`'s production version.
async fn production(e: &Engine) -> Option<String> {
    e.store
        .model("m")
        .await
        .unwrap()
        .unwrap()
        .production_version
}

fn opts() -> CheckOptions {
    CheckOptions {
        auto_rollback: true,
        cooldown: Duration::ZERO,
        notify: ops_team(),
        ..CheckOptions::default()
    }
}

/// Who hears about the model's alerts in these tests.
fn ops_team() -> Audience {
    Audience {
        emails: vec!["mlops@example.com".into()],
        webhooks: Vec::new(),
    }
}

#[tokio::test]
async fn rollback_to_the_previous_version_is_idempotent_and_leaves_a_history() {
    let e = Engine::new().await;
    two_versions(&e, 1.0).await;
    let s = &*e.store;
    let done = ops::rollback(s, "m", None, "manual", "ops", false, &ops_team())
        .await
        .unwrap();
    assert_eq!(
        done,
        Rollback::Done {
            from: "v2".into(),
            to: "v1".into()
        }
    );
    let again = ops::rollback(s, "m", Some("v1"), "manual", "ops", false, &ops_team())
        .await
        .unwrap();
    assert_eq!(
        again,
        Rollback::AlreadyInProduction {
            version: "v1".into()
        }
    );
    assert_eq!(
        ops::status(s, "m")
            .await
            .unwrap()
            .model
            .production_version
            .as_deref(),
        Some("v1")
    );

    let history = ops::history(s, "m", 10).await.unwrap();
    let v1 = history.iter().find(|h| h.version.version == "v1").unwrap();
    let v2 = history.iter().find(|h| h.version.version == "v2").unwrap();
    assert!(v1.in_production && !v2.in_production);
    assert_eq!(
        v1.production_periods.len(),
        2,
        "in production, replaced, restored"
    );
    assert!(v1.production_periods[1].1.is_none(), "still in production");
    assert_eq!(v2.production_periods.len(), 1);
    assert!(mailed(&e, |subject| subject.contains("ROLLBACK m v2 → v1")).await);
}

#[tokio::test]
async fn concurrent_rollbacks_act_once_and_both_are_recorded() {
    let e = Engine::new().await;
    two_versions(&e, 1.0).await;
    let s = &*e.store;
    let team = ops_team();
    let (a, b) = tokio::join!(
        ops::rollback(s, "m", None, "alert 1", "ops", false, &team),
        ops::rollback(s, "m", None, "alert 2", "ops", false, &team),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let done = outcomes
        .iter()
        .filter(|o| matches!(o, Rollback::Done { .. }))
        .count();
    assert_eq!(done, 1, "{outcomes:?}");
    assert_eq!(production(&e).await.as_deref(), Some("v1"));
    let deployments = e.store.deployments("m", 10).await.unwrap();
    assert_eq!(
        deployments
            .iter()
            .filter(|d| d.to_version == "v1" && d.from_version.as_deref() == Some("v2"))
            .count(),
        1
    );
    let alerts = e.store.alerts("m", 10).await.unwrap();
    assert!(
        alerts.len() >= 4,
        "two promotions and one event per rollback request: {alerts:#?}"
    );
}

#[tokio::test]
async fn a_rollback_to_a_worse_version_is_refused() {
    let e = Engine::new().await;
    two_versions(&e, 1.0).await;
    let s = &*e.store;
    register(s, "m", "bad", 1.0).await;
    scored(s, "m", "bad", 200, 4.0).await;
    let r = ops::rollback(s, "m", Some("bad"), "manual", "ops", false, &ops_team())
        .await
        .unwrap();
    assert!(
        matches!(&r, Rollback::Refused { why } if why.contains("worse than production")),
        "{r:?}"
    );
    assert_eq!(production(&e).await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn automatic_rollback_waits_for_the_sequential_test_then_acts_on_one_check() {
    let e = Engine::new().await;
    promoted(&e).await;
    let s = &*e.store;
    spread_worsening(&e, 0..40).await;
    // 15 % worse on 40 rows: DEGRADED by the interval, below the 25 % critical breach, and
    // not yet established across repeated looks.
    let first = ops::check(s, "m", &opts(), "daemon").await.unwrap();
    assert_eq!(
        first.judgement.verdict,
        Verdict::Degraded,
        "{}",
        first.judgement.reason
    );
    let seq = first.judgement.sequential.unwrap();
    assert!(!seq.crossed() && seq.statistic < seq.threshold, "{seq:?}");
    assert!(
        matches!(&first.action, Action::Refused { why } if why.contains("not yet established")),
        "{:?}",
        first.action
    );
    assert_eq!(production(&e).await.as_deref(), Some("v2"));
    // Forty more rows: the same worsening, now established; one check rolls back.
    spread_worsening(&e, 40..80).await;
    let second = ops::check(s, "m", &opts(), "daemon").await.unwrap();
    assert_eq!(second.judgement.n, 80);
    assert!(second.judgement.sequential.unwrap().crossed());
    assert_eq!(second.action, Action::RolledBack { to: "v1".into() });
    assert_eq!(production(&e).await.as_deref(), Some("v1"));
    // The DEGRADED verdicts were queued as notifications with the rollback.
    let mail = e.store.outbox(None).await.unwrap();
    assert!(
        mail.iter()
            .filter(|m| m.subject.starts_with("[vigil] DEGRADED m"))
            .count()
            >= 2
    );
}

#[tokio::test]
async fn a_critical_breach_rolls_back_at_once_unless_in_cool_down_or_dry_run() {
    let e = Engine::new().await;
    two_versions(&e, 8.0).await; // eight times the error: far beyond 3× the floor
    let s = &*e.store;
    let cool = CheckOptions {
        cooldown: Duration::from_secs(3600),
        ..opts()
    };
    let c = ops::check(s, "m", &cool, "daemon").await.unwrap();
    assert!(
        matches!(&c.action, Action::Refused { why } if why.contains("cool-down")),
        "{:?}",
        c.action
    );
    let dry = CheckOptions {
        dry_run: true,
        ..opts()
    };
    let c = ops::check(s, "m", &dry, "daemon").await.unwrap();
    assert_eq!(c.action, Action::WouldRollBack { to: "v1".into() });
    assert_eq!(production(&e).await.as_deref(), Some("v2"));
    let c = ops::check(s, "m", &opts(), "daemon").await.unwrap();
    assert_eq!(c.action, Action::RolledBack { to: "v1".into() });
}

#[tokio::test]
async fn a_check_judges_the_rows_since_the_production_change_unless_told_otherwise() {
    let e = Engine::new().await;
    let s = &*e.store;
    register(s, "m", "v1", 1.0).await;
    register(s, "m", "v2", 1.0).await;
    // Scored before v2 went to production (say, while it was evaluated): not evidence about
    // the production period.
    scored(s, "m", "v1", 100, 1.0).await;
    scored(s, "m", "v2", 100, 3.0).await;
    ops::promote(s, "m", "v1", "first", "test").await.unwrap();
    ops::promote(s, "m", "v2", "second", "test").await.unwrap();
    let c = ops::check(s, "m", &opts(), "daemon").await.unwrap();
    assert_eq!(
        c.judgement.verdict,
        Verdict::Inconclusive,
        "{}",
        c.judgement.reason
    );
    assert!(
        c.judgement.reason.contains("candidate 0"),
        "{}",
        c.judgement.reason
    );
    assert_eq!(c.judgement.more_rows_needed, Some(30));
    let all = CheckOptions {
        window: "all".parse().unwrap(),
        dry_run: true,
        ..opts()
    };
    let c = ops::check(s, "m", &all, "daemon").await.unwrap();
    assert_eq!(
        c.judgement.verdict,
        Verdict::Degraded,
        "{}",
        c.judgement.reason
    );
    assert_eq!(c.judgement.n, 100);
    // A duration never reaches back past the change either.
    let day = CheckOptions {
        window: "24h".parse().unwrap(),
        ..opts()
    };
    let c = ops::check(s, "m", &day, "daemon").await.unwrap();
    assert_eq!(c.judgement.verdict, Verdict::Inconclusive);
    // Live rows after the change are judged; the baseline, not shadow-scored since, is judged
    // on the rows it scored.
    logged(
        s,
        "m",
        "v2",
        500..540,
        |i| if i % 2 == 0 { 3.0 } else { -3.0 },
    )
    .await;
    let c = ops::check(
        s,
        "m",
        &CheckOptions {
            dry_run: true,
            ..opts()
        },
        "daemon",
    )
    .await
    .unwrap();
    assert_eq!(
        (c.judgement.verdict, c.judgement.test, c.judgement.n),
        (Verdict::Degraded, vigil::quality::verdict::Test::Welch, 40),
        "{}",
        c.judgement.reason
    );
    assert!("fortnight".parse::<ops::Window>().is_err());
}

#[tokio::test]
async fn too_few_labels_is_inconclusive_alerts_and_never_acts() {
    let e = Engine::new().await;
    let s = &*e.store;
    promoted(&e).await;
    scored(s, "m", "v1", 10, 1.0).await;
    scored(s, "m", "v2", 10, 9.0).await;
    let c = ops::check(s, "m", &opts(), "daemon").await.unwrap();
    assert_eq!(
        (c.judgement.verdict, c.action.clone()),
        (Verdict::Inconclusive, Action::None)
    );
    let last = &e.store.alerts("m", 1).await.unwrap()[0];
    assert_eq!(last.verdict.as_deref(), Some("INCONCLUSIVE"));
    assert!(mailed(&e, |subject| subject.starts_with("[vigil] INCONCLUSIVE m")).await);
}

/// The hourly monitoring DAG's shape, as the model tasks run it.
const MONITORING: &str = r#"
id = "monitoring"
[params]
model = "m"
threshold_percent = 5.0
auto_rollback = true
[tasks.check_performance]
type = "model.check_performance"
config = { model = "{{ params.model }}", threshold_percent = "{{ params.threshold_percent }}" }
[tasks.compare_versions]
type = "model.compare_versions"
depends_on = ["check_performance"]
config = { check = "{{ tasks.check_performance.output }}" }
[tasks.handle_alert]
type = "model.handle_alert"
depends_on = ["compare_versions"]
config = { check = "{{ tasks.check_performance.output }}", auto_rollback = "{{ params.auto_rollback }}", cooldown = "0s" }
"#;

#[tokio::test]
async fn the_monitoring_tasks_check_compare_and_roll_back_once_the_evidence_is_established() {
    let e = Engine::new().await;
    promoted(&e).await;
    spread_worsening(&e, 0..40).await;
    let first = e.run(MONITORING).await;
    assert_eq!(first.state, vigil::state::RunState::Success);
    let act = e
        .store
        .output(first.run_id, "handle_alert")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(act["kind"], "refused", "{act}");
    let cmp = e
        .store
        .output(first.run_id, "compare_versions")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(cmp["judgement"]["verdict"], "DEGRADED");
    assert_eq!(cmp["baseline"]["version"], "v1");

    spread_worsening(&e, 40..80).await;
    let second = e.run(MONITORING).await;
    let act = e
        .store
        .output(second.run_id, "handle_alert")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(act, serde_json::json!({"kind": "rolled_back", "to": "v1"}));
    assert_eq!(production(&e).await.as_deref(), Some("v1"));
    let checks = e.store.alerts("m", 100).await.unwrap();
    assert_eq!(
        checks
            .iter()
            .filter(|a| a.kind == vigil::store::registry::AlertKind::Check)
            .count(),
        2
    );
}

#[tokio::test]
async fn a_monitoring_run_for_a_model_that_does_not_exist_fails_clearly() {
    let e = Engine::new().await;
    let out = e.run(MONITORING).await;
    let check = out.task("check_performance");
    assert_eq!(check.state, vigil::state::TaskState::Failed);
    assert_eq!(
        check.attempt, 1,
        "not retried: the model will not appear by retrying"
    );
    assert!(
        check
            .error
            .as_deref()
            .unwrap()
            .contains("there is no model `m`"),
        "{check:?}"
    );
}

const VALIDATION: &str = r#"
id = "validation"
[params]
model = "m"
candidate = "good"
[notify]
email_on_failure = ["mlops@example.com"]
[tasks.evaluate]
type = "model.evaluate"
config = { model = "{{ params.model }}", version = "{{ params.candidate }}" }
[tasks.promote]
type = "model.promote_if_better"
depends_on = ["evaluate"]
config = { model = "{{ params.model }}", candidate = "{{ params.candidate }}" }
"#;

#[tokio::test]
async fn post_training_validation_promotes_only_a_candidate_that_is_not_worse() {
    let e = Engine::new().await;
    let s = &*e.store;
    register(s, "m", "prod", 1.0).await;
    scored(s, "m", "prod", 200, 1.0).await;
    ops::promote(s, "m", "prod", "first", "test").await.unwrap();
    for (v, err) in [("good", 0.8), ("bad", 1.5)] {
        register(s, "m", v, 1.0).await;
        scored(s, "m", v, 200, err).await;
    }
    let dag = e.dag(VALIDATION);
    for (candidate, promoted) in [("bad", false), ("good", true)] {
        let run = e
            .create(&dag, serde_json::json!({"candidate": candidate}))
            .await;
        let state = e
            .executor(4)
            .execute(dag.clone(), run.clone(), None)
            .await
            .unwrap();
        assert_eq!(state, vigil::state::RunState::Success);
        let eval = e
            .store
            .output(run.id, "evaluate")
            .await
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(eval["n"], 200);
        assert!(eval["metrics"]["rmse"].as_f64().unwrap() > 0.0);
        let decision = e
            .store
            .output(run.id, "promote")
            .await
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(decision["promoted"], promoted, "{candidate}: {decision}");
    }
    assert_eq!(production(&e).await.as_deref(), Some("good"));
    let refused = e.store.alerts("m", 100).await.unwrap();
    assert!(
        refused
            .iter()
            .any(|a| a.kind == vigil::store::registry::AlertKind::Refused
                && a.message.starts_with("bad not promoted over prod"))
    );
    assert!(
        e.store
            .outbox(None)
            .await
            .unwrap()
            .iter()
            .any(|m| m.subject == "[vigil] PROMOTION REFUSED m bad")
    );
}

/// Two alerts about one bad version, handled one after the other: the second finds production
/// already restored by a rollback and does nothing — it must not roll forward to the version
/// the first took out. Naming a version still changes production.
#[tokio::test]
async fn a_second_rollback_after_the_first_does_not_roll_forward_again() {
    let e = Engine::new().await;
    two_versions(&e, 1.0).await;
    let s = &*e.store;
    let team = ops_team();
    let first = ops::rollback(s, "m", None, "alert 1", "ops", false, &team)
        .await
        .unwrap();
    assert_eq!(
        first,
        Rollback::Done {
            from: "v2".into(),
            to: "v1".into()
        }
    );
    let second = ops::rollback(s, "m", None, "alert 2", "ops", false, &team)
        .await
        .unwrap();
    assert_eq!(
        second,
        Rollback::AlreadyInProduction {
            version: "v1".into()
        }
    );
    assert_eq!(production(&e).await.as_deref(), Some("v1"));
    let alerts = e.store.alerts("m", 10).await.unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.message.contains("v2 was rolled back to it")),
        "{alerts:#?}"
    );
    let named = ops::rollback(s, "m", Some("v2"), "v2 fixed upstream", "ops", false, &team)
        .await
        .unwrap();
    assert_eq!(
        named,
        Rollback::Done {
            from: "v1".into(),
            to: "v2".into()
        }
    );
}
