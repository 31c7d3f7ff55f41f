//! Learning-state benchmarks:
//!
//! - `sample_32_of_1m`: uniform `sample(32)` from one user's 1M experiences, beside the raw
//!   baselines of sampling 32 references from a `Vec` of 1M (`rand::seq::index::sample`), of
//!   cloning 32 of a `Vec` of 1M owned experiences, and of building 32 owned experiences from
//!   strings in cache (`raw_build_32_owned`: the allocations alone, what any `sample` returning
//!   owned `Experience`s pays);
//! - `prioritized_32_of_1m`: the same through the sum-tree;
//! - `qtable_update`: Q-learning updates per second with the default save policy (a save every
//!   10 updates, one `upsert_many` each), on memory, file (debounced and `always` sync) and
//!   SQLite, and PostgreSQL / MongoDB when
//!   `ORBSTORE_TEST_POSTGRES_URL` / `ORBSTORE_TEST_MONGODB_URL` are set;
//! - `write_batch_100k`: `EventStore::write_batch` of 100k events per backend (compare with each
//!   backend's raw baseline in its own benchmark);
//! - `pg_events` (PostgreSQL only): `write_batch` of 100k events in batches of 1,000 beside the
//!   raw baseline, a binary COPY of the same events into typed columns (`id`, `archived`,
//!   `timestamp_us`, `total_reward` and the document as `json`) with the same two indexes, one
//!   transaction per 1,000; and `query_events` (the 10k newest of a 50k range) over 100k and
//!   over 1M stored events beside the same query on the raw table, its documents' texts parsed
//!   into events.
//!
//! - `experience_open_1m`: `ExperienceStore::open` over 1M experiences stored in SQLite (one
//!   agent, distinct 16-hex-digit state hashes, 8 actions), with the resident memory (RSS, from
//!   `/proc/self/statm`) and the live heap bytes (counted by this benchmark's allocator) the
//!   opened store holds per experience, printed before the timings. The SQLite file is built once
//!   and kept (`$ORB_BENCH_DATA`, default the system temp directory) so that repeated runs open
//!   the same data. Beside it the disk-backed mode (`DiskExperienceStore`), and the backend's
//!   read alone (`experience_open_1m/read`);
//! - `sample_32_of_1m_sqlite`: `sample(32)` over those 1M, in memory mode and disk-backed (the
//!   32 read from SQLite by id in one read);
//!
//! Run with `cargo bench -p orbstore-rl --bench rl`; `ORB_BENCH_ONLY=sample,open` (a list of
//! group names' parts) runs only those groups.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orbstore::{BackendConfig, Config};
use orbstore_rl::{DiskExperienceStore, Event, EventStore, Experience, ExperienceStore, QTable, Rewards};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::runtime::Runtime;

/// The system allocator, counting the bytes allocated and not yet freed, so that the benchmark
/// can say how much heap an opened store holds (RSS alone also counts memory the allocator keeps
/// after transient allocations are freed).
/// Counting is switched on only around the one open whose heap is measured: a counter shared
/// by the threads of a timed run would make every allocation contend on its cache line.
struct Counting;

static LIVE_HEAP: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_HEAP.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller's contract is `System::dealloc`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract is `System::alloc_zeroed`'s.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract is `System::realloc`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The resident set size in bytes: anonymous memory (the heap: what the store holds, and what
/// the allocator kept) and file-backed pages (here mostly SQLite's memory map of the database,
/// shared with the page cache and reclaimable), from `/proc/self/status` (0 where unreadable).
fn rss_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (kb("RssAnon:") * 1024, kb("RssFile:") * 1024)
}

/// How many experiences `experience_open_1m` opens.
const OPEN_N: usize = 1_000_000;

