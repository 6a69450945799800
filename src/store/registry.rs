//! The model registry's part of the store: models, versions, the production pointer and its
//! history, predictions and the audit trail (its notifications go to the outbox). Nothing here is
//! ever deleted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::StoreError;
pub use crate::store::outbox::Notification;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    pub name: String,
    pub production_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    pub model: String,
    pub version: String,
    pub metrics: BTreeMap<String, f64>,
    pub artifact: Option<Artifact>,
    pub source: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Where a version's artifact is: a file (path, checksum, size) or bytes kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub path: Option<String>,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct NewVersion {
    pub model: String,
    /// `None`: `YYYYMMDD_HHMMSS` of the registration time (with `_2`, `_3`… if taken).
    pub version: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub artifact: Option<NewArtifact>,
    pub source: Option<String>,
    pub notes: Option<String>,
}

/// Lower-case hex SHA-256, the checksum recorded for artifacts.
/// Refuses a version id that could mislead where it is shown or used: it names files, lines in
/// logs and terminal tables, so it is 1 to 128 letters, digits, `.`, `_`, `-` or `+`, and does
/// not start with `.` (no `..`, no hidden names, no path, no control characters).
pub fn check_version_id(version: &str) -> Result<(), StoreError> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "version id `{}` is not allowed; use 1 to 128 letters, digits, `.`, `_`, `-` or `+`, not starting with `.` (e.g. v2 or 2026-12-01_1)",
            crate::state::shown(version, 64)
        )))
    }
}

