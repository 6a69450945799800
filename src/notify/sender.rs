//! The outbox worker: takes due deliveries, sends them, records how it went.
//!
//! It is the only part of vigil that talks to SMTP servers and webhook receivers, and it runs
//! on its own task: a server that hangs or refuses delays messages, never a run or a tick.
//! Transient failures are retried with exponential backoff for as long as it takes; a
//! permanent rejection is recorded with the server's reply and left for a person
//! (`vigil notify retry`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::notify::email::Mailer;
use crate::notify::webhook::{Webhooks, redact};
use crate::notify::{Attempt, NotifyConfig, NotifyError, SmtpConfig};
use crate::state::Wake;
use crate::state::failpoint::crash_point;
use crate::store::{Channel, Delivery, OutboxMessage, Store, StoreError};

/// Deliveries taken per claim; a pass claims again until nothing is due.
const CLAIM: u32 = 20;

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pass {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
}

pub struct Sender {
    store: Arc<dyn Store>,
    mailer: Option<Mailer>,
    webhooks: Webhooks,
    owner: String,
    retry_delay: Duration,
    max_retry_delay: Duration,
    /// How long a claimed delivery is held: longer than any one attempt can take.
    lease: Duration,
}

impl Sender {
    pub fn new(
        store: Arc<dyn Store>,
        smtp: &SmtpConfig,
        n: &NotifyConfig,
        owner: &str,
    ) -> Result<Sender, NotifyError> {
        let mailer = Mailer::from_config(smtp)?;
        let longest = (smtp.timeout * 2).max(n.webhook_timeout);
        Ok(Sender {
            store,
            mailer,
            webhooks: Webhooks::new(n.webhook_timeout)?,
            owner: owner.to_string(),
            retry_delay: n.retry_delay,
            max_retry_delay: n.max_retry_delay.max(n.retry_delay),
            lease: longest * 2,
        })
    }

    pub fn mailer(&self) -> Option<&Mailer> {
        self.mailer.as_ref()
    }

    /// Sends everything due now, oldest first.
    pub async fn deliver_due(&self) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        loop {
            let claimed = self
                .store
                .claim_deliveries(&self.owner, self.mailer.is_some(), self.lease, CLAIM)
                .await?;
            if claimed.is_empty() {
                return Ok(pass);
            }
            crash_point("sender.after_claim");
            for m in claimed {
                let outcome = self.attempt(&m).await;
                match &outcome {
                    Delivery::Sent => pass.sent += 1,
                    Delivery::Retry { .. } => pass.retrying += 1,
                    Delivery::Failed { .. } => pass.failed += 1,
                }
                self.store
                    .finish_delivery(m.id, &self.owner, &outcome)
                    .await?;
            }
        }
    }

    /// One attempt at `m`, with what it means for the row.
    async fn attempt(&self, m: &OutboxMessage) -> Delivery {
        let to = match m.channel {
            Channel::Email => m.recipients.join(", "),
            Channel::Webhook => m.recipients.iter().map(|u| redact(u)).collect(),
        };
        let result = match (m.channel, &self.mailer) {
            (Channel::Email, Some(mailer)) => mailer.send(m).await,
            (Channel::Email, None) => Attempt::Transient("[smtp] host is not set".into()),
            (Channel::Webhook, _) => self.webhooks.send(m).await,
        };
        match result {
            Attempt::Sent(reply) => {
                // The server has it; the outbox does not know yet.
                crash_point("sender.after_send");
                tracing::info!(outbox_id = m.id, channel = m.channel.as_str(), %to, %reply, "message delivered");
                Delivery::Sent
            }
            Attempt::Transient(error) => {
                let at = self.next_attempt(m.attempts, Utc::now());
                tracing::warn!(outbox_id = m.id, channel = m.channel.as_str(), %to, %error, next_attempt_at = %at, "delivery failed; will retry");
                Delivery::Retry { error, at }
            }
            Attempt::Permanent(error) => {
                tracing::error!(outbox_id = m.id, channel = m.channel.as_str(), %to, %error, "delivery rejected; `vigil notify retry {}` sends it again", m.id);
                Delivery::Failed { error }
            }
        }
    }

    /// When to try again after `attempts` earlier attempts and this failed one: the retry
    /// delay doubled per earlier attempt, capped.
    pub fn next_attempt(&self, attempts: u32, now: DateTime<Utc>) -> DateTime<Utc> {
        let wait = self
            .retry_delay
            .saturating_mul(1u32 << attempts.min(20))
            .min(self.max_retry_delay);
        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
    }

    /// Delivers until `stop`: at once, after every `poll`, and whenever `wake` is notified
    /// (a run ended, so a failure message may be waiting). A delivery cut short by `stop`
    /// is sent again by the next sender once its lease runs out, with the same Message-ID.
    pub async fn run(self, wake: Wake, poll: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                r = self.deliver_due() => {
                    if let Err(e) = r {
                        tracing::error!(error = %crate::state::Chain(&e), "cannot read or update the outbox");
                    }
                }
                _ = stop.cancelled() => return,
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.woken() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}
