//! The read cache's own promises: a hit after a read (also of a missing id), invalidation by
//! every kind of write through the layer, transactions, eviction at capacity, TTL expiry, the
//! settings, and the race of a read that started before a write (which must not put the old
//! value back into the cache).
//!
//! To tell a cached answer from a fresh one, the tests write to the inner backend directly
//! (around the cache): the cache keeps answering the old value until a write through it, or the
//! TTL, ends that.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use orbstore_core::{
    CollectionExt, CollectionRef, ErrorKind, Filter, IndexSpec, PersistenceBackend, Result, Update,
};
use orbstore_layers::{Around, AroundBackend, CacheConfig, CacheLayer, Op};
use orbstore_memory::MemoryBackend;
use serde_json::json;

struct Setup {
    layer: Arc<CacheLayer>,
    /// Collection `t` through the cache.
    c: CollectionRef,
    /// Collection `t` around the cache.
    raw: CollectionRef,
}

async fn setup(config: CacheConfig) -> Setup {
    let inner = Arc::new(MemoryBackend::new());
    let layer = Arc::new(CacheLayer::new(inner.clone(), config));
    let c = layer.collection("t").await.unwrap();
    let raw = inner.collection("t").await.unwrap();
    Setup { layer, c, raw }
}

async fn n_of(c: &CollectionRef, id: &str) -> Option<i64> {
    c.find_by_id(id).await.unwrap().map(|d| d["n"].as_i64().unwrap())
}

/// Puts `n` into document `id` around the cache.
async fn set_raw(raw: &CollectionRef, id: &str, n: i64) {
    raw.upsert(orbstore_testkit::d(json!({"_id": id, "n": n}))).await.unwrap();
}

