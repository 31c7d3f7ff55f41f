//! What the retry layer retries and what it does not, on a scripted memory backend: only
//! `Unavailable`, only idempotent operations outside transactions, never a circuit refusal; the
//! final error keeps its kind, counts the attempts and keeps the last error as its source; and
//! `retry_transaction` re-runs the whole body on `Aborted`. Guards against a retry that doubles a
//! write or hides a real error.

#[path = "common/faults.rs"]
mod faults;

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{scripted_memory, wrap, Script};
use orbstore_core::{CollectionExt, Error, ErrorKind, Filter, PersistenceBackend, Update};
use orbstore_layers::{
    retry_transaction, AroundBackend, BreakerConfig, BreakerLayer, RetryConfig, RetryLayer,
};
use serde_json::json;

fn fast() -> RetryConfig {
    RetryConfig::new().with_min_delay(Duration::from_millis(1)).with_max_delay(Duration::from_millis(5))
}

/// A retrying store over a scripted memory backend, with one collection `c` holding `{_id: "a"}`.
async fn setup(config: RetryConfig) -> (Arc<dyn PersistenceBackend>, orbstore_core::CollectionRef, Script) {
    let (inner, script) = scripted_memory();
    let store = wrap(inner, RetryLayer::new(config));
    let c = store.collection("c").await.unwrap();
    c.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    script.reset_calls();
    (store, c, script)
}

#[tokio::test]
async fn a_read_is_retried_through_unavailable_until_it_succeeds() {
    let (_store, c, script) = setup(fast()).await;
    script.fail_next("find_by_id", &[ErrorKind::Unavailable, ErrorKind::Unavailable]);
    let doc = c.find_by_id("a").await.unwrap().unwrap();
    assert_eq!(doc["n"], 1);
    assert_eq!(script.calls("find_by_id"), 3);
}

#[tokio::test]
async fn the_final_error_keeps_its_kind_counts_attempts_and_keeps_the_source() {
    let (_store, c, script) = setup(fast()).await;
    script.fail_always("count", ErrorKind::Unavailable);
    let e = c.count(&Filter::all()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().ends_with("(after 4 attempts)"), "{e}");
    assert_eq!(e.source().unwrap().to_string(), "unavailable: count: injected unavailable");
    assert_eq!(script.calls("count"), 4, "default: 3 retries");
}

#[tokio::test]
async fn zero_retries_means_one_attempt() {
    let (_store, c, script) = setup(fast().with_max_retries(0)).await;
    script.fail_always("find", ErrorKind::Unavailable);
    let e = c.find_all().await.unwrap_err();
    assert!(e.message().ends_with("(after 1 attempt)"), "{e}");
    assert_eq!(script.calls("find"), 1);
}

#[tokio::test]
async fn writes_that_are_not_idempotent_are_tried_once() {
    let (store, c, script) = setup(fast()).await;
    let by_id = Filter::eq("_id", "a");
    let inc = Update::new().inc("n", 1);
    script.fail_always("*", ErrorKind::Unavailable);
    let results: Vec<(&str, Error)> = vec![
        ("insert_one", c.insert_value(json!({"_id": "b"})).await.unwrap_err()),
        ("insert_many", c.insert_many(vec![]).await.unwrap_err()),
        ("upsert", c.upsert(orbstore_core::to_document(json!({"_id": "a"})).unwrap()).await.unwrap_err()),
        ("update_one", c.update_one(&by_id, &inc).await.unwrap_err()),
        ("update_many", c.update_many(&by_id, &inc).await.unwrap_err()),
        ("delete_one", c.delete_one(&by_id).await.unwrap_err()),
        ("delete_many", c.delete_many(&by_id).await.unwrap_err()),
        ("drop_collection", store.drop_collection("c").await.unwrap_err()),
    ];
    for (op, e) in results {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{op}");
        assert!(
            e.message().ends_with("(after 1 attempt; not retried: the first attempt may have been applied)"),
            "{op}: {e}"
        );
        assert_eq!(script.calls(op), 1, "{op}");
    }
}

