//! Streaming reads and store-wide snapshots: `find_stream` against `find` across page
//! boundaries, and what a snapshot promises about writes made after it was taken.

use futures::TryStreamExt;
use orbstore_core::{
    read_snapshot, CollectionExt, Filter, IndexSpec, Projection, Query, SnapshotConsistency, Update,
};
use serde_json::json;

use crate::support::*;

/// More documents than two pages of a keyset scan (`orbstore_core::stream::PAGE_ROWS`).
const MANY: usize = 2_500;

/// "`find_stream` returns the same documents as `find`, in the same order" (and so does
/// `find_stored_stream`), for results longer than a page: exact and evaluator-checked filters, offsets and limits across page boundaries,
/// projections, and orders a keyset scan cannot give.
pub async fn find_stream_matches_find_across_pages(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let batch: Vec<_> = (0..MANY)
        .map(|i| {
            let mut doc = d(json!({"_id": format!("{i:05}"), "m": i % 7, "s": format!("v{}", i % 11)}));
            if i % 5 == 0 {
                doc.insert("tags".into(), json!(["x", i % 3]));
            }
            doc
        })
        .collect();
    for chunk in batch.chunks(500) {
        c.insert_many(chunk.to_vec()).await.unwrap();
    }
    let queries = [
        Query::all(),
        Query::new(Filter::gte("m", 3)),
        Query::new(Filter::eq("tags", "x")),
        Query::new(Filter::eq("tags", 2)).offset(3),
        Query::all().offset(1_500).limit(700),
        Query::new(Filter::lt("m", 2)).offset(999).limit(2),
        Query::all().sort_asc("_id").limit(1_001),
        Query::all().project(Projection::include(["m"])),
        Query::all().limit(0),
        Query::all().offset(10_000),
        Query::new(Filter::eq("s", "v3")).sort_desc("m"),
    ];
    for q in queries {
        let streamed: Vec<_> = c.find_stream(&q).await.unwrap().try_collect().await.unwrap();
        let found = c.find(&q).await.unwrap();
        assert_eq!(streamed.len(), found.len(), "{q:?}");
        assert!(streamed == found, "find_stream differs from find for {q:?}");
        // `find_stored_stream`: the same documents, as texts or parsed.
        let stored: Vec<_> = c
            .find_stored_stream(&q)
            .await
            .unwrap()
            .map_ok(|s| s.deserialize::<orbstore_core::Document>().unwrap())
            .try_collect()
            .await
            .unwrap();
        assert!(stored == found, "find_stored_stream differs from find for {q:?}");
    }
    fx.teardown().await;
}

/// A snapshot lists the collections and indexes, and streams what `find` returns.
pub async fn snapshot_reads_collections_indexes_and_documents(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let a = seeded(&fx, json!([{"_id": "1", "n": 1}, {"_id": "2", "n": 2, "tags": ["x"]}])).await;
    a.create_index(IndexSpec::new(["n"])).await.unwrap();
    let b = fx.coll("other").await;
    b.insert_value(json!({"_id": "z", "k": "v"})).await.unwrap();
    let snap = read_snapshot(fx.backend()).await.unwrap();
    assert_eq!(snap.list_collections().await.unwrap(), fx.backend().list_collections().await.unwrap());
    assert_eq!(snap.list_indexes("t").await.unwrap(), a.list_indexes().await.unwrap());
    for q in [Query::all(), Query::new(Filter::eq("tags", "x")), Query::all().sort_desc("n")] {
        let streamed: Vec<_> = snap.find_stream("t", &q).await.unwrap().try_collect().await.unwrap();
        assert_eq!(streamed, a.find(&q).await.unwrap(), "{q:?}");
    }
    let other: Vec<_> = snap.find_stream("other", &Query::all()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(other, b.find_all().await.unwrap());
    let none: Vec<_> =
        snap.find_stream("never_written", &Query::all()).await.unwrap().try_collect().await.unwrap();
    assert!(none.is_empty());
    drop(snap);
    fx.teardown().await;
}

/// A point-in-time snapshot does not see writes made after it was taken, in any collection:
/// inserts, updates, deletes, a new collection. (A per-collection snapshot promises nothing of
/// the kind; for it the test only reads. Dropping a collection is left out: on PostgreSQL a drop
/// waits for the snapshot to end, as it waits for pg_dump.)
pub async fn snapshot_point_in_time_ignores_later_writes(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let a = seeded(&fx, json!([{"_id": "1", "n": 1}, {"_id": "2", "n": 2}])).await;
    let b = fx.coll("b").await;
    b.insert_value(json!({"_id": "x", "v": 10})).await.unwrap();
    let before_a = a.find_all().await.unwrap();
    let before_b = b.find_all().await.unwrap();
    let snap = read_snapshot(fx.backend()).await.unwrap();
    let listed = snap.list_collections().await.unwrap();
    a.insert_value(json!({"_id": "3", "n": 3})).await.unwrap();
    a.delete_by_id("1").await.unwrap();
    b.update_by_id("x", &Update::new().inc("v", 5)).await.unwrap();
    fx.coll("later").await.insert_value(json!({"_id": "l"})).await.unwrap();
    let read = |name: &'static str| {
        let snap = &snap;
        async move { snap.find_stream(name, &Query::all()).await.unwrap().try_collect::<Vec<_>>().await.unwrap() }
    };
    let (now_a, now_b) = (read("t").await, read("b").await);
    if snap.consistency() == SnapshotConsistency::PointInTime {
        assert_eq!(now_a, before_a, "a point-in-time snapshot saw later writes to t");
        assert_eq!(now_b, before_b, "a point-in-time snapshot saw a later update to b");
        assert_eq!(snap.list_collections().await.unwrap(), listed);
        assert!(!listed.contains(&"later".to_owned()));
    }
    drop(snap);
    fx.teardown().await;
}
