//! A read cache for `find_by_id` ([`CacheLayer`]), invalidated by every write through the layer.
//!
//! - What is cached: the answer of `find_by_id`, **including "not found"**: the learning stores
//!   look up states and users that do not exist yet far more often than they insert them, and an
//!   insert or upsert of that id invalidates the cached `None` like any write.
//! - Bounds: `capacity` entries (documents or "not found" answers; LRU-like eviction by `moka`'s
//!   TinyLFU) and a time to live. The TTL is the only bound on staleness for writes that do not go
//!   through this layer (another process, another handle on the same database): such a write is
//!   seen at most `ttl` after it happened.
//! - Invalidation: inserts and upserts invalidate their ids; updates and deletes invalidate the id
//!   their filter pins (`{"_id": "x", ...}`, what `update_by_id`/`delete_by_id` send), and the
//!   whole collection for any other filter (it may match documents that are not cached, or that
//!   are cached under another id, so the affected ids are not known without reading); dropping a
//!   collection invalidates it whole. A write invalidates even when it fails, since a failure
//!   whose outcome is unknown may have been applied, and also when the caller drops its future.
//!   Writes inside a transaction invalidate when the transaction ends (commit, rollback or drop:
//!   rollback is conservative, nothing to lose but a few hits).
//! - The race: a read that started before a write must not put the old value into the cache
//!   after the write invalidated it. Each collection has a write counter: a reader notes it
//!   before reading the inner backend and inserts its answer only if the counter has not moved,
//!   checked and inserted under the collection's lock, under which writers bump the counter and
//!   invalidate. So either the reader inserts before the writer invalidates (and the
//!   invalidation removes it), or the reader sees the bumped counter and does not insert.
//!   "Invalidate the whole collection" bumps an epoch that is part of every key, so it is O(1):
//!   the old entries become unreachable and age out.
//!
//! Counted in [`CacheLayer::cache_stats`] and, through the `metrics` facade (a no-op without a
//! recorder), as counters `orbstore_cache_hits_total`, `orbstore_cache_misses_total`,
//! `orbstore_cache_evictions_total` and `orbstore_cache_expirations_total`, labelled `backend`.
//!
//! `moka`'s synchronous cache, not its future cache: the check-and-insert must be atomic with
//! respect to bump-and-invalidate, so it runs under a short `parking_lot` lock, and the future
//! cache's `insert` is `async`. The synchronous cache never does I/O, so calling it from async
//! code only costs its own few microseconds.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::notification::RemovalCause;
use orbstore_core::{
    id_of, Capabilities, CleanupReport, Collection, CollectionRef, CompactReport, Document, DocumentStream,
    Error, Filter, HealthReport, Id, IndexSpec, PersistenceBackend, Query, Result, Snapshot, StorageStats,
    Transaction, Update, Upserted,
};
use parking_lot::Mutex;

/// The variable giving the cache's capacity in documents (`0` turns the cache off).
pub const CACHE_SIZE_VAR: &str = "PERSISTENCE_CACHE_SIZE";
/// The variable giving the cache's time to live in milliseconds (default 60,000).
pub const CACHE_TTL_VAR: &str = "PERSISTENCE_CACHE_TTL";

/// The read cache's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most answers kept (documents and "not found"s); default 10,000.
    pub capacity: u64,
    /// How long an answer is kept: the bound on staleness for writes made around this layer
    /// (another process); default 60 s.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { capacity: 10_000, ttl: Duration::from_secs(60) }
    }
}

