//! `/metrics` in Prometheus's text format (OpenMetrics), names under `vigil_`: what the
//! database holds (runs and task instances by DAG and state, the queue, the outbox, each
//! model's production version and last verdict, scheduler lateness), read at each scrape with
//! a few grouped queries; and what this process saw happen (attempts ended and their
//! durations, by DAG and task type), recorded from the daemon's event stream.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::ApiState;
use super::error::ApiError;
use crate::run::{RunEvent, RunUpdate};
use crate::state::TaskState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DagState {
    dag_id: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskType {
    dag_id: String,
    task_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptEnd {
    dag_id: String,
    task_type: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct One {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelVersion {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelVerdict {
    model: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

fn duration_histogram() -> Histogram {
    // 10 ms to about 3 days, ×4 a bucket.
    Histogram::new(exponential_buckets(0.01, 4.0, 14))
}

/// What this process observes as runs progress.
#[derive(Clone, Debug)]
pub struct Metrics {
    durations: Family<TaskType, Histogram, fn() -> Histogram>,
    attempts: Family<AttemptEnd, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            durations: Family::new_with_constructor(duration_histogram),
            attempts: Family::default(),
        }
    }
}

impl Metrics {
    /// Records the attempt ends in `events` (a daemon's event stream) until `stop`; the
    /// task type is looked up in the DAGs as loaded now.
    pub async fn record(
        self,
        mut events: tokio::sync::broadcast::Receiver<RunUpdate>,
        dags: tokio::sync::watch::Receiver<Arc<crate::dag::DagSet>>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                received = events.recv() => received,
            };
            let update = match received {
                Ok(u) => u,
                // Missed events only thin the histogram; nothing to repair.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let RunEvent::TaskEnded {
                task_id,
                state,
                duration,
                attempt,
                ..
            } = &update.event
            else {
                continue;
            };
            // Tasks decided without running (skipped, upstream_failed) ran no attempt.
            if *attempt == 0
                || matches!(state, TaskState::UpstreamFailed)
                || (duration.is_zero() && *state == TaskState::Skipped)
            {
                continue;
            }
            let task_type = dags
                .borrow()
                .dags
                .get(&update.dag_id)
                .and_then(|d| d.tasks.iter().find(|t| &t.id == task_id))
                .map_or_else(|| "unknown".to_string(), |t| t.task_type.clone());
            let labels = TaskType {
                dag_id: update.dag_id.clone(),
                task_type,
            };
            self.durations
                .get_or_create(&labels)
                .observe(duration.as_secs_f64());
            self.attempts
                .get_or_create(&AttemptEnd {
                    dag_id: labels.dag_id,
                    task_type: labels.task_type,
                    state: state.as_str().to_string(),
                })
                .inc();
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format (OpenMetrics)")))]
pub async fn metrics(State(s): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let mut registry = Registry::with_prefix("vigil");
    let build = Family::<Version, Gauge>::default();
    build
        .get_or_create(&Version {
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .set(1);
    registry.register("build_info", "The vigil version serving", build);

    let summary = s
        .store
        .summary()
        .await
        .map_err(crate::ops::OpsError::from)?;
    let runs = Family::<DagState, Gauge>::default();
    for (dag_id, state, n) in &summary.runs {
        runs.get_or_create(&DagState {
            dag_id: dag_id.clone(),
            state: state.as_str().into(),
        })
        .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register("runs", "Runs in the database, by DAG and state", runs);
    let tasks = Family::<DagState, Gauge>::default();
    let mut queued = 0u64;
    for (dag_id, state, n) in &summary.tasks {
        if *state == TaskState::Queued {
            queued += n;
        }
        tasks
            .get_or_create(&DagState {
                dag_id: dag_id.clone(),
                state: state.as_str().into(),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "task_instances",
        "Task instances in the database, by DAG and state",
        tasks,
    );
    let depth = Gauge::<i64>::default();
    depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
    registry.register(
        "queue_depth",
        "Task instances ready and waiting for a slot",
        depth,
    );
    let late = Family::<One, Gauge<f64, AtomicU64>>::default();
    for (dag_id, secs) in &summary.lateness {
        late.get_or_create(&One {
            name: dag_id.clone(),
        })
        .set(*secs);
    }
    registry.register(
        "scheduler_lateness_seconds",
        "How late each DAG's latest scheduled run started after its tick (label name: the DAG)",
        late,
    );
    let outbox = Family::<One, Gauge>::default();
    for (state, n) in &summary.outbox {
        outbox
            .get_or_create(&One {
                name: state.as_str().into(),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "outbox_messages",
        "Messages in the outbox, by state (label name)",
        outbox,
    );
    let failed = Gauge::<i64>::default();
    failed.set(i64::try_from(summary.failed_deliveries).unwrap_or(i64::MAX));
    registry.register(
        "outbox_failed_deliveries",
        "Delivery attempts that failed, over the messages on record",
        failed,
    );

    let production = Family::<ModelVersion, Gauge>::default();
    let verdicts = Family::<ModelVerdict, Gauge>::default();
    let models = s.store.models().await.map_err(crate::ops::OpsError::from)?;
    for m in &models {
        if let Some(v) = &m.production_version {
            production
                .get_or_create(&ModelVersion {
                    model: m.name.clone(),
                    version: v.clone(),
                })
                .set(1);
        }
        let alerts = s
            .store
            .alerts(&m.name, 20)
            .await
            .map_err(crate::ops::OpsError::from)?;
        if let Some(verdict) = alerts.iter().find_map(|a| a.verdict.clone()) {
            verdicts
                .get_or_create(&ModelVerdict {
                    model: m.name.clone(),
                    verdict,
                })
                .set(1);
        }
    }
    registry.register(
        "model_production_info",
        "Each model's production version",
        production,
    );
    registry.register(
        "model_last_verdict_info",
        "Each model's latest check verdict",
        verdicts,
    );

    if let Some(m) = &s.metrics {
        registry.register(
            "task_duration_seconds",
            "How long task attempts ran, by DAG and task type (seen by this process)",
            m.durations.clone(),
        );
        registry.register(
            "task_attempts",
            "Task attempts ended, by DAG, task type and state (seen by this process)",
            m.attempts.clone(),
        );
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::new(crate::state::ErrorKind::Internal, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
