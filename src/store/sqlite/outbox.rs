//! The outbox on SQLite. Events add their deliveries to their own script with
//! [`push_notification`], so the message commits with the event or not at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::SqliteStore;
use super::script::Script;
use crate::store::outbox::{
    Delivery, Notification, OutboxMessage, OutboxState, OutboxStore, deliveries,
};
use crate::store::rows::{Decode, OutboxRow, decode_all};
use crate::store::{QueryContext, StoreError};

/// Appends the deliveries of `n` (see [`deliveries`]) to `script`.
pub(super) fn push_notification(
    script: &mut Script,
    n: &Notification,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for d in deliveries(n) {
        script
            .stmt(
                "INSERT INTO outbox (kind, channel, recipients, subject, body, html, payload, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(n.kind.clone())?
            .bind(d.channel.as_str())?
            .bind(serde_json::Value::from(d.recipients).to_string())?
            .bind(n.subject.clone())?
            .bind(n.body.clone())?
            .bind(d.html.map(str::to_string))?
            .bind(n.payload.to_string())?
            .bind(now)?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn outbox(&self, state: Option<OutboxState>) -> Result<Vec<OutboxMessage>, StoreError> {
        let state = state.map(OutboxState::as_str);
        decode_all(
            sqlx::query_as::<_, OutboxRow>(
                "SELECT * FROM outbox WHERE (? IS NULL OR state = ?) ORDER BY id",
            )
            .bind(state)
            .bind(state)
            .fetch_all(&self.pool)
            .await
            .doing("reading the outbox")?,
        )
    }

    async fn outbox_message(&self, id: i64) -> Result<Option<OutboxMessage>, StoreError> {
        sqlx::query_as::<_, OutboxRow>("SELECT * FROM outbox WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading the outbox")?
            .map(OutboxRow::decode)
            .transpose()
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        email: bool,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let now = self.clock();
        let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
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
            .map(|row| {
                OutboxRow::from_row(row)
                    .doing("reading the outbox")?
                    .decode()
            })
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &Delivery,
    ) -> Result<(), StoreError> {
        let at = self.clock();
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