impl CacheConfig {
    /// [`CacheConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Option<CacheConfig>> {
        CacheConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// The cache the settings ask for: `None` when `PERSISTENCE_CACHE_SIZE` is unset, empty or
    /// `0`; otherwise that capacity, with `PERSISTENCE_CACHE_TTL` (milliseconds) or the default
    /// TTL. A bad value is `InvalidInput` naming the variable, the value and what is valid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<CacheConfig>> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let Some(size) = get(CACHE_SIZE_VAR) else { return Ok(None) };
        let capacity = match size.trim().parse::<u64>() {
            Ok(0) => return Ok(None),
            Ok(n) if n <= 100_000_000 => n,
            _ => {
                return Err(Error::invalid(format!(
                    "invalid {CACHE_SIZE_VAR} {size:?}: expected a number of documents from 0 (no cache) to 100000000"
                )))
            }
        };
        let ttl = match get(CACHE_TTL_VAR) {
            None => CacheConfig::default().ttl,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if (1..=86_400_000).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid {CACHE_TTL_VAR} {v:?}: expected milliseconds from 1 to 86400000 (one day)"
                    )))
                }
            },
        };
        Ok(Some(CacheConfig { capacity, ttl }))
    }
}

/// What the cache did since it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// `find_by_id` calls answered from the cache.
    pub hits: u64,
    /// `find_by_id` calls that went to the inner backend.
    pub misses: u64,
    /// Answers removed to stay within the capacity (or never admitted, by `moka`'s policy).
    pub evictions: u64,
    /// Answers removed because their time to live passed.
    pub expirations: u64,
    /// Answers held now.
    pub entries: u64,
}

/// (collection, epoch, id): the epoch changes when the whole collection is invalidated.
type Key = (Arc<str>, u64, Id);
/// Shared so that a hit clones a pointer, not the document, inside the cache.
type Cached = Arc<Option<Document>>;

/// One collection's write counter and epoch (see the module doc).
#[derive(Debug)]
struct CollGen {
    name: Arc<str>,
    state: Mutex<Gen>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Gen {
    writes: u64,
    epoch: u64,
}

/// What a write may have changed.
#[derive(Debug, Clone)]
enum Invalidate {
    Ids(Vec<Id>),
    All,
}

impl Invalidate {
    /// The ids given in documents (a document without `_id` gets a new id, never cached).
    fn docs<'a>(docs: impl IntoIterator<Item = &'a Document>) -> Invalidate {
        Invalidate::Ids(docs.into_iter().filter_map(|d| id_of(d).map(str::to_owned)).collect())
    }

    fn filter(filter: &Filter) -> Invalidate {
        match filter.pinned_id() {
            Some(id) => Invalidate::Ids(vec![id.to_owned()]),
            None => Invalidate::All,
        }
    }

    fn merge(&mut self, other: Invalidate) {
        match (&mut *self, other) {
            (Invalidate::Ids(mine), Invalidate::Ids(more)) => mine.extend(more),
            (_, _) => *self = Invalidate::All,
        }
    }
}

struct Shared {
    backend: &'static str,
    cache: moka::sync::Cache<Key, Cached>,
    colls: Mutex<HashMap<String, Arc<CollGen>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
    expirations: Arc<AtomicU64>,
}

impl Shared {
    fn generation(&self, name: &str) -> Arc<CollGen> {
        self.colls
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(CollGen { name: name.into(), state: Mutex::new(Gen::default()) }))
            .clone()
    }

    fn invalidate(&self, coll: &CollGen, what: Invalidate) {
        let mut g = coll.state.lock();
        g.writes += 1;
        match what {
            Invalidate::All => g.epoch += 1,
            Invalidate::Ids(ids) => {
                for id in ids {
                    self.cache.invalidate(&(coll.name.clone(), g.epoch, id));
                }
            }
        }
    }
}

/// A backend whose `find_by_id` answers are cached (see the module doc).
pub struct CacheLayer {
    inner: Arc<dyn PersistenceBackend>,
    shared: Arc<Shared>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer").field("inner", &self.inner).field("stats", &self.cache_stats()).finish()
    }
}

