//! MongoDB backend benchmarks beside the raw driver in the same run, against the server in
//! `ORBSTORE_TEST_MONGODB_URL` (a fresh database, dropped at the end):
//!
//! - `insert_many_100k`: 100k ~200-byte documents, vs the driver's `insert_many` of the same
//!   documents as BSON;
//! - `range_query_10k`: a range returning 10k of 100k documents on an indexed field, vs the
//!   driver's `find` with the same filter and sort, converted to JSON documents as orbstore
//!   returns them.
//!
//! nx-27017 is a Python server: its absolute figures say little; the ratio is what counts. On
//! nx-27017 orbstore runs in exact mode (a full scan per query); `ORB_BENCH_MODE=native` forces
//! native mode for a like-for-like query comparison.
//!
//! Run with `ORBSTORE_TEST_MONGODB_URL=… cargo bench -p orbstore-mongo --bench mongo`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use orbstore_core::{BackendConfig, Document, Filter, IndexSpec, MongoQueryMode, PersistenceBackend, Query};
use orbstore_mongo::MongoBackend;
use orbstore_testkit::bench::documents;
use tokio::runtime::Runtime;

fn to_bson(d: &Document) -> BsonDocument {
    mongodb::bson::to_document(d).expect("bson")
}

fn benches(c: &mut Criterion) {
    let Ok(url) = std::env::var("ORBSTORE_TEST_MONGODB_URL") else {
        eprintln!("SKIPPED: set ORBSTORE_TEST_MONGODB_URL to benchmark the MongoDB backend");
        return;
    };
    let rt = Runtime::new().expect("runtime");
    let BackendConfig::Mongo(mut cfg) = BackendConfig::from_url(&url).expect("url") else {
        panic!("not mongodb")
    };
    cfg.database = format!("orbbench_{}", std::process::id());
    if std::env::var("ORB_BENCH_MODE").as_deref() == Ok("native") {
        cfg.query_mode = MongoQueryMode::Native;
    }
    let store = rt.block_on(MongoBackend::open(cfg.clone())).expect("open");
    eprintln!("server: {}", store.server());
    let raw_db = store.database().clone();

    let docs = documents(100_000);
    let bson: Vec<BsonDocument> = docs.iter().map(to_bson).collect();
    let mut g = c.benchmark_group("insert_many_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(30)).throughput(Throughput::Elements(100_000));
    g.bench_function("raw_driver", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let coll = raw_db.collection::<BsonDocument>("raw_insert");
                    coll.drop().await.expect("drop");
                    let batch = bson.clone();
                    let start = Instant::now();
                    coll.insert_many(batch).await.expect("insert_many");
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.bench_function("orbstore_mongo", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    store.drop_collection("bulk").await.expect("drop");
                    let coll = store.collection("bulk").await.expect("collection");
                    let batch = docs.clone();
                    let start = Instant::now();
                    coll.insert_many(batch).await.expect("insert_many");
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.finish();

    let (coll, raw) = rt.block_on(async {
        let coll = store.collection("scores").await.expect("collection");
        coll.insert_many(docs.clone()).await.expect("load");
        coll.create_index(IndexSpec::new(["score"])).await.expect("index");
        (coll, raw_db.collection::<BsonDocument>("scores"))
    });
    let q = Query::new(Filter::and([Filter::gte("score", 0.25), Filter::lt("score", 0.35)]));
    let expected = rt.block_on(coll.find(&q)).expect("find").len();
    eprintln!("range query returns {expected} documents");
    let mut g = c.benchmark_group("range_query_10k");
    g.sample_size(10).throughput(Throughput::Elements(expected as u64));
    g.bench_function("raw_driver", |b| {
        b.to_async(&rt).iter(|| async {
            let cursor = raw
                .find(doc! {"score": {"$gte": 0.25, "$lt": 0.35}})
                .sort(doc! {"_id": 1})
                .await
                .expect("find");
            let found: Vec<BsonDocument> = cursor.try_collect().await.expect("read");
            let docs: Vec<serde_json::Value> =
                found.into_iter().map(|d| Bson::Document(d).into_relaxed_extjson()).collect();
            black_box(docs)
        })
    });
    g.bench_function("orbstore_mongo", |b| {
        b.to_async(&rt).iter(|| async { black_box(coll.find(&q).await.expect("find")) })
    });
    g.finish();
    rt.block_on(async {
        raw_db.drop().await.expect("drop the benchmark database");
        store.close().await.expect("close");
    });
}

criterion_group!(mongo, benches);
criterion_main!(mongo);