#[tokio::test]
async fn a_read_is_a_hit_the_second_time_also_for_a_missing_id() {
    let s = setup(CacheConfig::default()).await;
    s.c.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    assert_eq!(n_of(&s.c, "a").await, Some(1));
    assert_eq!(n_of(&s.c, "a").await, Some(1));
    assert_eq!(n_of(&s.c, "nope").await, None);
    assert_eq!(n_of(&s.c, "nope").await, None);
    let st = s.layer.cache_stats();
    assert_eq!((st.hits, st.misses, st.entries), (2, 2, 2), "{st:?}");
    // Cached, so a write around the layer is not seen...
    set_raw(&s.raw, "a", 2).await;
    set_raw(&s.raw, "nope", 2).await;
    assert_eq!(n_of(&s.c, "a").await, Some(1));
    assert_eq!(n_of(&s.c, "nope").await, None);
    // ...and an invalid id is an error, never cached.
    for _ in 0..2 {
        assert_eq!(s.c.find_by_id("").await.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}

/// Each write through the layer makes the next read fresh, for the ids it names and for
/// documents a filter matched that were cached under other ids.
#[tokio::test]
async fn every_kind_of_write_invalidates() {
    let s = setup(CacheConfig::default()).await;
    let ids = ["a", "b", "c", "d", "e", "f"];
    for id in ids {
        set_raw(&s.raw, id, 0).await;
    }
    // Each step: prime the cache, change the document around the layer (so a stale answer is
    // detectable), then the write through the layer; the read after it must be fresh.
    async fn stale_then(s: &Setup, id: &str, around: i64) {
        n_of(&s.c, id).await;
        set_raw(&s.raw, id, around).await;
        assert_ne!(n_of(&s.c, id).await, Some(around), "{id} should be cached before the write");
    }

    // insert_one over a cached "not found".
    assert_eq!(n_of(&s.c, "new1").await, None);
    s.c.insert_value(json!({"_id": "new1", "n": 7})).await.unwrap();
    assert_eq!(n_of(&s.c, "new1").await, Some(7));

    // insert_many over cached "not found"s.
    assert_eq!(n_of(&s.c, "new2").await, None);
    s.c.insert_many(orbstore_testkit::docs(json!([{"_id": "new2", "n": 8}, {"_id": "new3", "n": 9}])))
        .await
        .unwrap();
    assert_eq!(n_of(&s.c, "new2").await, Some(8));

    // upsert.
    stale_then(&s, "a", 5).await;
    s.c.upsert(orbstore_testkit::d(json!({"_id": "a", "n": 10}))).await.unwrap();
    assert_eq!(n_of(&s.c, "a").await, Some(10));

    // update_one by id.
    stale_then(&s, "b", 5).await;
    s.c.update_by_id("b", &Update::new().inc("n", 1)).await.unwrap();
    assert_eq!(n_of(&s.c, "b").await, Some(6));

    // update_many by a filter that matches cached and uncached documents under other ids.
    stale_then(&s, "c", 5).await;
    s.c.update_many(&Filter::gte("n", 0), &Update::new().set("m", true)).await.unwrap();
    assert_eq!(n_of(&s.c, "c").await, Some(5));
    assert_eq!(s.c.find_by_id("c").await.unwrap().unwrap()["m"], true);
    assert_eq!(s.c.find_by_id("d").await.unwrap().unwrap()["m"], true);

    // update_one by a filter that is not an id.
    stale_then(&s, "d", 50).await;
    s.c.update_one(&Filter::eq("n", 50), &Update::new().set("n", 51)).await.unwrap();
    assert_eq!(n_of(&s.c, "d").await, Some(51));

    // delete_one by id.
    n_of(&s.c, "e").await;
    s.c.delete_by_id("e").await.unwrap();
    assert_eq!(n_of(&s.c, "e").await, None);

    // delete_many by a filter.
    n_of(&s.c, "f").await;
    n_of(&s.c, "new1").await;
    s.c.delete_many(&Filter::exists("m", true)).await.unwrap();
    assert_eq!(n_of(&s.c, "f").await, None);
    assert_eq!(n_of(&s.c, "new1").await, None);

    // drop_collection.
    s.c.insert_value(json!({"_id": "g", "n": 1})).await.unwrap();
    assert_eq!(n_of(&s.c, "g").await, Some(1));
    assert!(s.layer.drop_collection("t").await.unwrap());
    assert_eq!(n_of(&s.c, "g").await, None);

    // A failed write invalidates too (its outcome might be unknown).
    set_raw(&s.raw, "h", 1).await;
    n_of(&s.c, "h").await;
    set_raw(&s.raw, "h", 2).await;
    assert_eq!(s.c.insert_value(json!({"_id": "h", "n": 3})).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(n_of(&s.c, "h").await, Some(2));

    // Other collections keep their entries.
    let other = s.layer.collection("u").await.unwrap();
    other.insert_value(json!({"_id": "a", "n": 1})).await.unwrap();
    n_of(&other, "a").await;
    let hits = s.layer.cache_stats().hits;
    s.c.update_many(&Filter::all(), &Update::new().set("z", 1)).await.unwrap();
    n_of(&other, "a").await;
    assert_eq!(s.layer.cache_stats().hits, hits + 1);

    // An index changes no document: entries stay.
    s.c.create_index(IndexSpec::new(["n"])).await.unwrap();
}

#[tokio::test]
async fn transaction_writes_invalidate_at_commit_and_rollback_keeps_the_truth() {
    let s = setup(CacheConfig::default()).await;
    set_raw(&s.raw, "a", 1).await;
    set_raw(&s.raw, "b", 1).await;
    assert_eq!(n_of(&s.c, "a").await, Some(1));
    assert_eq!(n_of(&s.c, "b").await, Some(1));

    let tx = s.layer.begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.update_by_id("a", &Update::new().set("n", 2)).await.unwrap();
    t.update_many(&Filter::eq("n", 1), &Update::new().set("n", 3)).await.unwrap();
    // Reads in the transaction see its writes (they bypass the cache)...
    assert_eq!(n_of(&t, "a").await, Some(2));
    assert_eq!(n_of(&t, "b").await, Some(3));
    // ...and outside, before the commit, the old values (memory transactions are isolated).
    assert_eq!(n_of(&s.c, "a").await, Some(1));
    tx.commit().await.unwrap();
    assert_eq!(n_of(&s.c, "a").await, Some(2));
    assert_eq!(n_of(&s.c, "b").await, Some(3));

    let tx = s.layer.begin().await.unwrap();
    let t = tx.collection("t").await.unwrap();
    t.update_by_id("a", &Update::new().set("n", 9)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(n_of(&s.c, "a").await, Some(2));

    // Dropped without commit: rolled back, the cache still tells the truth.
    let tx = s.layer.begin().await.unwrap();
    tx.collection("t").await.unwrap().delete_by_id("a").await.unwrap();
    drop(tx);
    assert_eq!(n_of(&s.c, "a").await, Some(2));
}

#[tokio::test]
async fn capacity_bounds_the_entries_and_evictions_are_counted() {
    let s = setup(CacheConfig { capacity: 100, ttl: Duration::from_secs(60) }).await;
    for i in 0..1_000 {
        s.c.find_by_id(&format!("id{i}")).await.unwrap();
    }
    let st = s.layer.cache_stats();
    assert!(st.entries <= 100, "{st:?}");
    assert!(st.evictions >= 900, "{st:?}");
    assert_eq!(st.misses, 1_000);
}

#[tokio::test]
async fn ttl_bounds_staleness_of_writes_around_the_layer() {
    let s = setup(CacheConfig { capacity: 100, ttl: Duration::from_millis(100) }).await;
    set_raw(&s.raw, "a", 1).await;
    assert_eq!(n_of(&s.c, "a").await, Some(1));
    set_raw(&s.raw, "a", 2).await;
    assert_eq!(n_of(&s.c, "a").await, Some(1), "cached within the TTL");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(n_of(&s.c, "a").await, Some(2), "fresh after the TTL");
    assert!(s.layer.cache_stats().expirations >= 1, "{:?}", s.layer.cache_stats());
}

#[test]
fn settings_from_the_environment() {
    let cfg = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CacheConfig::from_lookup(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    };
    assert_eq!(cfg(&[]).unwrap(), None);
    assert_eq!(cfg(&[("PERSISTENCE_CACHE_SIZE", "")]).unwrap(), None);
    assert_eq!(cfg(&[("PERSISTENCE_CACHE_SIZE", "0")]).unwrap(), None);
    assert_eq!(
        cfg(&[("PERSISTENCE_CACHE_SIZE", "500")]).unwrap(),
        Some(CacheConfig { capacity: 500, ..CacheConfig::default() })
    );
    assert_eq!(CacheConfig::default().capacity, 10_000);
    assert_eq!(
        cfg(&[("PERSISTENCE_CACHE_SIZE", "5"), ("PERSISTENCE_CACHE_TTL", "1500")]).unwrap(),
        Some(CacheConfig { capacity: 5, ttl: Duration::from_millis(1500) })
    );
    for (vars, needle) in [
        (vec![("PERSISTENCE_CACHE_SIZE", "many")], "PERSISTENCE_CACHE_SIZE \"many\""),
        (vec![("PERSISTENCE_CACHE_SIZE", "-1")], "PERSISTENCE_CACHE_SIZE \"-1\""),
        (
            vec![("PERSISTENCE_CACHE_SIZE", "9"), ("PERSISTENCE_CACHE_TTL", "0")],
            "PERSISTENCE_CACHE_TTL \"0\"",
        ),
    ] {
        let e = cfg(&vars).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains(needle), "{e}");
    }
}

/// Makes every `find_by_id` of the inner backend return only after a delay: its answer is read
/// at once, so a write can overtake the read before it reaches the cache.
struct SlowReads(Duration);

impl Around for SlowReads {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let r = f().await;
            if op.name == "find_by_id" {
                let jitter = rand::random_range(0..=self.0.as_micros() as u64);
                tokio::time::sleep(Duration::from_micros(jitter)).await;
            }
            r
        })
    }
}

