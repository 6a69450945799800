//! Rows as every backend reads them, and their one decoding into records.
//!
//! A backend selects a table's columns into one of these structs (sqlx's `FromRow`, generic over
//! the database) and calls [`Decode::decode`]: enums parse strictly (a name we do not know is
//! [`StoreError::Corrupt`], never a default), JSON columns parse once here, and integers are
//! range-checked. Columns are plain SQL types (`BIGINT`, `TEXT`, `BOOLEAN`, timestamps) so the
//! SQLite and PostgreSQL stores share this file unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::state::LogLine;
use crate::store::outbox::OutboxMessage;
use crate::store::registry::{Alert, Artifact, Deployment, ModelRecord, ModelVersion, Prediction};
use crate::store::{
    DaemonRecord, DagState, LogRecord, RunRecord, StoreError, StoredOutput, TaskInstance,
};

/// A stored row turned into the record the rest of vigil uses.
pub(crate) trait Decode {
    type Record;
    fn decode(self) -> Result<Self::Record, StoreError>;
}

/// Decodes every row, failing on the first bad one.
pub(crate) fn decode_all<R: Decode>(rows: Vec<R>) -> Result<Vec<R::Record>, StoreError> {
    rows.into_iter().map(Decode::decode).collect()
}

pub(crate) fn corrupt(what: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn name<T: std::str::FromStr>(column: &str, text: &str) -> Result<T, StoreError>
where
    T::Err: ToString,
{
    text.parse().map_err(|e: T::Err| corrupt(column, e))
}

fn json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

fn count<T: TryFrom<i64>>(column: &str, n: i64) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| corrupt(column, format!("{n} is out of range")))
}

/// `dag_runs` with its DAG source resolved (`resolved_source`).
#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: i64,
    dag_id: String,
    logical_date: DateTime<Utc>,
    data_interval_start: Option<DateTime<Utc>>,
    run_type: String,
    state: String,
    conf: String,
    dag_file: String,
    resolved_source: String,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    owner: Option<String>,
    heartbeat_at: Option<DateTime<Utc>>,
    note: Option<String>,
    cancel_requested: Option<String>,
}

