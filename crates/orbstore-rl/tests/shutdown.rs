//! The one shutdown path: a Q-table whose saves go into a write-behind layer loses nothing at
//! shutdown, because `orbstore_core::shutdown::shutdown_all` (what `flush_on_signal` runs) saves
//! the Q-table first and flushes the layer after.

use std::sync::Arc;
use std::time::Duration;

use orbstore_core::{CollectionExt, PersistenceBackend};
use orbstore_layers::{WriteBehindConfig, WriteBehindLayer};
use orbstore_rl::{QTable, SavePolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_saves_the_q_table_then_flushes_the_layer_it_saved_into() {
    let backend: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    // Nothing flushes by itself within the test: only the shutdown path can bring the values down.
    let lazy = WriteBehindConfig {
        max_pending: 100_000,
        max_age: Duration::from_secs(3600),
        debounce: Duration::from_secs(3600),
        ..WriteBehindConfig::default()
    };
    let layer: Arc<dyn PersistenceBackend> = Arc::new(WriteBehindLayer::new(backend.clone(), lazy));
    let never = SavePolicy {
        every_updates: usize::MAX,
        interval: Duration::from_secs(3600),
        debounce: Duration::from_secs(3600),
    };
    let q = QTable::open_with(&*layer, never).await.unwrap();
    for i in 0..50 {
        q.set(&format!("s{i}"), "left", f64::from(i)).await.unwrap();
    }
    let names = backend.list_collections().await.unwrap();
    let stored_before: u64 = {
        let mut n = 0;
        for name in &names {
            n += backend.collection(name).await.unwrap().count_all().await.unwrap();
        }
        n
    };
    assert_eq!(stored_before, 0, "nothing reached the backend before shutdown");
    orbstore_core::shutdown::shutdown_all().await.unwrap();
    let mut stored = 0;
    for name in backend.list_collections().await.unwrap() {
        stored += backend.collection(&name).await.unwrap().count_all().await.unwrap();
    }
    assert!(stored >= 50, "the 50 Q-values reached the backend through the layer: {stored} documents");
    let reopened = QTable::open(&*backend).await.unwrap();
    assert_eq!(reopened.get("s49", "left").map(|e| e.value), Some(49.0));
}
