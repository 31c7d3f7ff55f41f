//! The journal's figures, each beside its baseline in the same run (measured loops, not
//! criterion: the quantities are a latency percentile, a throughput under 64 writers and a drain
//! rate, each against a raw operation of the same disk or server):
//!
//! 1. journaled single write, p50, vs a raw `write` + `fdatasync` of 200 bytes on the same disk
//!    (goal: at most 1.3x);
//! 2. journaled writes per second with 64 concurrent writers (goal: at least 20,000);
//! 3. journal drain rate into PostgreSQL (a private cluster: written while it is down, then
//!    drained) vs a raw binary COPY of the same documents (goal: at least 0.5x).
//!
//! `cargo bench -p orbstore-layers --bench journal` (the PostgreSQL part needs the server
//! programs of Debian's postgresql package, as the fault tests do; skip it with
//! `JOURNAL_BENCH_SKIP_PG=1`, or run only it with `JOURNAL_BENCH_ONLY_PG=1`;
//! `JOURNAL_BENCH_DOCS` sets how many documents it drains, default 50,000;
//! `JOURNAL_BENCH_BATCH` and `JOURNAL_BENCH_FLUSHERS` override the journal's config).

#[path = "../tests/journal_support/mod.rs"]
mod journal_support;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbstore::{CollectionExt, Document, FileConfig, FileSync, PersistenceBackend};
use orbstore_layers::{JournalConfig, JournalLayer};
use serde_json::json;

fn doc(i: usize) -> Document {
    orbstore::to_document(json!({
        "_id": format!("d{i:08}"),
        "state": format!("s{}", i % 97),
        "action": i % 4,
        "reward": (i % 13) as f64 * 0.25,
        "note": "x".repeat(120),
    }))
    .unwrap()
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn raw_fdatasync(dir: &std::path::Path, n: usize) -> Duration {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("raw.bin")).unwrap();
    let payload = [7u8; 200];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&payload).unwrap();
        f.sync_data().unwrap();
        times.push(t.elapsed());
    }
    p50(times)
}

async fn open_layer(dir: &std::path::Path, inner: Arc<dyn PersistenceBackend>) -> Arc<JournalLayer> {
    let local = orbstore_file::FileBackend::open(FileConfig {
        dir: dir.join("replica"),
        sync: FileSync::Debounced(Duration::from_secs(1)),
        strict: false,
    })
    .await
    .unwrap();
    let mut config = JournalConfig::new(dir.join("journal"));
    config.max_pending_bytes = 1 << 30;
    if let Some(b) = std::env::var("JOURNAL_BENCH_BATCH").ok().and_then(|v| v.parse().ok()) {
        config.batch = b;
    }
    if let Some(f) = std::env::var("JOURNAL_BENCH_FLUSHERS").ok().and_then(|v| v.parse().ok()) {
        config.flushers = f;
    }
    Arc::new(JournalLayer::open(inner, Arc::new(local), config).await.unwrap())
}

async fn single_write_p50(dir: &std::path::Path, n: usize) -> Duration {
    let layer = open_layer(dir, Arc::new(orbstore_memory::MemoryBackend::new())).await;
    let c = layer.collection("bench").await.unwrap();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.insert_one(doc(i)).await.unwrap();
        times.push(t.elapsed());
    }
    layer.close().await.unwrap();
    p50(times)
}

async fn concurrent_writes_per_second(dir: &std::path::Path, writers: usize, run: Duration) -> f64 {
    let layer = open_layer(dir, Arc::new(orbstore_memory::MemoryBackend::new())).await;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let layer = layer.clone();
            tokio::spawn(async move {
                let c = layer.collection("bench").await.unwrap();
                let mut n = 0usize;
                while start.elapsed() < run {
                    c.insert_one(doc(w * 10_000_000 + n)).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    layer.close().await.unwrap();
    rate
}

async fn raw_copy(url: &str, docs: &[Document]) -> Duration {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{Json, Type};
    let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS raw_copy; CREATE TABLE raw_copy (id text PRIMARY KEY, doc json NOT NULL)",
        )
        .await
        .unwrap();
    let start = Instant::now();
    let tx = client.transaction().await.unwrap();
    let sink = tx.copy_in("COPY raw_copy (id, doc) FROM STDIN (FORMAT binary)").await.unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::JSON]);
    futures::pin_mut!(writer);
    for d in docs {
        let id = d["_id"].as_str().unwrap();
        writer.as_mut().write(&[&id, &Json(d)]).await.unwrap();
    }
    writer.finish().await.unwrap();
    tx.commit().await.unwrap();
    start.elapsed()
}

