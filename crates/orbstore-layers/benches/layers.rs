//! The cost per operation of the retry, breaker and metrics layers, alone and stacked, over the
//! memory backend, beside the bare memory backend in the same run: `find_by_id` of a stored
//! document and `insert_one` of a new one. Nothing fails, so this is the overhead of the happy
//! path: a boxed future and a wrapper handle per layer, the breaker's lock, the metrics calls.
//!
//! `cargo bench -p orbstore-layers --bench layers` measures the metrics calls with no recorder
//! installed (the facade's no-op); with `--features prometheus` a last group repeats the stack
//! with the Prometheus recorder installed, the cost an application exporting metrics pays.
//! `LAYERS_QUICK=1` instead runs bare and stacked in alternating rounds (see `quick`), which
//! stays comparable on a busy machine.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, BatchSize, Criterion};
use orbstore_core::{generate_id, CollectionRef, Document, PersistenceBackend};
use orbstore_layers::{AroundBackend, BreakerConfig, BreakerLayer, MetricsLayer, RetryConfig, RetryLayer};
use serde_json::json;
use tokio::runtime::Runtime;

type Store = Arc<dyn PersistenceBackend>;

const DOCS: usize = 10_000;

fn doc(i: usize) -> Document {
    json!({"_id": format!("d{i:06}"), "n": i, "user": "user-00042", "q": 0.5})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn bare() -> Store {
    Arc::new(orbstore_memory::MemoryBackend::new())
}

fn retry(inner: Store) -> Store {
    Arc::new(AroundBackend::new(inner, RetryLayer::new(RetryConfig::default())))
}

fn breaker(inner: Store) -> Store {
    Arc::new(AroundBackend::new(inner, BreakerLayer::new("memory", BreakerConfig::default())))
}

fn metrics(inner: Store) -> Store {
    Arc::new(AroundBackend::new(inner, MetricsLayer::new("memory")))
}

/// The factory's order (`StackConfig::apply`): metrics outside, the breaker, retry next to the
/// backend.
fn stack(inner: Store) -> Store {
    metrics(breaker(retry(inner)))
}

fn stores() -> Vec<(&'static str, Store)> {
    vec![
        ("bare", bare()),
        ("retry", retry(bare())),
        ("breaker", breaker(bare())),
        ("metrics", metrics(bare())),
        ("retry+breaker+metrics", stack(bare())),
    ]
}

/// A collection holding `DOCS` documents `d000000`...
fn filled(rt: &Runtime, store: &Store) -> CollectionRef {
    rt.block_on(async {
        let c = store.collection("bench").await.unwrap();
        c.insert_many((0..DOCS).map(doc).collect()).await.unwrap();
        c
    })
}

fn bench_stores(c: &mut Criterion, group: &str, stores: Vec<(&'static str, Store)>) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group(format!("{group}/find_by_id"));
    for (name, store) in &stores {
        let coll = filled(&rt, store);
        let ids: Vec<String> = (0..DOCS).map(|i| format!("d{:06}", (i * 7919) % DOCS)).collect();
        let mut i = 0;
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % DOCS;
                let (coll, id) = (&coll, &ids[i]);
                async move { black_box(coll.find_by_id(id).await.unwrap()) }
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("{group}/insert_one"));
    for (name, store) in &stores {
        let coll = rt.block_on(store.collection("inserts")).unwrap();
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter_batched(
                || json!({"_id": generate_id(), "n": 1, "user": "user-00042"}).as_object().cloned().unwrap(),
                |d| {
                    let coll = &coll;
                    async move { black_box(coll.insert_one(d).await.unwrap()) }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn layers(c: &mut Criterion) {
    bench_stores(c, "no_recorder", stores());
    #[cfg(feature = "prometheus")]
    {
        let _handle = orbstore_layers::metrics::install_prometheus().unwrap();
        bench_stores(c, "prometheus", vec![("bare", bare()), ("retry+breaker+metrics", stack(bare()))]);
    }
}

/// The per-operation cost of each layer and of the stack over the bare backend, measured in
/// alternating rounds on one current-thread runtime, so that a busy machine slows both alike:
/// the median per-operation time of each, and the median of the paired differences.
fn quick() {
    const OPS: usize = 20_000;
    const ROUNDS: usize = 21;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ids: Vec<String> = (0..DOCS).map(|i| format!("d{:06}", (i * 7919) % DOCS)).collect();
    let per_op = |c: &CollectionRef, insert: bool| -> f64 {
        let docs: Vec<Document> = if insert {
            (0..OPS).map(|_| json!({"_id": generate_id(), "n": 1}).as_object().cloned().unwrap()).collect()
        } else {
            Vec::new()
        };
        let start = std::time::Instant::now();
        rt.block_on(async {
            if insert {
                for d in docs {
                    black_box(c.insert_one(d).await.unwrap());
                }
            } else {
                for id in ids.iter().cycle().take(OPS) {
                    black_box(c.find_by_id(id).await.unwrap());
                }
            }
        });
        start.elapsed().as_nanos() as f64 / OPS as f64
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let stores = stores();
    let colls: Vec<CollectionRef> = stores.iter().map(|(_, s)| filled(&rt, s)).collect();
    for (op, insert) in [("find_by_id", false), ("insert_one", true)] {
        for (i, (name, _)) in stores.iter().enumerate().skip(1) {
            let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                // Alternate which goes first, so neither always runs on a warmer cache.
                let (x, y) = if round % 2 == 0 {
                    let x = per_op(&colls[0], insert);
                    (x, per_op(&colls[i], insert))
                } else {
                    let y = per_op(&colls[i], insert);
                    (per_op(&colls[0], insert), y)
                };
                a.push(x);
                b.push(y);
                d.push(y - x);
            }
            println!(
                "{op}: bare {:.0} ns, {name} {:.0} ns, overhead {:.0} ns per operation (medians of {ROUNDS} alternating rounds of {OPS})",
                median(a),
                median(b),
                median(d)
            );
        }
    }
}

criterion_group!(benches, layers);

fn main() {
    // `LAYERS_QUICK=1 cargo bench -p orbstore-layers --bench layers`: the alternating measurement
    // only, for a machine too busy for criterion's separate runs to be comparable.
    if std::env::var_os("LAYERS_QUICK").is_some() {
        quick();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
