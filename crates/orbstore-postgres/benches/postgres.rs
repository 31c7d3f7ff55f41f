//! PostgreSQL backend benchmarks beside raw tokio-postgres baselines in the same run, against the
//! server in `ORBSTORE_TEST_POSTGRES_URL` (each run in a fresh schema, dropped at the end):
//!
//! - `insert_many`: 100k and 1M ~200-byte documents, vs a raw binary COPY of the same rows
//!   (`id text PRIMARY KEY, doc json`) in one transaction;
//! - `range_query_10k`: a range returning 10k of 100k documents on an indexed field, vs raw SQL
//!   on a plain table whose `score` is a real `float8` column with a btree index (rows parsed
//!   into documents, as orbstore returns them);
//! - `single_insert_latency`: p50/p99 of 2,000 single inserts, printed, vs raw autocommit INSERT;
//! - `concurrent_writers`: durable single inserts per second from 64 concurrent writers, printed,
//!   with the statements they shared.
//!
//! `ORB_BENCH_ONLY=single|range|insert_many|concurrent` runs one of them.
//!
//! Run with `ORBSTORE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! orbstore-postgres --bench postgres`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orbstore_core::{BackendConfig, Document, Filter, IndexSpec, PersistenceBackend, Query};
use orbstore_postgres::PostgresBackend;
use orbstore_testkit::bench::{concurrent_inserts, documents, insert_latencies, percentiles, EACH, WRITERS};
use tokio::runtime::Runtime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, Type};
use tokio_postgres::{Client, NoTls};

struct Setup {
    url: String,
    schema: String,
}

async fn raw_client(s: &Setup) -> Client {
    let (client, conn) = tokio_postgres::connect(&s.url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {0}; SET search_path TO {0}", s.schema))
        .await
        .expect("schema");
    client
}

async fn open(s: &Setup) -> PostgresBackend {
    let BackendConfig::Postgres(mut cfg) = BackendConfig::from_url(&s.url).expect("url") else {
        panic!("not postgres")
    };
    cfg.schema = s.schema.clone();
    PostgresBackend::open(cfg).await.expect("open")
}

async fn raw_copy(client: &mut Client, docs: &[Document]) {
    let tx = client.transaction().await.expect("begin");
    let sink = tx.copy_in("COPY raw (id, doc) FROM STDIN (FORMAT binary)").await.expect("copy");
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::JSON]);
    futures::pin_mut!(writer);
    for d in docs {
        let id = d["_id"].as_str().unwrap_or_default();
        writer.as_mut().write(&[&id, &Json(d)]).await.expect("row");
    }
    writer.finish().await.expect("finish");
    tx.commit().await.expect("commit");
}

fn insert_many(c: &mut Criterion, rt: &Runtime, s: &Setup) {
    for n in [100_000usize, 1_000_000] {
        let docs = documents(n);
        let mut g = c.benchmark_group(format!("insert_many_{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(if n > 100_000 { 60 } else { 15 }));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("raw_tokio_postgres_copy", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut client = raw_client(s).await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        client
                            .batch_execute("DROP TABLE IF EXISTS raw; CREATE TABLE raw (id text COLLATE \"C\" PRIMARY KEY, doc json NOT NULL)")
                            .await
                            .expect("table");
                        let start = Instant::now();
                        raw_copy(&mut client, &docs).await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
        g.bench_function("orbstore_postgres", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let store = open(s).await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        store.drop_collection("bench").await.expect("drop");
                        let coll = store.collection("bench").await.expect("collection");
                        let batch = docs.clone();
                        let start = Instant::now();
                        coll.insert_many(batch).await.expect("insert_many");
                        total += start.elapsed();
                    }
                    store.close().await.expect("close");
                    total
                })
            })
        });
        g.finish();
    }
}

