//! Learning-state benchmarks:
//!
//! - `sample_32_of_1m`: uniform `sample(32)` from one user's 1M experiences, beside the raw
//!   baseline of sampling 32 references from a `Vec` of 1M (`rand::seq::index::sample`);
//! - `prioritized_32_of_1m`: the same through the sum-tree;
//! - `qtable_update`: Q-learning updates per second with the default save policy (a save every
//!   10 updates, one `upsert_many` each), on memory, file (debounced and `always` sync) and
//!   SQLite, and PostgreSQL / MongoDB when
//!   `ORBSTORE_TEST_POSTGRES_URL` / `ORBSTORE_TEST_MONGODB_URL` are set;
//! - `write_batch_100k`: `EventStore::write_batch` of 100k events per backend (compare with each
//!   backend's raw baseline in its own benchmark).
//!
//! Run with `cargo bench -p orbstore-rl --bench rl`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orbstore::{BackendConfig, Config};
use orbstore_rl::{Event, EventStore, Experience, ExperienceStore, QTable, Rewards};
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

/// Every backend this machine can run: memory, file, SQLite, and the servers whose URLs are set
/// (each in a fresh schema or database, wiped afterwards).
fn backends(dir: &std::path::Path, tag: &str) -> Vec<(&'static str, Config)> {
    let url =
        |u: String| Config::from_lookup(move |k| (k == "DATABASE_URL").then(|| u.clone())).expect("config");
    let mut out = vec![
        ("memory", Config::new(BackendConfig::Memory)),
        ("file", url(format!("file://{}", dir.join(format!("{tag}-f")).display()))),
        ("sqlite", url(format!("sqlite://{}", dir.join(format!("{tag}.sqlite3")).display()))),
        (
            "file_always",
            Config::new(BackendConfig::File(orbstore::FileConfig {
                sync: orbstore::FileSync::Always,
                ..orbstore::FileConfig::new(dir.join(format!("{tag}-fa")))
            })),
        ),
    ];
    let name = format!("orbbench_{tag}_{}", std::process::id());
    if let Ok(pg) = std::env::var("ORBSTORE_TEST_POSTGRES_URL") {
        let sep = if pg.contains('?') { '&' } else { '?' };
        out.push(("postgres", url(format!("{pg}{sep}schema={name}"))));
    }
    if let Ok(m) = std::env::var("ORBSTORE_TEST_MONGODB_URL") {
        let (base, query) = m.split_once('?').unwrap_or((m.as_str(), ""));
        out.push(("mongodb", url(format!("{}/{name}?{query}", base.trim_end_matches('/')))));
    }
    out
}

/// Drops every collection a benchmark stored.
async fn wipe(store: &orbstore::Store) {
    for c in store.list_collections().await.unwrap_or_default() {
        let _ = store.drop_collection(&c).await;
    }
}

fn write_batches(c: &mut Criterion, rt: &Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<Event> = (0..100_000u64)
        .map(|i| Event {
            id: (u128::from(i) << 64) | 7,
            timestamp_us: 1_700_000_000_000_000 + i,
            episode: i / 100,
            step: (i % 100) as u32,
            event_type: "step".into(),
            flags: 1,
            state: [0.25; 8],
            action: [0.5; 8],
            rewards: Rewards { homeostasis: 0.1, curiosity: 0.2, efficiency: 0.3, goal: (i % 10) as f64 },
            policy_version: "p1".into(),
            sequence: i,
        })
        .collect();
    let mut g = c.benchmark_group("write_batch_100k");
    g.sample_size(10).throughput(Throughput::Elements(100_000));
    for (name, cfg) in backends(dir.path(), "events") {
        let store = rt.block_on(orbstore::open(cfg)).expect("open");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = std::time::Duration::ZERO;
                    for _ in 0..iters {
                        let _ = store.drop_collection(orbstore_rl::EVENT_COLLECTION).await;
                        let ev = EventStore::open(&*store).await.expect("events");
                        let start = std::time::Instant::now();
                        ev.write_batch(&events).await.expect("write_batch");
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
        rt.block_on(wipe(&store));
        rt.block_on(store.close()).expect("close");
    }
    g.finish();
}

fn qtable_updates(c: &mut Criterion, rt: &Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backends = backends(dir.path(), "q");
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
        rt.block_on(wipe(&store));
        rt.block_on(store.close()).expect("close");
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let only = std::env::var("ORB_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only.contains("sample") {
        sampling(c, &rt);
    }
    if only.is_empty() || only.contains("qtable") {
        qtable_updates(c, &rt);
    }
    if only.is_empty() || only.contains("write_batch") {
        write_batches(c, &rt);
    }
}

criterion_group!(rl, benches);
criterion_main!(rl);