impl Decode for RunRow {
    type Record = RunRecord;
    fn decode(self) -> Result<RunRecord, StoreError> {
        Ok(RunRecord {
            id: self.id,
            dag_id: self.dag_id,
            logical_date: self.logical_date,
            // Runs created before the column existed cover no interval.
            data_interval_start: self.data_interval_start.unwrap_or(self.logical_date),
            run_type: name("dag_runs.run_type", &self.run_type)?,
            state: name("dag_runs.state", &self.state)?,
            conf: json("dag_runs.conf", &self.conf)?,
            dag_file: self.dag_file,
            dag_source: self.resolved_source,
            queued_at: self.queued_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            owner: self.owner,
            heartbeat_at: self.heartbeat_at,
            note: self.note,
            cancel_requested: self.cancel_requested,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    run_id: i64,
    task_id: String,
    state: String,
    attempt: i64,
    max_attempts: i64,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    next_retry_at: Option<DateTime<Utc>>,
    error: Option<String>,
    updated_at: DateTime<Utc>,
    note: Option<String>,
    worker: Option<String>,
}

impl Decode for TaskRow {
    type Record = TaskInstance;
    fn decode(self) -> Result<TaskInstance, StoreError> {
        Ok(TaskInstance {
            run_id: self.run_id,
            task_id: self.task_id,
            state: name("task_instances.state", &self.state)?,
            attempt: count("task_instances.attempt", self.attempt)?,
            max_attempts: count("task_instances.max_attempts", self.max_attempts)?,
            started_at: self.started_at,
            ended_at: self.ended_at,
            next_retry_at: self.next_retry_at,
            error: self.error,
            updated_at: self.updated_at,
            note: self.note,
            worker: self.worker,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutputRow {
    task_id: String,
    attempt: i64,
    value: String,
    created_at: DateTime<Utc>,
}

impl Decode for OutputRow {
    type Record = StoredOutput;
    fn decode(self) -> Result<StoredOutput, StoreError> {
        Ok(StoredOutput {
            task_id: self.task_id,
            attempt: count("xcoms.attempt", self.attempt)?,
            value: json("xcoms.value", &self.value)?,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    attempt: i64,
    seq: i64,
    ts: DateTime<Utc>,
    level: String,
    message: String,
}

impl Decode for LogRow {
    type Record = LogRecord;
    fn decode(self) -> Result<LogRecord, StoreError> {
        Ok(LogRecord {
            attempt: count("task_logs.attempt", self.attempt)?,
            seq: count("task_logs.seq", self.seq)?,
            line: LogLine {
                ts: self.ts,
                level: name("task_logs.level", &self.level)?,
                message: self.message,
            },
        })
    }
}

/// A running attempt's lease, as `task_leases` selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    task_id: String,
    attempt: i64,
    worker: Option<String>,
    expired: bool,
}

impl Decode for LeaseRow {
    type Record = crate::store::TaskLease;
    fn decode(self) -> Result<crate::store::TaskLease, StoreError> {
        Ok(crate::store::TaskLease {
            task_id: self.task_id,
            attempt: count("task_instances.attempt", self.attempt)?,
            worker: self.worker,
            expired: self.expired,
        })
    }
}

/// An attempt a worker holds, as `held_by` selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct HeldRow {
    run_id: i64,
    task_id: String,
    attempt: i64,
}

impl Decode for HeldRow {
    type Record = crate::store::queue::Held;
    fn decode(self) -> Result<crate::store::queue::Held, StoreError> {
        Ok((
            self.run_id,
            self.task_id,
            count("task_instances.attempt", self.attempt)?,
        ))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DaemonRow {
    owner: String,
    role: String,
    host: String,
    pid: i64,
    version: String,
    slots: i64,
    slots_in_use: i64,
    started_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
}

impl Decode for DaemonRow {
    type Record = DaemonRecord;
    fn decode(self) -> Result<DaemonRecord, StoreError> {
        Ok(DaemonRecord {
            owner: self.owner,
            role: self.role,
            host: self.host,
            pid: self.pid,
            version: self.version,
            slots: count("daemons.slots", self.slots)?,
            slots_in_use: count("daemons.slots_in_use", self.slots_in_use)?,
            started_at: self.started_at,
            heartbeat_at: self.heartbeat_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DagRow {
    dag_id: String,
    paused: bool,
    last_tick: Option<DateTime<Utc>>,
    first_seen: DateTime<Utc>,
}

impl Decode for DagRow {
    type Record = DagState;
    fn decode(self) -> Result<DagState, StoreError> {
        Ok(DagState {
            dag_id: self.dag_id,
            paused: self.paused,
            last_tick: self.last_tick,
            first_seen: self.first_seen,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ModelRow {
    name: String,
    production_version: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Decode for ModelRow {
    type Record = ModelRecord;
    fn decode(self) -> Result<ModelRecord, StoreError> {
        Ok(ModelRecord {
            name: self.name,
            production_version: self.production_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// `model_versions` without the artifact bytes (read only by [`ModelStore::artifact`]).
///
/// [`ModelStore::artifact`]: crate::store::ModelStore
#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    model: String,
    version: String,
    metrics: String,
    artifact_path: Option<String>,
    artifact_sha256: Option<String>,
    artifact_size: Option<i64>,
    source: Option<String>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
}

impl Decode for VersionRow {
    type Record = ModelVersion;
    fn decode(self) -> Result<ModelVersion, StoreError> {
        let metrics: BTreeMap<String, f64> = json("model_versions.metrics", &self.metrics)?;
        let artifact = match (self.artifact_sha256, self.artifact_size) {
            (Some(sha256), Some(size)) => Some(Artifact {
                path: self.artifact_path,
                sha256,
                size: count("model_versions.artifact_size", size)?,
            }),
            _ => None,
        };
        Ok(ModelVersion {
            model: self.model,
            version: self.version,
            metrics,
            artifact,
            source: self.source,
            notes: self.notes,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeploymentRow {
    id: i64,
    model: String,
    from_version: Option<String>,
    to_version: String,
    reason: String,
    actor: String,
    at: DateTime<Utc>,
}

impl Decode for DeploymentRow {
    type Record = Deployment;
    fn decode(self) -> Result<Deployment, StoreError> {
        Ok(Deployment {
            id: self.id,
            model: self.model,
            from_version: self.from_version,
            to_version: self.to_version,
            reason: self.reason,
            actor: self.actor,
            at: self.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PredictionRow {
    version: String,
    row_key: Option<String>,
    predicted: f64,
    actual: Option<f64>,
    at: DateTime<Utc>,
}

impl Decode for PredictionRow {
    type Record = Prediction;
    fn decode(self) -> Result<Prediction, StoreError> {
        Ok(Prediction {
            version: self.version,
            row_key: self.row_key,
            predicted: self.predicted,
            actual: self.actual,
            at: self.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    id: i64,
    model: String,
    kind: String,
    verdict: Option<String>,
    message: String,
    details: String,
    dry_run: bool,
    at: DateTime<Utc>,
}

impl Decode for AlertRow {
    type Record = Alert;
    fn decode(self) -> Result<Alert, StoreError> {
        Ok(Alert {
            id: self.id,
            model: self.model,
            kind: name("model_alerts.kind", &self.kind)?,
            verdict: self.verdict,
            message: self.message,
            details: json("model_alerts.details", &self.details)?,
            dry_run: self.dry_run,
            at: self.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    kind: String,
    channel: String,
    recipients: String,
    subject: String,
    body: String,
    html: Option<String>,
    payload: String,
    state: String,
    attempts: i64,
    created_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
}

impl Decode for OutboxRow {
    type Record = OutboxMessage;
    fn decode(self) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: self.id,
            kind: self.kind,
            channel: name("outbox.channel", &self.channel)?,
            recipients: json("outbox.recipients", &self.recipients)?,
            subject: self.subject,
            body: self.body,
            html: self.html,
            payload: json("outbox.payload", &self.payload)?,
            state: name("outbox.state", &self.state)?,
            attempts: count("outbox.attempts", self.attempts)?,
            created_at: self.created_at,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            sent_at: self.sent_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stored_name_is_corrupt_data_not_a_default() {
        let row = LogRow {
            attempt: 1,
            seq: 0,
            ts: Utc::now(),
            level: "loud".into(),
            message: "x".into(),
        };
        let err = row.decode().unwrap_err().to_string();
        assert!(err.contains("task_logs.level"), "{err}");
        assert!(err.contains("unknown log level `loud`"), "{err}");
        let row = TaskRow {
            run_id: 1,
            task_id: "t".into(),
            state: "success".into(),
            attempt: -1,
            max_attempts: 1,
            started_at: None,
            ended_at: None,
            next_retry_at: None,
            error: None,
            updated_at: Utc::now(),
            note: None,
            worker: None,
        };
        assert!(
            row.decode()
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
    }
}
