//! Shared inputs and helpers of the backends' benchmarks, so every backend is measured on the
//! same documents.

use std::time::Duration;

use orbstore_core::{generate_id, CollectionRef, Document};
use serde_json::json;

/// `n` documents of about 200 bytes as JSON, with a `score` in [0, 1) spread evenly (a range of
/// width 0.1 selects a tenth of them) and a few fields an RL store would hold.
pub fn documents(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            json!({
                "_id": generate_id(),
                "user": format!("user-{:05}", i % 1000),
                "state": format!("s-{:08x}", (i as u32).wrapping_mul(2_654_435_761)),
                "action": i % 17,
                "reward": (i % 100) as f64 / 100.0,
                "score": ((i * 7919) % n) as f64 / n as f64,
                "note": "pad-pad-pad-pad-pad-pad-pad",
            })
            .as_object()
            .cloned()
            .unwrap_or_default()
        })
        .collect()
}

/// How many concurrent writers the benchmarks of concurrent single inserts run.
pub const WRITERS: usize = 64;
/// How many documents each of them inserts.
pub const EACH: usize = 200;

/// Inserts [`WRITERS`] × [`EACH`] fresh documents into `coll`, one `insert_one` at a time from
/// each of [`WRITERS`] tasks, and returns the inserts per second.
pub async fn concurrent_inserts(coll: &CollectionRef) -> f64 {
    let docs = documents(WRITERS * EACH);
    let start = std::time::Instant::now();
    let tasks: Vec<_> = docs
        .chunks(EACH)
        .map(|chunk| {
            let (coll, chunk) = (coll.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for d in chunk {
                    coll.insert_one(d).await.expect("insert");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    (WRITERS * EACH) as f64 / start.elapsed().as_secs_f64()
}

/// The median and 99th percentile of latencies (`Duration::ZERO` for none).
pub fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    if d.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    d.sort();
    (d[d.len() / 2], d[d.len() * 99 / 100])
}

/// Inserts the documents one at a time and returns each insert's latency.
pub async fn insert_latencies(coll: &CollectionRef, docs: Vec<Document>) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(docs.len());
    for d in docs {
        let start = std::time::Instant::now();
        coll.insert_one(d).await.expect("insert");
        lat.push(start.elapsed());
    }
    lat
}
