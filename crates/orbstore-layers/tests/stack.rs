//! The stack `orbstore::from_env()` applies: settings read and checked before anything opens,
//! every layer stacked in order over a backend, and the stack still a correct backend.

use std::sync::Arc;

use orbstore_core::{CollectionExt, ErrorKind, PersistenceBackend};
use orbstore_layers::{Circuit, StackConfig};
use serde_json::json;

fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
}

#[test]
fn bad_settings_name_their_variable() {
    for (var, value) in [
        ("DB_MAX_RETRIES", "many"),
        ("PERSISTENCE_CACHE_SIZE", "-1"),
        ("PERSISTENCE_AUTO_SAVE", "perhaps"),
        ("PERSISTENCE_OFFLINE_MODE", "maybe"),
    ] {
        let e = StackConfig::from_lookup(lookup(&[(var, value)])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{var}: {e}");
        assert!(e.message().contains(var), "{var}: {e}");
    }
}

#[test]
fn only_retry_and_breaker_without_settings() {
    let s = StackConfig::from_lookup(lookup(&[])).unwrap();
    assert!(s.cache.is_none() && s.write_behind.is_none());
    let s = StackConfig::from_lookup(lookup(&[
        ("PERSISTENCE_CACHE_SIZE", "100"),
        ("PERSISTENCE_AUTO_SAVE", "true"),
    ]))
    .unwrap();
    assert_eq!(s.cache.unwrap().capacity, 100);
    assert!(s.write_behind.is_some());
    assert!(s.offline.is_none());
}

#[test]
fn offline_mode_reads_its_directory_and_limit() {
    let s = StackConfig::from_lookup(lookup(&[
        ("PERSISTENCE_OFFLINE_MODE", "true"),
        ("ORB_DATA_DIR", "/srv/agent"),
    ]))
    .unwrap();
    let offline = s.offline.unwrap();
    assert_eq!(offline.journal.dir, std::path::Path::new("/srv/agent/journal/log"));
    assert_eq!(offline.replica_dir, std::path::Path::new("/srv/agent/journal/replica"));
    let s = StackConfig::from_lookup(lookup(&[
        ("PERSISTENCE_OFFLINE_MODE", "1"),
        ("ORB_JOURNAL_DIR", "/j"),
        ("ORB_JOURNAL_MAX_BYTES", "2097152"),
    ]))
    .unwrap();
    let offline = s.offline.unwrap();
    assert_eq!(offline.journal.dir, std::path::Path::new("/j/log"));
    assert_eq!(offline.journal.max_pending_bytes, 2 << 20);
    for bad in ["12", "lots", "-5"] {
        let e = StackConfig::from_lookup(lookup(&[
            ("PERSISTENCE_OFFLINE_MODE", "on"),
            ("ORB_JOURNAL_MAX_BYTES", bad),
        ]))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("ORB_JOURNAL_MAX_BYTES") && e.message().contains(bad), "{e}");
    }
    let s = StackConfig::from_lookup(lookup(&[
        ("PERSISTENCE_OFFLINE_MODE", "off"),
        ("ORB_JOURNAL_MAX_BYTES", "x"),
    ]));
    assert!(s.unwrap().offline.is_none(), "the journal's settings are read only when it is on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_needs_its_local_store_and_reports_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("j");
    let vars = [("PERSISTENCE_OFFLINE_MODE", "true"), ("ORB_JOURNAL_DIR", journal_dir.to_str().unwrap())];
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let e = StackConfig::from_lookup(lookup(&vars)).unwrap().open(inner.clone(), None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let local: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let stacked =
        StackConfig::from_lookup(lookup(&vars)).unwrap().open(inner.clone(), Some(local)).await.unwrap();
    let journal = stacked.journal.clone().expect("the journal is in the stack");
    let c = stacked.store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    let status = journal.sync_now(std::time::Duration::from_secs(10)).await.unwrap();
    assert!(status.synced, "{status}");
    assert_eq!(status.circuit, Some(Circuit::Closed.as_str()));
    assert!(status.to_string().contains("server: circuit closed"), "{status}");
    let below = inner.collection("t").await.unwrap();
    assert_eq!(below.find_by_id("a").await.unwrap().unwrap()["n"], json!(1));
    assert!(journal_dir.join("log").is_dir(), "the journal files live in $ORB_JOURNAL_DIR/log");
    stacked.store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_stack_reads_its_writes_and_flushes_them_to_the_backend() {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let settings = StackConfig::from_lookup(lookup(&[
        ("PERSISTENCE_CACHE_SIZE", "100"),
        ("PERSISTENCE_AUTO_SAVE", "true"),
    ]))
    .unwrap();
    let stacked = settings.open(inner.clone(), None).await.unwrap();
    assert!(stacked.journal.is_none());
    let store = stacked.store;
    assert_eq!(store.kind(), "memory");
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["n"], json!(1));
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["n"], json!(1), "a cached read");
    c.delete_by_id("a").await.unwrap();
    assert!(c.find_by_id("a").await.unwrap().is_none(), "the delete invalidated the cache");
    c.insert_value(json!({"_id": "b"})).await.unwrap();
    store.flush().await.unwrap();
    let below = inner.collection("t").await.unwrap();
    assert_eq!(below.find_all().await.unwrap(), vec![json!({"_id": "b"}).as_object().unwrap().clone()]);
    store.close().await.unwrap();
}
