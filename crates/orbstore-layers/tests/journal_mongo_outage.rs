//! The outage test on MongoDB's wire protocol: 8 writers insert and increment shared counters
//! through a `JournalLayer` over a private nx-27017 (never the shared instance), which is killed
//! mid-load (SIGKILL) and started again over the same database file; the journal drains by
//! itself, and the server then holds every acknowledged insert exactly once, nothing else, and
//! counters equal to the acknowledged increments. Two rounds. Here the server has no
//! transactions the journal may rely on, so batches are shipped as one idempotent upsert or
//! delete per document, several in flight.
//!
//! Needs nx-27017 (`.ci/run` installs it in /tmp/orbstore-nx-venv; or set ORBSTORE_NX_27017 to
//! the program): without it the test fails, saying so, rather than passing unrun.

mod journal_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use journal_support::{
    check_server, create_counters, nx_program, open_journal, open_url, spawn_writers, Acked, NxServer,
};
use orbstore::{PersistenceBackend, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
// The acknowledgement log is locked across the server check only after every writer finished:
// nothing else can wait for it.
#[allow(clippy::await_holding_lock)]
async fn mongodb_outage_loses_nothing_and_applies_nothing_twice() {
    let program = nx_program().expect(
        "this test starts a private nx-27017: install it as ../shared/services.md shows \
         (pip install nx-27017==0.8.1 neosqlite==1.17.2 in /tmp/orbstore-nx-venv) or set ORBSTORE_NX_27017",
    );
    let nx = NxServer::start(program);
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = open_url(&nx.url()).await.expect("open the private nx-27017");
    assert!(
        !inner.capabilities().transactions,
        "nx-27017's unisolated transactions are not offered by default"
    );
    let layer = open_journal(inner, dir.path(), Duration::from_secs(3), |_| {}).await;
    let store: Store = layer.clone();
    create_counters(&store).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = spawn_writers(store.clone(), 8, round, stop.clone(), acked.clone());
        tokio::time::sleep(Duration::from_millis(700)).await;
        nx.crash();
        let before = acked.lock().unwrap().tags.len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let during = acked.lock().unwrap().tags.len() - before;
        assert!(during > 100, "writes must go on during the outage (got {during})");
        nx.start_server();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Release);
        for w in writers {
            w.await.expect("writer");
        }
        let status = layer.sync_now(Duration::from_secs(300)).await.expect("the journal drains");
        assert!(status.synced && status.dead_letters.is_empty(), "{status:?}");
        let server = open_url(&nx.url()).await.expect("a second client, to check the server");
        let acked = acked.lock().unwrap();
        assert!(acked.failures.is_empty(), "journaled writes must not fail: {:?}", acked.failures.first());
        check_server(&server, &acked).await;
        server.close().await.expect("close the checking client");
        eprintln!(
            "round {round}: {} inserts and {} increments acknowledged so far ({during} inserts during the outage); server verified",
            acked.tags.len(),
            acked.incs.values().sum::<u64>()
        );
    }
    layer.close().await.expect("close");
}
