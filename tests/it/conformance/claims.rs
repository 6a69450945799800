//! Claims, leases and heartbeats: one executor per run, and a stale one changes nothing.

use std::time::Duration;

use vigil::state::TaskState;
use vigil::store::{Batch, Store, StoreError};

use super::{create, instance, transition};

const LEASE: Duration = Duration::from_secs(3600);

pub async fn a_run_held_by_a_live_owner_cannot_be_claimed_until_its_lease_runs_out(
    store: &dyn Store,
) {
    let run = create(store, "d", &["a"]).await;
    assert!(
        store
            .claim_run(run.id, "a@host", LEASE, None)
            .await
            .unwrap()
    );
    // Claiming again is how an owner keeps what it has.
    assert!(
        store
            .claim_run(run.id, "a@host", LEASE, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_run(run.id, "b@host", LEASE, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.run(run.id).await.unwrap().unwrap().owner.as_deref(),
        Some("a@host")
    );
    // A lease of zero: any heartbeat is already too old (the owner is known dead).
    assert!(
        store
            .claim_run(run.id, "b@host", Duration::ZERO, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.run(run.id).await.unwrap().unwrap().owner.as_deref(),
        Some("b@host")
    );
    // Releasing is only for the holder.
    store.release_run(run.id, "a@host").await.unwrap();
    assert_eq!(
        store.run(run.id).await.unwrap().unwrap().owner.as_deref(),
        Some("b@host")
    );
    store.release_run(run.id, "b@host").await.unwrap();
    assert!(store.run(run.id).await.unwrap().unwrap().owner.is_none());
    assert!(
        store
            .claim_run(run.id, "c@host", LEASE, None)
            .await
            .unwrap()
    );
}

/// Two daemons that both see a dead owner: the first replaces it, the second finds the first
/// there and takes nothing.
pub async fn a_dead_owner_is_replaced_once_not_by_every_daemon_that_sees_it(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    assert!(
        store
            .claim_run(run.id, "dead@host", LEASE, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_run(run.id, "first@host", LEASE, Some("dead@host"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_run(run.id, "second@host", LEASE, Some("dead@host"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.run(run.id).await.unwrap().unwrap().owner.as_deref(),
        Some("first@host")
    );
}

pub async fn a_stale_holder_writing_after_a_takeover_changes_nothing(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    assert!(store.claim_run(run.id, "old", LEASE, None).await.unwrap());
    let a0 = instance(store, run.id, "a").await;
    let mut start = Batch::new(run.id);
    start.tasks.push(transition(&a0, TaskState::Running, 1));
    store.commit(&start).await.unwrap();
    let running_1 = instance(store, run.id, "a").await;

    // The old owner goes silent; a new one takes over and starts attempt 2.
    assert!(
        store
            .claim_run(run.id, "new", Duration::ZERO, None)
            .await
            .unwrap()
    );
    let mut retry = Batch::new(run.id);
    retry
        .tasks
        .push(transition(&running_1, TaskState::Running, 2));
    store.commit(&retry).await.unwrap();

    // The old owner wakes and reports attempt 1 done: fenced by the attempt, refused.
    let mut late = Batch::new(run.id);
    let mut done = transition(&running_1, TaskState::Success, 1);
    done.output = Some(serde_json::json!("late"));
    late.tasks.push(done);
    let err = store.commit(&late).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let now = instance(store, run.id, "a").await;
    assert_eq!((now.state, now.attempt), (TaskState::Running, 2));
    assert!(store.output(run.id, "a").await.unwrap().is_none());
}

pub async fn heartbeats_stamp_runs_with_the_stores_clock(store: &dyn Store) {
    let run = create(store, "d", &["a"]).await;
    let other = create(store, "e", &["a"]).await;
    assert!(store.claim_run(run.id, "me", LEASE, None).await.unwrap());
    let before = store.now().await.unwrap();
    store.heartbeat("me").await.unwrap();
    let after = store.now().await.unwrap();
    let beat = store
        .run(run.id)
        .await
        .unwrap()
        .unwrap()
        .heartbeat_at
        .expect("stamped");
    assert!(
        before <= beat && beat <= after,
        "{before} <= {beat} <= {after}"
    );
    assert!(
        store
            .run(other.id)
            .await
            .unwrap()
            .unwrap()
            .heartbeat_at
            .is_none(),
        "only the owner's runs"
    );
}

fn daemon(owner: &str, slots: u32) -> vigil::store::DaemonRecord {
    vigil::store::DaemonRecord {
        owner: owner.into(),
        role: "scheduler+worker".into(),
        host: "host".into(),
        pid: 1,
        version: "0.1.0".into(),
        slots,
        slots_in_use: 9,
        started_at: chrono::Utc::now(),
        heartbeat_at: chrono::Utc::now(),
    }
}

pub async fn daemons_announce_report_and_leave_by_the_stores_clock(store: &dyn Store) {
    assert!(store.daemons().await.unwrap().is_empty());
    let before = store.now().await.unwrap();
    store.announce(&daemon("a@host", 4)).await.unwrap();
    store.announce(&daemon("b@host", 8)).await.unwrap();
    store.report("b@host", 3).await.unwrap();
    let all = store.daemons().await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let b = all.iter().find(|d| d.owner == "b@host").unwrap();
    // The store stamps the times and starts with no slot in use, whatever the caller says.
    assert_eq!((b.slots, b.slots_in_use), (8, 3));
    assert!(b.heartbeat_at >= before && b.started_at >= before, "{b:?}");
    let a = all.iter().find(|d| d.owner == "a@host").unwrap();
    assert_eq!(a.slots_in_use, 0);
    // Announcing again (a restart with the same pid) replaces, never duplicates.
    store.announce(&daemon("a@host", 2)).await.unwrap();
    assert_eq!(store.daemons().await.unwrap().len(), 2);
    store.leave("a@host").await.unwrap();
    let left = store.daemons().await.unwrap();
    assert_eq!(
        left.iter().map(|d| d.owner.as_str()).collect::<Vec<_>>(),
        ["b@host"]
    );
    // Silent ones are forgotten; fresh ones stay.
    assert_eq!(store.forget_daemons(before).await.unwrap(), 0);
    let later = store.now().await.unwrap() + chrono::Duration::seconds(1);
    assert_eq!(store.forget_daemons(later).await.unwrap(), 1);
    assert!(store.daemons().await.unwrap().is_empty());
}

pub async fn queued_runs_are_claimed_within_max_active_runs_even_all_at_once(store: &dyn Store) {
    let when = chrono::Utc::now();
    let mut ids = Vec::new();
    for i in 0..10 {
        let new = super::new_run("d", when + chrono::Duration::seconds(i), &["a"]);
        ids.push(store.create_run(&new).await.unwrap().id);
    }
    // Ten daemons, one run each, at the same instant: three may start.
    let claims = ids.iter().enumerate().map(|(i, id)| async move {
        store
            .claim_queued_run(*id, &format!("d{i}@host"), LEASE, None, 3)
            .await
            .unwrap()
    });
    let won: Vec<bool> = futures::future::join_all(claims).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 3, "{won:?}");
    let holders: Vec<i64> = ids
        .iter()
        .zip(&won)
        .filter(|(_, w)| **w)
        .map(|(id, _)| *id)
        .collect();
    let loser = *ids.iter().find(|id| !holders.contains(id)).unwrap();
    assert!(
        !store
            .claim_queued_run(loser, "late@host", LEASE, None, 3)
            .await
            .unwrap()
    );
    // One of them finishes: a place frees up.
    let mut batch = Batch::new(holders[0]);
    batch.run = Some(vigil::store::RunTransition {
        expect: vigil::state::RunState::Queued,
        to: vigil::state::RunState::Failed,
        at: chrono::Utc::now(),
        note: None,
    });
    store.commit(&batch).await.unwrap();
    assert!(
        store
            .claim_queued_run(loser, "late@host", LEASE, None, 3)
            .await
            .unwrap()
    );
    // A queued run whose owner went silent holds no place (a lease of zero: every heartbeat
    // is old).
    let another = *ids
        .iter()
        .rev()
        .find(|id| !holders.contains(id) && **id != loser)
        .unwrap();
    assert!(
        store
            .claim_queued_run(another, "other@host", Duration::ZERO, None, 3)
            .await
            .unwrap()
    );
}
