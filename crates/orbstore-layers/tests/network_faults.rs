//! Network faults between the client and a real PostgreSQL server: each test starts a private
//! cluster (never the shared server) and a TCP proxy inside the test that passes, cuts or stalls
//! connections, and opens the store through the proxy with the `orbstore` factory. Shows that
//! reads are retried through a cut and a server restart, that writes which may have been applied
//! are not, that the breaker opens, fails fast, lets exactly its probes through and closes, and
//! that a silent server ends in `Unavailable` within the timeouts (the pool's for a new
//! connection, the retry layer's attempt timeout on an open one). Guards against retries that
//! double writes, breakers that never open or close, and calls that hang forever.

#[path = "common/faults.rs"]
mod faults;
#[path = "common/pg_cluster.rs"]
mod pg_cluster;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{wrap, Script};
use orbstore::{CollectionExt, CollectionRef, Config, ErrorKind, Filter, Store, Update};
use orbstore_layers::breaker::is_circuit_open;
use orbstore_layers::{AroundBackend, BreakerConfig, BreakerLayer, Circuit, RetryConfig, RetryLayer};
use pg_cluster::PgCluster;
use proxy::{Mode, Proxy};
use serde_json::json;

/// Opens the PostgreSQL store at `url` with the factory, as an application would.
async fn open(url: &str) -> orbstore::Result<Store> {
    let url = url.to_owned();
    orbstore::open(Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone()))?).await
}

/// A private cluster, a proxy in front of it, and the store opened through the proxy, behind a
/// script that counts the attempts reaching the backend.
async fn setup() -> (PgCluster, Proxy, Store, Script) {
    let cluster = PgCluster::start();
    let proxy = Proxy::start(cluster.addr()).await;
    let pg = open(&PgCluster::url_via(proxy.addr())).await.expect("open PostgreSQL through the proxy");
    assert_eq!(pg.kind(), "postgres");
    let script = Script::default();
    (cluster, proxy, wrap(pg, script.clone()), script)
}

fn retry(max_retries: u32) -> RetryLayer {
    RetryLayer::new(
        RetryConfig::new()
            .with_max_retries(max_retries)
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200)),
    )
}

async fn items(store: &Store) -> CollectionRef {
    let c = store.collection("items").await.unwrap();
    c.insert_value(json!({"_id": "a", "n": 0})).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_through_a_cut_and_succeed_when_the_proxy_passes_again() {
    let (_cluster, proxy, counted, script) = setup().await;
    let store = wrap(counted.clone(), retry(50));
    let c = items(&store).await;
    script.reset_calls();

    proxy.set(Mode::Cut);
    let start = Instant::now();
    let healer = tokio::spawn({
        let switch = proxy.switch();
        async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            switch.set(Mode::Pass);
        }
    });
    let doc = c.find_by_id("a").await.expect("retried until the proxy passed again");
    healer.await.unwrap();
    assert_eq!(doc.unwrap()["n"], 0);
    assert!(start.elapsed() >= Duration::from_millis(600), "it did wait for the proxy");
    let attempts = script.calls("find_by_id");
    assert!(attempts > 1, "the first attempts failed through the cut: {attempts}");

    // Retries run out while the cut lasts: the error says how many attempts were made.
    let short = wrap(counted, retry(2));
    let c = short.collection("items").await.unwrap();
    proxy.set(Mode::Cut);
    let e = c.count(&Filter::all()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().ends_with("(after 3 attempts)"), "{e}");
    proxy.set(Mode::Pass);
    assert_eq!(c.count(&Filter::all()).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_through_a_server_restart() {
    let (cluster, _proxy, counted, _script) = setup().await;
    let store = wrap(counted, retry(50));
    let c = items(&store).await;
    cluster.crash();
    let cluster = Arc::new(cluster);
    let restart = tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || {
            std::thread::sleep(Duration::from_millis(500));
            cluster.start_server();
        }
    });
    let doc = c.find_by_id("a").await.expect("retried until the server was back");
    assert_eq!(doc.unwrap()["n"], 0);
    restart.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_may_have_been_applied_are_not_retried() {
    let (_cluster, proxy, counted, script) = setup().await;
    let store = wrap(counted, retry(50));
    let c = items(&store).await;
    script.reset_calls();
    proxy.set(Mode::Cut);
    let e = c.insert_value(json!({"_id": "b"})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("(after 1 attempt; not retried"), "{e}");
    let e = c.update_one(&Filter::eq("_id", "a"), &Update::new().inc("n", 1)).await.unwrap_err();
    assert!(e.message().contains("(after 1 attempt; not retried"), "{e}");
    assert_eq!((script.calls("insert_one"), script.calls("update_one")), (1, 1));

    proxy.set(Mode::Pass);
    c.update_one(&Filter::eq("_id", "a"), &Update::new().inc("n", 1)).await.unwrap();
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["n"], 1, "incremented once");
    assert_eq!(c.count(&Filter::all()).await.unwrap(), 1, "the cut insert never landed");
}

