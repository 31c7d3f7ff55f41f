//! File backend benchmarks, each beside its raw baseline in the same run:
//!
//! - `insert_100k_durable`: insert_many of 100k ~200-byte documents, durable per batch of 1,000
//!   (`sync = always`), vs appending the same documents as JSON lines with one fdatasync per 1,000;
//! - `flush_1000_changes`: change 1,000 documents and flush, in collections of 100k and 1M
//!   documents, vs rewriting the whole collection file (what hand-written stores do);
//! - `open_1m`: opening a directory holding a 1M-document collection;
//! - `concurrent_writers`: durable single-document inserts per second from 64 concurrent writers
//!   (`sync = always`), with the fsyncs they cost, three runs (printed, not a criterion group).
//!
//! Run with `cargo bench -p orbstore-file --bench file`; `ORB_BENCH_ONLY=concurrent` runs only
//! `concurrent_writers`.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use orbstore_core::{Document, FileConfig, FileSync, PersistenceBackend};
use orbstore_file::FileBackend;
use orbstore_testkit::bench::{concurrent_inserts, documents, EACH, WRITERS};
use serde_json::json;
use tokio::runtime::Runtime;

async fn open(dir: &std::path::Path, sync: FileSync) -> FileBackend {
    FileBackend::open(FileConfig { sync, ..FileConfig::new(dir) }).await.expect("open")
}

fn insert_100k_durable(c: &mut Criterion, rt: &Runtime) {
    let docs = documents(100_000);
    let mut g = c.benchmark_group("insert_100k_durable");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(100_000));
    g.bench_function("raw_jsonl_fdatasync_per_1000", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let mut f = std::fs::File::create(dir.path().join("raw.jsonl")).expect("create");
                let mut buf = Vec::with_capacity(256 * 1000);
                for chunk in docs.chunks(1000) {
                    buf.clear();
                    for d in chunk {
                        serde_json::to_writer(&mut buf, d).expect("json");
                        buf.push(b'\n');
                    }
                    f.write_all(&buf).expect("write");
                    f.sync_data().expect("fdatasync");
                }
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("file_backend_always", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let batches: Vec<Vec<Document>> = docs.chunks(1000).map(<[Document]>::to_vec).collect();
                total += rt.block_on(async {
                    let store = open(dir.path(), FileSync::Always).await;
                    let coll = store.collection("bench").await.expect("collection");
                    let start = Instant::now();
                    for batch in batches {
                        coll.insert_many(batch).await.expect("insert_many");
                    }
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

fn flush_1000_changes(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("flush_1000_changes");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    for n in [100_000usize, 1_000_000] {
        let docs = documents(n);
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, coll) = rt.block_on(async {
            let store = open(dir.path(), FileSync::Debounced(Duration::from_secs(3600))).await;
            let coll = store.collection("big").await.expect("collection");
            for chunk in docs.chunks(50_000) {
                coll.insert_many(chunk.to_vec()).await.expect("load");
            }
            store.compact_collection("big").await.expect("compact");
            (store, coll)
        });
        let ids: Vec<String> = docs
            .iter()
            .step_by(n / 1000)
            .take(1000)
            .map(|d| d["_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let mut round = 0u64;
        g.bench_function(format!("file_backend_{n}"), |b| {
            b.iter(|| {
                round += 1;
                rt.block_on(async {
                    for id in &ids {
                        let mut d = Document::new();
                        d.insert("_id".into(), json!(id));
                        d.insert("round".into(), json!(round));
                        coll.upsert(d).await.expect("upsert");
                    }
                    store.flush().await.expect("flush");
                })
            })
        });
        g.bench_function(format!("raw_rewrite_whole_file_{n}"), |b| {
            b.iter(|| {
                let path = dir.path().join("raw-rewrite.json");
                let f = std::fs::File::create(&path).expect("create");
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                serde_json::to_writer(&mut w, &docs).expect("json");
                let f = w.into_inner().expect("flush");
                f.sync_all().expect("fsync");
                black_box(path)
            })
        });
        rt.block_on(store.close()).expect("close");
        drop(coll);
        if n == 1_000_000 {
            open_1m(&mut g, rt, dir.path());
        }
    }
    g.finish();
}

fn open_1m(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    dir: &std::path::Path,
) {
    g.bench_function("open_1m_documents", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    let start = Instant::now();
                    let store = open(dir, FileSync::Always).await;
                    let took = start.elapsed();
                    store.close().await.expect("close");
                    took
                });
            }
            total
        })
    });
}

fn concurrent_writers(rt: &Runtime) {
    for run in 1..=3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rate, fsyncs) = rt.block_on(async {
            let store = open(dir.path(), FileSync::Always).await;
            let coll = store.collection("bench").await.expect("collection");
            let before = store.log_fsyncs();
            let rate = concurrent_inserts(&coll).await;
            let fsyncs = store.log_fsyncs() - before;
            store.close().await.expect("close");
            (rate, fsyncs)
        });
        eprintln!(
            "run {run}: durable inserts/s with {WRITERS} concurrent writers (sync=always): {rate:.0} \
             (goal >= 20,000); {fsyncs} fsyncs for {} inserts",
            WRITERS * EACH
        );
    }
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    if std::env::var("ORB_BENCH_ONLY").as_deref() == Ok("concurrent") {
        concurrent_writers(&rt);
        return;
    }
    insert_100k_durable(c, &rt);
    flush_1000_changes(c, &rt);
    concurrent_writers(&rt);
}

criterion_group!(file, benches);
criterion_main!(file);
