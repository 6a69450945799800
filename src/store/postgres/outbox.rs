//! The outbox on PostgreSQL. Events add their deliveries inside their own transaction with
//! [`push_notification`], so the message commits with the event or not at all. Senders on
//! several daemons claim rows with `FOR UPDATE SKIP LOCKED` under a lease: two never deliver
//! one row at once, and a dead sender's rows return when its lease ends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, Tx};
use crate::store::outbox::{
    Delivery, Notification, OutboxMessage, OutboxState, OutboxStore, deliveries,
};
use crate::store::rows::{Decode, OutboxRow, decode_all};
use crate::store::{QueryContext, StoreError};

/// Adds the deliveries of `n` (see [`deliveries`]) to the transaction.
pub(super) async fn push_notification(
    tx: &mut Tx,
    n: &Notification,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for d in deliveries(n) {
        sqlx::query(
            "INSERT INTO outbox (kind, channel, recipients, subject, body, html, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&n.kind)
        .bind(d.channel.as_str())
        .bind(serde_json::Value::from(d.recipients).to_string())
        .bind(&n.subject)
        .bind(&n.body)
        .bind(d.html)
        .bind(n.payload.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn outbox(&self, state: Option<OutboxState>) -> Result<Vec<OutboxMessage>, StoreError> {
        decode_all(
            sqlx::query_as::<_, OutboxRow>(
                "SELECT * FROM outbox WHERE ($1::text IS NULL OR state = $1) ORDER BY id",
            )
            .bind(state.map(OutboxState::as_str))
            .fetch_all(&self.pool)
            .await
            .doing("reading the outbox")?,
        )
    }

    async fn outbox_message(&self, id: i64) -> Result<Option<OutboxMessage>, StoreError> {
        sqlx::query_as::<_, OutboxRow>("SELECT * FROM outbox WHERE id = $1")
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
        let lease_micros = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        let mut claimed = decode_all(
            sqlx::query_as::<_, OutboxRow>(
                "UPDATE outbox SET lease_owner = $1,
                     lease_until = now() + $2::bigint * interval '1 microsecond'
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE state = 'pending' AND ($3 OR channel <> 'email')
                       AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                       AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY id LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 RETURNING *",
            )
            .bind(owner)
            .bind(lease_micros)
            .bind(email)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("claiming outbox messages")?,
        )?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &Delivery,
    ) -> Result<(), StoreError> {
        // Every variant binds (state, sent, last_error, next_attempt_at).
        let (state, sent, error, next) = match outcome {
            Delivery::Sent => (OutboxState::Sent, true, None, None),
            Delivery::Retry { error, at } => (OutboxState::Pending, false, Some(error), Some(*at)),
            Delivery::Failed { error } => (OutboxState::Failed, false, Some(error), None),
        };
        sqlx::query(
            "UPDATE outbox SET state = $1, sent_at = CASE WHEN $2 THEN now() END, last_error = $3,
                 next_attempt_at = $4, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL
             WHERE id = $5 AND lease_owner = $6",
        )
        .bind(state.as_str())
        .bind(sent)
        .bind(error)
        .bind(next)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .doing("recording a delivery")?;
        Ok(())
    }

    async fn requeue(&self, id: i64) -> Result<Option<OutboxState>, StoreError> {
        let Some(before) = self.outbox_message(id).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = NULL
             WHERE id = $1 AND state IN ('pending', 'failed')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .doing("queueing a message again")?;
        Ok(Some(before.state))
    }
}
