//! Who hears about an event: resolved when the event is written (task → DAG → config), so a
//! queued message keeps its recipients.

use serde::{Deserialize, Serialize};

/// Who hears about an event. Resolved when the event is written (task, then DAG, then the
/// config's `[notify]` defaults), so a queued message keeps its recipients even if the
/// config changes before it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    pub emails: Vec<String>,
    pub webhooks: Vec<String>,
}

impl Audience {
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty() && self.webhooks.is_empty()
    }
}

/// Who hears about what. A task's empty list inherits its DAG's, a DAG's empty list the
/// config's `[notify]` default ([`NotifySpec::or`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotifySpec {
    pub email_on_failure: Vec<String>,
    pub email_on_retry: Vec<String>,
    pub webhook_on_failure: Vec<String>,
}

impl NotifySpec {
    /// Each list of `self`, or `fallback`'s where `self`'s is empty.
    pub fn or(&self, fallback: &NotifySpec) -> NotifySpec {
        let pick = |mine: &Vec<String>, theirs: &Vec<String>| {
            if mine.is_empty() { theirs } else { mine }.clone()
        };
        NotifySpec {
            email_on_failure: pick(&self.email_on_failure, &fallback.email_on_failure),
            email_on_retry: pick(&self.email_on_retry, &fallback.email_on_retry),
            webhook_on_failure: pick(&self.webhook_on_failure, &fallback.webhook_on_failure),
        }
    }

    /// Who hears about failures, and about model alerts.
    pub fn alert_audience(&self) -> Audience {
        Audience {
            emails: self.email_on_failure.clone(),
            webhooks: self.webhook_on_failure.clone(),
        }
    }

    /// Who hears that a task will be retried (nobody unless `email_on_retry` is set).
    pub fn retry_audience(&self) -> Audience {
        Audience {
            emails: self.email_on_retry.clone(),
            webhooks: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.email_on_failure.is_empty()
            && self.email_on_retry.is_empty()
            && self.webhook_on_failure.is_empty()
    }
}
