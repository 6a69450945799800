//! The outbox: deliveries commit with their event, are claimed under a lease, and end sent,
//! pending for a retry, or failed for good.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use vigil::state::{Audience, RunState};
use vigil::store::registry::Notification;
use vigil::store::{Batch, Channel, Delivery, OutboxState, RunTransition, Store};

use super::create;

const LEASE: Duration = Duration::from_secs(3600);

/// A notification to one address and two webhooks.
pub fn notification(subject: &str) -> Notification {
    Notification {
        kind: "run_failed".into(),
        subject: subject.into(),
        body: "body".into(),
        html: Some("<p>body</p>".into()),
        payload: json!({"subject": subject}),
        to: Audience {
            emails: vec!["a@example.com".into(), "b@example.com".into()],
            webhooks: vec![
                "http://127.0.0.1:9/one".into(),
                "http://127.0.0.1:9/two".into(),
            ],
        },
    }
}

/// Commits a run's failure with `notification(subject)`.
async fn fail_run_with_mail(store: &dyn Store, subject: &str) {
    let run = create(store, "d", &["a"]).await;
    let mut b = Batch::new(run.id);
    b.run = Some(RunTransition {
        expect: RunState::Queued,
        to: RunState::Failed,
        at: Utc::now(),
        note: None,
    });
    b.notifications.push(notification(subject));
    store.commit(&b).await.unwrap();
}

pub async fn a_notification_becomes_one_email_and_one_post_per_webhook_with_its_event(
    store: &dyn Store,
) {
    fail_run_with_mail(store, "failed").await;
    let queued = store.outbox(None).await.unwrap();
    let shape: Vec<_> = queued
        .iter()
        .map(|m| (m.channel, m.recipients.clone(), m.html.is_some(), m.state))
        .collect();
    assert_eq!(
        shape,
        [
            (
                Channel::Email,
                vec!["a@example.com".to_string(), "b@example.com".to_string()],
                true,
                OutboxState::Pending
            ),
            (
                Channel::Webhook,
                vec!["http://127.0.0.1:9/one".to_string()],
                false,
                OutboxState::Pending
            ),
            (
                Channel::Webhook,
                vec!["http://127.0.0.1:9/two".to_string()],
                false,
                OutboxState::Pending
            ),
        ]
    );
    assert_eq!(queued[0].payload, json!({"subject": "failed"}));
    assert_eq!(queued[0].attempts, 0);
    let one = store.outbox_message(queued[1].id).await.unwrap().unwrap();
    assert_eq!(one, queued[1]);
    assert!(
        store
            .outbox_message(queued[2].id + 100)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn a_claimed_delivery_is_held_under_lease_and_finished_only_by_its_holder(
    store: &dyn Store,
) {
    fail_run_with_mail(store, "held").await;
    // Without a mailer, a sender claims webhooks only.
    let hooks = store
        .claim_deliveries("s1", false, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|m| m.channel == Channel::Webhook));
    let rest = store.claim_deliveries("s2", true, LEASE, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "the webhooks are leased to s1");
    assert_eq!(rest[0].channel, Channel::Email);
    assert!(
        store
            .claim_deliveries("s3", true, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Another sender's outcome changes nothing.
    store
        .finish_delivery(hooks[0].id, "s2", &Delivery::Sent)
        .await
        .unwrap();
    let m = store.outbox_message(hooks[0].id).await.unwrap().unwrap();
    assert_eq!((m.state, m.attempts), (OutboxState::Pending, 0));
    store
        .finish_delivery(hooks[0].id, "s1", &Delivery::Sent)
        .await
        .unwrap();
    let m = store.outbox_message(hooks[0].id).await.unwrap().unwrap();
    assert_eq!((m.state, m.attempts), (OutboxState::Sent, 1));
    assert!(m.sent_at.is_some());

    // An expired lease (zero) lets another sender take the delivery over.
    fail_run_with_mail(store, "expired").await;
    let first = store
        .claim_deliveries("s1", true, Duration::ZERO, 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let retaken = store.claim_deliveries("s2", true, LEASE, 10).await.unwrap();
    assert!(retaken.iter().any(|m| m.id == first[0].id), "{retaken:?}");
}

pub async fn transient_and_permanent_outcomes_and_requeue(store: &dyn Store) {
    fail_run_with_mail(store, "outcomes").await;
    let claimed = store.claim_deliveries("s", true, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let later = Utc::now() + chrono::Duration::hours(1);
    store
        .finish_delivery(
            claimed[0].id,
            "s",
            &Delivery::Retry {
                error: "421 try later".into(),
                at: later,
            },
        )
        .await
        .unwrap();
    store
        .finish_delivery(
            claimed[1].id,
            "s",
            &Delivery::Failed {
                error: "404".into(),
            },
        )
        .await
        .unwrap();
    store
        .finish_delivery(claimed[2].id, "s", &Delivery::Sent)
        .await
        .unwrap();
    let retry = store.outbox_message(claimed[0].id).await.unwrap().unwrap();
    assert_eq!(retry.state, OutboxState::Pending);
    assert_eq!(retry.last_error.as_deref(), Some("421 try later"));
    assert_eq!(
        retry.next_attempt_at.map(|t| t.timestamp_micros()),
        Some(later.timestamp_micros())
    );
    // Neither the retry (not due) nor the failure (final) nor the sent one is claimable.
    assert!(
        store
            .claim_deliveries("s", true, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.outbox(Some(OutboxState::Failed)).await.unwrap().len(),
        1
    );

    // Requeue makes the failed and the waiting ones due now, and leaves the sent one alone.
    assert_eq!(
        store.requeue(claimed[1].id).await.unwrap(),
        Some(OutboxState::Failed)
    );
    assert_eq!(
        store.requeue(claimed[0].id).await.unwrap(),
        Some(OutboxState::Pending)
    );
    assert_eq!(
        store.requeue(claimed[2].id).await.unwrap(),
        Some(OutboxState::Sent)
    );
    assert_eq!(store.requeue(claimed[2].id + 100).await.unwrap(), None);
    let due = store.claim_deliveries("s", true, LEASE, 10).await.unwrap();
    let mut ids: Vec<_> = due.iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, [claimed[0].id, claimed[1].id]);
    let sent = store.outbox_message(claimed[2].id).await.unwrap().unwrap();
    assert_eq!(sent.state, OutboxState::Sent);
}
