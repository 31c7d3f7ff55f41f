//! Write-behind's own promises: writes are acknowledged without reaching the inner backend,
//! reads see them, several writes to one document become one, each flush trigger works (half
//! full, age, quiet period, `flush()`, `close()`, drop, `flush_all()`), a full queue waits or
//! fails but never drops, a failed flush is kept and retried, a write refused at flush time is
//! listed, transactions see what was acknowledged before them, and a random mix of operations
//! gives the same results as the memory backend itself.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use orbstore_core::{
    CollectionExt, CollectionRef, Document, ErrorKind, FileConfig, FileSync, Filter, IndexSpec,
    PersistenceBackend, Query, Result, Update,
};
use orbstore_layers::write_behind::flush_all;
use orbstore_layers::{Around, AroundBackend, Op, Overflow, WriteBehindConfig, WriteBehindLayer};
use orbstore_memory::MemoryBackend;
use orbstore_testkit::{d, docs, ids};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Counts the calls reaching the inner backend, and fails or holds writes when told.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<ProbeState>>);

#[derive(Default)]
struct ProbeState {
    calls: HashMap<&'static str, u64>,
    fail_writes: Option<ErrorKind>,
    hold_writes: Option<Arc<tokio::sync::Semaphore>>,
}

impl Probe {
    fn calls(&self, op: &str) -> u64 {
        self.0.lock().calls.get(op).copied().unwrap_or(0)
    }
    fn total_calls(&self) -> u64 {
        self.0.lock().calls.values().sum()
    }
    fn fail_writes(&self, kind: Option<ErrorKind>) {
        self.0.lock().fail_writes = kind;
    }
    /// Writes wait until [`Probe::release`].
    fn hold(&self) {
        self.0.lock().hold_writes = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }
    fn release(&self) {
        if let Some(s) = self.0.lock().hold_writes.take() {
            s.close();
        }
    }
}

impl Around for Probe {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let (fail, hold) = {
                let mut s = self.0.lock();
                *s.calls.entry(op.name).or_default() += 1;
                (s.fail_writes, s.hold_writes.clone())
            };
            if op.write {
                if let Some(h) = hold {
                    let _ = h.acquire().await;
                }
                if let Some(kind) = fail {
                    return Err(orbstore_core::Error::new(kind, format!("injected failure of {}", op.name)));
                }
            }
            f().await
        })
    }
}

struct Setup {
    probe: Probe,
    /// The memory backend under the probe, read around the layer.
    raw: Arc<MemoryBackend>,
    layer: Arc<WriteBehindLayer>,
    c: CollectionRef,
}

impl Setup {
    async fn raw_coll(&self) -> CollectionRef {
        self.raw.collection("t").await.unwrap()
    }
    async fn raw_count(&self) -> u64 {
        self.raw_coll().await.count_all().await.unwrap()
    }
}

/// Settings under which nothing is flushed by itself during a test.
fn quiet() -> WriteBehindConfig {
    WriteBehindConfig {
        max_pending: 10_000,
        max_bytes: 64 << 20,
        max_age: Duration::from_secs(3600),
        debounce: Duration::from_secs(3600),
        overflow: Overflow::Wait,
    }
}

async fn setup(config: WriteBehindConfig) -> Setup {
    let probe = Probe::default();
    let raw = Arc::new(MemoryBackend::new());
    let inner = Arc::new(AroundBackend::new(raw.clone(), probe.clone()));
    let layer = Arc::new(WriteBehindLayer::new(inner, config));
    let c = layer.collection("t").await.unwrap();
    Setup { probe, raw, layer, c }
}

/// Waits up to `within` for `cond`, polling; returns how long it took.
async fn eventually(within: Duration, mut cond: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test]
async fn writes_are_acknowledged_in_memory_and_read_back_from_the_view() {
    let s = setup(quiet()).await;
    let before = s.probe.total_calls();
    let id = s.c.insert_value(json!({"n": 1})).await.unwrap();
    assert_eq!(s.probe.total_calls(), before, "an insert without _id does no I/O");
    s.c.insert_value(json!({"_id": "a", "n": 2})).await.unwrap();
    assert_eq!(s.raw_count().await, 0, "nothing reached the inner backend yet");
    assert_eq!(s.c.find_by_id(&id).await.unwrap().unwrap()["n"], 1);
    assert_eq!(s.c.count_all().await.unwrap(), 2);
    assert_eq!(s.layer.status().pending, 2);
    s.layer.flush().await.unwrap();
    assert_eq!(s.raw_count().await, 2);
    let st = s.layer.status();
    assert_eq!((st.pending, st.flushed), (0, 2), "{st:?}");
    assert!(st.last_flush.is_some() && st.last_error.is_none());
}

