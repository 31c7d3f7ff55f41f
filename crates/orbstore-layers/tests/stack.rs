//! The stack `orbstore::from_env()` applies: settings read and checked before anything opens,
//! every layer stacked in order over a backend, and the stack still a correct backend.

use std::sync::Arc;

use orbstore_core::{CollectionExt, ErrorKind, PersistenceBackend};
use orbstore_layers::StackConfig;
use serde_json::json;

fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
}

#[test]
fn bad_settings_name_their_variable() {
    for (var, value) in
        [("DB_MAX_RETRIES", "many"), ("PERSISTENCE_CACHE_SIZE", "-1"), ("PERSISTENCE_AUTO_SAVE", "perhaps")]
    {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_stack_reads_its_writes_and_flushes_them_to_the_backend() {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let settings = StackConfig::from_lookup(lookup(&[
        ("PERSISTENCE_CACHE_SIZE", "100"),
        ("PERSISTENCE_AUTO_SAVE", "true"),
    ]))
    .unwrap();
    let store = settings.apply(inner.clone());
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