/// One experience of the open benchmark's agent: a DQN-style transition between hashed states.
fn transition(i: usize) -> Experience {
    let hash = |k: usize| format!("{:016x}", (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut e =
        Experience::new("agent", &hash(i), &format!("a{}", i % 8), (i % 100) as f64 / 100.0, &hash(i + 1));
    e.timestamp = 1_700_000_000_000 + i as u64;
    e.completed = i % 100 == 99;
    e
}

/// The SQLite store of the open benchmark, built once (1M experiences) and kept for later runs.
fn data_path() -> std::path::PathBuf {
    let dir =
        std::env::var_os("ORB_BENCH_DATA").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    dir.join("orbstore-bench-experiences-1m-v1.sqlite3")
}

fn open_data(rt: &Runtime) -> orbstore::Store {
    let path = data_path();
    let url = format!("sqlite://{}", path.display());
    let cfg = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).expect("config");
    rt.block_on(async {
        let store = orbstore::open(cfg).await.expect("open sqlite");
        let raw = store.collection(orbstore_rl::EXPERIENCE_COLLECTION).await.expect("collection");
        let have = raw.count(&orbstore::Filter::all()).await.expect("count") as usize;
        if have != OPEN_N {
            eprintln!("experience_open_1m: storing {OPEN_N} experiences in {} (once)", path.display());
            raw.delete_many(&orbstore::Filter::all()).await.expect("clear");
            for start in (0..OPEN_N).step_by(20_000) {
                let docs = (start..start + 20_000)
                    .map(|i| {
                        orbstore::to_document(serde_json::to_value(transition(i)).expect("json"))
                            .expect("document")
                    })
                    .collect();
                raw.insert_many(docs).await.expect("insert");
            }
        }
        store
    })
}

/// Where an open's time goes: the backend's read alone (every document, parsed into a
/// `Document`), sorted by timestamp (as the store read them before) and streamed in `_id` order.
fn read_breakdown(rt: &Runtime, store: &orbstore::Store) {
    rt.block_on(async {
        use futures::StreamExt;
        let raw = store.collection(orbstore_rl::EXPERIENCE_COLLECTION).await.expect("collection");
        let start = Instant::now();
        black_box(raw.count(&orbstore::Filter::all()).await.expect("count"));
        let counted = start.elapsed();
        let start = Instant::now();
        let docs = raw.find(&orbstore::Query::all().sort_asc("timestamp")).await.expect("find");
        let sorted = start.elapsed();
        drop(black_box(docs));
        let start = Instant::now();
        let mut stream = raw.find_stream(&orbstore::Query::all()).await.expect("stream");
        let mut n = 0;
        while let Some(doc) = stream.next().await {
            black_box(doc.expect("doc"));
            n += 1;
        }
        let streamed = start.elapsed();
        assert_eq!(n, OPEN_N);
        // The same rows read by rusqlite directly: the text alone, then parsed.
        let path = data_path();
        let (text, parsed) = tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).expect("sqlite");
            let mut stmt = conn.prepare("SELECT id, doc FROM c_experiences ORDER BY id").expect("prepare");
            let start = Instant::now();
            let mut rows = stmt.query([]).expect("query");
            while let Some(row) = rows.next().expect("row") {
                black_box((row.get_ref(0).expect("id").as_str().ok(), row.get_ref(1).expect("doc").as_str().ok()));
            }
            drop(rows);
            let text = start.elapsed();
            let start = Instant::now();
            let mut rows = stmt.query([]).expect("query");
            while let Some(row) = rows.next().expect("row") {
                let doc = row.get_ref(1).expect("doc").as_str().expect("text");
                black_box(serde_json::from_str::<orbstore::Document>(doc).expect("json"));
            }
            (text, start.elapsed())
        })
        .await
        .expect("raw read");
        println!(
            "experience_open_1m/read: count {counted:.2?}; find sorted by timestamp {sorted:.2?}; find_stream in _id order {streamed:.2?}; \
             rusqlite alone: rows {text:.2?}, rows parsed into documents {parsed:.2?}"
        );
    });
}

/// Opens a store once outside the timings and prints what it holds: the resident memory and
/// live heap it added, per experience.
fn held<S>(label: &str, open: impl FnOnce() -> S, len: impl Fn(&S) -> usize) -> S {
    COUNTING.store(true, Ordering::Relaxed);
    let (rss0, heap0) = (rss_bytes(), LIVE_HEAP.load(Ordering::Relaxed));
    let start = Instant::now();
    let xs = open();
    let took = start.elapsed();
    let (rss1, heap1) = (rss_bytes(), LIVE_HEAP.load(Ordering::Relaxed));
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(len(&xs), OPEN_N);
    let per = |a: f64, b: f64| (b - a) / OPEN_N as f64;
    println!(
        "experience_open_1m/{label}: first open {took:.2?} (allocations counted), resident (anonymous) {:.0} \
         B/experience (RssAnon {} MB -> {} MB), live heap {:.0} B/experience; file-backed resident {:.0} \
         B/experience (RssFile {} MB -> {} MB: SQLite's memory map of the database)",
        per(rss0.0 as f64, rss1.0 as f64),
        rss0.0 >> 20,
        rss1.0 >> 20,
        per(heap0 as f64, heap1 as f64),
        per(rss0.1 as f64, rss1.1 as f64),
        rss0.1 >> 20,
        rss1.1 >> 20,
    );
    xs
}