#[tokio::test]
async fn writes_to_one_document_coalesce_into_one_state() {
    let s = setup(quiet()).await;
    s.c.insert_value(json!({"_id": "ctr", "n": 0})).await.unwrap();
    for _ in 0..100 {
        s.c.update_by_id("ctr", &Update::new().inc("n", 1)).await.unwrap();
    }
    s.c.insert_value(json!({"_id": "gone"})).await.unwrap();
    s.c.delete_by_id("gone").await.unwrap();
    assert_eq!(s.layer.status().pending, 2);
    assert_eq!(s.c.find_by_id("ctr").await.unwrap().unwrap()["n"], 100);
    assert_eq!(s.c.find_by_id("gone").await.unwrap(), None);
    s.layer.flush().await.unwrap();
    // One transaction: one upsert of the final state, one delete.
    assert_eq!(s.probe.calls("upsert"), 1);
    assert_eq!(s.probe.calls("delete_one"), 1);
    assert_eq!(s.raw_coll().await.find_all().await.unwrap(), docs(json!([{"_id": "ctr", "n": 100}])));
}

#[tokio::test]
async fn a_half_full_queue_is_flushed() {
    let s = setup(WriteBehindConfig { max_pending: 20, ..quiet() }).await;
    for i in 0..9 {
        s.c.insert_value(json!({"i": i})).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.raw_count().await, 0, "below half: nothing flushed");
    s.c.insert_value(json!({"i": 9})).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || s.raw_count().await == 10).await.is_some());
}

#[tokio::test]
async fn the_oldest_write_is_flushed_at_max_age_even_under_steady_writes() {
    let s = setup(WriteBehindConfig { max_age: Duration::from_millis(100), ..quiet() }).await;
    let start = Instant::now();
    s.c.insert_value(json!({"_id": "first"})).await.unwrap();
    // Writes every 10 ms keep the quiet period from ever passing.
    let mut flushed_at = None;
    for i in 0..200 {
        s.c.insert_value(json!({"i": i})).await.unwrap();
        if s.raw_coll().await.find_by_id("first").await.unwrap().is_some() {
            flushed_at = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at = flushed_at.expect("the first write was never flushed");
    assert!(at >= Duration::from_millis(100), "flushed after {at:?}, before max_age");
}

#[tokio::test]
async fn a_quiet_period_flushes() {
    let s = setup(WriteBehindConfig { debounce: Duration::from_millis(50), ..quiet() }).await;
    s.c.insert_value(json!({"_id": "a"})).await.unwrap();
    let took = eventually(Duration::from_secs(5), async || s.raw_count().await == 1).await.expect("flushed");
    assert!(took >= Duration::from_millis(40), "flushed after {took:?}, before the quiet period");
}

#[tokio::test]
async fn close_flushes_to_a_durable_backend_and_refuses_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileConfig { sync: FileSync::Always, ..FileConfig::new(dir.path()) };
    let file = Arc::new(orbstore_file::FileBackend::open(config.clone()).await.unwrap());
    let layer = WriteBehindLayer::new(file, quiet());
    let c = layer.collection("t").await.unwrap();
    for i in 0..50 {
        c.insert_value(json!({"_id": format!("{i:03}")})).await.unwrap();
    }
    layer.close().await.unwrap();
    layer.close().await.unwrap();
    assert_eq!(c.insert_value(json!({"x": 1})).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    drop((c, layer));
    let reopened = orbstore_file::FileBackend::open(config).await.unwrap();
    assert_eq!(reopened.collection("t").await.unwrap().count_all().await.unwrap(), 50);
}

#[tokio::test]
async fn dropping_the_layer_flushes_in_the_background() {
    let s = setup(quiet()).await;
    for i in 0..20 {
        s.c.insert_value(json!({"i": i})).await.unwrap();
    }
    let Setup { raw, layer, c, .. } = s;
    drop(c);
    drop(layer);
    let raw_c = raw.collection("t").await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || raw_c.count_all().await.unwrap() == 20)
        .await
        .is_some());
}