/// Refuses predictions that are not finite numbers: an infinite or NaN value would make every
/// metric over them meaningless (an infinite RMSE once passed as "not worse").
pub fn check_predictions(rows: &[NewPrediction]) -> Result<(), StoreError> {
    for (i, r) in rows.iter().enumerate() {
        for (column, value) in [("predicted", Some(r.predicted)), ("actual", r.actual)] {
            if let Some(v) = value
                && !v.is_finite()
            {
                return Err(StoreError::Invalid(format!(
                    "prediction {} (row_key {}): `{column}` is {v}, not a finite number; fix or drop the row",
                    i + 1,
                    r.row_key.as_deref().unwrap_or("-"),
                )));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub enum NewArtifact {
    File {
        path: String,
        sha256: String,
        size: u64,
    },
    Bytes(Vec<u8>),
}

/// A version's artifact as the `model_versions` columns hold it: path, SHA-256, size, bytes.
pub(crate) type ArtifactColumns = (Option<String>, Option<String>, Option<i64>, Option<Vec<u8>>);

impl NewVersion {
    /// The artifact as columns, the same for every backend.
    pub(crate) fn artifact_columns(&self) -> ArtifactColumns {
        match &self.artifact {
            None => (None, None, None, None),
            Some(NewArtifact::File { path, sha256, size }) => (
                Some(path.clone()),
                Some(sha256.clone()),
                Some(*size as i64),
                None,
            ),
            Some(NewArtifact::Bytes(b)) => (
                None,
                Some(crate::state::sha256_hex(b)),
                Some(b.len() as i64),
                Some(b.clone()),
            ),
        }
    }

    /// The version as registered under `version` at `created_at`.
    pub(crate) fn registered(
        &self,
        version: String,
        created_at: DateTime<Utc>,
        (path, sha256, size, _): &ArtifactColumns,
    ) -> ModelVersion {
        ModelVersion {
            model: self.model.clone(),
            version,
            metrics: self.metrics.clone(),
            artifact: match (sha256, size) {
                (Some(sha), Some(size)) => Some(Artifact {
                    path: path.clone(),
                    sha256: sha.clone(),
                    size: *size as u64,
                }),
                _ => None,
            },
            source: self.source.clone(),
            notes: self.notes.clone(),
            created_at,
        }
    }
}

impl NewArtifact {
    /// A file artifact at `path` whose content is `bytes`.
    pub fn file(path: String, bytes: &[u8]) -> NewArtifact {
        NewArtifact::File {
            path,
            sha256: crate::state::sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// One change of production, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub model: String,
    pub from_version: Option<String>,
    pub to_version: String,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// A change of production, applied only if production is still `expect`.
#[derive(Debug, Clone)]
pub struct ProductionChange {
    pub model: String,
    pub expect: Option<String>,
    pub to: String,
    pub reason: String,
    pub actor: String,
    /// Recorded in the same transaction.
    pub alert: Option<NewAlert>,
    pub notify: Option<Notification>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewPrediction {
    pub row_key: Option<String>,
    pub predicted: f64,
    pub actual: Option<f64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub version: String,
    pub row_key: Option<String>,
    pub predicted: f64,
    pub actual: Option<f64>,
    pub at: DateTime<Utc>,
}

/// How many same-second suffixes an automatic version id tries before giving up.
const AUTOMATIC_TRIES: u32 = 20;

/// The version ids a registration tries, in order: the requested one alone, or an automatic
/// timestamp id (`20261206_143000`) followed by `_2`, `_3`, ... for registrations within the
/// same second. The backend inserts each until one is free; a requested id that is taken is
/// [`StoreError::VersionExists`].
pub fn version_ids(requested: Option<&str>, now: DateTime<Utc>) -> Vec<String> {
    match requested {
        Some(v) => vec![v.to_string()],
        None => {
            let base = now.format("%Y%m%d_%H%M%S").to_string();
            std::iter::once(base.clone())
                .chain((2..=AUTOMATIC_TRIES).map(|n| format!("{base}_{n}")))
                .collect()
        }
    }
}

impl ProductionChange {
    /// The deployment event this change recorded as `id` at `at`.
    pub(crate) fn recorded(&self, id: i64, at: DateTime<Utc>) -> Deployment {
        Deployment {
            id,
            model: self.model.clone(),
            from_version: self.expect.clone(),
            to_version: self.to.clone(),
            reason: self.reason.clone(),
            actor: self.actor.clone(),
            at,
        }
    }

    /// The error for a compare-and-set of the production pointer that matched nothing, saying
    /// why from the model as it is now (for every backend).
    pub(crate) async fn conflict(&self, store: &(impl ModelStore + ?Sized)) -> StoreError {
        let current = match store.model(&self.model).await {
            Ok(m) => m,
            Err(e) => return e,
        };
        let target_exists = match store.version(&self.model, &self.to).await {
            Ok(v) => v.is_some(),
            Err(e) => return e,
        };
        StoreError::Conflict {
            run_id: 0,
            what: match (current, target_exists) {
                (None, _) => format!("there is no model `{}`", self.model),
                (_, false) => format!("model `{}` has no version `{}`", self.model, self.to),
                (Some(m), true) => format!(
                    "production of `{}` is {} now, not {}",
                    self.model,
                    m.production_version.as_deref().unwrap_or("(none)"),
                    self.expect.as_deref().unwrap_or("(none)")
                ),
            },
        }
    }
}

/// What an audit-trail entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Check,
    Rollback,
    Promotion,
    /// A rollback or promotion that did not happen, with why (a guard, a worse target, a race).
    Refused,
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlertKind {
    type Err = crate::state::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::state::parse_name(
            "alert kind",
            s,
            &[
                AlertKind::Check,
                AlertKind::Rollback,
                AlertKind::Promotion,
                AlertKind::Refused,
            ],
            AlertKind::as_str,
        )
    }
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Check => "check",
            AlertKind::Rollback => "rollback",
            AlertKind::Promotion => "promotion",
            AlertKind::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewAlert {
    pub model: String,
    pub kind: AlertKind,
    pub verdict: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub model: String,
    pub kind: AlertKind,
    pub verdict: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
    pub dry_run: bool,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait ModelStore: Send + Sync + std::fmt::Debug {
    /// Adds a version (creating the model on first use). Metrics, artifact and notes are
    /// fixed from then on.
    async fn register_version(&self, new: &NewVersion) -> Result<ModelVersion, StoreError>;

    async fn model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError>;

    async fn models(&self) -> Result<Vec<ModelRecord>, StoreError>;

    async fn version(&self, model: &str, version: &str)
    -> Result<Option<ModelVersion>, StoreError>;

    /// Newest first.
    async fn versions(&self, model: &str, limit: u32) -> Result<Vec<ModelVersion>, StoreError>;

    /// Moves the production pointer if it still is `change.expect`, and records the
    /// deployment event, the alert and the notification in the same transaction. Otherwise
    /// nothing is written and [`StoreError::Conflict`] says what production is now.
    async fn set_production(&self, change: &ProductionChange) -> Result<Deployment, StoreError>;

    /// Newest first.
    async fn deployments(&self, model: &str, limit: u32) -> Result<Vec<Deployment>, StoreError>;

    async fn add_predictions(
        &self,
        model: &str,
        version: &str,
        rows: &[NewPrediction],
    ) -> Result<u64, StoreError>;

    /// Predictions of a version made at or after `since`, oldest first.
    async fn predictions(
        &self,
        model: &str,
        version: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Prediction>, StoreError>;

    /// Records an audit-trail entry (and its notification, in the same transaction).
    async fn record_alert(
        &self,
        alert: &NewAlert,
        notify: Option<&Notification>,
    ) -> Result<i64, StoreError>;

    /// Newest first.
    async fn alerts(&self, model: &str, limit: u32) -> Result<Vec<Alert>, StoreError>;
}
