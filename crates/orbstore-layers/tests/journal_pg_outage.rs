//! PostgreSQL outage through the journal: 8 writers insert documents and increment shared
//! counters through a `JournalLayer` over a private PostgreSQL cluster; mid-load the server is
//! crashed (`pg_ctl stop -m immediate`), writing goes on for seconds, the server is started
//! again and the journal drains by itself. Then the server is read directly (Jepsen's set and
//! counter checks): every acknowledged insert is there exactly once, nothing else is, and every
//! counter equals the number of acknowledged increments. Several rounds on one journal.
//!
//! Guards against: writes lost while the server is down, a batch in flight at the crash applied
//! twice when it is re-sent (a replayed `$inc` counting twice, a replayed insert duplicated or
//! turned into a `Conflict`), and a journal that does not drain after the server returns.

mod journal_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use journal_support::{
    check_server, create_counters, open_journal, open_url, spawn_writers, Acked, PgCluster,
};
use orbstore::{PersistenceBackend, Store};

const ROUNDS: usize = 3;
const WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
// The acknowledgement log is locked across the server check only after every writer finished:
// nothing else can wait for it.
#[allow(clippy::await_holding_lock)]
async fn postgres_outage_loses_nothing_and_applies_nothing_twice() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = open_url(&pg.url()).await.expect("open the private PostgreSQL");
    let layer = open_journal(inner, dir.path(), Duration::from_secs(2), |c| {
        c.segment_bytes = 256 << 10; // several files, released as they drain
    })
    .await;
    let store: Store = layer.clone();
    create_counters(&store).await;
    let server = open_url(&pg.url()).await.expect("a second client, to check the server");
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = spawn_writers(store.clone(), WRITERS, round, stop.clone(), acked.clone());
        tokio::time::sleep(Duration::from_millis(700)).await;
        pg.crash();
        let before_outage = acked.lock().unwrap().tags.len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut status = layer.sync_status();
        for _ in 0..50 {
            if status.last_error.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = layer.sync_status();
        }
        assert!(!status.synced && status.last_error.is_some(), "the outage must be seen: {status:?}");
        let during_outage = acked.lock().unwrap().tags.len() - before_outage;
        assert!(during_outage > 100, "writes must go on during the outage (got {during_outage})");
        pg.start_server();
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop.store(true, Ordering::Release);
        for w in writers {
            w.await.expect("writer");
        }
        let status = layer.sync_now(Duration::from_secs(120)).await.expect("the journal drains");
        assert!(status.synced && status.dead_letters.is_empty(), "{status:?}");
        let acked = acked.lock().unwrap();
        assert!(
            acked.failures.is_empty(),
            "journaled writes must not fail: {:?}",
            &acked.failures[..5.min(acked.failures.len())]
        );
        check_server(&server, &acked).await;
        eprintln!(
            "round {round}: {} inserts and {} increments acknowledged so far ({during_outage} inserts during the outage); server verified",
            acked.tags.len(),
            acked.incs.values().sum::<u64>()
        );
    }
    layer.close().await.expect("close");
    server.close().await.expect("close the checking client");
}