fn opening(c: &mut Criterion, rt: &Runtime) {
    let store = open_data(rt);
    // Memory first: the resident figure of the first open in a process is the fair one (later
    // ones find memory the allocator kept from earlier ones).
    let xs = held(
        "memory",
        || rt.block_on(ExperienceStore::open(&*store, None)).expect("open experiences"),
        ExperienceStore::len,
    );
    drop(xs);
    let xs = held(
        "disk_backed",
        || rt.block_on(DiskExperienceStore::open(&*store, None)).expect("open experiences"),
        DiskExperienceStore::len,
    );
    drop(xs);
    read_breakdown(rt, &store);
    let mut g = c.benchmark_group("experience_open_1m");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(OPEN_N as u64));
    g.bench_function("sqlite_memory_mode", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let xs = rt.block_on(ExperienceStore::open(&*store, None)).expect("open experiences");
                total += start.elapsed();
                drop(black_box(xs));
            }
            total
        })
    });
    g.bench_function("sqlite_disk_backed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let xs = rt.block_on(DiskExperienceStore::open(&*store, None)).expect("open experiences");
                total += start.elapsed();
                drop(black_box(xs));
            }
            total
        })
    });
    g.finish();
    rt.block_on(store.close()).expect("close");
}

/// `sample(32)` over the open benchmark's 1M experiences in SQLite, in memory mode and in the
/// disk-backed mode (ids chosen in memory, the 32 read in one `_id $in` read).
fn sqlite_sampling(c: &mut Criterion, rt: &Runtime) {
    let store = open_data(rt);
    let memory = rt.block_on(ExperienceStore::open(&*store, None)).expect("open experiences");
    let disk = rt.block_on(DiskExperienceStore::open(&*store, None)).expect("open experiences");
    let mut rng = StdRng::seed_from_u64(2);
    let mut g = c.benchmark_group("sample_32_of_1m_sqlite");
    g.bench_function("memory_mode_uniform", |b| b.iter(|| black_box(memory.sample("agent", 32, &mut rng))));
    g.bench_function("memory_mode_prioritized", |b| {
        b.iter(|| black_box(memory.sample_prioritized("agent", 32, &mut rng)))
    });
    g.bench_function("memory_mode_uniform_batch", |b| {
        b.iter(|| black_box(memory.sample_batch("agent", 32, &mut rng)))
    });
    g.bench_function("memory_mode_prioritized_batch", |b| {
        b.iter(|| black_box(memory.sample_prioritized_batch("agent", 32, &mut rng)))
    });
    g.bench_function("disk_backed_uniform", |b| {
        b.iter(|| black_box(rt.block_on(disk.sample("agent", 32, &mut rng)).expect("sample")))
    });
    g.bench_function("disk_backed_prioritized", |b| {
        b.iter(|| black_box(rt.block_on(disk.sample_prioritized("agent", 32, &mut rng)).expect("sample")))
    });
    g.finish();
    drop((memory, disk));
    rt.block_on(store.close()).expect("close");
}

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
    // What `sample` returns now: owned experiences, built from the compact index. The raw
    // baseline of building them: cloning 32 of a `Vec` of 1M.
    let owned: Vec<Experience> = raw.iter().map(|e| (**e).clone()).collect();
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
    g.bench_function("raw_vec_index_sample_cloned", |b| {
        b.iter(|| {
            let picked: Vec<Experience> = rand::seq::index::sample(&mut rng, owned.len(), 32)
                .into_iter()
                .map(|i| owned[i].clone())
                .collect();
            black_box(picked)
        })
    });
    // The floor of building owned experiences, whatever the index: 32 of them from strings in
    // cache (five `String`s each: 160 allocations, freed when the next iteration drops them).
    let one = owned[0].clone();
    g.bench_function("raw_build_32_owned", |b| {
        b.iter(|| {
            let built: Vec<Experience> = (0..32)
                .map(|_| {
                    let e = black_box(&one);
                    Experience {
                        id: e.id.as_str().to_owned(),
                        user: e.user.as_str().to_owned(),
                        state: e.state.as_str().to_owned(),
                        action: e.action.as_str().to_owned(),
                        next_state: e.next_state.as_str().to_owned(),
                        ..*e
                    }
                })
                .collect();
            black_box(built)
        })
    });
    g.bench_function("orbstore_rl_uniform", |b| b.iter(|| black_box(xs.sample("u", 32, &mut rng))));
    g.bench_function("orbstore_rl_prioritized", |b| {
        b.iter(|| black_box(xs.sample_prioritized("u", 32, &mut rng)))
    });
    g.bench_function("orbstore_rl_uniform_batch", |b| {
        b.iter(|| black_box(xs.sample_batch("u", 32, &mut rng)))
    });
    g.bench_function("orbstore_rl_prioritized_batch", |b| {
        b.iter(|| black_box(xs.sample_prioritized_batch("u", 32, &mut rng)))
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

/// Drops the PostgreSQL schema [`backends`] made for `tag` (a store's catalog outlives its
/// collections), so that runs leave nothing on a shared server.
async fn drop_pg_schema(tag: &str) {
    let Ok(url) = std::env::var("ORBSTORE_TEST_POSTGRES_URL") else { return };
    let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else { return };
    tokio::spawn(conn);
    let name = format!("orbbench_{tag}_{}", std::process::id());
    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await;
}

fn write_batches(c: &mut Criterion, rt: &Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = bench_events(0..100_000);
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
    rt.block_on(drop_pg_schema("events"));
}

/// Events `range` of one episode stream, 1 µs apart.
fn bench_events(range: std::ops::Range<u64>) -> Vec<Event> {
    range
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
        .collect()
}

/// The raw baseline's table: typed columns, the document, the events collection's two indexes.
const RAW_EVENTS: &str = "CREATE TABLE raw_events (id text PRIMARY KEY, archived bool NOT NULL, \
     timestamp_us bigint NOT NULL, total_reward float8 NOT NULL, doc json NOT NULL); \
     CREATE INDEX ON raw_events (archived, timestamp_us); CREATE INDEX ON raw_events (total_reward);";

/// Writes the events into the raw table with binary COPY, one transaction per 1,000.
async fn raw_copy(client: &mut tokio_postgres::Client, events: &[Event]) {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    for chunk in events.chunks(1_000) {
        let tx = client.transaction().await.expect("begin");
        let sink = tx
            .copy_in(
                "COPY raw_events (id, archived, timestamp_us, total_reward, doc) FROM STDIN (FORMAT binary)",
            )
            .await
            .expect("copy");
        let writer =
            BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::BOOL, Type::INT8, Type::FLOAT8, Type::JSON]);
        futures::pin_mut!(writer);
        for e in chunk {
            let mut doc = serde_json::to_value(e).expect("event");
            let id = format!("{:032x}", e.id);
            doc["_id"] = id.clone().into();
            doc["total_reward"] = e.rewards.total().into();
            doc["archived"] = false.into();
            let ts = e.timestamp_us as i64;
            writer.as_mut().write(&[&id, &false, &ts, &e.rewards.total(), &doc]).await.expect("row");
        }
        writer.finish().await.expect("finish");
        tx.commit().await.expect("commit");
    }
}

