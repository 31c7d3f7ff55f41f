//! Transactions: commit, rollback, rollback on drop, atomicity across collections, isolation.

use orbstore_core::{CollectionExt, ErrorKind, Filter, Query, Update};
use serde_json::json;

use crate::support::*;

/// Opens a fixture when the backend has transactions; otherwise checks that `begin()` says
/// `Unsupported` and returns `None`.
async fn txn_fixture(f: &dyn BackendFactory) -> Option<Fixture> {
    let fx = open(f).await?;
    if fx.backend().capabilities().transactions {
        return Some(fx);
    }
    let m = assert_kind(fx.backend().begin().await.map(|_| ()), ErrorKind::Unsupported);
    assert!(!m.is_empty(), "Unsupported must say why");
    fx.teardown().await;
    None
}

/// "`commit` makes every write of the transaction visible".
pub async fn txn_commit_makes_writes_visible(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "n": 1}, {"_id": "gone"}])).await;
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.insert_value(json!({"_id": "b", "n": 2})).await.unwrap();
    t.update_by_id("a", &Update::new().inc("n", 10)).await.unwrap();
    t.delete_by_id("gone").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(c.find_all().await.unwrap(), docs(json!([{"_id": "a", "n": 11}, {"_id": "b", "n": 2}])));
    fx.teardown().await;
}

/// "`rollback` discards every write of the transaction".
pub async fn txn_rollback_discards_writes(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "n": 1}])).await;
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.insert_value(json!({"_id": "b"})).await.unwrap();
    t.update_by_id("a", &Update::new().set("n", 99)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(c.find_all().await.unwrap(), docs(json!([{"_id": "a", "n": 1}])));
    fx.teardown().await;
}

/// "dropping it without committing rolls it back".
pub async fn txn_drop_rolls_back(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "n": 1}])).await;
    {
        let tx = fx.backend().begin().await.unwrap();
        let t = tx.collection("t").await.unwrap();
        t.update_by_id("a", &Update::new().set("n", 2)).await.unwrap();
        t.insert_value(json!({"_id": "b"})).await.unwrap();
        drop(tx);
    }
    // Give backends that roll back in the background a moment, then check.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(c.find_all().await.unwrap(), docs(json!([{"_id": "a", "n": 1}])));
    fx.teardown().await;
}

/// "reads through it see the transaction's own writes".
pub async fn txn_reads_its_own_writes(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    seeded(&fx, json!([{"_id": "a", "n": 1}])).await;
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.insert_value(json!({"_id": "b", "n": 5})).await.unwrap();
    t.update_by_id("a", &Update::new().set("n", 7)).await.unwrap();
    assert_eq!(t.count(&Filter::gte("n", 5)).await.unwrap(), 2);
    assert_eq!(t.find_by_id("a").await.unwrap().unwrap()["n"], 7);
    assert_eq!(ids(&t.find(&Query::all().sort_desc("n")).await.unwrap()), ["a", "b"]);
    tx.rollback().await.unwrap();
    fx.teardown().await;
}

/// With isolated transactions, uncommitted writes are invisible to everyone else.
pub async fn txn_uncommitted_writes_are_invisible_outside(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    if !fx.backend().capabilities().isolated_transactions {
        eprintln!("not applicable: transactions are not isolated on this backend");
        return fx.teardown().await;
    }
    let c = seeded(&fx, json!([{"_id": "a", "n": 1}])).await;
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.insert_value(json!({"_id": "b"})).await.unwrap();
    t.update_by_id("a", &Update::new().set("n", 2)).await.unwrap();
    assert_eq!(c.find_all().await.unwrap(), docs(json!([{"_id": "a", "n": 1}])));
    tx.commit().await.unwrap();
    assert_eq!(c.count_all().await.unwrap(), 2);
    fx.teardown().await;
}

