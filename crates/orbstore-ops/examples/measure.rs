//! Measurements of the data operations (issue 11, "Tests and figures"), one subcommand per
//! process so that `/usr/bin/time -v` can report each one's peak RSS:
//!
//! ```text
//! measure seed URL N            N ~300-byte documents into collection "docs" (insert_many, 1,000 a batch)
//! measure export URL OUT        every collection, JSON lines, to the file OUT
//! measure migrate FROM TO       every collection FROM -> TO (phases timed: copy, indexes, verify)
//! measure backup URL DIR        one archive into DIR (BACKUP_COMPRESSION honoured)
//! measure noop URL              open, count every collection, close: the baseline process
//! measure rawcopy PGURL N       the same N documents by raw tokio-postgres binary COPY into
//!                               `raw (id text primary key, doc json)`, 1,000 rows a transaction
//! measure memexport N OUT       memory backend: seed N and export in one process, peak RSS before/after
//! measure drop URL              drop every collection (cleanup, e.g. of a MongoDB database)
//! ```
//!
//! URLs are `DATABASE_URL` forms (`postgres://...?schema=NAME`, `file://DIR`, `sqlite://PATH`,
//! `mongodb://...`, `memory://`); other `ORB_*` variables are read from the environment. Every
//! subcommand prints `elapsed_s=...` and its figures as `key=value` on one line.
//!
//! Export peak RSS growth is `/usr/bin/time -v measure export` minus `/usr/bin/time -v measure
//! noop` on the same store. `MEASURE_RESET_HWM=1 measure export` also reports the export's own
//! growth over the RSS right after open (VmHWM reset through /proc/self/clear_refs), which a
//! transient peak while opening (the file backend loads its collections) cannot hide.
//!
//! Build: `cargo build --release -p orbstore-ops --examples`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt as _;
use orbstore::serde_json::{json, Value};
use orbstore::{Config, Document, Filter, PersistenceBackend};
use orbstore_ops::{
    backup, export_to_file, migrate, BackupOptions, ExportFormat, ExportOptions, MigrateOptions, Progress,
    Unit,
};

type Store = Arc<dyn PersistenceBackend>;

const COLLECTION: &str = "docs";
const BATCH: usize = 1000;

fn usage() -> ! {
    eprintln!(
        "usage: measure seed URL N | export URL OUT | migrate FROM TO | backup URL DIR | noop URL | \
         rawcopy PGURL N | memexport N OUT | drop URL"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    let n = |i: usize| a(i).replace('_', "").parse::<usize>().unwrap_or_else(|_| usage());
    let result = match args.first().map(String::as_str) {
        Some("seed") => seed(&a(1), n(2)).await,
        Some("export") => export_cmd(&a(1), Path::new(&a(2))).await,
        Some("migrate") => migrate_cmd(&a(1), &a(2)).await,
        Some("backup") => backup_cmd(&a(1), Path::new(&a(2))).await,
        Some("noop") => noop(&a(1)).await,
        Some("rawcopy") => rawcopy(&a(1), n(2)).await,
        Some("memexport") => memexport(n(1), Path::new(&a(2))).await,
        Some("drop") => drop_all(&a(1)).await,
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("measure: {e}");
        std::process::exit(1);
    }
}

type Res<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn open(url: &str) -> Res<Store> {
    let url = url.to_owned();
    let config =
        Config::from_lookup(|k| if k == "DATABASE_URL" { Some(url.clone()) } else { std::env::var(k).ok() })?;
    Ok(orbstore::open(config).await?)
}

// ---------------------------------------------------------------------------------------------
// The documents

/// Document `i`: `{"_id": "doc-000000123", "user": "u17", "n": 123, "score": 0.123, "tags":
/// ["a","b"], "text": "<~200 chars>"}`, about 300 bytes as JSON, the same on every call.
fn document(i: usize) -> Document {
    const WORDS: &[&str] = &[
        "agent", "reward", "state", "policy", "value", "action", "replay", "buffer", "learning", "episode",
        "gradient", "explore", "exploit", "table", "update", "sample", "priority", "stream", "batch",
        "store",
    ];
    const TAGS: &[&str] = &["a", "b", "c", "d", "e"];
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut text = String::with_capacity(220);
    while text.len() < 200 {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
    }
    text.truncate(200);
    let t = (next() % TAGS.len() as u64) as usize;
    let v = json!({
        "_id": format!("doc-{i:09}"),
        "user": format!("u{}", i % 100),
        "n": i,
        "score": (next() % 1000) as f64 / 1000.0,
        "tags": [TAGS[t], TAGS[(t + 1) % TAGS.len()]],
        "text": text,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// Peak RSS of this process

/// `VmHWM` and `VmRSS` from /proc/self/status, in KiB.
fn vm() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// `RssAnon` and `RssFile` from /proc/self/status, in KiB.
fn rss_split() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Samples `RssAnon` and `RssFile` every 5 ms on a thread of its own until stopped, keeping the
/// peaks: the kernel keeps a peak only of their sum (VmHWM), and file-backed pages (SQLite's
/// mmap of its database) are page cache, not memory the process allocated.
struct Sampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut anon, mut file) = rss_split();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, f) = rss_split();
                anon = anon.max(a);
                file = file.max(f);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            (anon, file)
        });
        Sampler { stop, thread }
    }

    /// (peak RssAnon, peak RssFile) in KiB.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

