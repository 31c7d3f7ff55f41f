//! Faults of a real PostgreSQL server in a Docker container of its own (see
//! `orbstore_testkit::containers`): paused (a hung server), restarted (an outage), killed and cut
//! off from the network mid-transaction (a lost connection). The backend runs with short
//! timeouts (2 s to connect, 2 s per statement), so its client-side deadline is 4 s.
//!
//! What they guard against: an operation that waits forever for a server that will not answer;
//! a pool that keeps handing out dead connections after the server comes back (so the
//! application would need a restart); a transaction whose connection was lost reported as
//! committed, or committed in part.
//!
//! Compiled `#[ignore]`d without a Docker engine (cfg `orbstore_no_docker`, see
//! `orbstore-testcfg`); the image is `ORBSTORE_TEST_POSTGRES_IMAGE`.

use std::time::{Duration, Instant};

use orbstore_core::config::PostgresConfig;
use orbstore_core::{BackendConfig, Error, ErrorKind, Filter, PersistenceBackend, Query};
use orbstore_postgres::PostgresBackend;
use orbstore_testkit::containers::PgContainer;
use orbstore_testkit::d;
use serde_json::json;

/// A private server and settings for it with short timeouts.
async fn server() -> (PgContainer, PostgresConfig) {
    let pg = PgContainer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}?connect_timeout=2&statement_timeout=2s&schema=faults&pool_size=2", pg.url());
    let BackendConfig::Postgres(cfg) = BackendConfig::from_url(&url).expect("a postgres URL") else {
        unreachable!()
    };
    (pg, cfg)
}

/// The client-side bound on one operation: statement timeout + connect timeout.
fn deadline(cfg: &PostgresConfig) -> Duration {
    cfg.statement_timeout + cfg.connect_timeout
}

/// Runs an operation that must fail `Unavailable` within `bound` (plus a second of slack for
/// a loaded machine); 30 s without an answer counts as a hang. Returns the error and how long
/// it took.
async fn fails_unavailable<T: std::fmt::Debug>(
    what: &str,
    bound: Duration,
    op: impl std::future::Future<Output = orbstore_core::Result<T>>,
) -> (Error, Duration) {
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for 30 s against a paused server"));
    let took = start.elapsed();
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{what}: {e}");
    assert!(e.is_retryable(), "{what}: {e}");
    assert!(took < bound + Duration::from_secs(1), "{what} took {took:?}, past the bound {bound:?}: {e}");
    eprintln!("{what}: Unavailable after {took:.2?}: {e}");
    (e, took)
}