/// Runs `n` reads at once and returns `(succeeded, refused by the breaker, other errors)`.
async fn burst(c: &CollectionRef, n: usize) -> (usize, usize, usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (c, barrier) = (c.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                c.find_by_id("a").await
            })
        })
        .collect();
    let mut counts = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => counts.0 += 1,
            Err(e) if is_circuit_open(&e) => counts.1 += 1,
            Err(_) => counts.2 += 1,
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_breaker_opens_fails_fast_probes_in_bounded_numbers_and_closes() {
    let (_cluster, proxy, counted, script) = setup().await;
    // Long enough that a burst of callers on a loaded machine ends within one cool-down.
    let cool_down = Duration::from_secs(1);
    let config = BreakerConfig::new()
        .with_failure_threshold(3)
        .with_cool_down(cool_down)
        .with_max_cool_down(cool_down)
        .with_half_open_probes(2);
    let breaker = Arc::new(AroundBackend::new(counted, BreakerLayer::new("postgres", config)));
    let store: Store = breaker.clone();
    let c = items(&store).await;
    let state = || breaker.layer().state();

    // Three failures in a row through the cut open the circuit.
    proxy.set(Mode::Cut);
    for _ in 0..3 {
        let e = c.find_by_id("a").await.unwrap_err();
        assert!(e.kind() == ErrorKind::Unavailable && !is_circuit_open(&e), "{e}");
    }
    assert_eq!(state().circuit, Circuit::Open);
    script.reset_calls();

    // Open: calls fail at once, without reaching the backend.
    for _ in 0..10 {
        let start = Instant::now();
        let e = c.find_by_id("a").await.unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(50), "fails fast: {:?}", start.elapsed());
        assert!(e.message().starts_with("circuit open, retrying in"), "{e}");
    }
    assert_eq!(script.calls("*"), 0);
    let health = store.health().await;
    assert!(!health.healthy && health.message.contains("circuit open"), "{}", health.message);

    // Half-open with the server still cut off: of many callers at once, at most two probes
    // reach the backend; they fail and the circuit opens again. (A cut fails at once, so the
    // first probe may fail and reopen the circuit before a second caller is admitted: one or
    // two probes, never more.)
    tokio::time::sleep(cool_down + Duration::from_millis(100)).await;
    let (ok, refused, failed) = burst(&c, 32).await;
    assert!(ok == 0 && (1..=2).contains(&failed) && refused == 32 - failed, "{:?}", (ok, refused, failed));
    assert_eq!(script.calls("find_by_id") as usize, failed);
    assert_eq!(state().circuit, Circuit::Open);

    // Half-open with the server back behind a slow network: still exactly two probes while
    // they are in flight; their success closes the circuit.
    proxy.set(Mode::Slow(Duration::from_millis(100)));
    script.reset_calls();
    tokio::time::sleep(cool_down + Duration::from_millis(100)).await;
    let (ok, refused, failed) = burst(&c, 32).await;
    assert_eq!((ok, refused, failed), (2, 30, 0));
    assert_eq!(script.calls("find_by_id"), 2);
    assert_eq!(state().circuit, Circuit::Closed);

    proxy.set(Mode::Pass);
    let (ok, refused, failed) = burst(&c, 32).await;
    assert_eq!((ok, refused, failed), (32, 0, 0), "closed: everything goes through");
    let health = store.health().await;
    assert!(health.healthy && health.message.ends_with("; circuit closed"), "{}", health.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_ends_in_unavailable_within_the_timeouts() {
    let (_cluster, proxy, counted, script) = setup().await;
    let c = items(&counted).await;

    // A new connection to a silent server: the pool gives up creating it after the backend's
    // connect timeout (the default 10 s here; DB_CONNECT_TIMEOUT or the URL's connect_timeout).
    proxy.set(Mode::Stall);
    let start = Instant::now();
    let e = open(&PgCluster::url_via(proxy.addr())).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(20), "{took:?}: {e}");

    // An open pooled connection that goes silent: PostgreSQL's statement timeout runs on the
    // server, which never sees the statement; the retry layer's attempt timeout ends it first
    // here, the backend's own deadline (statement + connect timeout, 70 s by default) later.
    let timed = wrap(
        counted.clone(),
        RetryLayer::new(
            RetryConfig::new()
                .with_max_retries(1)
                .with_min_delay(Duration::from_millis(10))
                .with_attempt_timeout(Duration::from_secs(1)),
        ),
    );
    // (A known collection's handle needs no I/O.)
    let tc = timed.collection("items").await.unwrap();
    script.reset_calls();
    let start = Instant::now();
    let e = tc.find_by_id("a").await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("find_by_id got no answer within 1s (after 2 attempts)"), "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(script.calls("find_by_id"), 2);

    // The network comes back: the connections held back answer and work again.
    proxy.set(Mode::Pass);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["n"], 0);
    assert_eq!(tc.count(&Filter::all()).await.unwrap(), 1);
}