#[tokio::test]
async fn errors_other_than_unavailable_are_never_retried_nor_changed() {
    let (_store, c, script) = setup(fast()).await;
    for kind in [
        ErrorKind::InvalidInput,
        ErrorKind::Conflict,
        ErrorKind::NotFound,
        ErrorKind::Unsupported,
        ErrorKind::Aborted,
        ErrorKind::Corrupt,
        ErrorKind::Io,
        ErrorKind::Backend,
    ] {
        script.reset_calls();
        script.fail_next("find_by_id", &[kind]);
        let e = c.find_by_id("a").await.unwrap_err();
        assert_eq!(e.kind(), kind);
        assert_eq!(e.message(), "find_by_id: injected ".to_owned() + &kind.to_string(), "unchanged");
        assert_eq!(script.calls("find_by_id"), 1, "{kind}");
    }
}

#[tokio::test]
async fn a_different_error_after_retries_keeps_its_kind_and_the_count() {
    let (_store, c, script) = setup(fast()).await;
    script.fail_next("find_by_id", &[ErrorKind::Unavailable, ErrorKind::NotFound]);
    let e = c.find_by_id("a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().ends_with("(after 2 attempts)"), "{e}");
}

#[tokio::test]
async fn nothing_inside_a_transaction_is_retried_but_begin_is() {
    let (store, _c, script) = setup(fast()).await;
    script.fail_next("begin", &[ErrorKind::Unavailable]);
    let tx = store.begin().await.unwrap();
    assert_eq!(script.calls("begin"), 2);
    let c = tx.collection("c").await.unwrap();
    script.fail_next("find_by_id", &[ErrorKind::Unavailable]);
    let e = c.find_by_id("a").await.unwrap_err();
    assert!(e.message().ends_with("(after 1 attempt; not retried inside a transaction)"), "{e}");
    assert_eq!(script.calls("find_by_id"), 1);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn delays_grow_exponentially() {
    let config =
        RetryConfig::new().with_min_delay(Duration::from_millis(20)).with_max_delay(Duration::from_secs(1));
    let (_store, c, script) = setup(config).await;
    script.fail_always("count", ErrorKind::Unavailable);
    let start = Instant::now();
    c.count(&Filter::all()).await.unwrap_err();
    // 20 + 40 + 80 ms before jitter; jitter only adds.
    assert!(start.elapsed() >= Duration::from_millis(140), "{:?}", start.elapsed());
}

#[tokio::test]
async fn an_attempt_timeout_ends_a_silent_call_with_unavailable() {
    let (_store, c, script) =
        setup(fast().with_max_retries(1).with_attempt_timeout(Duration::from_millis(50))).await;
    script.delay(Some(Duration::from_secs(3600)));
    let start = Instant::now();
    let e = c.find_by_id("a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("find_by_id got no answer within 50ms"), "{e}");
    assert!(e.message().ends_with("(after 2 attempts)"), "{e}");
    assert_eq!(script.calls("find_by_id"), 2);
    let e = c.insert_value(json!({"x": 1})).await.unwrap_err();
    assert!(e.message().contains("its outcome is unknown (after 1 attempt; not retried"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(60), "ended by the timeout, not the hour");
}

#[tokio::test]
async fn a_circuit_refusal_is_not_retried() {
    let (inner, script) = scripted_memory();
    let breaker = Arc::new(AroundBackend::new(
        inner,
        BreakerLayer::new("memory", BreakerConfig::new().with_failure_threshold(1)),
    ));
    let store = wrap(breaker.clone(), RetryLayer::new(fast()));
    let c = store.collection("c").await.unwrap();
    script.fail_always("*", ErrorKind::Unavailable);
    // The first attempt opens the circuit; the retry is refused by it and returned as it is.
    let e = c.find_by_id("a").await.unwrap_err();
    assert!(e.message().starts_with("circuit open, retrying in"), "{e}");
    assert!(orbstore_layers::breaker::is_circuit_open(&e));
    assert_eq!(script.calls("find_by_id"), 1);
    let e = c.find_by_id("a").await.unwrap_err();
    assert!(e.message().starts_with("circuit open"), "{e}");
    assert_eq!(script.calls("find_by_id"), 1, "refused without reaching the backend");
}

#[test]
fn max_retries_comes_from_db_max_retries() {
    let from = |v: Option<&str>| {
        RetryConfig::from_lookup(|k| (k == "DB_MAX_RETRIES").then(|| v.map(str::to_owned)).flatten())
    };
    assert_eq!(from(None).unwrap().max_retries, 3);
    assert_eq!(from(Some("")).unwrap().max_retries, 3, "empty counts as unset");
    assert_eq!(from(Some("5")).unwrap().max_retries, 5);
    assert_eq!(from(Some(" 0 ")).unwrap().max_retries, 0);
    assert_eq!(from(Some("100")).unwrap().max_retries, 100);
    for bad in ["-1", "three", "2.5", "101"] {
        let e = from(Some(bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let m = e.to_string();
        assert!(m.contains("DB_MAX_RETRIES") && m.contains(&format!("{bad:?}")), "{m}");
    }
}

/// A store with `acc` holding `{_id: "a", n: 0}`, and its script.
async fn tx_setup() -> (Arc<dyn PersistenceBackend>, Script) {
    let (store, script) = scripted_memory();
    store.collection("acc").await.unwrap().insert_value(json!({"_id": "a", "n": 0})).await.unwrap();
    script.reset_calls();
    (store, script)
}

async fn increment(tx: &dyn orbstore_core::Transaction) -> orbstore_core::Result<u64> {
    let c = tx.collection("acc").await?;
    c.update_one(&Filter::eq("_id", "a"), &Update::new().inc("n", 1)).await
}

async fn counter(store: &Arc<dyn PersistenceBackend>) -> serde_json::Value {
    store.collection("acc").await.unwrap().find_by_id("a").await.unwrap().unwrap()["n"].clone()
}

#[tokio::test]
async fn retry_transaction_re_runs_the_body_after_aborted_commits_and_statements() {
    let (store, script) = tx_setup().await;
    script.fail_next("commit", &[ErrorKind::Aborted, ErrorKind::Aborted]);
    script.fail_next("update_one", &[ErrorKind::Aborted]);
    let mut runs = 0;
    let n = retry_transaction(&*store, 5, |tx| {
        runs += 1;
        Box::pin(increment(tx))
    })
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(runs, 4, "one statement abort, two commit aborts, then success");
    assert_eq!(counter(&store).await, 1, "applied once");
}

#[tokio::test]
async fn retry_transaction_re_runs_when_begin_is_unavailable_only() {
    let (store, script) = tx_setup().await;
    script.fail_next("begin", &[ErrorKind::Unavailable]);
    retry_transaction(&*store, 5, |tx| Box::pin(increment(tx))).await.unwrap();
    assert_eq!(script.calls("begin"), 2);

    // Unavailable at commit: the commit may have landed, so the body is not run again.
    script.reset_calls();
    script.fail_next("commit", &[ErrorKind::Unavailable]);
    let e = retry_transaction(&*store, 5, |tx| Box::pin(increment(tx))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(script.calls("begin"), 1);

    // Nor from the body, which may have done things outside the transaction.
    script.reset_calls();
    script.fail_next("update_one", &[ErrorKind::Unavailable]);
    retry_transaction(&*store, 5, |tx| Box::pin(increment(tx))).await.unwrap_err();
    assert_eq!(script.calls("begin"), 1);
    assert_eq!(counter(&store).await, 1, "only the first transaction committed");
}

#[tokio::test]
async fn retry_transaction_stops_on_other_errors_and_after_max_retries() {
    let (store, script) = tx_setup().await;
    script.fail_next("update_one", &[ErrorKind::Conflict]);
    let e = retry_transaction(&*store, 5, |tx| Box::pin(increment(tx))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.message(), "update_one: injected conflict", "unchanged");
    assert_eq!(script.calls("begin"), 1);

    script.reset_calls();
    script.fail_always("commit", ErrorKind::Aborted);
    let e = retry_transaction(&*store, 2, |tx| Box::pin(increment(tx))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Aborted);
    assert!(e.message().ends_with("(after 3 attempts)"), "{e}");
    assert_eq!(script.calls("begin"), 3);
    assert_eq!(counter(&store).await, 0, "nothing committed");
}