/// `ru_maxrss` of this process, in KiB (not resettable).
fn maxrss_kib() -> u64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: Rusage = unsafe { std::mem::zeroed() };
    unsafe { getrusage(0, &mut ru) };
    ru.ru_maxrss as u64
}

#[repr(C)]
struct Rusage {
    ru_utime: [i64; 2],
    ru_stime: [i64; 2],
    ru_maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// Resets `VmHWM` to the current RSS (Linux >= 4.0: writing 5 to /proc/self/clear_refs).
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---------------------------------------------------------------------------------------------
// Phase timing through the Progress hooks

/// A step under way: what, since when, how many documents so far.
type OpenPhase = (String, Instant, u64);
/// A step ended: what, seconds, documents.
type EndedPhase = (String, f64, u64);

#[derive(Default)]
struct Phases {
    inner: Mutex<(Option<OpenPhase>, Vec<EndedPhase>)>,
}

impl Progress for Phases {
    fn begin(&self, what: &str, _total: Option<u64>, _unit: Unit) {
        self.inner.lock().unwrap().0 = Some((what.to_owned(), Instant::now(), 0));
    }
    fn advance(&self, n: u64) {
        if let Some(open) = self.inner.lock().unwrap().0.as_mut() {
            open.2 += n;
        }
    }
    fn end(&self) {
        let mut g = self.inner.lock().unwrap();
        if let Some((what, at, n)) = g.0.take() {
            g.1.push((what, at.elapsed().as_secs_f64(), n));
        }
    }
    fn wants_totals(&self) -> bool {
        false
    }
}

impl Phases {
    fn print(&self) {
        for (what, secs, n) in &self.inner.lock().unwrap().1 {
            let rate = if *secs > 0.0 { *n as f64 / secs } else { 0.0 };
            println!("  phase {what:?}: {secs:.2} s, {n} docs, {rate:.0} docs/s");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subcommands

async fn seed_into(store: &Store, n: usize) -> Res<f64> {
    let coll = store.collection(COLLECTION).await?;
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        coll.insert_many((i..end).map(document).collect()).await?;
        i = end;
    }
    store.flush().await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn seed(url: &str, n: usize) -> Res {
    let store = open(url).await?;
    let secs = seed_into(&store, n).await?;
    store.close().await?;
    println!("seed docs={n} elapsed_s={secs:.2} docs_per_s={:.0}", n as f64 / secs);
    Ok(())
}

async fn export_cmd(url: &str, out: &Path) -> Res {
    let store = open(url).await?;
    let options = ExportOptions { format: ExportFormat::JsonLines, ..ExportOptions::default() };
    // With MEASURE_RESET_HWM=1, also the peak of the export alone: VmHWM reset to the RSS after
    // open, so that a transient peak while opening cannot hide it. (The reset also lowers what
    // `/usr/bin/time -v` reports, so it is off by default.)
    let hwm_open = vm().0;
    let reset = std::env::var("MEASURE_RESET_HWM").is_ok_and(|v| v == "1") && reset_hwm();
    let (_, rss_before) = vm();
    let (anon_before, file_before) = rss_split();
    let sampler = Sampler::start();
    let started = Instant::now();
    let report = export_to_file(&store, &options, out).await?;
    let secs = started.elapsed().as_secs_f64();
    let (anon_peak, file_peak) = sampler.finish();
    let (hwm_after, _) = vm();
    store.close().await?;
    println!(
        "export docs={} bytes={} elapsed_s={secs:.2} docs_per_s={:.0} hwm_open_kib={hwm_open} hwm_reset={reset} \
         rss_before_export_kib={rss_before} hwm_after_export_kib={hwm_after} in_process_growth_kib={} \
         anon_before_kib={anon_before} anon_peak_kib={anon_peak} anon_growth_kib={} file_before_kib={file_before} \
         file_peak_kib={file_peak}",
        report.documents,
        report.bytes,
        report.documents as f64 / secs,
        hwm_after.saturating_sub(rss_before),
        anon_peak.saturating_sub(anon_before),
    );
    Ok(())
}

async fn migrate_cmd(from: &str, to: &str) -> Res {
    let source = open(from).await?;
    let target = open(to).await?;
    let phases = Arc::new(Phases::default());
    let options = MigrateOptions { progress: phases.clone(), ..MigrateOptions::default() };
    let started = Instant::now();
    let report = migrate(&source, &target, &options).await?;
    let secs = started.elapsed().as_secs_f64();
    target.close().await?;
    source.close().await?;
    let copied = report.copied();
    println!(
        "migrate copied={copied} verified={} elapsed_s={secs:.2} docs_per_s={:.0}",
        report.verified(),
        copied as f64 / secs
    );
    phases.print();
    Ok(())
}

async fn backup_cmd(url: &str, dir: &Path) -> Res {
    let store = open(url).await?;
    let phases = Arc::new(Phases::default());
    let mut options = BackupOptions::from_env()?;
    options.dir = dir.to_owned();
    options.out = None;
    options.retention_days = 0;
    options.progress = phases.clone();
    let started = Instant::now();
    let report = backup(&store, &options).await?;
    let secs = started.elapsed().as_secs_f64();
    store.close().await?;
    let docs: u64 = report.manifest.collections.iter().map(|c| c.count).sum();
    println!(
        "backup docs={docs} archive_bytes={} compression={:?} elapsed_s={secs:.2} path={}",
        report.archive_bytes,
        options.compression,
        report.path.display()
    );
    phases.print();
    Ok(())
}

async fn noop(url: &str) -> Res {
    let started = Instant::now();
    let store = open(url).await?;
    // MEASURE_NOOP_COUNT=0 lists the collections without counting them: on MongoDB in exact
    // mode (nx-27017) a count reads every document into memory, which no export does.
    let count = std::env::var("MEASURE_NOOP_COUNT").map_or(true, |v| v != "0");
    let mut total = 0;
    for name in store.list_collections().await? {
        let coll = store.collection(&name).await?;
        if count {
            total += coll.count(&Filter::all()).await?;
        }
    }
    let (anon, file) = rss_split();
    store.close().await?;
    println!(
        "noop docs={total} elapsed_s={:.2} vmhwm_kib={} anon_kib={anon} file_kib={file}",
        started.elapsed().as_secs_f64(),
        vm().0
    );
    Ok(())
}

async fn drop_all(url: &str) -> Res {
    let store = open(url).await?;
    let names = store.list_collections().await?;
    for name in &names {
        store.drop_collection(name).await?;
    }
    store.close().await?;
    println!("drop collections={}", names.len());
    Ok(())
}

/// The raw baseline: the same documents, binary COPY into `raw (id text primary key, doc json)`
/// in the URL's schema (dropped and recreated first), one transaction per 1,000 rows.
async fn rawcopy(url: &str, n: usize) -> Res {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{Json, Type};

    let (conn_url, schema) = split_schema(url);
    let (mut client, conn) = tokio_postgres::connect(&conn_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}; DROP TABLE IF EXISTS raw; \
             CREATE TABLE raw (id text COLLATE \"C\" PRIMARY KEY, doc json NOT NULL)"
        ))
        .await?;
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        // Generated per batch, as a migration reads them page by page.
        let docs: Vec<Document> = (i..end).map(document).collect();
        let tx = client.transaction().await?;
        let sink = tx.copy_in("COPY raw (id, doc) FROM STDIN (FORMAT binary)").await?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::JSON]);
        futures::pin_mut!(writer);
        for d in &docs {
            let id = d["_id"].as_str().unwrap_or_default();
            writer.as_mut().write(&[&id, &Json(d)]).await?;
        }
        writer.finish().await?;
        tx.commit().await?;
        i = end;
    }
    let secs = started.elapsed().as_secs_f64();
    let rows: i64 = client.query_one("SELECT count(*) FROM raw", &[]).await?.get(0);
    client.batch_execute("DROP TABLE raw").await?;
    println!("rawcopy docs={rows} elapsed_s={secs:.2} docs_per_s={:.0}", n as f64 / secs);
    Ok(())
}

