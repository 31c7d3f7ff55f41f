//! `cleanup` on the memory backend: nothing to find, in either mode, and nothing changed.

use orbstore_core::{CollectionExt, IndexSpec, PersistenceBackend};
use orbstore_memory::MemoryBackend;
use serde_json::json;

#[tokio::test]
async fn cleanup_finds_nothing_and_changes_nothing() {
    let store = MemoryBackend::new();
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "1"})).await.unwrap();
    c.create_index(IndexSpec::new(["a"])).await.unwrap();
    for apply in [false, true] {
        let r = store.cleanup(apply).await.unwrap();
        assert_eq!((r.backend.as_str(), r.applied, r.orphans.len()), ("memory", apply, 0));
        assert!(!r.notes.is_empty());
    }
    assert_eq!(store.list_collections().await.unwrap(), ["t"]);
    assert_eq!(c.list_indexes().await.unwrap(), vec![IndexSpec::new(["a"])]);
    store.close().await.unwrap();
    assert!(store.cleanup(false).await.is_err());
}
