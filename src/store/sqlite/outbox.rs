//! The outbox on SQLite. Events add their deliveries to their own script with
//! [`push_notification`], so the message commits with the event or not at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Script, SqliteStore, corrupt, json_col};
use crate::store::outbox::{
    Channel, Delivery, Notification, OutboxMessage, OutboxState, OutboxStore,
};
use crate::store::{QueryContext, StoreError};

/// Appends the deliveries of `n` to `script`: one email to all its addresses, one POST per
/// webhook URL. An empty audience adds nothing (the event itself is still recorded).
pub(super) fn push_notification(
    script: &mut Script,
    n: &Notification,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let email = (!n.to.emails.is_empty()).then(|| (Channel::Email, n.to.emails.clone()));
    let webhooks =
        n.to.webhooks
            .iter()
            .map(|url| (Channel::Webhook, vec![url.clone()]));
    for (channel, recipients) in email.into_iter().chain(webhooks) {
        let html = match channel {
            Channel::Email => n.html.clone(),
            Channel::Webhook => None,
        };
        script
            .stmt(
                "INSERT INTO outbox (kind, channel, recipients, subject, body, html, payload, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(n.kind.clone())?
            .bind(channel.as_str())?
            .bind(serde_json::Value::from(recipients).to_string())?
            .bind(n.subject.clone())?
            .bind(n.body.clone())?
            .bind(html)?
            .bind(n.payload.to_string())?
            .bind(now)?;
    }
    Ok(())
}

fn message_from_row(row: &SqliteRow) -> Result<OutboxMessage, StoreError> {
    const DOING: &str = "reading the outbox";
    let channel: String = row.try_get("channel").doing(DOING)?;
    let state: String = row.try_get("state").doing(DOING)?;
    Ok(OutboxMessage {
        id: row.try_get("id").doing(DOING)?,
        kind: row.try_get("kind").doing(DOING)?,
        channel: match channel.as_str() {
            "email" => Channel::Email,
            "webhook" => Channel::Webhook,
            other => return Err(corrupt("outbox channel", other)),
        },
        recipients: serde_json::from_value(json_col(row, "recipients")?)
            .map_err(|e| corrupt("outbox recipients", e))?,
        subject: row.try_get("subject").doing(DOING)?,
        body: row.try_get("body").doing(DOING)?,
        html: row.try_get("html").doing(DOING)?,
        payload: json_col(row, "payload")?,
        state: state.parse().map_err(|e| corrupt("outbox state", e))?,
        attempts: row.try_get("attempts").doing(DOING)?,
        created_at: row.try_get("created_at").doing(DOING)?,
        next_attempt_at: row.try_get("next_attempt_at").doing(DOING)?,
        last_error: row.try_get("last_error").doing(DOING)?,
        sent_at: row.try_get("sent_at").doing(DOING)?,
    })
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn outbox(&self, state: Option<OutboxState>) -> Result<Vec<OutboxMessage>, StoreError> {
        let state = state.map(OutboxState::as_str);
        sqlx::query("SELECT * FROM outbox WHERE (? IS NULL OR state = ?) ORDER BY id")
            .bind(state)
            .bind(state)
            .fetch_all(&self.pool)
            .await
            .doing("reading the outbox")?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn outbox_message(&self, id: i64) -> Result<Option<OutboxMessage>, StoreError> {
        sqlx::query("SELECT * FROM outbox WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading the outbox")?
            .as_ref()
            .map(message_from_row)
            .transpose()
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        email: bool,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut script = Script::new();
        script
            .stmt(
                "UPDATE outbox SET lease_owner = ?, lease_until = ?
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE state = 'pending' AND (? OR channel <> 'email')
                       AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                       AND (lease_until IS NULL OR lease_until < ?)
                     ORDER BY id LIMIT ?)
                 RETURNING *",
            )
            .bind(owner.to_string())?
            .bind(lease_until)?
            .bind(email)?
            .bind(now)?
            .bind(now)?
            .bind(i64::from(limit))?;
        let rows = self
            .run_script(script)
            .await
            .doing("claiming outbox messages")?;
        let mut claimed = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &Delivery,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut script = Script::new();
        // Every variant binds (state, sent_at, last_error, next_attempt_at).
        let (state, sent_at, error, next) = match outcome {
            Delivery::Sent => (OutboxState::Sent, Some(at), None, None),
            Delivery::Retry { error, at: next } => {
                (OutboxState::Pending, None, Some(error.clone()), Some(*next))
            }
            Delivery::Failed { error } => (OutboxState::Failed, None, Some(error.clone()), None),
        };
        script
            .stmt(
                "UPDATE outbox SET state = ?, sent_at = ?, last_error = ?, next_attempt_at = ?,
                     attempts = attempts + 1, lease_owner = NULL, lease_until = NULL
                 WHERE id = ? AND lease_owner = ?",
            )
            .bind(state.as_str())?
            .bind(sent_at)?
            .bind(error)?
            .bind(next)?
            .bind(id)?
            .bind(owner.to_string())?;
        self.run_script(script)
            .await
            .doing("recording a delivery")?;
        Ok(())
    }

    async fn requeue(&self, id: i64) -> Result<Option<OutboxState>, StoreError> {
        let Some(before) = self.outbox_message(id).await? else {
            return Ok(None);
        };
        let mut script = Script::new();
        script
            .stmt(
                "UPDATE outbox SET state = 'pending', next_attempt_at = NULL
                 WHERE id = ? AND state IN ('pending', 'failed')",
            )
            .bind(id)?;
        self.run_script(script)
            .await
            .doing("queueing a message again")?;
        Ok(Some(before.state))
    }
}
