//! Who hears about a run's failures, worked out once per run: each task's `[notify]` with the
//! DAG's and the config's filled in, and who has already been told, so that one failure is one
//! message.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::dag::Dag;
use crate::notify::NotifyConfig;
use crate::notify::message::{self, FailedTask, RunFailure, TaskFailure};
use crate::state::{Audience, NotifySpec, TaskState};
use crate::store::{Notification, RunId, TaskInstance};

pub(super) struct Messages {
    /// Each task's `[notify]`, indexed like `dag.tasks`.
    task: Vec<NotifySpec>,
    /// The DAG's `[notify]`, for the run's own message.
    run: NotifySpec,
    pub base_url: String,
    /// Addresses and URLs already told about a failed task in this run; the run's failure
    /// message skips them.
    told: BTreeSet<String>,
}

impl Messages {
    pub fn new(dag: &Dag, config: &NotifyConfig) -> Messages {
        let run = dag.notify.or(&config.defaults());
        Messages {
            task: dag.tasks.iter().map(|t| t.notify.or(&run)).collect(),
            run,
            base_url: config.base_url.clone(),
            told: BTreeSet::new(),
        }
    }

    /// Who task `i` alerts (tasks such as `alert.email` send to it).
    pub fn alert_audience(&self, i: usize) -> Audience {
        self.task[i].alert_audience()
    }

    /// The message about a failed attempt of task `i`: to the failure audience when it failed
    /// for good, to the retry audience when it runs again. `None` when nobody is to hear.
    pub fn task_failure(&mut self, i: usize, failure: &TaskFailure<'_>) -> Option<Notification> {
        let spec = &self.task[i];
        let to = match failure.next_attempt {
            Some(_) => spec.retry_audience(),
            None => spec.alert_audience(),
        };
        if to.is_empty() {
            return None;
        }
        if failure.next_attempt.is_none() {
            self.told
                .extend(to.emails.iter().chain(&to.webhooks).cloned());
        }
        Some(message::task_failure(failure, to))
    }

    /// Records that task `i`'s failure audience heard of its failure from elsewhere (a worker
    /// on another daemon queued the message), as [`Messages::task_failure`] would have.
    pub fn told_about(&mut self, i: usize) {
        let to = self.task[i].alert_audience();
        self.told
            .extend(to.emails.iter().chain(&to.webhooks).cloned());
    }

    /// The message that the run failed, to the DAG's failure audience, leaving out whoever
    /// already heard about a failed task of this run.
    pub fn run_failure(
        &self,
        dag_id: &str,
        run_id: RunId,
        logical_date: DateTime<Utc>,
        tis: &[TaskInstance],
    ) -> Option<Notification> {
        let mut to = self.run.alert_audience();
        to.emails.retain(|a| !self.told.contains(a));
        to.webhooks.retain(|u| !self.told.contains(u));
        if to.is_empty() {
            return None;
        }
        let failed = tis
            .iter()
            .filter(|ti| matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed))
            .map(|ti| FailedTask {
                task_id: ti.task_id.clone(),
                state: ti.state.as_str().to_string(),
                error: ti.error.clone(),
            })
            .collect();
        Some(message::run_failure(
            &RunFailure {
                dag_id,
                run_id,
                logical_date,
                failed,
                reason: None,
                base_url: &self.base_url,
            },
            to,
        ))
    }
}
