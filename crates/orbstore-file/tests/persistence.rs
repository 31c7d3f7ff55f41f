//! Everything written is there after close and reopen: documents, indexes, transactions,
//! drops, compactions; and dropping the backend without closing flushes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use orbstore_core::{CollectionExt, ErrorKind, FileSync, Filter, IndexSpec, PersistenceBackend, Update};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (before_users, before_log) = {
        let store = open(dir.path(), FileSync::Always).await;
        let users = store.collection("users").await.unwrap();
        users.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
        users
            .insert_many(vec![
                doc(json!({"_id": "a", "email": "a@x", "n": 1})),
                doc(json!({"_id": "b", "email": "b@x"})),
            ])
            .await
            .unwrap();
        users.upsert(doc(json!({"_id": "c", "email": "c@x", "n": 3}))).await.unwrap();
        users.update_by_id("a", &Update::new().inc("n", 41).set("tags", json!(["x"]))).await.unwrap();
        users.delete_by_id("b").await.unwrap();
        let tx = store.begin().await.unwrap();
        tx.collection("users")
            .await
            .unwrap()
            .insert_value(json!({"_id": "t", "email": "t@x"}))
            .await
            .unwrap();
        tx.collection("log").await.unwrap().insert_value(json!({"_id": "l1", "what": "tx"})).await.unwrap();
        tx.commit().await.unwrap();
        let tx = store.begin().await.unwrap();
        tx.collection("users")
            .await
            .unwrap()
            .insert_value(json!({"_id": "rolled", "email": "r@x"}))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        store.collection("gone").await.unwrap().insert_value(json!({"_id": "g"})).await.unwrap();
        assert!(store.drop_collection("gone").await.unwrap());
        let snapshot = (all(&store, "users").await, all(&store, "log").await);
        store.close().await.unwrap();
        snapshot
    };
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(store.list_collections().await.unwrap(), ["log", "users"]);
    assert_eq!(all(&store, "users").await, before_users);
    assert_eq!(all(&store, "log").await, before_log);
    assert_eq!(before_users.len(), 3);
    let users = store.collection("users").await.unwrap();
    assert_eq!(users.list_indexes().await.unwrap(), [IndexSpec::new(["email"]).unique()]);
    let e = users.insert_value(json!({"email": "a@x"})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "the unique index is enforced after reopen");
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_rewrites_the_snapshot_and_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FileSync::Never).await;
    let c = store.collection("t").await.unwrap();
    for i in 0..500 {
        c.upsert(doc(json!({"_id": format!("{:03}", i % 100), "v": i}))).await.unwrap();
    }
    let log = dir.path().join("t.log");
    let before = std::fs::metadata(&log).unwrap().len();
    store.compact_collection("t").await.unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    assert!(before > 0);
    assert!(dir.path().join("t.json").exists());
    assert!(!dir.path().join("t.log.old").exists());
    c.update_many(&Filter::lt("_id", "010"), &Update::new().set("after", true)).await.unwrap();
    let expected = all(&store, "t").await;
    store.close().await.unwrap();
    let store = open(dir.path(), FileSync::Never).await;
    assert_eq!(all(&store, "t").await, expected);
    assert_eq!(expected.len(), 100);
    assert_eq!(expected[99]["v"], 499);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_backend_flushes_debounced_writes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), FileSync::Debounced(Duration::from_secs(3600))).await;
        let c = store.collection("t").await.unwrap();
        c.insert_value(json!({"_id": "pending"})).await.unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("t.log")).unwrap().len(), 0, "still pending");
        drop(c);
        drop(store);
    }
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "t").await, vec![doc(json!({"_id": "pending"}))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debounced_writes_reach_the_disk_after_the_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FileSync::Debounced(Duration::from_millis(50))).await;
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "x"})).await.unwrap();
    let log = dir.path().join("t.log");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    let mut waited = Duration::ZERO;
    while std::fs::metadata(&log).unwrap().len() == 0 {
        assert!(waited < Duration::from_secs(10), "the debounce never flushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pending_writes_flush_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FileSync::Debounced(Duration::from_secs(3600))).await;
    let c = store.collection("t").await.unwrap();
    for i in 0..999 {
        c.insert_value(json!({"_id": format!("{i:04}")})).await.unwrap();
    }
    let log = dir.path().join("t.log");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    c.insert_value(json!({"_id": "1000th"})).await.unwrap();
    assert!(std::fs::metadata(&log).unwrap().len() > 0, "the 1,000th write flushes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(&data, FileSync::Always).await;
    store.collection("t").await.unwrap().insert_value(json!({"a": 1})).await.unwrap();
    store.compact_collection("t").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for f in ["t.json", "t.log", "_orbstore.lock", "_orbstore.txlog"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_without_its_commit_marker_is_ignored_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), FileSync::Always).await;
        store.collection("a").await.unwrap().insert_value(json!({"_id": "before"})).await.unwrap();
        let tx = store.begin().await.unwrap();
        tx.collection("a").await.unwrap().insert_value(json!({"_id": "tx-a"})).await.unwrap();
        tx.collection("b").await.unwrap().insert_value(json!({"_id": "tx-b"})).await.unwrap();
        tx.commit().await.unwrap();
        store.close().await.unwrap();
    }
    // A crash after the records reached the logs but before the marker: remove the marker.
    std::fs::write(dir.path().join("_orbstore.txlog"), b"").unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "a").await, vec![doc(json!({"_id": "before"}))]);
    assert!(all(&store, "b").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    let c = store.collection("t").await.unwrap();
    let before = store.log_fsyncs();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.insert_value(json!({"_id": format!("{i:03}")})).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let fsyncs = store.log_fsyncs() - before;
    assert!(fsyncs >= 1, "every write was fsynced by someone");
    assert!(fsyncs <= 50, "100 concurrent writers did {fsyncs} fsyncs: no group commit");
    store.close().await.unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "t").await.len(), 100);
}
