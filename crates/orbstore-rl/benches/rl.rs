//! Learning-state benchmarks:
//!
//! - `sample_32_of_1m`: uniform `sample(32)` from one user's 1M experiences, beside the raw
//!   baseline of sampling 32 references from a `Vec` of 1M (`rand::seq::index::sample`);
//! - `prioritized_32_of_1m`: the same through the sum-tree;
//! - `qtable_update`: Q-learning updates per second with the default save policy (a save every
//!   10 updates), on memory, file (debounced sync) and SQLite.
//!
//! Run with `cargo bench -p orbstore-rl --bench rl`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orbstore::{BackendConfig, Config};
use orbstore_rl::{Experience, ExperienceStore, QTable};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::runtime::Runtime;

fn sampling(c: &mut Criterion, rt: &Runtime) {
    let store = rt.block_on(orbstore::open(Config::new(BackendConfig::Memory))).expect("open");
    let xs = rt.block_on(ExperienceStore::open(&*store, None)).expect("experiences");
    rt.block_on(async {
        for chunk in 0..100 {
            let batch: Vec<Experience> = (0..10_000)
                .map(|i| Experience::new("u", &format!("s{i}"), "a", (chunk * 10_000 + i) as f64, "t"))
                .collect();
            xs.add_batch(batch).await.expect("add");
        }
    });
    let raw: Vec<Arc<Experience>> =
        (0..1_000_000).map(|i| Arc::new(Experience::new("u", "s", "a", i as f64, "t"))).collect();
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("sample_32_of_1m");
    g.bench_function("raw_vec_index_sample", |b| {
        b.iter(|| {
            let picked: Vec<Arc<Experience>> = rand::seq::index::sample(&mut rng, raw.len(), 32)
                .into_iter()
                .map(|i| raw[i].clone())
                .collect();
            black_box(picked)
        })
    });
    g.bench_function("orbstore_rl_uniform", |b| b.iter(|| black_box(xs.sample("u", 32, &mut rng))));
    g.bench_function("orbstore_rl_prioritized", |b| {
        b.iter(|| black_box(xs.sample_prioritized("u", 32, &mut rng)))
    });
    g.finish();
}

fn qtable_updates(c: &mut Criterion, rt: &Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backends = [
        ("memory", Config::new(BackendConfig::Memory)),
        (
            "file",
            Config::from_lookup(|k| {
                (k == "DATABASE_URL").then(|| format!("file://{}", dir.path().join("f").display()))
            })
            .expect("cfg"),
        ),
        (
            "sqlite",
            Config::from_lookup(|k| {
                (k == "DATABASE_URL").then(|| format!("sqlite://{}", dir.path().join("q.sqlite3").display()))
            })
            .expect("cfg"),
        ),
    ];
    let mut g = c.benchmark_group("qtable_update");
    g.throughput(Throughput::Elements(1));
    for (name, cfg) in backends {
        let store = rt.block_on(orbstore::open(cfg)).expect("open");
        let q = rt.block_on(QTable::open(&*store)).expect("qtable");
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                i += 1;
                let (s, a, n) =
                    (format!("s{}", i % 1000), format!("a{}", i % 4), format!("s{}", (i + 1) % 1000));
                let q = q.clone();
                async move { q.update(&s, &a, 1.0, &n, 0.1, 0.9).await.expect("update") }
            })
        });
        rt.block_on(q.flush()).expect("flush");
        rt.block_on(store.close()).expect("close");
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    sampling(c, &rt);
    qtable_updates(c, &rt);
}

criterion_group!(rl, benches);
criterion_main!(rl);
