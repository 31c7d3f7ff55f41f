//! Typed index columns (`crate::layout`): every write path fills them with what the SQL
//! expressions compute from the stored text, also when the writer's cached layout is behind
//! another process's `create_index`, and a reader whose cache names columns of a dropped
//! collection plans again instead of failing.

mod common;

use orbstore_core::{CollectionExt, Document, Filter, IndexSpec, PersistenceBackend, Query, Update};
use orbstore_postgres::PostgresBackend;
use orbstore_testkit::{d, ids};
use serde_json::{json, Value};

/// A value of each kind the columns classify, by `i`.
fn value(i: usize) -> Value {
    match i % 11 {
        0 => json!(i as f64 / 4.0),
        1 => json!(format!("s{i}")),
        2 => json!(i.is_multiple_of(3)),
        3 => Value::Null,
        4 => json!({"o": i}),
        5 => json!([i, "x"]),
        6 => json!(1152921504606846976.0_f64 + i as f64),
        7 => json!(format!("nul\u{0}{i}\u{1}")),
        8 => json!(i64::MIN + i as i64),
        9 => json!(i64::MAX - i as i64),
        _ => json!(-(i as f64) * 1e-7),
    }
}

/// A document with `k` (missing for some), `n.k` (through an object, or a scalar `n`) and `t`.
fn doc(i: usize, salt: &str) -> Document {
    let mut v = json!({"_id": format!("{salt}{i:04}"), "t": i, "pad": "p"});
    if i % 7 != 6 {
        v["k"] = value(i);
    }
    v["n"] = if i.is_multiple_of(5) { json!(i) } else { json!({"k": value(i + 3)}) };
    d(v)
}

async fn mismatches(store: &PostgresBackend) -> u64 {
    store.index_column_mismatches("t").await.unwrap()
}