/// Retries `op` until it succeeds, for at most 30 s; every failure meanwhile must be retryable.
async fn eventually<T>(
    what: &str,
    mut op: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = orbstore_core::Result<T>> + Send>>,
) -> (T, usize) {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), op()).await {
            Ok(Ok(v)) => return (v, failures),
            Ok(Err(e)) => {
                assert!(e.is_retryable(), "{what}: only retryable failures while the server comes back: {e}");
                failures += 1;
            }
            Err(_) => panic!("{what} hung for 10 s"),
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what}: still failing after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_docker, ignore = "needs a Docker engine")]
async fn a_paused_server_fails_every_operation_within_the_timeouts_then_is_used_again() {
    let (pg, cfg) = server().await;
    let bound = deadline(&cfg);
    let store = PostgresBackend::open(cfg.clone()).await.expect("open");
    let c = store.collection("items").await.expect("items");
    c.insert_one(d(json!({"_id": "a", "n": 1}))).await.expect("insert before the pause");

    pg.pause().await.expect("pause");
    // Pooled connections wait for answers that never come: the client-side deadline ends them.
    fails_unavailable("find_by_id", bound, c.find_by_id("a")).await;
    fails_unavailable("insert_one", bound, c.insert_one(d(json!({"_id": "b"})))).await;
    fails_unavailable("find", bound, c.find(&Query::new(Filter::All))).await;
    fails_unavailable(
        "update_many",
        bound,
        c.update_many(&Filter::All, &orbstore_core::Update::new().inc("n", 1)),
    )
    .await;
    fails_unavailable("begin", bound, async { store.begin().await.map(|_| ()) }).await;
    // New connections: the connect timeout ends them.
    fails_unavailable("open", bound, PostgresBackend::open(cfg.clone())).await;
    let start = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(30), store.health()).await.expect("health hung");
    assert!(!health.healthy && start.elapsed() < bound + Duration::from_secs(1), "{health:?}");

    pg.unpause().await.expect("unpause");
    // The same store, not reopened: connections cut short were closed, new ones are made.
    let (doc, failures) = eventually("find_by_id after unpause", || {
        let c = c.clone();
        Box::pin(async move { c.find_by_id("a").await })
    })
    .await;
    eprintln!("after unpause: {failures} failed attempts before the first answer");
    assert_eq!(doc.expect("a is there")["n"], 1, "the update that timed out did not apply");
    c.insert_one(d(json!({"_id": "c"}))).await.expect("insert after the pause");
    let ids: Vec<String> =
        c.find(&Query::new(Filter::All)).await.unwrap().iter().map(|d| d["_id"].to_string()).collect();
    // "b"'s insert may have reached the server before the pause froze it; nothing else appeared.
    assert!(ids == ["\"a\"", "\"c\""] || ids == ["\"a\"", "\"b\"", "\"c\""], "{ids:?}");
    store.close().await.unwrap();
    pg.remove().await.expect("remove the container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_docker, ignore = "needs a Docker engine")]
async fn a_restarted_server_is_used_again_without_reopening_the_store() {
    let (pg, cfg) = server().await;
    let store = PostgresBackend::open(cfg.clone()).await.expect("open");
    let c = store.collection("items").await.expect("items");
    let docs: Vec<_> = (0..100).map(|i| d(json!({"_id": format!("d{i}"), "i": i}))).collect();
    c.insert_many(docs).await.expect("insert before the restart");

    pg.restart().await.expect("restart");
    let (n, failures) = eventually("count after the restart", || {
        let c = c.clone();
        Box::pin(async move { c.count(&Filter::All).await })
    })
    .await;
    eprintln!("after the restart: {failures} failed attempts before the first answer");
    assert_eq!(n, 100, "every committed document survived the restart");
    c.insert_one(d(json!({"_id": "after"}))).await.expect("insert after the restart");
    assert_eq!(c.count(&Filter::All).await.unwrap(), 101);
    assert!(store.health().await.healthy);
    store.close().await.unwrap();
    pg.remove().await.expect("remove the container");
}

/// The rows of the test collection, read inside the container (the backend's table is
/// `faults."items"`).
async fn ids_on_server(pg: &PgContainer) -> String {
    pg.psql("SELECT coalesce(string_agg(id, ',' ORDER BY id), '') FROM faults.\"items\"").await.expect("psql")
}

/// A private server holding one committed document ("before"), and a transaction open on it
/// with its handle on the same collection; also the client-side deadline.
async fn open_transaction(
) -> (PgContainer, Duration, PostgresBackend, Box<dyn orbstore_core::Transaction>, orbstore_core::CollectionRef)
{
    let (pg, cfg) = server().await;
    let store = PostgresBackend::open(cfg.clone()).await.expect("open");
    store.collection("items").await.unwrap().insert_one(d(json!({"_id": "before"}))).await.unwrap();
    let tx = store.begin().await.expect("begin");
    let tc = tx.collection("items").await.expect("items in the transaction");
    (pg, deadline(&cfg), store, tx, tc)
}

/// The store answers again (retrying while the server comes back) and holds only "before".
async fn only_the_committed_document_is_there(store: &PostgresBackend, what: &str) {
    let c = store.collection("items").await.unwrap();
    let (n, _) = eventually(what, || {
        let c = c.clone();
        Box::pin(async move { c.count(&Filter::All).await })
    })
    .await;
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_docker, ignore = "needs a Docker engine")]
async fn a_transaction_whose_server_is_killed_is_reported_failed_and_never_half_committed() {
    let (pg, bound, store, tx, tc) = open_transaction().await;
    tc.insert_one(d(json!({"_id": "t1"}))).await.expect("first write of the transaction");
    tc.insert_one(d(json!({"_id": "t2"}))).await.expect("second write of the transaction");
    pg.kill().await.expect("kill");
    let (e, _) =
        fails_unavailable("a write after the kill", bound, tc.insert_one(d(json!({"_id": "t3"})))).await;
    let commit = tokio::time::timeout(Duration::from_secs(30), tx.commit()).await.expect("commit hung");
    let ce = commit.expect_err("a transaction whose connection died cannot commit");
    assert!(matches!(ce.kind(), ErrorKind::Unavailable | ErrorKind::Aborted), "{ce}");
    eprintln!("write: {e}\ncommit: {ce}");

    pg.start_again().await.expect("start again");
    assert_eq!(ids_on_server(&pg).await, "before", "nothing of the transaction was committed");
    // The store itself recovers.
    only_the_committed_document_is_there(&store, "count after the server is back").await;
    store.close().await.unwrap();
    pg.remove().await.expect("remove the container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_docker, ignore = "needs a Docker engine")]
async fn a_transaction_cut_off_from_its_server_is_reported_failed_and_never_half_committed() {
    let (pg, bound, store, tx, tc) = open_transaction().await;
    tc.insert_one(d(json!({"_id": "t1"}))).await.expect("a write of the transaction");
    pg.disconnect().await.expect("disconnect the network");
    fails_unavailable("a write while cut off", bound, tc.insert_one(d(json!({"_id": "t2"})))).await;
    // The write's connection was closed when its deadline passed: the transaction is lost, and
    // says so at once.
    let (lost, took) = fails_unavailable("a read while cut off", bound, tc.find_by_id("t1")).await;
    assert!(took < Duration::from_secs(1), "known lost at once: {took:?}");
    assert!(lost.message().contains("nothing of the transaction was committed"), "{lost}");
    let ce = tokio::time::timeout(Duration::from_secs(30), tx.commit())
        .await
        .expect("commit hung")
        .expect_err("a lost transaction cannot commit");
    assert_eq!(ce.kind(), ErrorKind::Unavailable, "{ce}");

    // Inside the container, over its own loopback: the server never committed any of it (it
    // rolls back once it notices the connection is gone; a transaction still open meanwhile
    // shows nothing to other sessions either).
    assert_eq!(ids_on_server(&pg).await, "before");
    pg.reconnect().await.expect("reconnect the network");
    only_the_committed_document_is_there(&store, "count after the network is back").await;
    store.close().await.unwrap();
    pg.remove().await.expect("remove the container");
}
