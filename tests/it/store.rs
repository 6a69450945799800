//! What only the SQLite store does: its durability setting and its shared copies of DAG
//! sources. The guarantees every store gives are in `conformance/`.

use crate::util::Engine;

#[tokio::test]
async fn the_stricter_durability_setting_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, expected) in [
        (vigil::store::Synchronous::Normal, "1"),
        (vigil::store::Synchronous::Full, "2"),
    ] {
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = vigil::store::SqliteStore::open(&url, setting)
            .await
            .unwrap();
        let level = store.pragma("synchronous").await.unwrap();
        assert_eq!(level, expected, "{setting:?}");
        let mode = store.pragma("journal_mode").await.unwrap();
        assert_eq!(mode, "wal");
    }
}

/// Runs of one DAG version share one stored copy of its source (a 1 MiB DAG once wrote
/// 1 MiB per run); each run still reads back the exact source it was created from, and
/// retention removes a source no run needs any more.
#[tokio::test]
async fn runs_share_one_copy_of_each_dag_source() {
    let e = Engine::new().await;
    let padding = format!("# {}\n", "x".repeat(100_000));
    let v1 = e.dag(&format!("{padding}[tasks.a]\ntype = \"noop\"\n"));
    let v2 = e.dag(&format!(
        "{padding}[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\n"
    ));
    let mut ids = Vec::new();
    for i in 0..5 {
        let dag = if i < 4 { &v1 } else { &v2 };
        let run = e
            .create_at(dag, chrono::Utc::now() + chrono::Duration::seconds(i))
            .await;
        ids.push(run.id);
    }
    let url = format!("sqlite://{}", e.dir.path().join("vigil.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (sources, bytes): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(length(source)) FROM dag_sources")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(sources, 2, "one row per distinct source");
    assert!(bytes < 250_000, "{bytes} bytes of sources for 5 runs");
    let copies: i64 = sqlx::query_scalar("SELECT sum(length(dag_source)) FROM dag_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(copies, 0);
    assert_eq!(
        e.store.run(ids[0]).await.unwrap().unwrap().dag_source,
        v1.source
    );
    assert_eq!(
        e.store.run(ids[4]).await.unwrap().unwrap().dag_source,
        v2.source
    );
    // Finished and old: retention removes the runs and the sources with them.
    for id in &ids {
        sqlx::query(
            "UPDATE dag_runs SET state = 'success', ended_at = '2000-01-01T00:00:00Z' WHERE id = ?",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    }
    e.store.cleanup(chrono::Utc::now()).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_sources")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// Processes that open a new database file at the same moment (a daemon starting while
/// `vigil dags trigger` runs) all get a migrated store; none fails on a migration the other
/// one is applying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opened_together_on_a_new_file_all_open() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let opens = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                vigil::store::open(&url, vigil::store::Synchronous::Normal).await
            })
        });
        for opened in futures::future::join_all(opens).await {
            let store = opened
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert!(store.dag_states().await.unwrap().is_empty());
        }
    }
}
