//! Outbox use cases: list (with webhook secrets cut off), retry a message, deliver what is due.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::notify::config::{NotifyConfig, SmtpConfig};
use crate::notify::webhook::{redact, redact_in};
use crate::notify::{Pass, Sender};
use crate::ops::OpsError;
use crate::store::{Channel, OutboxMessage, OutboxState, OutboxStore, Store};

/// The outbox, oldest first, as it may be shown: webhook URLs cut to their host (Slack-style
/// URLs carry their secret in the path), in recipients and in errors alike.
pub async fn list(
    store: &dyn OutboxStore,
    state: Option<OutboxState>,
) -> Result<Vec<OutboxMessage>, OpsError> {
    Ok(store.outbox(state).await?.into_iter().map(shown).collect())
}

fn shown(mut m: OutboxMessage) -> OutboxMessage {
    if m.channel == Channel::Webhook {
        m.last_error = m.last_error.map(|e| redact_in(&e, &m.recipients));
        m.recipients = m.recipients.iter().map(|u| redact(u)).collect();
    }
    m
}

/// A message queued again.
#[derive(Debug, Clone, Serialize)]
pub struct Requeued {
    pub id: i64,
    /// The state it was in.
    pub was: OutboxState,
    pub state: OutboxState,
}

/// Makes a failed or waiting message due now. A sent message is never sent twice.
pub async fn retry(store: &dyn OutboxStore, id: i64) -> Result<Requeued, OpsError> {
    match store.requeue(id).await? {
        None => Err(OpsError::NoSuchMessage(id)),
        Some(OutboxState::Sent) => {
            let sent_at: Option<DateTime<Utc>> =
                store.outbox_message(id).await?.and_then(|m| m.sent_at);
            Err(OpsError::AlreadySent { id, sent_at })
        }
        Some(was) => Ok(Requeued {
            id,
            was,
            state: OutboxState::Pending,
        }),
    }
}

/// Delivers every message due now, as `owner`, and says how it went.
pub async fn send(
    store: std::sync::Arc<dyn Store>,
    smtp: &SmtpConfig,
    notify: &NotifyConfig,
    owner: &str,
) -> Result<Pass, OpsError> {
    let sender = Sender::new(store, smtp, notify, owner)?;
    Ok(sender.deliver_due().await?)
}