async fn drain_vs_copy(dir: &std::path::Path, n: usize) -> (f64, f64, f64) {
    let pg = journal_support::PgCluster::start();
    let docs: Vec<Document> = (0..n).map(doc).collect();
    let copy = raw_copy(&pg.url(), &docs).await;
    let inner = journal_support::open_url(&pg.url()).await.unwrap();
    // The backend's own floor: insert_many (binary COPY) of the same documents, 1,000 a call.
    let direct = inner.collection("direct").await.unwrap();
    let start = Instant::now();
    for chunk in docs.chunks(1000) {
        direct.insert_many(chunk.to_vec()).await.unwrap();
    }
    let backend = start.elapsed();
    let layer = open_layer(dir, inner).await;
    let c = layer.collection("drain").await.unwrap();
    layer.sync_now(Duration::from_secs(30)).await.unwrap();
    pg.crash();
    // Fill the journal while the server is down (64 writers, so that it is quick).
    let chunks: Vec<Vec<Document>> = docs.chunks(n.div_ceil(64)).map(|c| c.to_vec()).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let c = c.clone();
            tokio::spawn(async move {
                for d in chunk {
                    c.insert_one(d).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    pg.start_server();
    let start = Instant::now();
    layer.sync_now(Duration::from_secs(600)).await.unwrap();
    let drain = start.elapsed();
    let check = journal_support::open_url(&pg.url()).await.unwrap();
    assert_eq!(check.collection("drain").await.unwrap().count_all().await.unwrap(), n as u64);
    layer.close().await.unwrap();
    (n as f64 / drain.as_secs_f64(), n as f64 / copy.as_secs_f64(), n as f64 / backend.as_secs_f64())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    if std::env::var_os("JOURNAL_BENCH_ONLY_PG").is_none() {
        local_figures(&rt, dir);
    }
    if std::env::var_os("JOURNAL_BENCH_SKIP_PG").is_none() {
        let n = std::env::var("JOURNAL_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
        let (drain, copy, backend) = rt.block_on(drain_vs_copy(&dir.join("drain"), n));
        println!(
            "drain into PostgreSQL: {drain:.0} docs/s; raw binary COPY of the same {n} documents: {copy:.0} docs/s; ratio {:.2}x (goal >= 0.5x); \
             the PostgreSQL backend's own insert_many (1,000 a call): {backend:.0} docs/s ({:.2}x of COPY)",
            drain / copy,
            backend / copy
        );
    }
}

/// Figures 1 and 2 (local disk only).
fn local_figures(rt: &tokio::runtime::Runtime, dir: &std::path::Path) {
    // Interleaved, so that both see the same disk (its latency drifts with other load).
    let (mut raws, mut singles) = (Vec::new(), Vec::new());
    for round in 0..4 {
        raws.push(raw_fdatasync(dir, 100));
        singles.push(rt.block_on(single_write_p50(&dir.join(format!("single{round}")), 100)));
    }
    let (raw, single) = (p50(raws), p50(singles));
    println!(
        "journaled single write p50: {:.2} ms; raw fdatasync p50 on the same disk: {:.2} ms; ratio {:.2}x (goal <= 1.3x)",
        single.as_secs_f64() * 1e3,
        raw.as_secs_f64() * 1e3,
        single.as_secs_f64() / raw.as_secs_f64()
    );
    let rate = rt.block_on(concurrent_writes_per_second(&dir.join("conc"), 64, Duration::from_secs(5)));
    println!("journaled writes/s with 64 concurrent writers: {rate:.0} (goal >= 20,000)");
}
