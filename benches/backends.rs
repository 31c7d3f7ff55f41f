//! Criterion benchmarks of every built backend beside a raw baseline in the same run.
//!
//! For the memory backend the baseline is a `HashMap<String, Document>` holding the same
//! documents: what a hand-written in-memory store costs. Run with `cargo bench --bench backends`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::future::BoxFuture;
use orbstore::{generate_id, Document, Filter, Query, Store};
use serde_json::json;
use tokio::runtime::Runtime;

const N: usize = 100_000;

/// ~200-byte documents shaped like experience records; `score` is uniform in [0, 1).
fn documents(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let v = json!({
                "_id": generate_id(),
                "user": format!("user-{:05}", i % 1000),
                "state": format!("s-{:08x}", i.wrapping_mul(2_654_435_761) as u32),
                "action": i % 17,
                "reward": (i % 100) as f64 / 100.0,
                "score": ((i.wrapping_mul(7919)) % N) as f64 / N as f64,
                "completed": i % 3 == 0,
                "note": "pad-pad-pad-pad-pad-pad-pad-pad",
            });
            v.as_object().cloned().unwrap_or_default()
        })
        .collect()
}

/// A named constructor of an empty store.
type MakeStore = (&'static str, fn() -> BoxFuture<'static, Store>);

/// The backends compiled into this build, each as a constructor of an empty store.
fn backends() -> Vec<MakeStore> {
    vec![
        #[cfg(feature = "memory")]
        ("memory", || {
            Box::pin(async { std::sync::Arc::new(orbstore::backends::MemoryBackend::new()) as Store })
        }),
        #[cfg(feature = "file")]
        ("file_always", || Box::pin(open_file())),
        #[cfg(feature = "sqlite")]
        ("sqlite_full", || Box::pin(open_sqlite())),
    ]
}

/// The file backend with `sync = always` in a fresh temporary directory (left for the OS to
/// clean, so no deletion is timed).
#[cfg(feature = "file")]
async fn open_file() -> Store {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let config = orbstore::FileConfig { sync: orbstore::FileSync::Always, ..orbstore::FileConfig::new(dir) };
    std::sync::Arc::new(orbstore::backends::FileBackend::open(config).await.expect("open the file backend"))
}

/// SQLite (`synchronous = FULL`) in a fresh temporary directory, with an index on `score` so the
/// range query can use it.
#[cfg(feature = "sqlite")]
async fn open_sqlite() -> Store {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let config = orbstore::SqliteConfig::new(orbstore::SqliteLocation::File(dir.join("bench.sqlite3")));
    let store: Store =
        std::sync::Arc::new(orbstore::backends::SqliteBackend::open(config).await.expect("open SQLite"));
    let c = store.collection("bench").await.expect("collection");
    c.create_index(orbstore::IndexSpec::new(["score"])).await.expect("index");
    store
}

fn raw_map(docs: &[Document]) -> HashMap<String, Document> {
    docs.iter().map(|d| (orbstore::id_of(d).unwrap_or_default().to_owned(), d.clone())).collect()
}

/// The raw baseline of an insert: move the documents into a map by id.
fn into_raw_map(docs: Vec<Document>) -> HashMap<String, Document> {
    docs.into_iter().map(|d| (orbstore::id_of(&d).unwrap_or_default().to_owned(), d)).collect()
}

fn range_filter() -> Filter {
    Filter::and([Filter::gte("score", 0.25), Filter::lt("score", 0.35)])
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let docs = documents(N);
    let avg = docs.iter().map(|d| serde_json::to_vec(d).map_or(0, |v| v.len())).sum::<usize>() / N;
    eprintln!("documents: {N}, average size {avg} bytes");

    let mut g = c.benchmark_group("insert_many_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(N as u64));
    g.bench_function("raw_hashmap", |b| {
        b.iter_batched(|| docs.clone(), |d| black_box(into_raw_map(d)), BatchSize::LargeInput)
    });
    for (name, make) in backends() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let d = docs.clone();
                    total += rt.block_on(async {
                        let store = make().await;
                        let c = store.collection("bench").await.expect("collection");
                        let start = std::time::Instant::now();
                        black_box(c.insert_many(d).await.expect("insert_many"));
                        let took = start.elapsed();
                        store.close().await.expect("close");
                        took
                    });
                }
                total
            })
        });
    }
    g.finish();

    // Read benchmarks over one loaded store per backend.
    let map = raw_map(&docs);
    let probe: Vec<String> =
        docs.iter().step_by(97).map(|d| orbstore::id_of(d).unwrap_or_default().to_owned()).collect();
    let loaded: Vec<(&str, Store, orbstore::CollectionRef)> = backends()
        .into_iter()
        .map(|(name, make)| {
            rt.block_on(async {
                let store = make().await;
                let c = store.collection("bench").await.expect("collection");
                c.insert_many(docs.clone()).await.expect("load");
                (name, store, c)
            })
        })
        .collect();

    let mut g = c.benchmark_group("find_by_id");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("raw_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % probe.len();
            black_box(map.get(&probe[i]).cloned())
        })
    });
    for (name, _, coll) in &loaded {
        let mut i = 0usize;
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % probe.len();
                let id = probe[i].clone();
                async move { black_box(coll.find_by_id(&id).await.expect("find")) }
            })
        });
    }
    g.finish();

    let filter = range_filter();
    let expected = map.values().filter(|d| filter.matches(d)).count();
    eprintln!("range query returns {expected} documents");
    let mut g = c.benchmark_group("range_query_10k");
    g.sample_size(20).throughput(Throughput::Elements(expected as u64));
    g.bench_function("raw_hashmap", |b| {
        b.iter(|| {
            let mut out: Vec<Document> = map
                .values()
                .filter(|d| {
                    d.get("score").and_then(|s| s.as_f64()).is_some_and(|s| (0.25..0.35).contains(&s))
                })
                .cloned()
                .collect();
            out.sort_by(|a, b| orbstore::id_of(a).cmp(&orbstore::id_of(b)));
            black_box(out)
        })
    });
    for (name, _, coll) in &loaded {
        let q = Query::new(filter.clone());
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async { black_box(coll.find(&q).await.expect("find")) })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("count_range");
    g.sample_size(20);
    g.bench_function("raw_hashmap", |b| {
        b.iter(|| {
            black_box(
                map.values()
                    .filter(|d| {
                        d.get("score").and_then(|s| s.as_f64()).is_some_and(|s| (0.25..0.35).contains(&s))
                    })
                    .count(),
            )
        })
    });
    for (name, _, coll) in &loaded {
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async { black_box(coll.count(&filter).await.expect("count")) })
        });
    }
    g.finish();

    for (_, store, _) in loaded {
        rt.block_on(store.close()).expect("close");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
