//! The journal over a PostgreSQL server in a Docker container (see
//! `orbstore_testkit::containers`): 8 writers insert documents and increment counters through a
//! `JournalLayer` while the container is restarted (`docker restart`: an outage with a fast
//! shutdown) and, in a second round, paused (`docker pause`: a server that accepts connections
//! and answers nothing). Writing goes on through both; afterwards the journal drains and the
//! server is read directly with the set and counter checks of `journal_pg_outage.rs`: every
//! acknowledged write there exactly once, nothing else.
//!
//! Compiled `#[ignore]`d without a Docker engine (cfg `orbstore_no_docker`).

mod journal_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use journal_support::{check_server, create_counters, open_journal, open_url, spawn_writers, Acked};
use orbstore::{PersistenceBackend, Store};
use orbstore_testkit::containers::PgContainer;

const WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(orbstore_no_docker, ignore = "needs a Docker engine")]
// The acknowledgement log is locked across the server check only after every writer finished.
#[allow(clippy::await_holding_lock)]
async fn a_restarted_or_paused_container_loses_nothing_acknowledged_through_the_journal() {
    let pg = PgContainer::start().await.unwrap_or_else(|e| panic!("{e}"));
    // Short timeouts: a paused server's statements end after 4 s instead of 70.
    let url = format!("{}?connect_timeout=2&statement_timeout=2s", pg.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = open_url(&url).await.expect("open the container's PostgreSQL");
    let layer = open_journal(inner, dir.path(), Duration::from_secs(2), |_| {}).await;
    let store: Store = layer.clone();
    create_counters(&store).await;
    let server = open_url(&url).await.expect("a second client, to check the server");
    let acked = Arc::new(Mutex::new(Acked::default()));
    for (round, fault) in ["restart", "pause"].into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = spawn_writers(store.clone(), WRITERS, round, stop.clone(), acked.clone());
        tokio::time::sleep(Duration::from_millis(700)).await;
        let before = acked.lock().unwrap().tags.len();
        match fault {
            "restart" => pg.restart().await.expect("restart"),
            _ => {
                pg.pause().await.expect("pause");
                tokio::time::sleep(Duration::from_secs(5)).await;
                let status = layer.sync_status();
                assert!(!status.synced, "a paused server cannot be synced: {status:?}");
                pg.unpause().await.expect("unpause");
            }
        }
        let during = acked.lock().unwrap().tags.len() - before;
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
        assert!(during > 0, "{fault}: writes went on meanwhile");
        check_server(&server, &acked).await;
        eprintln!(
            "{fault}: {} inserts acknowledged so far, {during} while it lasted; server verified",
            acked.tags.len()
        );
    }
    layer.close().await.expect("close");
    server.close().await.expect("close the checking client");
    pg.remove().await.expect("remove the container");
}