/// A read that began before a write returns the old value (it was right when it began), but
/// must not leave it in the cache for the reads after the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_overtaken_by_a_write_does_not_cache_the_old_value() {
    // The read takes 200 ms after reading; the write lands at 50 ms.
    let slow: Arc<dyn PersistenceBackend> =
        Arc::new(AroundBackend::new(Arc::new(MemoryBackend::new()), FixedDelay(Duration::from_millis(200))));
    let layer = Arc::new(CacheLayer::new(slow, CacheConfig::default()));
    let c = layer.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "a", "n": 0})).await.unwrap();
    let reader = {
        let c = c.clone();
        tokio::spawn(async move { n_of(&c, "a").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.update_by_id("a", &Update::new().set("n", 1)).await.unwrap();
    assert_eq!(reader.await.unwrap(), Some(0), "the read began before the write");
    assert_eq!(n_of(&c, "a").await, Some(1), "the old value must not have been cached");
}

/// Many tasks: 8 writers each increment their own counter 40 times and read it back after each
/// increment (it must show exactly their count), while 24 readers with random delays keep
/// filling the cache with reads that writes overtake. At the end the cache agrees with the
/// backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_readers_and_writers_never_see_a_stale_cached_value() {
    let inner: Arc<dyn PersistenceBackend> =
        Arc::new(AroundBackend::new(Arc::new(MemoryBackend::new()), SlowReads(Duration::from_millis(3))));
    let layer = Arc::new(CacheLayer::new(inner.clone(), CacheConfig::default()));
    let c = layer.collection("t").await.unwrap();
    for k in 0..8 {
        c.insert_value(json!({"_id": format!("k{k}"), "n": 0})).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("k{w}");
            for i in 1..=40 {
                c.update_by_id(&id, &Update::new().inc("n", 1)).await.unwrap();
                assert_eq!(n_of(&c, &id).await, Some(i), "{id} after its write {i}");
            }
        }));
    }
    for r in 0..24 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                c.find_by_id(&format!("k{}", (r + i) % 8)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let raw = inner.collection("t").await.unwrap();
    for k in 0..8 {
        let id = format!("k{k}");
        assert_eq!(n_of(&raw, &id).await, Some(40));
        assert_eq!(n_of(&c, &id).await, Some(40), "{id}: the cache must agree with the backend");
    }
    let st = layer.cache_stats();
    assert!(st.hits > 0 && st.misses > 0, "{st:?}");
}

