//! A backup taken while a writer moves value between two documents in transactions: restored,
//! the pair sums to the invariant whenever the backend's snapshot is point-in-time. The two
//! documents are in collections read first and last, with a large one between, so a backup
//! that is not point-in-time would very likely see them at different moments. Run on every
//! backend; where the snapshot is per collection, it checks the backup completes and restores,
//! and says that the invariant was not asserted.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use orbstore::{CollectionExt, ErrorKind, Filter, SnapshotConsistency, Store, Update};
use orbstore_ops::{backup, restore, RestoreOptions};
use serde_json::json;

const TOTAL: i64 = 1000;

async fn transfer(store: &Store) -> orbstore::Result<()> {
    let tx = store.begin().await?;
    let a = tx.collection("a_side").await?;
    let z = tx.collection("z_side").await?;
    a.update_one(&Filter::eq("_id", "a"), &Update::new().inc("v", -1)).await?;
    z.update_one(&Filter::eq("_id", "z"), &Update::new().inc("v", 1)).await?;
    tx.commit().await
}

async fn value(store: &Store, coll: &str, id: &str) -> i64 {
    let d = store.collection(coll).await.unwrap().find_by_id(id).await.unwrap().unwrap();
    d["v"].as_i64().unwrap()
}

async fn backup_during_transfers(t: Target) {
    let store = t.store.clone();
    if !store.capabilities().transactions {
        eprintln!("{}: no transactions, nothing to test", t.name);
        return t.cleanup().await;
    }
    store.collection("a_side").await.unwrap().insert_value(json!({"_id": "a", "v": TOTAL})).await.unwrap();
    let bulk: Vec<_> =
        (0..5000).map(|i| doc(json!({"_id": format!("m{i:06}"), "pad": "p".repeat(200)}))).collect();
    store.collection("m_bulk").await.unwrap().insert_many(bulk).await.unwrap();
    store.collection("z_side").await.unwrap().insert_value(json!({"_id": "z", "v": 0})).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, commits) = (store.clone(), stop.clone(), commits.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match transfer(&store).await {
                    Ok(()) => {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    // Overtaken by a concurrent write (or a busy engine): try again.
                    Err(e) if e.is_retryable() || e.kind() == ErrorKind::Conflict => {}
                    Err(e) => panic!("transfer: {e}"),
                }
                tokio::task::yield_now().await;
            }
        })
    };
    while commits.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = commits.load(Ordering::Relaxed);
    let made = backup(&store, &options_in(dir.path())).await.unwrap();
    let during = commits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(value(&store, "a_side", "a").await + value(&store, "z_side", "z").await, TOTAL);

    let dest = target("memory").await;
    restore(&dest.store, &made.path, &RestoreOptions::default()).await.unwrap();
    let (a, z) = (value(&dest.store, "a_side", "a").await, value(&dest.store, "z_side", "z").await);
    let point_in_time = made.manifest.consistency == SnapshotConsistency::PointInTime.as_str();
    eprintln!(
        "{}: {} backup, {during} transfers committed during it; restored a = {a}, z = {z}, sum {}",
        t.name,
        made.manifest.consistency,
        a + z
    );
    if point_in_time {
        assert_eq!(a + z, TOTAL, "{}: a point-in-time backup saw half a transaction", t.name);
    } else {
        eprintln!("{}: per-collection snapshot: the invariant is not asserted", t.name);
    }
    assert_eq!(dest.store.collection("m_bulk").await.unwrap().count(&Filter::all()).await.unwrap(), 5000);
    dest.cleanup().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    backup_during_transfers(target("memory").await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file() {
    backup_during_transfers(target("file").await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    backup_during_transfers(target("sqlite").await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn postgres() {
    backup_during_transfers(target("postgres").await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn mongodb() {
    backup_during_transfers(target("mongodb").await).await
}
