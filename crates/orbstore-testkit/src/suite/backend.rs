//! `PersistenceBackend`: collections, names, health, stats, flush, close.

use orbstore_core::{CollectionExt, ErrorKind, Filter};
use serde_json::json;

use crate::support::*;

/// "`compact()` keeps every document and index as it was" (or is `Unsupported`, saying which
/// backend), after inserts, overwrites and deletes that leave space to reclaim.
pub async fn compact_keeps_every_document_and_index(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("compacted").await;
    c.create_index(orbstore_core::IndexSpec::new(["n"]).named("by_n")).await.unwrap();
    for i in 0..60 {
        c.insert_value(json!({"_id": format!("d{i:02}"), "n": i, "pad": "x".repeat(200)})).await.unwrap();
    }
    c.update_many(&Filter::lt("n", 30), &orbstore_core::Update::new().set("pad", "y")).await.unwrap();
    c.delete_many(&Filter::gte("n", 45)).await.unwrap();
    let before = c.find_all().await.unwrap();
    let indexes = c.list_indexes().await.unwrap();
    match fx.backend().compact().await {
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            assert!(e.message().contains("compaction"), "Unsupported must say what: {e}");
        }
        Err(e) => panic!("compact failed: {e}"),
        Ok(report) => {
            assert!(!report.actions.is_empty(), "a report says what was done");
            assert_eq!(c.find_all().await.unwrap(), before, "documents unchanged by compaction");
            assert_eq!(c.list_indexes().await.unwrap(), indexes);
            assert_eq!(c.count(&Filter::eq("n", 10)).await.unwrap(), 1, "the index still answers");
            c.insert_value(json!({"_id": "after", "n": 99})).await.unwrap();
            assert_eq!(c.count_all().await.unwrap(), 46, "writes go on after compaction");
        }
    }
    fx.teardown().await;
}

/// "after `collection(name)` returns, the collection is listed" and "names are sorted".
pub async fn collection_is_listed_after_open_sorted(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    for n in ["zeta", "alpha", "mid_1"] {
        fx.coll(n).await;
    }
    let names = fx.backend().list_collections().await.unwrap();
    assert_eq!(names, ["alpha", "mid_1", "zeta"]);
    fx.teardown().await;
}

/// "an invalid name is `InvalidInput` before any I/O", for every method taking a name.
pub async fn invalid_collection_names_are_refused(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    for bad in [
        "",
        "Upper",
        "1abc",
        "_x",
        "a-b",
        "a.b",
        "a b",
        "naïve",
        "x'; DROP TABLE t; --",
        "a\0b",
        &"a".repeat(64),
    ] {
        let m = assert_kind(fx.backend().collection(bad).await, ErrorKind::InvalidInput);
        assert!(m.contains("collection name"), "{m}");
        assert_kind(fx.backend().drop_collection(bad).await, ErrorKind::InvalidInput);
    }
    assert!(fx.backend().list_collections().await.unwrap().is_empty());
    fx.teardown().await;
}

/// "the longest valid name (63 bytes) works".
pub async fn longest_collection_name_works(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let name = format!("a{}", "b".repeat(62));
    let c = fx.coll(&name).await;
    c.insert_value(json!({"_id": "x"})).await.unwrap();
    assert_eq!(c.count_all().await.unwrap(), 1);
    fx.teardown().await;
}

