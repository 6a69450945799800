//! The daemon as a library: its composition root started in this process, reached through its
//! `Handle` — an in-process trigger wakes the scheduler directly (no signal), and the event
//! stream names the run each event belongs to.

use std::time::Duration;

use vigil::daemon::Daemon;
use vigil::ops::Waker;
use vigil::ops::dags::{self, RunRequest};
use vigil::run::RunEvent;
use vigil::state::{RunState, TaskState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_trigger_wakes_the_embedded_daemon_and_its_events_name_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("dags");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("hello.toml"),
        "[tasks.a]\ntype = \"noop\"\n[tasks.b]\ntype = \"noop\"\ndepends_on = [\"a\"]\n",
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let mut config = vigil::config::Config::default();
    config.database.url = url.clone();
    config.dags.folder = folder.clone();

    let daemon = Daemon::builder().config(config).build();
    let handle = daemon.handle();
    let mut events = handle.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = daemon.run_until(async {
        let _ = stopped.await;
    });
    // The daemon and this test's client side, concurrently in one task.
    let client = async {
        let store = vigil::store::open(&url, vigil::store::Synchronous::Normal)
            .await
            .unwrap();
        let set = dags::load(&folder, &vigil::tasks::builtin()).unwrap();
        let triggered = dags::trigger(
            store.as_ref(),
            &set.dags["hello"],
            &RunRequest::default(),
            &Waker::InProcess(handle.wake.clone()),
        )
        .await
        .unwrap();
        assert_eq!(triggered.woke.as_deref(), Some("this process"));

        // A hang guard, not a speed claim: the run takes milliseconds.
        let mut seen = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let update = events.recv().await.expect("the event stream stays open");
                assert_eq!(update.run_id, triggered.run.id);
                assert_eq!(update.dag_id, "hello");
                match update.event {
                    RunEvent::TaskEnded { task_id, state, .. } => seen.push((task_id, state)),
                    RunEvent::RunEnded { state, .. } => return state,
                    RunEvent::TaskStarted { .. } => {}
                }
            }
        })
        .await
        .expect("the run ends");
        assert_eq!(ended, RunState::Success);
        assert_eq!(
            seen,
            [
                ("a".to_string(), TaskState::Success),
                ("b".to_string(), TaskState::Success)
            ]
        );

        stop.send(()).unwrap();
        (store, triggered.run.id)
    };
    tokio::pin!(daemon, client);
    let (store, run_id) = tokio::select! {
        result = &mut daemon => panic!("the daemon stopped on its own: {result:?}"),
        done = &mut client => done,
    };
    daemon.await.unwrap();
    let run = store.run(run_id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Success);
}

/// The daemon's future can be spawned (a program that embeds it, the HTTP server to come):
/// this fails to compile if anything in it stops being `Send`.
#[allow(dead_code)]
fn the_daemon_future_is_send(daemon: Daemon) -> impl std::future::Future + Send {
    daemon.run_until(async {})
}
