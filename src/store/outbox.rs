//! The outbox: messages for people, written in the same transaction as the event that causes
//! them and delivered later by a sender (`notify::Sender`). Writing and delivering are apart
//! so that an SMTP or webhook outage delays a message and never loses it, and a crash after
//! the event can never lose the message about it.
//!
//! A row is one *delivery*: one email to its recipients, or one POST to one webhook URL.
//! Each succeeds, retries and fails on its own, so retrying a failed webhook never mails
//! the people who already have the email.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{Audience, UnknownName, parse_name};
use crate::store::StoreError;

/// A message about one event, before it is split into deliveries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// `task_failed`, `task_retry`, `run_failed`, `model_alert` or `test`.
    pub kind: String,
    /// One line, already free of control characters.
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// The HTML alternative of `body`, for email.
    pub html: Option<String>,
    /// The structured event, posted to webhooks as `event`.
    pub payload: serde_json::Value,
    pub to: Audience,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    Sent,
    /// Rejected for good (a permanent SMTP reply, an HTTP 4xx); `vigil notify retry` queues
    /// it again.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(
            "outbox state",
            s,
            &[OutboxState::Pending, OutboxState::Sent, OutboxState::Failed],
            OutboxState::as_str,
        )
    }
}

impl FromStr for Channel {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(
            "channel",
            s,
            &[Channel::Email, Channel::Webhook],
            Channel::as_str,
        )
    }
}

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub kind: String,
    pub channel: Channel,
    /// The email addresses, or the one webhook URL.
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    #[serde(skip)]
    pub html: Option<String>,
    pub payload: serde_json::Value,
    pub state: OutboxState,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent,
    /// A transient failure (connection refused, timeout, 4xx SMTP reply, HTTP 5xx): try again
    /// at `at`.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// A permanent rejection (5xx SMTP reply, HTTP 4xx): retrying cannot help.
    Failed {
        error: String,
    },
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Oldest first; of one state when given.
    async fn outbox(&self, state: Option<OutboxState>) -> Result<Vec<OutboxMessage>, StoreError>;

    async fn outbox_message(&self, id: i64) -> Result<Option<OutboxMessage>, StoreError>;

    /// Takes up to `limit` pending deliveries that are due at `now` and that no other sender
    /// holds, holding them for `owner` until `lease_until`. Oldest first. Email deliveries
    /// only when `email` (a sender without SMTP settings leaves them waiting).
    async fn claim_deliveries(
        &self,
        owner: &str,
        email: bool,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Records an attempt of `owner` at delivery `id` and releases it. Does nothing if
    /// `owner` no longer holds it (its lease ran out and another sender took it over).
    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &Delivery,
    ) -> Result<(), StoreError>;

    /// Makes a failed or pending delivery due now. `Ok(None)` if there is no such delivery;
    /// the state it was in otherwise (a sent one is left alone).
    async fn requeue(&self, id: i64) -> Result<Option<OutboxState>, StoreError>;
}

/// One outbox row a [`Notification`] becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery<'a> {
    pub channel: Channel,
    pub recipients: Vec<String>,
    /// The HTML part, for email only.
    pub html: Option<&'a str>,
}

/// Splits a notification into its deliveries: one email to all its addresses, one POST per
/// webhook URL (each retried and reported on its own). An empty audience gives none; the event
/// itself is still recorded by whoever raised it.
pub fn deliveries(n: &Notification) -> Vec<NewDelivery<'_>> {
    let email = (!n.to.emails.is_empty()).then(|| NewDelivery {
        channel: Channel::Email,
        recipients: n.to.emails.clone(),
        html: n.html.as_deref(),
    });
    let webhooks = n.to.webhooks.iter().map(|url| NewDelivery {
        channel: Channel::Webhook,
        recipients: vec![url.clone()],
        html: None,
    });
    email.into_iter().chain(webhooks).collect()
}