/// "across collections": a commit lands writes to several collections together, and a
/// rollback discards them together.
pub async fn txn_spans_collections_atomically(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    let acc = seeded(&fx, json!([{"_id": "alice", "bal": 10}, {"_id": "bob", "bal": 0}])).await;
    let log = fx.coll("ledger").await;
    for commit in [false, true] {
        let tx = fx.backend().begin().await.unwrap();
        let ta = tx.collection("t").await.unwrap();
        let tl = tx.collection("ledger").await.unwrap();
        ta.update_by_id("alice", &Update::new().inc("bal", -5)).await.unwrap();
        ta.update_by_id("bob", &Update::new().inc("bal", 5)).await.unwrap();
        tl.insert_value(json!({"from": "alice", "to": "bob", "amount": 5})).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
            assert_eq!(log.count_all().await.unwrap(), 0);
            assert_eq!(acc.find_by_id("alice").await.unwrap().unwrap()["bal"], 10);
        }
    }
    assert_eq!(log.count_all().await.unwrap(), 1);
    assert_eq!(acc.find_by_id("alice").await.unwrap().unwrap()["bal"], 5);
    assert_eq!(acc.find_by_id("bob").await.unwrap().unwrap()["bal"], 5);
    fx.teardown().await;
}

/// "handles from the transaction refuse further use with `InvalidInput`".
pub async fn txn_handles_refuse_use_after_finish(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.insert_value(json!({"_id": "a"})).await.unwrap();
    tx.commit().await.unwrap();
    assert_kind(t.insert_value(json!({"_id": "b"})).await, ErrorKind::InvalidInput);
    assert_kind(t.count_all().await, ErrorKind::InvalidInput);
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    tx.rollback().await.unwrap();
    assert_kind(t.find_all().await, ErrorKind::InvalidInput);
    fx.teardown().await;
}

/// An error inside a transaction (a duplicate id) does not apply that write, and the
/// transaction can still be rolled back cleanly.
pub async fn txn_failed_write_inside_then_rollback(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a"}])).await;
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.insert_value(json!({"_id": "b"})).await.unwrap();
    assert_kind(t.insert_value(json!({"_id": "a"})).await, ErrorKind::Conflict);
    tx.rollback().await.unwrap();
    assert_eq!(ids(&c.find_all().await.unwrap()), ["a"]);
    fx.teardown().await;
}

/// With isolated transactions, a read-modify-write overtaken by a concurrent write fails with
/// `Aborted` (retryable) instead of losing the other write.
pub async fn txn_overtaken_by_concurrent_write_aborts(f: &dyn BackendFactory) {
    let Some(fx) = txn_fixture(f).await else { return };
    if !fx.backend().capabilities().isolated_transactions {
        eprintln!("not applicable: transactions are not isolated on this backend");
        return fx.teardown().await;
    }
    let c = seeded(&fx, json!([{"_id": "ctr", "n": 0}])).await;
    let tx = fx.backend().begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    let seen = t.find_by_id("ctr").await.unwrap().unwrap()["n"].as_i64().unwrap();
    // Another writer increments outside the transaction (its own task, so a backend that
    // blocks it until the transaction ends is not deadlocked here).
    let other = {
        let c = c.clone();
        tokio::spawn(async move { c.update_by_id("ctr", &Update::new().inc("n", 1)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let write = t.update_by_id("ctr", &Update::new().set("n", seen + 10)).await;
    let outcome = match write {
        Ok(_) => tx.commit().await,
        Err(e) => Err(e),
    };
    other.await.unwrap().unwrap();
    let final_n = c.find_by_id("ctr").await.unwrap().unwrap()["n"].as_i64().unwrap();
    match outcome {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Aborted, "{e}");
            assert!(e.is_retryable());
            assert_eq!(final_n, 1, "the concurrent increment survives");
        }
        // A backend that made the other writer wait for the transaction serialized them.
        Ok(()) => assert_eq!(final_n, 11, "the concurrent increment must not be lost"),
    }
    fx.teardown().await;
}
