//! The audit log: records appended in time order, read back whole or the newest N, never
//! created by reading, a damaged record named.

mod common;

use common::*;
use orbstore::{CollectionExt, ErrorKind};
use orbstore_ops::audit::{self, AuditRecord, AUDIT_COLLECTION};
use serde_json::json;

async fn audit_on(name: &'static str) {
    let t = target(name).await;
    assert!(audit::records(&*t.store, None).await.unwrap().is_empty());
    assert!(
        !t.store.list_collections().await.unwrap().contains(&AUDIT_COLLECTION.to_owned()),
        "reading creates nothing"
    );
    let failure = orbstore::Error::invalid("no such archive");
    for i in 0..5 {
        let counts = json!({"documents": i}).as_object().unwrap().clone();
        let outcome = if i == 3 { Err(&failure) } else { Ok(counts) };
        audit::record(&*t.store, &AuditRecord::new("restore", format!("archive-{i}"), outcome))
            .await
            .unwrap();
    }
    let all = audit::records(&*t.store, None).await.unwrap();
    let targets: Vec<&str> = all.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        ["archive-0", "archive-1", "archive-2", "archive-3", "archive-4"],
        "{name}: time order"
    );
    assert_eq!(
        (all[3].outcome.as_str(), all[3].error.as_deref()),
        ("failed", Some("invalid input: no such archive"))
    );
    assert_eq!(all[4].counts["documents"], json!(4));
    assert!(!all[0].who.is_empty() && all[0].at.ends_with('Z'));
    let last = audit::records(&*t.store, Some(2)).await.unwrap();
    assert_eq!(last.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(), ["archive-3", "archive-4"]);
    t.store
        .collection(AUDIT_COLLECTION)
        .await
        .unwrap()
        .insert_value(json!({"_id": "zz", "what": 5}))
        .await
        .unwrap();
    let e = audit::records(&*t.store, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.message().contains("zz"), "{e}");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_on_memory() {
    audit_on("memory").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_on_sqlite() {
    audit_on("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn audit_on_postgres() {
    audit_on("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn audit_on_mongodb() {
    audit_on("mongodb").await
}
