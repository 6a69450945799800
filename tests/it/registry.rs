//! The model registry's guarantees that the database itself enforces, tried with plain SQL past
//! vigil's store, on SQLite and PostgreSQL (the backend-independent ones are in
//! `conformance/registry.rs`).

use chrono::Utc;
use vigil::store::registry::NewPrediction;

use crate::conformance::registry::{change, version, with_versions};
use crate::util::Engine;

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

/// "Never deleted" holds for every registry table, changes that would rewrite history are
/// refused by the database itself, and non-finite predictions never get in.
#[tokio::test]
async fn the_database_refuses_rewriting_the_registry_and_non_finite_predictions() {
    let e = Engine::new().await;
    with_versions(e.store.as_ref(), &["v1"], "v1").await;
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

/// The same refusals from PostgreSQL's triggers and constraints, whoever connects; TRUNCATE
/// (which skips row triggers) is refused too.
#[tokio::test]
async fn postgres_refuses_rewriting_the_registry_past_the_store() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
        .await
        .unwrap();
    assert!(
        store.identity().starts_with("127.0.0.1:"),
        "{}",
        store.identity()
    );
    with_versions(store.as_ref(), &["v1"], "v1").await;
    store
        .add_predictions(
            "m",
            "v1",
            &[NewPrediction {
                row_key: Some("r".into()),
                predicted: 1.0,
                actual: Some(1.0),
                at: Utc::now(),
            }],
        )
        .await
        .unwrap();
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    for (sql, expect) in [
        ("DELETE FROM model_predictions", "never deleted"),
        ("TRUNCATE model_predictions", "never deleted"),
        ("DELETE FROM model_versions", "never deleted"),
        ("TRUNCATE models CASCADE", "never deleted"),
        ("DELETE FROM model_deployments", "never deleted"),
        ("DELETE FROM model_alerts", "never deleted"),
        ("UPDATE model_predictions SET predicted = 2", "append-only"),
        (
            "INSERT INTO model_predictions (model, version, predicted, at) VALUES ('m', 'v1', 'Infinity', now())",
            "finite",
        ),
        ("UPDATE model_versions SET metrics = '{}'", "never changed"),
        ("UPDATE model_alerts SET message = 'x'", "append-only"),
        (
            "UPDATE model_deployments SET to_version = 'x'",
            "append-only",
        ),
        (
            "UPDATE models SET production_version = 'ghost'",
            "registered version",
        ),
        (
            "INSERT INTO model_deployments (model, from_version, to_version, reason, actor, at) VALUES ('m', NULL, 'ghost', 'r', 'a', now())",
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
    // The good path is untouched.
    assert_eq!(store.predictions("m", "v1", None).await.unwrap().len(), 1);
    store
        .register_version(&version("m", Some("v2"), 1.0))
        .await
        .unwrap();
    store
        .set_production(&change("m", Some("v1"), "v2"))
        .await
        .unwrap();
    assert_eq!(store.deployments("m", 10).await.unwrap().len(), 2);
}