impl CacheLayer {
    /// Caches `find_by_id` over `inner`.
    pub fn new(inner: Arc<dyn PersistenceBackend>, config: CacheConfig) -> CacheLayer {
        let evictions = Arc::new(AtomicU64::new(0));
        let expirations = Arc::new(AtomicU64::new(0));
        let (ev, ex) = (evictions.clone(), expirations.clone());
        let backend = inner.kind();
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.capacity)
            .time_to_live(config.ttl)
            .eviction_listener(move |_key, _value, cause| match cause {
                RemovalCause::Size => {
                    ev.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("orbstore_cache_evictions_total", "backend" => backend).increment(1);
                }
                RemovalCause::Expired => {
                    ex.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("orbstore_cache_expirations_total", "backend" => backend).increment(1);
                }
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        let shared = Arc::new(Shared {
            backend,
            cache,
            colls: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
            expirations,
        });
        CacheLayer { inner, shared }
    }

    /// Hits, misses, evictions, expirations and the entries held (after the cache's pending
    /// maintenance has run, so the counts are exact).
    pub fn cache_stats(&self) -> CacheStats {
        let s = &self.shared;
        s.cache.run_pending_tasks();
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            evictions: s.evictions.load(Ordering::Relaxed),
            expirations: s.expirations.load(Ordering::Relaxed),
            entries: s.cache.entry_count(),
        }
    }
}

#[async_trait]
impl PersistenceBackend for CacheLayer {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        let inner = self.inner.collection(name).await?;
        let gen = self.shared.generation(name);
        Ok(Arc::new(CacheCollection { inner, shared: self.shared.clone(), gen, tx: None }))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.inner.list_collections().await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        let _invalidate = InvalidateOnDrop::new(&self.shared, self.shared.generation(name), Invalidate::All);
        self.inner.drop_collection(name).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let inner = self.inner.begin().await?;
        Ok(Box::new(CacheTransaction {
            inner: Some(inner),
            shared: self.shared.clone(),
            touched: Arc::new(Mutex::new(HashMap::new())),
        }))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        self.inner.snapshot().await
    }

    async fn health(&self) -> HealthReport {
        self.inner.health().await
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.inner.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }

    /// The backend's (documents do not change, so the cache stays valid).
    async fn compact(&self) -> Result<CompactReport> {
        self.inner.compact().await
    }

    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.inner.cleanup(apply).await
    }

    async fn close(&self) -> Result<()> {
        let r = self.inner.close().await;
        self.shared.cache.invalidate_all();
        r
    }
}

/// Invalidates when dropped: after the write's future completed, or when the caller dropped it
/// halfway (the inner write may have been applied).
struct InvalidateOnDrop<'a> {
    shared: &'a Shared,
    coll: Arc<CollGen>,
    what: Option<Invalidate>,
}

impl<'a> InvalidateOnDrop<'a> {
    fn new(shared: &'a Shared, coll: Arc<CollGen>, what: Invalidate) -> Self {
        InvalidateOnDrop { shared, coll, what: Some(what) }
    }
}

impl Drop for InvalidateOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(what) = self.what.take() {
            self.shared.invalidate(&self.coll, what);
        }
    }
}

/// What a transaction wrote, per collection, to invalidate when it ends.
type Touched = Arc<Mutex<HashMap<String, (Arc<CollGen>, Invalidate)>>>;

/// A collection through the cache; inside a transaction (`tx`), reads pass through (they must see
/// the transaction's own writes) and writes are recorded for the end of the transaction.
struct CacheCollection {
    inner: CollectionRef,
    shared: Arc<Shared>,
    gen: Arc<CollGen>,
    tx: Option<Touched>,
}

impl fmt::Debug for CacheCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheCollection").field("inner", &self.inner).finish()
    }
}