/// A `json` column's text, borrowed from the row.
struct RawJson<'a>(&'a str);

impl<'a> tokio_postgres::types::FromSql<'a> for RawJson<'a> {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawJson(std::str::from_utf8(raw)?))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::JSON
    }
}

fn pg_events(c: &mut Criterion, rt: &Runtime) {
    let Ok(url) = std::env::var("ORBSTORE_TEST_POSTGRES_URL") else { return };
    let events = bench_events(0..100_000);
    let schema = format!("orbbench_pgevents_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let cfg = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| format!("{url}{sep}schema={schema}")))
        .expect("config");
    let store = rt.block_on(orbstore::open(cfg)).expect("open");
    let raw_schema = format!("{schema}_raw");
    let mut client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA \"{raw_schema}\"; SET search_path TO \"{raw_schema}\""))
            .await
            .expect("schema");
        client
    });
    let from = 1_700_000_000_000_000 + 40_000;
    let to = from + 50_000;

    let mut g = c.benchmark_group("pg_events");
    g.sample_size(10).throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("write_batch_100k/orbstore", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let _ = store.drop_collection(orbstore_rl::EVENT_COLLECTION).await;
                    let ev = EventStore::open(&*store).await.expect("events");
                    let start = Instant::now();
                    for chunk in events.chunks(1_000) {
                        ev.write_batch(chunk).await.expect("write_batch");
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.bench_function("write_batch_100k/raw_copy", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    client
                        .batch_execute(&format!("DROP TABLE IF EXISTS raw_events; {RAW_EVENTS}"))
                        .await
                        .expect("table");
                    let start = Instant::now();
                    raw_copy(&mut client, &events).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.throughput(Throughput::Elements(10_000));
    // The data of the reads, written again so that a filter can run them alone; then 900k more
    // after them, for the same query over 1M stored events (an index search costs O(log n + k)).
    let ev = rt.block_on(EventStore::open(&*store)).expect("events");
    for (label, stored) in [("100k", 0..100_000u64), ("1m", 100_000..1_000_000)] {
        rt.block_on(async {
            if stored.start == 0 {
                let _ = store.drop_collection(orbstore_rl::EVENT_COLLECTION).await;
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS raw_events; {RAW_EVENTS}"))
                    .await
                    .expect("table");
            }
            let ev = EventStore::open(&*store).await.expect("events");
            let more = bench_events(stored);
            for chunk in more.chunks(1_000) {
                ev.write_batch(chunk).await.expect("write_batch");
            }
            raw_copy(&mut client, &more).await;
            // Both tables with fresh planner statistics (autovacuum's ANALYZE would come later;
            // without them PostgreSQL plans the range query on the new table as if it were empty).
            let analyze =
                format!("ANALYZE raw_events; ANALYZE \"{schema}\".\"{}\"", orbstore_rl::EVENT_COLLECTION);
            client.batch_execute(&analyze).await.expect("analyze");
        });
        g.bench_function(format!("query_events_10k_of_{label}/orbstore"), |b| {
            b.to_async(rt).iter(|| async {
                let got = ev.query_events(from, to, 10_000).await.expect("query");
                assert_eq!(got.len(), 10_000);
            })
        });
        let client = &client;
        g.bench_function(format!("query_events_10k_of_{label}/raw"), |b| {
            b.to_async(rt).iter(|| async move {
                let rows = client
                    .query(
                        "SELECT doc FROM raw_events WHERE archived = false AND timestamp_us >= $1 \
                         AND timestamp_us < $2 ORDER BY timestamp_us DESC LIMIT 10000",
                        &[&(from as i64), &(to as i64)],
                    )
                    .await
                    .expect("query");
                // The document's text straight into events, as a hand-written reader would.
                let docs: Vec<Event> = rows
                    .iter()
                    .map(|r| serde_json::from_str(r.get::<_, RawJson<'_>>(0).0).expect("event"))
                    .collect();
                assert_eq!(docs.len(), 10_000);
            })
        });
    }
    g.finish();
    rt.block_on(async {
        let _ = client.batch_execute(&format!("DROP SCHEMA \"{raw_schema}\" CASCADE")).await;
        wipe(&store).await;
    });
    rt.block_on(store.close()).expect("close");
    rt.block_on(async {
        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
    });
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
    rt.block_on(drop_pg_schema("q"));
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let only = std::env::var("ORB_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only.contains("sample") {
        sampling(c, &rt);
        sqlite_sampling(c, &rt);
    }
    if only.is_empty() || only.contains("open") {
        opening(c, &rt);
    }
    if only.is_empty() || only.contains("qtable") {
        qtable_updates(c, &rt);
    }
    if only.is_empty() || only.contains("write_batch") {
        write_batches(c, &rt);
    }
    if only.is_empty() || only.contains("pg_events") {
        pg_events(c, &rt);
    }
}

criterion_group!(rl, benches);
criterion_main!(rl);
