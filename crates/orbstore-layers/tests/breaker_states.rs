//! The circuit breaker's states on a scripted memory backend: it opens after the configured run
//! of `Unavailable` failures (other errors reset the run), refuses at once while open, lets a
//! bounded number of probes through when half-open also under many concurrent callers, closes
//! on a probe's success, re-opens with a longer cool-down on a probe's failure, frees the slot of
//! a probe its caller gave up on, and shows all of it in `state()` and `health()`. Guards
//! against a breaker that never opens, never closes, or lets a probe storm through.

#[path = "common/faults.rs"]
mod faults;

use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{scripted_memory, Script};
use orbstore_core::{CollectionRef, ErrorKind, PersistenceBackend};
use orbstore_layers::breaker::is_circuit_open;
use orbstore_layers::{AroundBackend, BreakerConfig, BreakerLayer, Circuit};

type Breaker = Arc<AroundBackend<BreakerLayer>>;

async fn setup(config: BreakerConfig) -> (Breaker, CollectionRef, Script) {
    let (inner, script) = scripted_memory();
    let store = Arc::new(AroundBackend::new(inner, BreakerLayer::new("memory", config)));
    let c = store.collection("c").await.unwrap();
    script.reset_calls();
    (store, c, script)
}

fn config() -> BreakerConfig {
    BreakerConfig::new().with_failure_threshold(3).with_cool_down(Duration::from_millis(100))
}

async fn fail_times(c: &CollectionRef, n: u32) {
    for _ in 0..n {
        let e = c.find_by_id("a").await.unwrap_err();
        assert!(!is_circuit_open(&e), "{e}");
    }
}

#[tokio::test]
async fn opens_after_the_threshold_and_refuses_without_reaching_the_backend() {
    let (store, c, script) = setup(config()).await;
    script.fail_always("*", ErrorKind::Unavailable);
    fail_times(&c, 2).await;
    assert_eq!(store.layer().state().circuit, Circuit::Closed);
    assert_eq!(store.layer().state().consecutive_failures, 2);
    fail_times(&c, 1).await;
    let state = store.layer().state();
    assert_eq!(state.circuit, Circuit::Open);
    assert_eq!(state.consecutive_failures, 3);
    assert!(state.opened_at.is_some() && state.retry_in.unwrap() <= Duration::from_millis(100));
    assert_eq!(state.times_opened, 1);

    let start = Instant::now();
    let e = c.find_by_id("a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().starts_with("circuit open, retrying in "), "{e}");
    assert!(e.message().ends_with("(opened after 3 consecutive Unavailable errors)"), "{e}");
    assert!(is_circuit_open(&e));
    assert!(start.elapsed() < Duration::from_millis(50));
    // Every kind of operation is refused, writes and transactions too.
    assert!(store.begin().await.is_err());
    assert!(c.insert_one(Default::default()).await.is_err());
    assert_eq!(script.calls("*"), 3, "only the three failures reached the backend");
}

#[tokio::test]
async fn other_errors_and_successes_reset_the_run() {
    let (store, c, script) = setup(config()).await;
    script.fail_next("*", &[ErrorKind::Unavailable, ErrorKind::Unavailable, ErrorKind::Conflict]);
    script.fail_next("*", &[ErrorKind::Unavailable, ErrorKind::Unavailable]);
    fail_times(&c, 5).await;
    assert_eq!(store.layer().state().circuit, Circuit::Closed);
    assert_eq!(store.layer().state().consecutive_failures, 2);
    c.find_by_id("a").await.unwrap();
    assert_eq!(store.layer().state().consecutive_failures, 0);
}

#[tokio::test]
async fn a_probe_after_the_cool_down_closes_the_circuit_on_success() {
    let (store, c, script) = setup(config()).await;
    script.fail_always("*", ErrorKind::Unavailable);
    fail_times(&c, 3).await;
    script.heal();
    assert!(c.find_by_id("a").await.is_err(), "still cooling down");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.find_by_id("a").await.unwrap(), None, "the probe went through");
    let state = store.layer().state();
    assert_eq!(state.circuit, Circuit::Closed);
    assert_eq!((state.consecutive_failures, state.opened_at), (0, None));
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again_for_longer() {
    let config = config().with_max_cool_down(Duration::from_secs(10));
    let (store, c, script) = setup(config).await;
    script.fail_always("*", ErrorKind::Unavailable);
    fail_times(&c, 3).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let e = c.find_by_id("a").await.unwrap_err();
    assert!(!is_circuit_open(&e), "the probe reached the backend: {e}");
    let state = store.layer().state();
    assert_eq!(state.circuit, Circuit::Open);
    assert_eq!(state.times_opened, 2);
    assert!(state.retry_in.unwrap() > Duration::from_millis(150), "doubled: {:?}", state.retry_in);
    assert_eq!(script.calls("find_by_id"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_lets_exactly_the_configured_probes_through_many_callers() {
    let (store, c, script) = setup(config().with_half_open_probes(2)).await;
    script.fail_always("*", ErrorKind::Unavailable);
    fail_times(&c, 3).await;
    script.heal();
    // Slow probes, so that every caller arrives while they are in flight.
    script.delay(Some(Duration::from_millis(300)));
    script.reset_calls();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (c, barrier) = (c.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                c.find_by_id("a").await
            })
        })
        .collect();
    let mut passed = 0;
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => passed += 1,
            Err(e) if is_circuit_open(&e) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((passed, refused), (2, 48));
    assert_eq!(script.calls("find_by_id"), 2, "two probes reached the backend");
    assert_eq!(store.layer().state().circuit, Circuit::Closed);
}

#[tokio::test]
async fn a_probe_whose_caller_gave_up_frees_its_slot() {
    let (store, c, script) = setup(config()).await;
    script.fail_always("*", ErrorKind::Unavailable);
    fail_times(&c, 3).await;
    script.heal();
    script.delay(Some(Duration::from_secs(3600)));
    tokio::time::sleep(Duration::from_millis(120)).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(50), c.find_by_id("a")).await;
    assert!(gave_up.is_err(), "the probe hangs");
    assert_eq!(store.layer().state().circuit, Circuit::HalfOpen);
    assert_eq!(store.layer().state().probes_in_flight, 0, "its slot is free again");
    script.delay(None);
    c.find_by_id("a").await.unwrap();
    assert_eq!(store.layer().state().circuit, Circuit::Closed);
}

#[tokio::test]
async fn health_shows_the_circuit_and_is_unhealthy_while_open() {
    let (store, c, script) = setup(config()).await;
    let report = store.health().await;
    assert!(report.healthy);
    assert!(report.message.ends_with("; circuit closed"), "{}", report.message);
    script.fail_always("*", ErrorKind::Unavailable);
    fail_times(&c, 3).await;
    let report = store.health().await;
    assert!(!report.healthy, "the inner backend answers, but operations are refused");
    assert!(report.message.contains("; circuit open for "), "{}", report.message);
    assert!(report.message.contains("after 3 consecutive failures, retrying in"), "{}", report.message);
    let state = store.layer().state().to_string();
    assert!(state.starts_with("circuit open"), "{state}");
}
