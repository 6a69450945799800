//! The model registry on SQLite. Writes go through the same one-round-trip scripts as the
//! run state, so a production change, its deployment event, its alert and its notification
//! commit together or not at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use super::outbox::push_notification;
use super::script::{INSERT_CHUNK, Script, is_stale};
use crate::store::registry::{
    Alert, Deployment, ModelRecord, ModelStore, ModelVersion, NewAlert, NewPrediction, NewVersion,
    Notification, Prediction, ProductionChange, version_ids,
};
use crate::store::rows::{
    AlertRow, Decode, DeploymentRow, ModelRow, PredictionRow, VersionRow, corrupt, decode_all,
};
use crate::store::{QueryContext, StoreError};

/// Appends the alert (and its notification) to `script`.
fn push_alert(
    script: &mut Script,
    alert: &NewAlert,
    notify: Option<&Notification>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    script
        .stmt(
            "INSERT INTO model_alerts (model, kind, verdict, message, details, dry_run, at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(alert.model.clone())?
        .bind(alert.kind.as_str())?
        .bind(alert.verdict.clone())?
        .bind(alert.message.clone())?
        .bind(alert.details.to_string())?
        .bind(alert.dry_run)?
        .bind(now)?;
    if let Some(n) = notify {
        push_notification(script, n, now)?;
    }
    Ok(())
}

#[async_trait]
impl ModelStore for SqliteStore {
    async fn register_version(&self, new: &NewVersion) -> Result<ModelVersion, StoreError> {
        let now = self.clock();
        let ids = version_ids(new.version.as_deref(), now);
        let columns = new.artifact_columns();
        let (path, sha256, size, bytes) = &columns;
        for id in &ids {
            crate::store::registry::check_version_id(id)?;
        }
        let metrics = serde_json::to_string(&new.metrics).map_err(|e| corrupt("metrics", e))?;
        let last = ids.len() - 1;
        for (i, version) in ids.into_iter().enumerate() {
            let mut script = Script::new();
            script
                .stmt(
                    "INSERT OR IGNORE INTO models (name, created_at, updated_at) VALUES (?, ?, ?)",
                )
                .bind(new.model.clone())?
                .bind(now)?
                .bind(now)?;
            script
                .stmt(
                    "INSERT INTO model_versions (model, version, metrics, artifact_path, artifact_sha256,
                         artifact_size, artifact_bytes, source, notes, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(new.model.clone())?
                .bind(version.clone())?
                .bind(metrics.clone())?
                .bind(path.clone())?
                .bind(sha256.clone())?
                .bind(size)?
                .bind(bytes.clone())?
                .bind(new.source.clone())?
                .bind(new.notes.clone())?
                .bind(now)?;
            match self.run_script(script).await {
                Ok(_) => {
                    return Ok(new.registered(version, now, &columns));
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
        sqlx::query_as::<_, ModelRow>("SELECT * FROM models WHERE name = ?")
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
            "SELECT * FROM model_versions WHERE model = ? AND version = ?",
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
                "SELECT * FROM model_versions WHERE model = ? ORDER BY created_at DESC, version DESC LIMIT ?",
            )
            .bind(model)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("listing model versions")?,
        )
    }

    async fn set_production(&self, change: &ProductionChange) -> Result<Deployment, StoreError> {
        let now = self.clock();
        let mut script = Script::new();
        // Compare-and-set on the pointer; the target must be a version of this model (the
        // foreign key is on model_versions, so check it here).
        script
            .stmt(
                "UPDATE models SET production_version = ?, updated_at = ?
                 WHERE name = ? AND production_version IS ?
                   AND EXISTS (SELECT 1 FROM model_versions WHERE model = ? AND version = ?)",
            )
            .bind(change.to.clone())?
            .bind(now)?
            .bind(change.model.clone())?
            .bind(change.expect.clone())?
            .bind(change.model.clone())?
            .bind(change.to.clone())?;
        script.guard();
        script
            .stmt(
                "INSERT INTO model_deployments (model, from_version, to_version, reason, actor, at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(change.model.clone())?
            .bind(change.expect.clone())?
            .bind(change.to.clone())?
            .bind(change.reason.clone())?
            .bind(change.actor.clone())?
            .bind(now)?;
        script.stmt("SELECT last_insert_rowid()");
        if let Some(alert) = &change.alert {
            push_alert(&mut script, alert, change.notify.as_ref(), now)?;
        }
        match self.run_script(script).await {
            Ok(rows) => {
                let id: i64 = rows
                    .first()
                    .ok_or_else(|| corrupt("deployment id", "no row returned"))?
                    .try_get(0)
                    .doing("reading the deployment id")?;
                Ok(change.recorded(id, now))
            }
            Err(e) if is_stale(&e) => Err(change.conflict(self).await),
            Err(e) => Err(e).doing("changing the production version"),
        }
    }

    async fn deployments(&self, model: &str, limit: u32) -> Result<Vec<Deployment>, StoreError> {
        decode_all(
            sqlx::query_as::<_, DeploymentRow>(
                "SELECT * FROM model_deployments WHERE model = ? ORDER BY id DESC LIMIT ?",
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
        let mut script = Script::new();
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO model_predictions (model, version, row_key, predicted, actual, at) VALUES ",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 {
                    "(?, ?, ?, ?, ?, ?)"
                } else {
                    ", (?, ?, ?, ?, ?, ?)"
                });
            }
            script.stmt(&sql);
            for r in chunk {
                script
                    .bind(model.to_string())?
                    .bind(version.to_string())?
                    .bind(r.row_key.clone())?
                    .bind(r.predicted)?
                    .bind(r.actual)?
                    .bind(r.at)?;
            }
        }
        match self.run_script(script).await {
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
        let rows = sqlx::query_as::<_, PredictionRow>(
            "SELECT * FROM model_predictions WHERE model = ? AND version = ? AND (? IS NULL OR at >= ?)
             ORDER BY at, id",
        )
        .bind(model)
        .bind(version)
        .bind(since)
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .doing("reading predictions")?;
        decode_all(rows)
    }

    async fn record_alert(
        &self,
        alert: &NewAlert,
        notify: Option<&Notification>,
    ) -> Result<i64, StoreError> {
        let mut script = Script::new();
        push_alert(&mut script, alert, notify, self.clock())?;
        script.stmt("SELECT max(id) FROM model_alerts");
        let rows = self.run_script(script).await.doing("recording an alert")?;
        rows.first()
            .ok_or_else(|| corrupt("alert id", "no row returned"))?
            .try_get(0)
            .doing("reading the alert id")
    }

    async fn alerts(&self, model: &str, limit: u32) -> Result<Vec<Alert>, StoreError> {
        decode_all(
            sqlx::query_as::<_, AlertRow>(
                "SELECT * FROM model_alerts WHERE model = ? ORDER BY id DESC LIMIT ?",
            )
            .bind(model)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("listing alerts")?,
        )
    }
}
