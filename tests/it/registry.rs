//! The model registry's storage guarantees on a real SQLite file.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use vigil::state::Audience;
use vigil::store::models::{
    AlertKind, NewAlert, NewArtifact, NewPrediction, NewVersion, Notification, ProductionChange,
};
use vigil::store::{Channel, OutboxState, StoreError};

use crate::util::Engine;

fn version(model: &str, v: Option<&str>, rmse: f64) -> NewVersion {
    NewVersion {
        model: model.into(),
        version: v.map(str::to_string),
        metrics: BTreeMap::from([("rmse".into(), rmse), ("r2".into(), 0.9)]),
        artifact: None,
        source: Some("test".into()),
        notes: None,
    }
}

fn change(model: &str, from: Option<&str>, to: &str) -> ProductionChange {
    ProductionChange {
        model: model.into(),
        expect: from.map(str::to_string),
        to: to.into(),
        reason: "test".into(),
        actor: "tester".into(),
        alert: Some(NewAlert {
            model: model.into(),
            kind: AlertKind::Rollback,
            verdict: None,
            message: format!("production -> {to}"),
            details: json!({}),
            dry_run: false,
        }),
        notify: Some(Notification {
            kind: "model_rollback".into(),
            subject: format!("[vigil] {model} -> {to}"),
            body: "body".into(),
            html: None,
            payload: json!({"to": to}),
            to: Audience {
                emails: vec!["ops@example.com".into()],
                webhooks: vec!["http://127.0.0.1:9/hook".into()],
            },
        }),
    }
}

/// An engine whose model `m` has `versions`, with `production` promoted.
async fn with_versions(versions: &[&str], production: &str) -> Engine {
    let e = Engine::new().await;
    for v in versions {
        e.store
            .register_version(&version("m", Some(v), 1.0))
            .await
            .unwrap();
    }
    e.store
        .set_production(&change("m", None, production))
        .await
        .unwrap();
    e
}