#[tokio::test]
async fn flush_all_flushes_every_layer() {
    let a = setup(quiet()).await;
    let b = setup(quiet()).await;
    a.c.insert_value(json!({"x": 1})).await.unwrap();
    b.c.insert_value(json!({"x": 2})).await.unwrap();
    // `flush_all` flushes every layer of the process, also those of tests running beside this
    // one, which may have just closed their inner backend (an error it reports after flushing
    // the others). Our two layers are flushed either way; the error must be someone else's.
    if let Err(e) = flush_all().await {
        assert!(e.message().contains("closed"), "{e}");
    }
    assert_eq!((a.raw_count().await, b.raw_count().await), (1, 1));
}

#[tokio::test]
async fn a_full_queue_fails_when_told_and_nothing_acknowledged_is_dropped() {
    let s = setup(WriteBehindConfig { max_pending: 10, overflow: Overflow::Fail, ..quiet() }).await;
    s.probe.hold();
    let mut acked = 0;
    let mut refused = None;
    for i in 0..100 {
        match s.c.insert_value(json!({"_id": format!("{i:03}")})).await {
            Ok(_) => acked += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the queue never filled");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("queue is full"), "{e}");
    assert_eq!(acked, 10);
    s.probe.release();
    s.layer.flush().await.unwrap();
    assert_eq!(s.raw_count().await, acked);
}

#[tokio::test]
async fn a_full_queue_makes_writers_wait_for_room() {
    let s = setup(WriteBehindConfig { max_pending: 10, overflow: Overflow::Wait, ..quiet() }).await;
    s.probe.hold();
    let writer = {
        let c = s.c.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                c.insert_value(json!({"_id": format!("{i:03}")})).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "the writer must wait while the inner backend is held");
    assert!(s.layer.status().pending <= 10, "{:?}", s.layer.status());
    s.probe.release();
    tokio::time::timeout(Duration::from_secs(10), writer).await.expect("the writer finishes").unwrap();
    s.layer.flush().await.unwrap();
    assert_eq!(s.raw_count().await, 30);
}

#[tokio::test]
async fn a_failed_flush_keeps_the_writes_and_is_retried() {
    let s = setup(WriteBehindConfig { debounce: Duration::from_millis(20), ..quiet() }).await;
    s.probe.fail_writes(Some(ErrorKind::Unavailable));
    s.c.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    let e = s.layer.flush().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let st = s.layer.status();
    assert_eq!(st.pending, 1);
    assert!(st.failures >= 1 && st.last_error.as_deref().unwrap_or("").contains("injected"), "{st:?}");
    // Still readable, and still writable: a newer state coalesces with the kept one.
    assert_eq!(s.c.find_by_id("a").await.unwrap().unwrap()["n"], 1);
    s.c.update_by_id("a", &Update::new().inc("n", 1)).await.unwrap();
    assert_eq!(s.layer.status().pending, 1);
    s.probe.fail_writes(None);
    // The background retries by itself (backoff 100 ms, 200 ms, ...).
    assert!(eventually(Duration::from_secs(10), async || s.raw_count().await == 1).await.is_some());
    assert_eq!(s.raw_coll().await.find_by_id("a").await.unwrap().unwrap()["n"], 2);
    let st = s.layer.status();
    assert!(st.failures == 0 && st.last_error.is_none(), "{st:?}");
}

#[tokio::test]
async fn a_write_refused_at_flush_is_listed_and_the_rest_lands() {
    let s = setup(quiet()).await;
    s.c.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
    s.c.insert_value(json!({"_id": "u1", "email": "a@x"})).await.unwrap();
    s.c.insert_value(json!({"_id": "u2", "email": "a@x"})).await.unwrap();
    s.c.insert_value(json!({"_id": "u3", "email": "b@x"})).await.unwrap();
    // Acknowledged (unique indexes are checked at flush time, as the capabilities say).
    assert!(!s.layer.capabilities().unique_indexes);
    s.layer.flush().await.unwrap();
    let st = s.layer.status();
    assert_eq!(st.rejected_total, 1, "{st:?}");
    let r = &st.rejected[0];
    assert_eq!((r.collection.as_str(), r.kind), ("t", ErrorKind::Conflict));
    assert!(r.id == "u1" || r.id == "u2");
    assert_eq!(s.raw_count().await, 2);
    assert_eq!(st.pending, 0, "a refused write is not retried forever");
    assert!(s.layer.health().await.message.contains("1 writes refused"));
}

#[tokio::test]
async fn transactions_see_acknowledged_writes_and_overtaking_writes_abort_them() {
    let s = setup(quiet()).await;
    s.c.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    let tx = s.layer.begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    assert_eq!(t.find_by_id("a").await.unwrap().unwrap()["n"], 1, "flushed when first touched");
    t.update_by_id("a", &Update::new().inc("n", 10)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.c.find_by_id("a").await.unwrap().unwrap()["n"], 11);

    // A write through the layer between the transaction's read and its commit: the commit
    // flushes it first, and the memory backend (isolated) aborts the transaction.
    let tx = s.layer.begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    let n = t.find_by_id("a").await.unwrap().unwrap()["n"].as_i64().unwrap();
    s.c.update_by_id("a", &Update::new().inc("n", 1)).await.unwrap();
    t.update_by_id("a", &Update::new().set("n", n + 100)).await.unwrap();
    assert_eq!(tx.commit().await.unwrap_err().kind(), ErrorKind::Aborted);
    assert_eq!(s.c.find_by_id("a").await.unwrap().unwrap()["n"], 12, "no update lost");
}

#[tokio::test]
async fn a_write_larger_than_the_queue_goes_straight_through() {
    let s = setup(WriteBehindConfig { max_pending: 100, ..quiet() }).await;
    s.c.insert_value(json!({"_id": "q", "n": 0})).await.unwrap();
    let batch: Vec<Document> = (0..500).map(|i| d(json!({"_id": format!("b{i:03}"), "n": i}))).collect();
    assert_eq!(s.c.insert_many(batch).await.unwrap().len(), 500);
    assert_eq!(s.raw_count().await, 501, "the queued write went first, then the batch");
    assert_eq!(s.c.update_many(&Filter::gte("n", 0), &Update::new().set("m", 1)).await.unwrap(), 501);
    assert_eq!(s.raw_coll().await.count(&Filter::eq("m", 1)).await.unwrap(), 501);
}

#[test]
fn settings_from_the_environment() {
    let cfg = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WriteBehindConfig::from_lookup(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    };
    assert_eq!(cfg(&[]).unwrap(), None);
    assert_eq!(cfg(&[("PERSISTENCE_AUTO_SAVE", "false")]).unwrap(), None);
    assert_eq!(cfg(&[("PERSISTENCE_AUTO_SAVE", "")]).unwrap(), None);
    assert_eq!(cfg(&[("PERSISTENCE_AUTO_SAVE", "true")]).unwrap(), Some(WriteBehindConfig::default()));
    let c = cfg(&[("PERSISTENCE_AUTO_SAVE", "TRUE"), ("PERSISTENCE_AUTO_SAVE_INTERVAL", "250")])
        .unwrap()
        .unwrap();
    assert_eq!((c.max_age, c.debounce), (Duration::from_millis(250), Duration::from_millis(250)));
    let c =
        cfg(&[("PERSISTENCE_AUTO_SAVE", "1"), ("PERSISTENCE_AUTO_SAVE_INTERVAL", "30000")]).unwrap().unwrap();
    assert_eq!((c.max_age, c.debounce), (Duration::from_secs(30), Duration::from_secs(1)));
    for (vars, needle) in [
        (vec![("PERSISTENCE_AUTO_SAVE", "sometimes")], "PERSISTENCE_AUTO_SAVE \"sometimes\""),
        (
            vec![("PERSISTENCE_AUTO_SAVE", "true"), ("PERSISTENCE_AUTO_SAVE_INTERVAL", "soon")],
            "PERSISTENCE_AUTO_SAVE_INTERVAL \"soon\"",
        ),
        (
            vec![("PERSISTENCE_AUTO_SAVE", "true"), ("PERSISTENCE_AUTO_SAVE_INTERVAL", "0")],
            "PERSISTENCE_AUTO_SAVE_INTERVAL \"0\"",
        ),
    ] {
        let e = cfg(&vars).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains(needle), "{e}");
    }
}

/// A random mix of writes and reads, through write-behind (a tiny queue flushed at random
/// moments, so reads see every mix of queued and flushed states) and on a plain memory backend
/// (the reference): every result and every read must be the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_the_memory_backend() {
    for seed in 0..8u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let config = WriteBehindConfig {
            max_pending: rng.random_range(2..40),
            max_age: Duration::from_millis(rng.random_range(1..20)),
            debounce: Duration::from_millis(rng.random_range(1..10)),
            ..quiet()
        };
        let s = setup(config).await;
        let reference = MemoryBackend::new();
        let r = reference.collection("t").await.unwrap();
        for step in 0..400 {
            let id = format!("d{:02}", rng.random_range(0..30));
            let k = rng.random_range(0..5);
            let doc = json!({"_id": id, "k": k, "n": rng.random_range(0..100)});
            let filter = match rng.random_range(0..4) {
                0 => Filter::eq("k", k),
                1 => Filter::gte("n", rng.random_range(0..100)),
                2 => Filter::eq("_id", id.clone()),
                _ => Filter::all(),
            };
            let what = rng.random_range(0..9);
            let (got, want) = match what {
                0 => (
                    s.c.insert_value(doc.clone()).await.map_err(|e| e.kind()).map(|_| 0),
                    r.insert_value(doc).await.map_err(|e| e.kind()).map(|_| 0),
                ),
                1 => (
                    s.c.upsert(d(doc.clone())).await.map(|u| u.inserted as u64).map_err(|e| e.kind()),
                    r.upsert(d(doc)).await.map(|u| u.inserted as u64).map_err(|e| e.kind()),
                ),
                2 => {
                    let u = Update::new().inc("n", 1).set("k", k);
                    (
                        s.c.update_one(&filter, &u).await.map_err(|e| e.kind()),
                        r.update_one(&filter, &u).await.map_err(|e| e.kind()),
                    )
                }
                3 => {
                    let u = Update::new().inc("n", 5);
                    (
                        s.c.update_many(&filter, &u).await.map_err(|e| e.kind()),
                        r.update_many(&filter, &u).await.map_err(|e| e.kind()),
                    )
                }
                4 => (
                    s.c.delete_one(&filter).await.map_err(|e| e.kind()),
                    r.delete_one(&filter).await.map_err(|e| e.kind()),
                ),
                5 if rng.random_bool(0.3) => (
                    s.c.delete_many(&filter).await.map_err(|e| e.kind()),
                    r.delete_many(&filter).await.map_err(|e| e.kind()),
                ),
                6 => (
                    s.c.count(&filter).await.map_err(|e| e.kind()),
                    r.count(&filter).await.map_err(|e| e.kind()),
                ),
                7 => {
                    let mut q = Query::new(filter.clone());
                    q = if rng.random_bool(0.5) { q.sort_desc("n") } else { q.sort_asc("k").sort_desc("n") };
                    q = q.offset(rng.random_range(0..5)).limit(rng.random_range(0..8));
                    let got = ids(&s.c.find(&q).await.unwrap());
                    let want = ids(&r.find(&q).await.unwrap());
                    assert_eq!(got, want, "seed {seed} step {step}: find {q:?}");
                    (Ok(0), Ok(0))
                }
                _ => (
                    s.c.find_by_id(&id)
                        .await
                        .map(|d| d.map_or(0, |d| d["n"].as_u64().unwrap() + 1))
                        .map_err(|e| e.kind()),
                    r.find_by_id(&id)
                        .await
                        .map(|d| d.map_or(0, |d| d["n"].as_u64().unwrap() + 1))
                        .map_err(|e| e.kind()),
                ),
            };
            assert_eq!(got, want, "seed {seed} step {step}: operation {what} on {id}");
            if rng.random_bool(0.02) {
                s.layer.flush().await.unwrap();
            }
        }
        s.layer.flush().await.unwrap();
        assert_eq!(
            s.raw_coll().await.find_all().await.unwrap(),
            r.find_all().await.unwrap(),
            "seed {seed}: the inner backend ends with the reference's documents"
        );
        assert_eq!(s.layer.status().rejected_total, 0);
    }
}