/// Every `find_by_id` returns `.0` after reading.
struct FixedDelay(Duration);

impl Around for FixedDelay {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let r = f().await;
            if op.name == "find_by_id" {
                tokio::time::sleep(self.0).await;
            }
            r
        })
    }
}

/// Hits, misses and evictions also reach the `metrics` facade, labelled with the backend.
#[test]
fn counts_reach_the_metrics_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let s = setup(CacheConfig { capacity: 10, ttl: Duration::from_secs(60) }).await;
            set_raw(&s.raw, "a", 1).await;
            n_of(&s.c, "a").await;
            n_of(&s.c, "a").await;
            for i in 0..100 {
                s.c.find_by_id(&format!("x{i}")).await.unwrap();
            }
            s.layer.cache_stats();
        })
    });
    let counters: std::collections::HashMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let labels: Vec<String> =
                key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            assert_eq!(labels, ["backend=memory"]);
            match value {
                DebugValue::Counter(c) => Some((key.key().name().to_owned(), c)),
                _ => None,
            }
        })
        .collect();
    assert_eq!(counters.get("orbstore_cache_hits_total"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("orbstore_cache_misses_total"), Some(&101), "{counters:?}");
    assert!(counters.get("orbstore_cache_evictions_total").is_some_and(|n| *n >= 90), "{counters:?}");
}
