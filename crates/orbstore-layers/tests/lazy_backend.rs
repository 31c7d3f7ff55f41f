//! `LazyBackend`: the whole conformance suite through it (over the memory backend), and its
//! opening: failed opens are retried by the next operation, concurrent operations share one
//! open, the error of a failed open is what the operation returns, a closed one never reopens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orbstore_core::{CollectionExt, Error, ErrorKind, PersistenceBackend};
use orbstore_layers::{LazyBackend, Opener};
use orbstore_testkit::{Fixture, FnFactory, Skip};
use serde_json::json;

fn opener_of(backend: Arc<dyn PersistenceBackend>) -> Opener {
    Arc::new(move || {
        let backend = backend.clone();
        Box::pin(async move { Ok(backend) })
    })
}

async fn fixture() -> Result<Fixture, Skip> {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let lazy = LazyBackend::new("memory", opener_of(inner));
    // Opened first: before its open, a lazy backend promises no capabilities (tested below), and
    // the suite reads them before its first operation.
    assert!(lazy.health().await.healthy);
    Ok(Fixture::new(Arc::new(lazy)))
}

orbstore_testkit::conformance_suite!(FnFactory(fixture));

/// Fails the first `failures` opens with `Unavailable`, then opens `backend`; counts attempts.
fn flaky(backend: Arc<dyn PersistenceBackend>, failures: usize, attempts: Arc<AtomicUsize>) -> Opener {
    Arc::new(move || {
        let backend = backend.clone();
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if n < failures {
                Err(Error::unavailable(format!("connection refused (attempt {})", n + 1)))
            } else {
                Ok(backend)
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_open_is_retried_by_the_next_operation() {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    let lazy = LazyBackend::new("postgres", flaky(inner.clone(), 2, attempts.clone()));
    assert_eq!(lazy.kind(), "postgres", "the configured kind before it opens");
    assert!(!lazy.is_open() && !lazy.capabilities().transactions);
    for n in 1..=2 {
        let e = lazy.collection("t").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains(&format!("attempt {n}")), "{e}");
    }
    let health = lazy.health().await;
    assert!(health.healthy, "the third open succeeds: {}", health.message);
    assert!(lazy.is_open());
    assert_eq!(lazy.kind(), "memory", "the opened backend's kind");
    assert!(lazy.capabilities().transactions, "the opened backend's capabilities");
    lazy.collection("t").await.unwrap().insert_value(json!({"_id": "a"})).await.unwrap();
    assert_eq!(inner.collection("t").await.unwrap().count_all().await.unwrap(), 1);
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "no open after the one that succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_operations_share_one_open() {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    let lazy = Arc::new(LazyBackend::new("memory", flaky(inner, 0, attempts.clone())));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let lazy = lazy.clone();
            tokio::spawn(async move { lazy.list_collections().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unhealthy_until_open_and_closed_for_good() {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    let lazy = LazyBackend::new("postgres", flaky(inner, usize::MAX, attempts.clone()));
    let health = lazy.health().await;
    assert!(!health.healthy && health.message.contains("not open yet"), "{}", health.message);
    lazy.flush().await.expect("nothing to flush before the open");
    lazy.close().await.unwrap();
    let before = attempts.load(Ordering::SeqCst);
    let e = lazy.collection("t").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(attempts.load(Ordering::SeqCst), before, "a closed backend is never opened");
}