impl CacheCollection {
    /// Runs a write, then invalidates what it may have changed.
    async fn write<T>(
        &self,
        what: Invalidate,
        write: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match &self.tx {
            Some(touched) => {
                // Recorded before the write, so a write whose future is dropped still counts.
                {
                    let mut t = touched.lock();
                    let (_, mine) = t
                        .entry(self.gen.name.to_string())
                        .or_insert_with(|| (self.gen.clone(), Invalidate::Ids(Vec::new())));
                    mine.merge(what);
                }
                write.await
            }
            None => {
                let _invalidate = InvalidateOnDrop::new(&self.shared, self.gen.clone(), what);
                write.await
            }
        }
    }
}

#[async_trait]
impl Collection for CacheCollection {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn insert_one(&self, doc: Document) -> Result<Id> {
        let what = Invalidate::docs([&doc]);
        self.write(what, self.inner.insert_one(doc)).await
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        let what = Invalidate::docs(&docs);
        self.write(what, self.inner.insert_many(docs)).await
    }

    async fn upsert(&self, doc: Document) -> Result<Upserted> {
        let what = Invalidate::docs([&doc]);
        self.write(what, self.inner.upsert(doc)).await
    }

    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        let what = Invalidate::docs(&docs);
        self.write(what, self.inner.upsert_many(docs)).await
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        if self.tx.is_some() {
            return self.inner.find_by_id(id).await;
        }
        let seen = *self.gen.state.lock();
        let key: Key = (self.gen.name.clone(), seen.epoch, id.to_owned());
        if let Some(hit) = self.shared.cache.get(&key) {
            self.shared.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("orbstore_cache_hits_total", "backend" => self.shared.backend).increment(1);
            return Ok((*hit).clone());
        }
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("orbstore_cache_misses_total", "backend" => self.shared.backend).increment(1);
        // An invalid id is an error from the inner backend: never cached.
        let found = self.inner.find_by_id(id).await?;
        let g = self.gen.state.lock();
        if g.writes == seen.writes {
            self.shared.cache.insert(key, Arc::new(found.clone()));
        }
        drop(g);
        Ok(found)
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        self.inner.find(query).await
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        self.inner.find_stream(query).await
    }

    async fn find_stored_stream(&self, query: &Query) -> Result<orbstore_core::StoredDocumentStream> {
        self.inner.find_stored_stream(query).await
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        self.write(Invalidate::filter(filter), self.inner.update_one(filter, update)).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        self.write(Invalidate::filter(filter), self.inner.update_many(filter, update)).await
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        self.write(Invalidate::filter(filter), self.inner.delete_one(filter)).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.write(Invalidate::filter(filter), self.inner.delete_many(filter)).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.inner.count(filter).await
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        // An index changes no document.
        self.inner.create_index(spec).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.inner.list_indexes().await
    }
}

/// A transaction through the cache: what it wrote is invalidated when it ends (after its commit
/// returned, at rollback, or when dropped).
struct CacheTransaction {
    inner: Option<Box<dyn Transaction>>,
    shared: Arc<Shared>,
    touched: Touched,
}

impl Drop for CacheTransaction {
    fn drop(&mut self) {
        for (_, (coll, what)) in self.touched.lock().drain() {
            self.shared.invalidate(&coll, what);
        }
    }
}

impl CacheTransaction {
    fn inner(&self) -> Result<&dyn Transaction> {
        self.inner.as_deref().ok_or_else(orbstore_core::engine::finished_transaction)
    }
}

#[async_trait]
impl Transaction for CacheTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        let inner = self.inner()?.collection(name).await?;
        let gen = self.shared.generation(name);
        Ok(Arc::new(CacheCollection {
            inner,
            shared: self.shared.clone(),
            gen,
            tx: Some(self.touched.clone()),
        }))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let tx = self.inner.take().ok_or_else(orbstore_core::engine::finished_transaction)?;
        tx.commit().await
        // `self` drops here, after the commit: the invalidation follows it.
    }

    async fn rollback(mut self: Box<Self>) -> Result<()> {
        let tx = self.inner.take().ok_or_else(orbstore_core::engine::finished_transaction)?;
        tx.rollback().await
    }
}
