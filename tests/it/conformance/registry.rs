//! The model registry: versions never replaced, the production pointer moved only by
//! compare-and-set with one event each, predictions tied to known versions, nothing deleted.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use vigil::state::Audience;
use vigil::store::registry::{
    AlertKind, NewAlert, NewArtifact, NewPrediction, NewVersion, Notification, ProductionChange,
};
use vigil::store::{Channel, OutboxState, Store, StoreError};

pub fn version(model: &str, v: Option<&str>, rmse: f64) -> NewVersion {
    NewVersion {
        model: model.into(),
        version: v.map(str::to_string),
        metrics: BTreeMap::from([("rmse".into(), rmse), ("r2".into(), 0.9)]),
        artifact: None,
        source: Some("test".into()),
        notes: None,
    }
}

pub fn change(model: &str, from: Option<&str>, to: &str) -> ProductionChange {
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

/// Gives model `m` the `versions`, with `production` promoted.
pub async fn with_versions(store: &dyn Store, versions: &[&str], production: &str) {
    for v in versions {
        store
            .register_version(&version("m", Some(v), 1.0))
            .await
            .unwrap();
    }
    store
        .set_production(&change("m", None, production))
        .await
        .unwrap();
}

pub async fn versions_get_timestamp_ids_checksums_and_are_never_replaced(store: &dyn Store) {
    let a = store
        .register_version(&version("churn", None, 3.0))
        .await
        .unwrap();
    let b = store
        .register_version(&version("churn", None, 3.1))
        .await
        .unwrap();
    assert_eq!(a.version.len(), "20261122_140000".len(), "{}", a.version);
    assert!(a.version.chars().nth(8) == Some('_'));
    assert_ne!(
        a.version, b.version,
        "a second id in the same second gets a suffix"
    );
    let err = store
        .register_version(&version("churn", Some(&a.version), 1.0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionExists { .. }), "{err}");
    let stored = store.version("churn", &a.version).await.unwrap().unwrap();
    assert_eq!(stored.metrics["rmse"], 3.0);

    let mut with_bytes = version("churn", Some("bytes"), 2.0);
    with_bytes.artifact = Some(NewArtifact::Bytes(b"abc".to_vec()));
    let v = store.register_version(&with_bytes).await.unwrap();
    let art = v.artifact.unwrap();
    assert_eq!(
        art.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(art.size, 3);
    assert_eq!(store.versions("churn", 10).await.unwrap().len(), 3);
}

pub async fn production_moves_only_by_compare_and_set_with_its_event_alert_and_mail(
    store: &dyn Store,
) {
    with_versions(store, &["v1", "v2"], "v1").await;
    let d = store
        .set_production(&change("m", Some("v1"), "v2"))
        .await
        .unwrap();
    assert_eq!(
        (d.from_version.as_deref(), d.to_version.as_str()),
        (Some("v1"), "v2")
    );
    assert_eq!(
        store
            .model("m")
            .await
            .unwrap()
            .unwrap()
            .production_version
            .as_deref(),
        Some("v2")
    );

    // A stale expectation changes nothing and says what production is.
    let err = store
        .set_production(&change("m", Some("v1"), "v1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("production of `m` is v2 now, not v1"),
        "{err}"
    );
    let err = store
        .set_production(&change("m", Some("v2"), "v9"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no version `v9`"), "{err}");

    assert_eq!(store.deployments("m", 10).await.unwrap().len(), 2);
    assert_eq!(
        store.alerts("m", 10).await.unwrap().len(),
        2,
        "failed changes record nothing"
    );
    // Each change queued one email and one webhook delivery, in its own transaction.
    let mail = store.outbox(Some(OutboxState::Pending)).await.unwrap();
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

pub async fn two_concurrent_rollbacks_leave_one_production_version_and_one_change(
    store: &dyn Store,
) {
    with_versions(store, &["v1", "v2", "v3"], "v3").await;
    let (first, second) = (change("m", Some("v3"), "v2"), change("m", Some("v3"), "v2"));
    let (a, b) = tokio::join!(store.set_production(&first), store.set_production(&second),);
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let loser = a.err().or(b.err()).unwrap();
    assert!(loser.to_string().contains("is v2 now, not v3"), "{loser}");
    let m = store.model("m").await.unwrap().unwrap();
    assert_eq!(m.production_version.as_deref(), Some("v2"));
    let history = store.deployments("m", 10).await.unwrap();
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

pub async fn predictions_are_kept_per_version_and_need_a_known_version(store: &dyn Store) {
    store
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
    assert_eq!(store.add_predictions("m", "v1", &rows).await.unwrap(), 1200);
    let back = store.predictions("m", "v1", None).await.unwrap();
    assert_eq!(back.len(), 1200);
    assert_eq!(back.iter().filter(|p| p.actual.is_some()).count(), 600);
    let err = store
        .add_predictions("m", "v9", &rows[..1])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchVersion { .. }), "{err}");
}

pub async fn version_ids_that_could_mislead_are_refused_and_ordinary_ones_pass(store: &dyn Store) {
    for bad in [
        "v1\r\nforged",
        "../../etc",
        "\u{1b}[31mred",
        ".hidden",
        "",
        "a/b",
    ] {
        let err = store
            .register_version(&version("m", Some(bad), 1.0))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not allowed"), "{bad:?}: {err}");
        assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    }
    for good in ["v1", "2026-12-01_1", "1.2.3+build.7", "candidate_B"] {
        store
            .register_version(&version("m", Some(good), 1.0))
            .await
            .unwrap();
    }
}

pub async fn predictions_need_a_known_version_and_retention_keeps_the_registry(store: &dyn Store) {
    predictions_are_kept_per_version_and_need_a_known_version(store).await;
    store
        .set_production(&change("m", None, "v1"))
        .await
        .unwrap();
    let removed = store
        .cleanup(Utc::now() + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(removed.runs, 0);
    assert!(store.version("m", "v1").await.unwrap().is_some());
    assert_eq!(store.deployments("m", 10).await.unwrap().len(), 1);
    assert_eq!(store.alerts("m", 10).await.unwrap().len(), 1);
    assert_eq!(
        store.predictions("m", "v1", None).await.unwrap().len(),
        1200
    );
}