fn range_query(c: &mut Criterion, rt: &Runtime, s: &Setup) {
    let docs = documents(100_000);
    let (store, coll, raw) = rt.block_on(async {
        let mut raw = raw_client(s).await;
        raw.batch_execute(
            "DROP TABLE IF EXISTS raw_typed; CREATE TABLE raw_typed (id text COLLATE \"C\" PRIMARY KEY, score float8, doc json NOT NULL)",
        )
        .await
        .expect("table");
        let tx = raw.transaction().await.expect("begin");
        let sink = tx.copy_in("COPY raw_typed (id, score, doc) FROM STDIN (FORMAT binary)").await.expect("copy");
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::FLOAT8, Type::JSON]);
        futures::pin_mut!(writer);
        for d in &docs {
            let id = d["_id"].as_str().unwrap_or_default();
            let score = d["score"].as_f64().unwrap_or_default();
            writer.as_mut().write(&[&id, &score, &Json(d)]).await.expect("row");
        }
        writer.finish().await.expect("finish");
        tx.commit().await.expect("commit");
        raw.batch_execute("CREATE INDEX raw_typed_score ON raw_typed (score); ANALYZE raw_typed").await.expect("index");
        let store = open(s).await;
        let coll = store.collection("range").await.expect("collection");
        coll.insert_many(docs.clone()).await.expect("load");
        coll.create_index(IndexSpec::new(["score"])).await.expect("index");
        (store, coll, raw)
    });
    let q = Query::new(Filter::and([Filter::gte("score", 0.25), Filter::lt("score", 0.35)]));
    let expected = rt.block_on(coll.find(&q)).expect("find").len();
    let (_, plan) = rt.block_on(store.explain("range", &q)).expect("explain");
    eprintln!("range query returns {expected} documents; plan:\n{}", plan.join("\n"));
    let raw_sql = "SELECT id, doc FROM raw_typed WHERE score >= $1 AND score < $2 ORDER BY id";
    let stmt = rt.block_on(raw.prepare(raw_sql)).expect("prepare");
    let mut g = c.benchmark_group("range_query_10k");
    g.sample_size(30).throughput(Throughput::Elements(expected as u64));
    g.bench_function("raw_tokio_postgres_parsed", |b| {
        b.to_async(rt).iter(|| async {
            let rows = raw.query(&stmt, &[&0.25f64, &0.35f64]).await.expect("query");
            let docs: Vec<Document> = rows.iter().map(|r| r.get::<_, Json<Document>>(1).0).collect();
            black_box(docs)
        })
    });
    g.bench_function("orbstore_postgres", |b| {
        b.to_async(rt).iter(|| async { black_box(coll.find(&q).await.expect("find")) })
    });
    g.finish();
    rt.block_on(store.close()).expect("close");
}

fn single_insert_latency(c: &mut Criterion, rt: &Runtime, s: &Setup) {
    let docs = documents(2_000);
    let (raw_lat, ours) = rt.block_on(async {
        let raw = raw_client(s).await;
        raw.batch_execute("DROP TABLE IF EXISTS raw1; CREATE TABLE raw1 (id text COLLATE \"C\" PRIMARY KEY, doc json NOT NULL)")
            .await
            .expect("table");
        let stmt = raw.prepare("INSERT INTO raw1 (id, doc) VALUES ($1, $2)").await.expect("prepare");
        let mut raw_lat = Vec::new();
        for d in &docs {
            let start = Instant::now();
            raw.execute(&stmt, &[&d["_id"].as_str(), &Json(d)]).await.expect("insert");
            raw_lat.push(start.elapsed());
        }
        let store = open(s).await;
        let coll = store.collection("single").await.expect("collection");
        let lat = insert_latencies(&coll, docs.clone()).await;
        store.close().await.expect("close");
        (raw_lat, lat)
    });
    let (rp50, rp99) = percentiles(raw_lat);
    let (op50, op99) = percentiles(ours);
    eprintln!("single insert: raw autocommit p50 {rp50:?} p99 {rp99:?}; orbstore p50 {op50:?} p99 {op99:?}");
    let mut g = c.benchmark_group("single_insert");
    g.sample_size(20);
    let store = rt.block_on(open(s));
    let coll = rt.block_on(store.collection("single2")).expect("collection");
    g.bench_function("orbstore_postgres", |b| {
        b.to_async(rt).iter(|| async { coll.insert_one(Document::new()).await.expect("insert") })
    });
    g.finish();
    rt.block_on(store.close()).expect("close");
}

/// Durable single-document inserts per second from 64 concurrent writers, three runs (printed,
/// not a criterion group), with the statements they took (`PostgresBackend::insert_statements`).
fn concurrent_writers(rt: &Runtime, s: &Setup) {
    for run in 1..=3 {
        let (rate, statements) = rt.block_on(async {
            let store = open(s).await;
            let coll = store.collection(&format!("concurrent{run}")).await.expect("collection");
            let before = store.insert_statements().0;
            let rate = concurrent_inserts(&coll).await;
            let statements = store.insert_statements().0 - before;
            store.close().await.expect("close");
            (rate, statements)
        });
        eprintln!(
            "run {run}: durable inserts/s with {WRITERS} concurrent writers: {rate:.0} (goal >= 20,000); \
             {statements} statements for {} inserts",
            WRITERS * EACH
        );
    }
}

fn benches(c: &mut Criterion) {
    let Ok(url) = std::env::var("ORBSTORE_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED: set ORBSTORE_TEST_POSTGRES_URL to benchmark the PostgreSQL backend");
        return;
    };
    let rt = Runtime::new().expect("runtime");
    let s = Setup { url, schema: format!("orbbench_{}", std::process::id()) };
    let only = std::env::var("ORB_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only.contains("single") {
        single_insert_latency(c, &rt, &s);
    }
    if only.is_empty() || only.contains("range") {
        range_query(c, &rt, &s);
    }
    if only.is_empty() || only.contains("insert_many") {
        insert_many(c, &rt, &s);
    }
    if only.is_empty() || only.contains("concurrent") {
        concurrent_writers(&rt, &s);
    }
    rt.block_on(async {
        let raw = raw_client(&s).await;
        raw.batch_execute(&format!("DROP SCHEMA {} CASCADE", s.schema)).await.expect("drop schema");
    });
}

criterion_group!(postgres, benches);
criterion_main!(postgres);