/// What a query returns, beside what the evaluator says over every document.
async fn agrees(store: &PostgresBackend, filter: Value) {
    let c = store.collection("t").await.unwrap();
    let f = Filter::from_json(&filter).unwrap();
    let mut expected: Vec<Document> = c.find(&Query::new(Filter::All)).await.unwrap();
    expected.retain(|doc| f.matches(doc));
    let got = c.find(&Query::new(f)).await.unwrap();
    assert_eq!(ids(&got), ids(&expected), "{filter}");
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn every_write_path_fills_the_columns_the_expressions_compute() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    c.insert_many((0..40).map(|i| doc(i, "a")).collect()).await.unwrap();
    c.create_index(IndexSpec::new(["k", "t"])).await.unwrap();
    c.create_index(IndexSpec::new(["n.k"])).await.unwrap();
    assert_eq!(mismatches(&store).await, 0, "the stored rows were filled when the index was built");

    c.insert_many((0..100).map(|i| doc(i, "b")).collect()).await.unwrap(); // COPY-sized
    c.insert_many((0..5).map(|i| doc(i, "c")).collect()).await.unwrap();
    for i in 0..12 {
        c.insert_one(doc(i, "e")).await.unwrap();
    }
    c.upsert(doc(3, "z")).await.unwrap();
    c.upsert(d(json!({"_id": "a0001", "k": "replaced", "n": {"k": true}}))).await.unwrap();
    c.upsert_many((0..30).map(|i| doc(i + 5, "a")).collect()).await.unwrap();
    c.update_many(
        &Filter::eq("t", 7),
        &Update::from_json(&json!({"$set": {"k": 99.5, "n.k": "u"}})).unwrap(),
    )
    .await
    .unwrap();
    c.update_one(&Filter::eq("t", 8), &Update::from_json(&json!({"$unset": {"k": ""}})).unwrap())
        .await
        .unwrap();
    let tx = store.begin().await.unwrap();
    let tc = tx.collection("t").await.unwrap();
    tc.insert_one(doc(1, "x")).await.unwrap();
    tc.upsert(d(json!({"_id": "x0001", "k": [1]}))).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(mismatches(&store).await, 0);

    for f in [
        json!({"k": {"$gte": 1, "$lt": 100}}),
        json!({"k": {"$gt": "s"}}),
        json!({"k": true}),
        json!({"k": null}),
        json!({"k": {"$ne": null}}),
        json!({"n.k": {"$lte": 5}}),
        json!({"k": 1152921504606846976_i64}),
        json!({"k": "nul\u{0}1\u{1}"}),
        json!({"k": {"$in": [99.5, "replaced", false]}}),
    ] {
        agrees(&store, f).await;
    }
    let top = c.find(&Query::new(Filter::All).sort_desc("k").limit(10)).await.unwrap();
    let mut all = c.find(&Query::new(Filter::All).sort_desc("k")).await.unwrap();
    all.truncate(10);
    assert_eq!(ids(&top), ids(&all));
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn a_writer_behind_another_process_create_index_writes_correct_rows() {
    let (a, cfg) = common::setup().await;
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    let ca = a.collection("t").await.unwrap();
    ca.insert_many((0..20).map(|i| doc(i, "a")).collect()).await.unwrap();
    // `a` has read the layout (no columns) and trusts it for a while; `b` adds columns.
    assert_eq!(ca.count(&Filter::eq("k", "s1")).await.unwrap(), 1);
    let cb = b.collection("t").await.unwrap();
    cb.create_index(IndexSpec::new(["k"])).await.unwrap();

    // Every write path of `a`, which does not know the columns: the triggers fill them.
    ca.insert_many((0..80).map(|i| doc(i, "b")).collect()).await.unwrap();
    ca.insert_one(doc(1, "c")).await.unwrap();
    ca.upsert(doc(2, "a")).await.unwrap();
    ca.upsert_many(vec![doc(3, "a"), doc(4, "d")]).await.unwrap();
    // An update that does not mention `_v` keeps the row's mark: the update trigger catches it.
    ca.update_many(&Filter::eq("t", 5), &Update::from_json(&json!({"$set": {"k": "moved"}})).unwrap())
        .await
        .unwrap();
    assert_eq!(mismatches(&b).await, 0);
    agrees(&b, json!({"k": "moved"})).await;
    agrees(&b, json!({"k": {"$gte": 0}})).await;

    // A second index on another path: `b` knows version 1, `a` may know none or version 1.
    cb.create_index(IndexSpec::new(["n.k"])).await.unwrap();
    ca.update_many(&Filter::eq("t", 6), &Update::from_json(&json!({"$set": {"n.k": 12}})).unwrap())
        .await
        .unwrap();
    ca.insert_one(doc(9, "e")).await.unwrap();
    assert_eq!(mismatches(&b).await, 0);
    agrees(&b, json!({"n.k": 12})).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn a_cache_naming_columns_of_a_dropped_collection_reads_and_writes_the_new_one() {
    let (a, cfg) = common::setup().await;
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    let ca = a.collection("t").await.unwrap();
    ca.create_index(IndexSpec::new(["k"])).await.unwrap();
    ca.insert_many((0..10).map(|i| doc(i, "a")).collect()).await.unwrap();
    assert_eq!(ca.count(&Filter::eq("k", "s1")).await.unwrap(), 1); // `a` caches the columns
    assert!(b.drop_collection("t").await.unwrap());
    let cb = b.collection("t").await.unwrap();
    cb.create_index(IndexSpec::new(["k"])).await.unwrap(); // new columns, new names
    cb.insert_value(json!({"_id": "new", "k": "s1"})).await.unwrap();

    // `a` still names the old columns: each operation plans again.
    assert_eq!(ids(&ca.find(&Query::new(Filter::eq("k", "s1"))).await.unwrap()), ["new"]);
    assert_eq!(ca.count(&Filter::eq("k", "s1")).await.unwrap(), 1);
    a.close().await.unwrap();
    let a = PostgresBackend::open(cfg.clone()).await.unwrap();
    let ca = a.collection("t").await.unwrap();
    assert_eq!(ca.count(&Filter::eq("k", "s1")).await.unwrap(), 1);
    assert!(b.drop_collection("t").await.unwrap());
    b.collection("t").await.unwrap().create_index(IndexSpec::new(["k"])).await.unwrap();
    // And a write naming the old columns goes again with the new ones.
    ca.insert_value(json!({"_id": "w", "k": 5})).await.unwrap();
    ca.upsert_many(vec![d(json!({"_id": "w2", "k": 6}))]).await.unwrap();
    ca.update_many(&Filter::All, &Update::from_json(&json!({"$inc": {"k": 1}})).unwrap()).await.unwrap();
    assert_eq!(mismatches(&b).await, 0);
    agrees(&b, json!({"k": 6})).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    common::drop_schema(&cfg).await;
}
