//! SQLite backend benchmarks beside a raw rusqlite baseline in the same run (same table shape,
//! `id TEXT PRIMARY KEY, doc TEXT` WITHOUT ROWID, WAL, `synchronous = FULL`):
//!
//! - `insert_many`: 100k and 1M ~200-byte documents, vs one prepared INSERT in 10k-row
//!   transactions;
//! - `range_query_10k`: a range returning 10k of 100k documents on an indexed field, vs the same
//!   SQL on the same expression index (returning the JSON text, and parsed to documents);
//! - `single_insert_latency`: p50/p99 of 2,000 durable single inserts, printed, vs raw autocommit;
//! - `concurrent_writers`: durable single-document inserts per second from 64 concurrent writers
//!   (group commit), printed, three runs (goal: at least 20,000/s).
//!
//! - `query_events_{100k,1m}`: `EventStore::query_events`' query (archived = false, a range of
//!   100k timestamps, newest first, limit 10k) on ~450-byte event documents, over 100k and 1M
//!   stored, through the Collection API beside a raw table with typed `archived` and
//!   `timestamp_us` columns and the same index (the O(log n + k) check: the two sizes should be
//!   close).
//!
//! Run with `cargo bench -p orbstore-sqlite --bench sqlite` (`ORB_BENCH_ONLY=concurrent`,
//! `ORB_BENCH_ONLY=events` or `ORB_BENCH_ONLY=latency` runs only that one).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orbstore_core::{Document, Filter, IndexSpec, PersistenceBackend, Query, SqliteConfig, SqliteLocation};
use orbstore_sqlite::SqliteBackend;
use orbstore_testkit::bench::{concurrent_inserts, documents, insert_latencies, percentiles, WRITERS};
use rusqlite::{params, Connection};
use tokio::runtime::Runtime;

/// Runs the raw range query on `conn` and parses the rows into documents.
fn raw_range_parsed(conn: &Connection, sql: &str) -> Vec<Document> {
    let mut stmt = conn.prepare_cached(sql).expect("prepare");
    stmt.query_map(params![0.25, 0.35], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| serde_json::from_str(&r.expect("row")).expect("json"))
        .collect()
}

fn raw_conn(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS raw (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID;",
    )
    .expect("schema");
    conn
}

fn raw_insert(conn: &mut Connection, docs: &[Document]) {
    for chunk in docs.chunks(10_000) {
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx.prepare_cached("INSERT INTO raw (id, doc) VALUES (?, ?)").expect("prepare");
            for d in chunk {
                let id = d["_id"].as_str().unwrap_or_default();
                stmt.execute(params![id, serde_json::to_string(d).expect("json")]).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

async fn open(path: &Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path.to_owned()))).await.expect("open")
}

fn insert_many(c: &mut Criterion, rt: &Runtime) {
    for n in [100_000usize, 1_000_000] {
        let docs = documents(n);
        let mut g = c.benchmark_group(format!("insert_many_{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(if n > 100_000 { 60 } else { 15 }));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("raw_rusqlite_10k_txns", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let mut conn = raw_conn(&dir.path().join("raw.sqlite3"));
                    let start = Instant::now();
                    raw_insert(&mut conn, &docs);
                    total += start.elapsed();
                }
                total
            })
        });
        g.bench_function("orbstore_sqlite", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let batch = docs.clone();
                    total += rt.block_on(async {
                        let store = open(&dir.path().join("o.sqlite3")).await;
                        let coll = store.collection("bench").await.expect("collection");
                        let start = Instant::now();
                        coll.insert_many(batch).await.expect("insert_many");
                        let took = start.elapsed();
                        store.close().await.expect("close");
                        took
                    });
                }
                total
            })
        });
        g.finish();
    }
}