/// "`drop_collection` returns true when it existed" and removes its documents.
pub async fn drop_collection_returns_true_and_removes_documents(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "a"})).await.unwrap();
    assert!(fx.backend().drop_collection("t").await.unwrap());
    assert!(!fx.backend().list_collections().await.unwrap().contains(&"t".to_owned()));
    let again = fx.coll("t").await;
    assert_eq!(again.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// "`drop_collection` returns false when the collection did not exist".
pub async fn drop_missing_collection_returns_false(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    assert!(!fx.backend().drop_collection("never_made").await.unwrap());
    fx.teardown().await;
}

/// "a handle kept after its collection was dropped reads an empty collection, and a write
/// through it creates the collection again".
pub async fn handle_after_drop_reads_empty_and_write_recreates(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "a"})).await.unwrap();
    fx.backend().drop_collection("t").await.unwrap();
    assert_eq!(c.count_all().await.unwrap(), 0);
    assert!(c.find_by_id("a").await.unwrap().is_none());
    c.insert_value(json!({"_id": "b"})).await.unwrap();
    assert!(fx.backend().list_collections().await.unwrap().contains(&"t".to_owned()));
    assert_eq!(ids(&c.find_all().await.unwrap()), ["b"]);
    fx.teardown().await;
}

/// Collections are independent: the same `_id` may exist in two of them.
pub async fn collections_are_independent(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let a = fx.coll("a").await;
    let b = fx.coll("b").await;
    a.insert_value(json!({"_id": "x", "from": "a"})).await.unwrap();
    b.insert_value(json!({"_id": "x", "from": "b"})).await.unwrap();
    assert_eq!(a.find_by_id("x").await.unwrap().unwrap()["from"], "a");
    assert_eq!(b.find_by_id("x").await.unwrap().unwrap()["from"], "b");
    b.delete_many(&Filter::All).await.unwrap();
    assert_eq!(a.count_all().await.unwrap(), 1);
    fx.teardown().await;
}

/// "`health()` checks with a real request and reports latency".
pub async fn health_is_healthy_with_message(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let h = fx.backend().health().await;
    assert!(h.healthy, "{h:?}");
    assert!(!h.message.is_empty());
    assert!(h.latency < std::time::Duration::from_secs(60), "{h:?}");
    fx.teardown().await;
}

/// "`stats()` gives counts per collection, sorted by name".
pub async fn stats_count_documents_per_collection(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let a = fx.coll("b_second").await;
    let b = fx.coll("a_first").await;
    a.insert_many(docs(json!([{"_id": "1"}, {"_id": "2"}, {"_id": "3"}]))).await.unwrap();
    b.insert_value(json!({"_id": "1"})).await.unwrap();
    let s = fx.backend().stats().await.unwrap();
    let got: Vec<(String, u64)> = s.collections.iter().map(|c| (c.name.clone(), c.documents)).collect();
    assert_eq!(got, [("a_first".to_owned(), 1), ("b_second".to_owned(), 3)]);
    assert_eq!(s.total_documents(), 4);
    assert_eq!(s.backend, fx.backend().kind());
    fx.teardown().await;
}

/// "`flush()` returns once acknowledged writes are as durable as the backend can make them";
/// the data is still readable after it.
pub async fn flush_keeps_data_readable(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "a", "v": 1})).await.unwrap();
    fx.backend().flush().await.unwrap();
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["v"], 1);
    fx.teardown().await;
}

/// "every later operation fails with `InvalidInput`; closing twice is fine".
pub async fn operations_after_close_fail_and_close_twice_is_fine(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    fx.backend().close().await.unwrap();
    fx.backend().close().await.unwrap();
    assert_kind(c.insert_value(json!({"a": 1})).await, ErrorKind::InvalidInput);
    assert_kind(c.count_all().await, ErrorKind::InvalidInput);
    assert_kind(fx.backend().collection("t").await, ErrorKind::InvalidInput);
    assert_kind(fx.backend().list_collections().await, ErrorKind::InvalidInput);
    assert!(!fx.backend().health().await.healthy);
    fx.teardown().await;
}

/// Capabilities are internally consistent: isolation implies transactions.
pub async fn capabilities_are_consistent(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let caps = fx.backend().capabilities();
    assert!(!caps.isolated_transactions || caps.transactions, "{caps:?}");
    assert!(!caps.durable_flush || caps.persistent, "{caps:?}");
    fx.teardown().await;
}
