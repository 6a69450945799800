//! The model registry on PostgreSQL. A production change, its deployment event, its alert and
//! its notification commit in one transaction or not at all; the guarantees that must hold
//! whoever connects (one production pointer, append-only history, refused deletes) are
//! triggers in the schema.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::outbox::push_notification;
use super::{Abort, PgStore, Tx, finish, guard, now};
use crate::store::registry::{
    Alert, Deployment, ModelRecord, ModelStore, ModelVersion, NewAlert, NewPrediction, NewVersion,
    Notification, Prediction, ProductionChange, version_ids,
};
use crate::store::rows::{
    AlertRow, Decode, DeploymentRow, ModelRow, PredictionRow, VersionRow, corrupt, decode_all,
};
use crate::store::{QueryContext, StoreError};

/// Adds the alert (and its notification) to the transaction; returns the alert's id.
async fn push_alert(
    tx: &mut Tx,
    alert: &NewAlert,
    notify: Option<&Notification>,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let id = sqlx::query_scalar(
        "INSERT INTO model_alerts (model, kind, verdict, message, details, dry_run, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&alert.model)
    .bind(alert.kind.as_str())
    .bind(&alert.verdict)
    .bind(&alert.message)
    .bind(alert.details.to_string())
    .bind(alert.dry_run)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(n) = notify {
        push_notification(tx, n, now).await?;
    }
    Ok(id)
}

/// Changes the pointer by compare-and-set and records the event; `Abort::Stale` when the
/// pointer moved or the target is not a version of the model.
async fn change_production(
    tx: &mut Tx,
    change: &ProductionChange,
) -> Result<(i64, DateTime<Utc>), Abort> {
    let now = now(tx).await?;
    guard(
        sqlx::query(
            "UPDATE models SET production_version = $1, updated_at = $2
             WHERE name = $3 AND production_version IS NOT DISTINCT FROM $4
               AND EXISTS (SELECT 1 FROM model_versions WHERE model = $3 AND version = $1)",
        )
        .bind(&change.to)
        .bind(now)
        .bind(&change.model)
        .bind(&change.expect)
        .execute(&mut **tx)
        .await?,
    )?;
    let id = sqlx::query_scalar(
        "INSERT INTO model_deployments (model, from_version, to_version, reason, actor, at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(&change.model)
    .bind(&change.expect)
    .bind(&change.to)
    .bind(&change.reason)
    .bind(&change.actor)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(alert) = &change.alert {
        push_alert(tx, alert, change.notify.as_ref(), now).await?;
    }
    Ok((id, now))
}

#[async_trait]
impl ModelStore for PgStore {
    async fn register_version(&self, new: &NewVersion) -> Result<ModelVersion, StoreError> {
        let columns = new.artifact_columns();
        let (path, sha256, size, bytes) = &columns;
        let metrics = serde_json::to_string(&new.metrics).map_err(|e| corrupt("metrics", e))?;
        let created_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await
            .doing("registering a model version")?;
        let ids = version_ids(new.version.as_deref(), created_at);
        for id in &ids {
            crate::store::registry::check_version_id(id)?;
        }
        let last = ids.len() - 1;
        for (i, version) in ids.into_iter().enumerate() {
            let mut tx = self.begin().await.doing("registering a model version")?;
            let inserted = async {
                sqlx::query(
                    "INSERT INTO models (name, created_at, updated_at) VALUES ($1, $2, $2)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&new.model)
                .bind(created_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO model_versions (model, version, metrics, artifact_path, artifact_sha256,
                         artifact_size, artifact_bytes, source, notes, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&new.model)
                .bind(&version)
                .bind(&metrics)
                .bind(path)
                .bind(sha256)
                .bind(size)
                .bind(bytes)
                .bind(&new.source)
                .bind(&new.notes)
                .bind(created_at)
                .execute(&mut *tx)
                .await
            }
            .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await.doing("registering a model version")?;
                    return Ok(new.registered(version, created_at, &columns));
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && i < last => continue,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(StoreError::VersionExists {
                        model: new.model.clone(),
                        version,
                    });
                }
                Err(e) => return Err(e).doing("registering a model version"),
            }
        }
        Err(corrupt("model_versions", "no version id to try"))
    }

    async fn model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError> {
        sqlx::query_as::<_, ModelRow>("SELECT * FROM models WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .doing("reading a model")?
            .map(ModelRow::decode)
            .transpose()
    }

    async fn models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        decode_all(
            sqlx::query_as::<_, ModelRow>("SELECT * FROM models ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .doing("listing models")?,
        )
    }

    async fn version(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<ModelVersion>, StoreError> {
        sqlx::query_as::<_, VersionRow>(
            "SELECT * FROM model_versions WHERE model = $1 AND version = $2",
        )
        .bind(model)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a model version")?
        .map(VersionRow::decode)
        .transpose()
    }

    async fn versions(&self, model: &str, limit: u32) -> Result<Vec<ModelVersion>, StoreError> {
        decode_all(
            sqlx::query_as::<_, VersionRow>(
                "SELECT * FROM model_versions WHERE model = $1
                 ORDER BY created_at DESC, version DESC LIMIT $2",
            )
            .bind(model)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("listing model versions")?,
        )
    }

    async fn set_production(&self, change: &ProductionChange) -> Result<Deployment, StoreError> {
        let mut tx = self
            .begin()
            .await
            .doing("changing the production version")?;
        let result = change_production(&mut tx, change).await;
        match finish(tx, result, "changing the production version").await? {
            Ok((id, at)) => Ok(change.recorded(id, at)),
            Err(()) => Err(change.conflict(self).await),
        }
    }

    async fn deployments(&self, model: &str, limit: u32) -> Result<Vec<Deployment>, StoreError> {
        decode_all(
            sqlx::query_as::<_, DeploymentRow>(
                "SELECT * FROM model_deployments WHERE model = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(model)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("listing deployments")?,
        )
    }

    async fn add_predictions(
        &self,
        model: &str,
        version: &str,
        rows: &[NewPrediction],
    ) -> Result<u64, StoreError> {
        crate::store::registry::check_predictions(rows)?;
        let keys: Vec<Option<&str>> = rows.iter().map(|r| r.row_key.as_deref()).collect();
        let predicted: Vec<f64> = rows.iter().map(|r| r.predicted).collect();
        let actual: Vec<Option<f64>> = rows.iter().map(|r| r.actual).collect();
        let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.at).collect();
        let result = sqlx::query(
            "INSERT INTO model_predictions (model, version, row_key, predicted, actual, at)
             SELECT $1, $2, u.row_key, u.predicted, u.actual, u.at
             FROM UNNEST($3::text[], $4::float8[], $5::float8[], $6::timestamptz[])
                 AS u(row_key, predicted, actual, at)",
        )
        .bind(model)
        .bind(version)
        .bind(keys)
        .bind(predicted)
        .bind(actual)
        .bind(at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(rows.len() as u64),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::NoSuchVersion {
                    model: model.to_string(),
                    version: version.to_string(),
                })
            }
            Err(e) => Err(e).doing("storing predictions"),
        }
    }

    async fn predictions(
        &self,
        model: &str,
        version: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Prediction>, StoreError> {
        decode_all(
            sqlx::query_as::<_, PredictionRow>(
                "SELECT * FROM model_predictions
                 WHERE model = $1 AND version = $2 AND ($3::timestamptz IS NULL OR at >= $3)
                 ORDER BY at, id",
            )
            .bind(model)
            .bind(version)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .doing("reading predictions")?,
        )
    }

    async fn record_alert(
        &self,
        alert: &NewAlert,
        notify: Option<&Notification>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await.doing("recording an alert")?;
        let at = now(&mut tx).await.doing("recording an alert")?;
        let id = push_alert(&mut tx, alert, notify, at)
            .await
            .doing("recording an alert")?;
        tx.commit().await.doing("recording an alert")?;
        Ok(id)
    }

    async fn alerts(&self, model: &str, limit: u32) -> Result<Vec<Alert>, StoreError> {
        decode_all(
            sqlx::query_as::<_, AlertRow>(
                "SELECT * FROM model_alerts WHERE model = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(model)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("listing alerts")?,
        )
    }
}