fn range_query(c: &mut Criterion, rt: &Runtime) {
    let docs = documents(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let raw_path = dir.path().join("raw.sqlite3");
    let mut raw = raw_conn(&raw_path);
    raw_insert(&mut raw, &docs);
    raw.execute_batch("CREATE INDEX raw_score ON raw (json_extract(doc, '$.\"score\"'))").expect("index");
    let (store, coll) = rt.block_on(async {
        let store = open(&dir.path().join("o.sqlite3")).await;
        let coll = store.collection("bench").await.expect("collection");
        coll.insert_many(docs.clone()).await.expect("load");
        coll.create_index(IndexSpec::new(["score"])).await.expect("index");
        (store, coll)
    });
    let q = Query::new(Filter::and([Filter::gte("score", 0.25), Filter::lt("score", 0.35)]));
    let expected = rt.block_on(coll.find(&q)).expect("find").len();
    eprintln!(
        "range query returns {expected} documents; plan: {:?}",
        rt.block_on(store.explain("bench", &q)).expect("explain").1
    );
    let raw_sql = "SELECT doc FROM raw WHERE json_extract(doc, '$.\"score\"') >= ? AND json_extract(doc, '$.\"score\"') < ? ORDER BY id";
    let mut g = c.benchmark_group("range_query_10k");
    g.sample_size(30).throughput(Throughput::Elements(expected as u64));
    g.bench_function("raw_rusqlite_text", |b| {
        b.iter(|| {
            let mut stmt = raw.prepare_cached(raw_sql).expect("prepare");
            let rows: Vec<String> = stmt
                .query_map(params![0.25, 0.35], |r| r.get(0))
                .expect("query")
                .map(|r| r.expect("row"))
                .collect();
            black_box(rows)
        })
    });
    g.bench_function("raw_rusqlite_parsed", |b| b.iter(|| black_box(raw_range_parsed(&raw, raw_sql))));
    // The same with the memory-mapped reads and page cache orbstore's connections use.
    let tuned = Connection::open(&raw_path).expect("open");
    tuned.execute_batch("PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536;").expect("pragmas");
    g.bench_function("raw_rusqlite_parsed_mmap", |b| b.iter(|| black_box(raw_range_parsed(&tuned, raw_sql))));
    g.bench_function("orbstore_sqlite", |b| {
        b.to_async(rt).iter(|| async { black_box(coll.find(&q).await.expect("find")) })
    });
    g.finish();
    rt.block_on(store.close()).expect("close");
}

fn single_insert_latency(c: &mut Criterion, rt: &Runtime) {
    let docs = documents(2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = raw_conn(&dir.path().join("raw.sqlite3"));
    let mut raw_lat = Vec::new();
    for d in &docs {
        let start = Instant::now();
        raw.execute(
            "INSERT INTO raw (id, doc) VALUES (?, ?)",
            params![d["_id"].as_str(), serde_json::to_string(d).expect("json")],
        )
        .expect("insert");
        raw_lat.push(start.elapsed());
    }
    let ours = rt.block_on(async {
        let store = open(&dir.path().join("o.sqlite3")).await;
        let coll = store.collection("bench").await.expect("collection");
        let lat = insert_latencies(&coll, docs.clone()).await;
        store.close().await.expect("close");
        lat
    });
    let (rp50, rp99) = percentiles(raw_lat);
    let (op50, op99) = percentiles(ours);
    eprintln!("single durable insert (FULL): raw autocommit p50 {rp50:?} p99 {rp99:?}; orbstore p50 {op50:?} p99 {op99:?}");
    // Also a criterion figure for the mean.
    let mut g = c.benchmark_group("single_insert");
    g.sample_size(20);
    let store = rt.block_on(open(&dir.path().join("o2.sqlite3")));
    let coll = rt.block_on(store.collection("bench")).expect("collection");
    g.bench_function("orbstore_sqlite", |b| {
        b.to_async(rt).iter(|| async { coll.insert_one(Document::new()).await.expect("insert") })
    });
    g.finish();
}

fn concurrent_writers(rt: &Runtime) {
    for run in 1..=3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let rate = rt.block_on(async {
            let store = open(&dir.path().join("c.sqlite3")).await;
            let coll = store.collection("bench").await.expect("collection");
            let rate = concurrent_inserts(&coll).await;
            store.close().await.expect("close");
            rate
        });
        eprintln!("run {run}: durable inserts/s with {WRITERS} concurrent writers (FULL): {rate:.0} (goal >= 20,000)");
    }
}

/// An event of `orbstore-rl`'s shape (~450 bytes), one in ten archived.
fn event(i: u64) -> Document {
    let v: Vec<f64> = (0..8).map(|k| ((i * 7 + k) % 1000) as f64 / 1000.0).collect();
    let doc = serde_json::json!({
        "_id": format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        "episode": i / 100, "step": i % 100, "state": v, "action": v,
        "rewards": {"env": 0.5, "shaping": 0.1, "intrinsic": 0.0, "penalty": -0.2},
        "total_reward": 0.4, "flags": 0, "archived": i.is_multiple_of(10), "timestamp_us": i * 10,
    });
    doc.as_object().cloned().expect("an object")
}

fn query_events(c: &mut Criterion, rt: &Runtime) {
    for (label, n) in [("100k", 100_000u64), ("1m", 1_000_000u64)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let docs: Vec<Document> = (0..n).map(event).collect();
        // The range: 100k timestamps ending at the newest, 10k newest of them returned.
        let (from, to) = ((n - 100_000) * 10, n * 10);
        let mut raw = Connection::open(dir.path().join("raw.sqlite3")).expect("open");
        raw.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE raw_events (id TEXT PRIMARY KEY NOT NULL, archived INTEGER NOT NULL,
                                      timestamp_us INTEGER NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID;
             CREATE INDEX raw_events_ts ON raw_events (archived, timestamp_us);",
        )
        .expect("schema");
        for chunk in docs.chunks(1_000) {
            let tx = raw.transaction().expect("begin");
            {
                let mut stmt =
                    tx.prepare_cached("INSERT INTO raw_events VALUES (?, ?, ?, ?)").expect("prepare");
                for d in chunk {
                    let (id, a, t) = (d["_id"].as_str(), d["archived"].as_bool(), d["timestamp_us"].as_i64());
                    stmt.execute(params![id, a, t, serde_json::to_string(d).expect("json")]).expect("insert");
                }
            }
            tx.commit().expect("commit");
        }
        let coll = rt.block_on(async {
            let store = open(&dir.path().join("o.sqlite3")).await;
            let coll = store.collection("experience_events").await.expect("collection");
            coll.create_index(IndexSpec::new(["archived", "timestamp_us"])).await.expect("index");
            for chunk in docs.chunks(10_000) {
                coll.insert_many(chunk.to_vec()).await.expect("load");
            }
            coll
        });
        drop(docs);
        let q = Query::new(Filter::and([
            Filter::eq("archived", false),
            Filter::gte("timestamp_us", from),
            Filter::lt("timestamp_us", to),
        ]))
        .sort_desc("timestamp_us")
        .limit(10_000);
        let raw_sql =
            "SELECT doc FROM raw_events WHERE archived = 0 AND timestamp_us >= ? AND timestamp_us < ? \
                       ORDER BY timestamp_us DESC LIMIT 10000";
        let mut g = c.benchmark_group(format!("query_events_{label}"));
        g.sample_size(10).throughput(Throughput::Elements(10_000));
        g.bench_function("raw_typed_columns_parsed", |b| {
            b.iter(|| {
                let mut stmt = raw.prepare_cached(raw_sql).expect("prepare");
                let docs: Vec<Document> = stmt
                    .query_map(params![from as i64, to as i64], |r| r.get::<_, String>(0))
                    .expect("query")
                    .map(|r| serde_json::from_str(&r.expect("row")).expect("json"))
                    .collect();
                assert_eq!(docs.len(), 10_000);
                black_box(docs)
            })
        });
        g.bench_function("orbstore_sqlite", |b| {
            b.to_async(rt).iter(|| async {
                let found = coll.find(&q).await.expect("find");
                assert_eq!(found.len(), 10_000);
                black_box(found)
            })
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    if std::env::var("ORB_BENCH_ONLY").is_ok_and(|o| o.contains("concurrent")) {
        concurrent_writers(&rt);
        return;
    }
    if std::env::var("ORB_BENCH_ONLY").is_ok_and(|o| o.contains("events")) {
        query_events(c, &rt);
        return;
    }
    if std::env::var("ORB_BENCH_ONLY").is_ok_and(|o| o.contains("latency")) {
        single_insert_latency(c, &rt);
        return;
    }
    concurrent_writers(&rt);
    single_insert_latency(c, &rt);
    range_query(c, &rt);
    insert_many(c, &rt);
    query_events(c, &rt);
}

criterion_group!(sqlite, benches);
criterion_main!(sqlite);
