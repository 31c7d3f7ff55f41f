//! Write-behind enqueue latency, per write, as percentiles (criterion reports means; the goal is
//! a p99, so this is a measured loop): each write through write-behind over the memory backend,
//! beside the same write on the bare memory backend in the same run.
//!
//! `cargo bench -p orbstore-layers --bench write_behind` (release build; 200,000 writes per case
//! after 20,000 to warm up; `ORB_BENCH_WRITES` changes the count).
//!
//! Cases:
//! - `insert_one`, no `_id` (a generated id): queued with no I/O at all;
//! - `upsert` of a document already queued (coalescing) and `update_by_id` with `$inc` on one:
//!   answered from the queue, no I/O;
//! - `upsert` with a new `_id`: one `find_by_id` of the inner backend (to say `inserted`);
//! - each with a queue that never fills during the run (pure enqueue), and the default settings
//!   (1,000 documents, a flush every 500 writes running on another worker thread, and a writer
//!   waiting when the queue is full: what an application sees).

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbstore_core::{CollectionExt, CollectionRef, Document, PersistenceBackend, Update};
use orbstore_layers::{WriteBehindConfig, WriteBehindLayer};
use serde_json::json;

fn doc(i: usize, with_id: bool) -> Document {
    let mut d = json!({"user": "user-00042", "state": format!("s{}", i % 97), "q": 0.5, "n": i})
        .as_object()
        .cloned()
        .unwrap_or_default();
    if with_id {
        d.insert("_id".into(), json!(format!("d{i:08}")));
    }
    d
}

#[derive(Clone, Copy)]
enum Case {
    InsertGenerated,
    UpsertQueued,
    IncQueued,
    UpsertNew,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::InsertGenerated => "insert_one (generated id)",
            Case::UpsertQueued => "upsert (document queued)",
            Case::IncQueued => "update_by_id $inc (document queued)",
            Case::UpsertNew => "upsert (new _id)",
        }
    }

    /// What write `i` sends, built before the clock starts.
    fn input(self, i: usize) -> Input {
        match self {
            Case::InsertGenerated | Case::UpsertNew => Input::Doc(doc(i, matches!(self, Case::UpsertNew))),
            Case::UpsertQueued => {
                let mut d = doc(i, false);
                d.insert("_id".into(), json!(format!("hot{}", i % 64)));
                Input::Doc(d)
            }
            Case::IncQueued => Input::Inc(format!("hot{}", i % 64), Update::new().inc("n", 1)),
        }
    }

    async fn write(self, c: &CollectionRef, input: Input) {
        match (self, input) {
            (Case::InsertGenerated, Input::Doc(d)) => {
                c.insert_one(d).await.unwrap();
            }
            (_, Input::Doc(d)) => {
                c.upsert(d).await.unwrap();
            }
            (_, Input::Inc(id, u)) => {
                c.update_by_id(&id, &u).await.unwrap();
            }
        }
    }
}

enum Input {
    Doc(Document),
    Inc(String, Update),
}

/// Latencies of `n` writes after `warm` unmeasured ones, sorted.
async fn measure(c: &CollectionRef, case: Case, warm: usize, n: usize) -> Vec<Duration> {
    if matches!(case, Case::IncQueued) {
        for k in 0..64 {
            c.upsert(json!({"_id": format!("hot{k}"), "n": 0}).as_object().cloned().unwrap()).await.unwrap();
        }
    }
    for i in 0..warm {
        case.write(c, case.input(i)).await;
    }
    let mut out = Vec::with_capacity(n);
    for i in warm..warm + n {
        let input = case.input(i);
        let t = Instant::now();
        case.write(c, input).await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(label: &str, lat: &[Duration]) {
    println!(
        "{label:<70} p50 {:>8.2?}  p99 {:>8.2?}  p99.9 {:>9.2?}  max {:>9.2?}",
        pct(lat, 0.50),
        pct(lat, 0.99),
        pct(lat, 0.999),
        lat[lat.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` passes nothing and gets a
    // short run, so the target stays cheap to check.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("ORB_BENCH_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(if full {
        200_000
    } else {
        2_000
    });
    let warm = n / 10;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        println!("write-behind enqueue latency, {n} writes per case (goal: p99 under 5 µs)");
        let never_full = WriteBehindConfig {
            max_pending: 10 * (n + warm),
            max_bytes: 1 << 34,
            max_age: Duration::from_secs(3600),
            debounce: Duration::from_secs(3600),
            ..WriteBehindConfig::default()
        };
        for case in [Case::InsertGenerated, Case::UpsertQueued, Case::IncQueued, Case::UpsertNew] {
            let bare: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
            let lat = measure(&bare.collection("b").await.unwrap(), case, warm, n).await;
            report(&format!("{} — bare memory backend", case.name()), &lat);
            for (settings, config) in
                [("queue never full", never_full), ("default settings", WriteBehindConfig::default())]
            {
                let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
                let layer = WriteBehindLayer::new(inner, config);
                let lat = measure(&layer.collection("b").await.unwrap(), case, warm, n).await;
                report(&format!("{} — write-behind, {settings}", case.name()), &lat);
                layer.close().await.unwrap();
            }
        }
    });
}
