//! The scheduler's memory of each DAG.

use chrono::Utc;
use vigil::store::Store;

pub async fn a_dag_state_is_created_once_and_keeps_its_pause(store: &dyn Store) {
    let t0 = Utc::now();
    let s = store.dag_state("b", t0, true).await.unwrap();
    assert!(s.paused && s.last_tick.is_none());
    assert_eq!(s.first_seen.timestamp_micros(), t0.timestamp_micros());
    // Seen again later, unpaused by default in the file: what the store holds wins.
    let later = t0 + chrono::Duration::hours(1);
    let again = store.dag_state("b", later, false).await.unwrap();
    assert!(again.paused);
    assert_eq!(again.first_seen.timestamp_micros(), t0.timestamp_micros());
    store.set_paused("b", false).await.unwrap();
    assert!(!store.dag_state("b", later, true).await.unwrap().paused);
    // Pausing a DAG the scheduler never saw records it.
    store.set_paused("a", true).await.unwrap();
    let all = store.dag_states().await.unwrap();
    let listed: Vec<_> = all.iter().map(|d| (d.dag_id.as_str(), d.paused)).collect();
    assert_eq!(listed, [("a", true), ("b", false)]);
}

pub async fn the_last_tick_never_moves_backwards(store: &dyn Store) {
    let t0 = Utc::now();
    store.dag_state("d", t0, false).await.unwrap();
    let tick = t0 + chrono::Duration::hours(2);
    store.set_last_tick("d", tick).await.unwrap();
    store
        .set_last_tick("d", t0 + chrono::Duration::hours(1))
        .await
        .unwrap();
    let s = store.dag_state("d", t0, false).await.unwrap();
    assert_eq!(
        s.last_tick.map(|t| t.timestamp_micros()),
        Some(tick.timestamp_micros())
    );
}