/// `postgres://...?schema=NAME&x=y` -> (`postgres://...?x=y`, NAME or "public").
fn split_schema(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), "public".to_owned()) };
    let mut schema = "public".to_owned();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = s.to_owned();
                false
            }
            None => !kv.starts_with("pool_size="),
        })
        .collect();
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (url, schema)
}

/// The memory backend cannot be seeded across processes: seed and export in this one, and
/// report the peak RSS around the export (VmHWM reset after seeding where the kernel allows).
async fn memexport(n: usize, out: &Path) -> Res {
    let store = open("memory://").await?;
    let seed_secs = seed_into(&store, n).await?;
    // Touch every document once, so that the store's own pages are resident before the baseline.
    let mut counted = 0u64;
    let mut s = store.collection(COLLECTION).await?.find_stream(&orbstore::Query::all()).await?;
    while let Some(d) = s.next().await {
        d?;
        counted += 1;
    }
    drop(s);
    let (hwm_seed, rss_before) = vm();
    let maxrss_before = maxrss_kib();
    let reset = reset_hwm();
    let (hwm_before, _) = vm();
    let options = ExportOptions::default();
    let started = Instant::now();
    let report = export_to_file(&store, &options, out).await?;
    let secs = started.elapsed().as_secs_f64();
    let (hwm_after, rss_after) = vm();
    let maxrss_after = maxrss_kib();
    println!(
        "memexport docs={} streamed_before={counted} bytes={} seed_s={seed_s:.2} elapsed_s={secs:.2} \
         hwm_after_seed_kib={hwm_seed} rss_before_kib={rss_before} hwm_reset={reset} hwm_before_kib={hwm_before} \
         hwm_after_kib={hwm_after} rss_after_kib={rss_after} growth_kib={} maxrss_before_kib={maxrss_before} \
         maxrss_after_kib={maxrss_after}",
        report.documents,
        report.bytes,
        hwm_after.saturating_sub(hwm_before),
        seed_s = seed_secs,
    );
    store.close().await?;
    Ok(())
}