#[tokio::test]
async fn versions_get_timestamp_ids_checksums_and_are_never_replaced() {
    let e = Engine::new().await;
    let a = e
        .store
        .register_version(&version("churn", None, 3.0))
        .await
        .unwrap();
    let b = e
        .store
        .register_version(&version("churn", None, 3.1))
        .await
        .unwrap();
    assert_eq!(a.version.len(), "20261122_140000".len(), "{}", a.version);
    assert!(a.version.chars().nth(8) == Some('_'));
    assert_ne!(
        a.version, b.version,
        "a second id in the same second gets a suffix"
    );
    let err = e
        .store
        .register_version(&version("churn", Some(&a.version), 1.0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionExists { .. }), "{err}");
    let stored = e.store.version("churn", &a.version).await.unwrap().unwrap();
    assert_eq!(stored.metrics["rmse"], 3.0);

    let mut with_bytes = version("churn", Some("bytes"), 2.0);
    with_bytes.artifact = Some(NewArtifact::Bytes(b"abc".to_vec()));
    let v = e.store.register_version(&with_bytes).await.unwrap();
    let art = v.artifact.unwrap();
    assert_eq!(
        art.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(art.size, 3);
    assert_eq!(e.store.versions("churn", 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn production_moves_only_by_compare_and_set_with_its_event_alert_and_mail() {
    let e = with_versions(&["v1", "v2"], "v1").await;
    let d = e
        .store
        .set_production(&change("m", Some("v1"), "v2"))
        .await
        .unwrap();
    assert_eq!(
        (d.from_version.as_deref(), d.to_version.as_str()),
        (Some("v1"), "v2")
    );
    assert_eq!(
        e.store
            .model("m")
            .await
            .unwrap()
            .unwrap()
            .production_version
            .as_deref(),
        Some("v2")
    );

    // A stale expectation changes nothing and says what production is.
    let err = e
        .store
        .set_production(&change("m", Some("v1"), "v1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("production of `m` is v2 now, not v1"),
        "{err}"
    );
    let err = e
        .store
        .set_production(&change("m", Some("v2"), "v9"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no version `v9`"), "{err}");

    assert_eq!(e.store.deployments("m", 10).await.unwrap().len(), 2);
    assert_eq!(
        e.store.alerts("m", 10).await.unwrap().len(),
        2,
        "failed changes record nothing"
    );
    // Each change queued one email and one webhook delivery, in its own transaction.
    let mail = e.store.outbox(Some(OutboxState::Pending)).await.unwrap();
    assert_eq!(mail.len(), 4);
    assert_eq!(mail[2].subject, "[vigil] m -> v2");
    assert_eq!(
        (mail[2].channel, mail[2].recipients.clone()),
        (Channel::Email, vec!["ops@example.com".to_string()])
    );
    assert_eq!(
        (mail[3].channel, mail[3].recipients.clone()),
        (
            Channel::Webhook,
            vec!["http://127.0.0.1:9/hook".to_string()]
        )
    );
}

#[tokio::test]
async fn two_concurrent_rollbacks_leave_one_production_version_and_one_change() {
    let e = with_versions(&["v1", "v2", "v3"], "v3").await;
    let (first, second) = (change("m", Some("v3"), "v2"), change("m", Some("v3"), "v2"));
    let (a, b) = tokio::join!(
        e.store.set_production(&first),
        e.store.set_production(&second),
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let loser = a.err().or(b.err()).unwrap();
    assert!(loser.to_string().contains("is v2 now, not v3"), "{loser}");
    let m = e.store.model("m").await.unwrap().unwrap();
    assert_eq!(m.production_version.as_deref(), Some("v2"));
    let history = e.store.deployments("m", 10).await.unwrap();
    let moves: Vec<(Option<&str>, &str)> = history
        .iter()
        .map(|d| (d.from_version.as_deref(), d.to_version.as_str()))
        .collect();
    assert_eq!(
        moves,
        [(Some("v3"), "v2"), (None, "v3")],
        "newest first, consistent chain"
    );
}

#[tokio::test]
async fn nothing_in_the_registry_is_ever_deleted_not_even_by_retention() {
    let e = Engine::new().await;
    e.store
        .register_version(&version("m", Some("v1"), 1.0))
        .await
        .unwrap();
    e.store
        .set_production(&change("m", None, "v1"))
        .await
        .unwrap();
    let url = format!("sqlite://{}", e.dir.path().join("vigil.db").display());
    // Plain SQL on the file, past vigil's store: the database itself must refuse.
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for table in [
        "model_versions",
        "model_deployments",
        "model_alerts",
        "models",
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&raw)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("never deleted"), "{table}: {err}");
    }
    let err = sqlx::query("UPDATE model_deployments SET to_version = 'x'")
        .execute(&raw)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("append-only"), "{err}");
    let removed = e
        .store
        .cleanup(Utc::now() + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(removed.runs, 0);
    assert!(e.store.version("m", "v1").await.unwrap().is_some());
    assert_eq!(e.store.deployments("m", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn predictions_are_kept_per_version_and_need_a_known_version() {
    let e = Engine::new().await;
    e.store
        .register_version(&version("m", Some("v1"), 1.0))
        .await
        .unwrap();
    let rows: Vec<NewPrediction> = (0..1200)
        .map(|i| NewPrediction {
            row_key: Some(format!("r{i}")),
            predicted: i as f64,
            actual: (i % 2 == 0).then_some(i as f64 + 0.5),
            at: Utc::now(),
        })
        .collect();
    assert_eq!(
        e.store.add_predictions("m", "v1", &rows).await.unwrap(),
        1200
    );
    let back = e.store.predictions("m", "v1", None).await.unwrap();
    assert_eq!(back.len(), 1200);
    assert_eq!(back.iter().filter(|p| p.actual.is_some()).count(), 600);
    let err = e
        .store
        .add_predictions("m", "v9", &rows[..1])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchVersion { .. }), "{err}");
}

/// "Never deleted" holds for every registry table, changes that would rewrite history are
/// refused by the database itself, and non-finite predictions never get in.
#[tokio::test]
async fn the_database_refuses_rewriting_the_registry_and_non_finite_predictions() {
    let e = with_versions(&["v1"], "v1").await;
    let row = |predicted: f64, actual: Option<f64>| NewPrediction {
        row_key: Some("r".into()),
        predicted,
        actual,
        at: Utc::now(),
    };
    e.store
        .add_predictions("m", "v1", &[row(1.0, Some(1.0))])
        .await
        .unwrap();
    for bad in [
        row(f64::INFINITY, None),
        row(1.0, Some(f64::NAN)),
        row(f64::NAN, Some(1.0)),
    ] {
        let err = e
            .store
            .add_predictions("m", "v1", &[bad])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a finite number"), "{err}");
    }
    let url = format!("sqlite://{}", e.dir.path().join("vigil.db").display());
    // Plain SQL on the file, past vigil's store: the database itself must refuse.
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for (sql, expect) in [
        ("DELETE FROM model_predictions", "never deleted"),
        ("UPDATE model_predictions SET predicted = 2", "append-only"),
        (
            "INSERT INTO model_predictions (model, version, predicted, at) VALUES ('m', 'v1', 9e999, 'now')",
            "finite",
        ),
        ("UPDATE model_versions SET metrics = '{}'", "never changed"),
        ("UPDATE model_alerts SET message = 'x'", "append-only"),
        (
            "UPDATE models SET production_version = 'ghost'",
            "registered version",
        ),
        (
            "INSERT INTO model_deployments (model, from_version, to_version, reason, actor, at) VALUES ('m', NULL, 'ghost', 'r', 'a', 'now')",
            "does not exist",
        ),
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&raw)
            .await
            .map(|r| format!("changed {} rows", r.rows_affected()))
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains(expect), "{sql}: {err}");
    }
    // The good path is untouched: status still reads, production still moves.
    assert_eq!(e.store.predictions("m", "v1", None).await.unwrap().len(), 1);
    e.store
        .register_version(&version("m", Some("v2"), 1.0))
        .await
        .unwrap();
    e.store
        .set_production(&change("m", Some("v1"), "v2"))
        .await
        .unwrap();
}

#[tokio::test]
async fn version_ids_that_could_mislead_are_refused_and_ordinary_ones_pass() {
    let e = Engine::new().await;
    for bad in [
        "v1\r\nforged",
        "../../etc",
        "\u{1b}[31mred",
        ".hidden",
        "",
        "a/b",
    ] {
        let err = e
            .store
            .register_version(&version("m", Some(bad), 1.0))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not allowed"), "{bad:?}: {err}");
        assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    }
    for good in ["v1", "2026-12-01_1", "1.2.3+build.7", "candidate_B"] {
        e.store
            .register_version(&version("m", Some(good), 1.0))
            .await
            .unwrap();
    }
}
