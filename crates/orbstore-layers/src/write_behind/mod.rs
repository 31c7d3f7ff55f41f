//! Write-behind ([`WriteBehindLayer`]): writes are applied to an in-memory view and acknowledged
//! at once; they reach the inner backend later, in batches, so a crash may lose a bounded window
//! of them (docs/durability.md, "Write-behind").
//!
//! - **What is queued**: the latest state of each written document (its content, or "deleted"),
//!   per collection. Several writes to one document coalesce into one state, shipped as an upsert
//!   or a delete, which also makes a retried flush idempotent.
//! - **When it is flushed**: when the queue is half full (`max_pending / 2` documents or
//!   `max_bytes / 2` bytes), when its oldest write is `max_age` old, after `debounce` without
//!   writes, on `flush()`, and at shutdown: `close()` (waits), drop (starts a last flush in the
//!   background; it needs the tokio runtime to keep running, and handles kept longer than the
//!   layer refuse writes from then on), SIGINT/SIGTERM with
//!   [`flush_on_signal`] or [`shutdown_all`] ([`flush_all`] flushes without closing). Over a
//!   backend with transactions, a flush is one transaction per 1,000 documents (atomic, one
//!   commit).
//! - **The bound**: at most `max_pending` documents and `max_bytes` bytes are unflushed (queued or
//!   being written) at any time; a write that would pass it waits for room, or fails with
//!   `Unavailable` ([`Overflow`]). Never a silent drop. A single write larger than the whole queue
//!   (an `insert_many` of more than `max_pending` documents, say) is not queued: the collection's
//!   queued writes are flushed, then it goes straight to the inner backend.
//! - **Failures**: a failed flush keeps its states queued (under newer ones) and is retried with
//!   backoff (100 ms doubling to 10 s). A write the inner backend refuses for good (`Conflict`
//!   from a unique index, `InvalidInput`) leaves the queue for [`WriteBehindStatus::rejected`],
//!   visible and logged; it was acknowledged, so this is the one way an acknowledged write is
//!   lost without a crash, and unique indexes are therefore not reported as enforced
//!   (`Capabilities::unique_indexes` is false).
//! - **Reads see the queue**: `find_by_id` answers from the queue when the document has a queued
//!   state (no I/O); `find`, `count` and `find_stream` lay the collection's queued states over the
//!   inner backend's answer (see `collection.rs` for the cost).
//! - **Results are exact**: an insert with a given `_id` and an upsert check the view for that id
//!   (one `find_by_id` of the inner backend unless the id is queued), and updates and deletes
//!   read the matching documents from the view (one `find`) to compute their counts and the new
//!   states: those writes are acknowledged after that read, not without I/O. An insert without
//!   `_id` (a generated id) does no I/O at all.
//! - **Transactions** pass through to the inner backend (when it has them): a collection's queued
//!   writes are flushed when the transaction first touches it, and again at commit while the
//!   collection's writers are held, so a write through the layer that overtook the transaction is
//!   in the inner backend when it commits (and an isolated backend aborts it, as it would
//!   without the layer).

mod collection;
mod queue;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use orbstore_core::{
    validate_collection_name, Capabilities, CleanupReport, CollectionRef, CompactReport, Error, ErrorKind,
    HealthReport, Id, PersistenceBackend, Result, Snapshot, StorageStats, Transaction,
};
use parking_lot::Mutex;

use collection::WbCollection;
use queue::Shared;

/// The variable that turns write-behind on (`true`).
pub const AUTO_SAVE_VAR: &str = "PERSISTENCE_AUTO_SAVE";
/// The variable giving the oldest a queued write may get before it is flushed, in milliseconds.
pub const AUTO_SAVE_INTERVAL_VAR: &str = "PERSISTENCE_AUTO_SAVE_INTERVAL";

/// What a write does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait until a flush makes room (the default: back-pressure, nothing refused).
    #[default]
    Wait,
    /// Fail at once with `Unavailable`, saying the queue is full.
    Fail,
}

/// The write-behind layer's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBehindConfig {
    /// The most documents unflushed at once (queued or being written): the loss window in
    /// documents. A flush starts at half of it. Default 1,000.
    pub max_pending: usize,
    /// The most bytes (documents as JSON) unflushed at once. A flush starts at half. Default
    /// 16 MiB.
    pub max_bytes: usize,
    /// A queued write is flushed at the latest when it is this old (while the inner backend
    /// accepts writes): the loss window in time. Default 5 s.
    pub max_age: Duration,
    /// The queue is flushed after this long without a write. Default 1 s.
    pub debounce: Duration,
    /// What a write does when the queue is full. Default [`Overflow::Wait`].
    pub overflow: Overflow,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig {
            max_pending: 1_000,
            max_bytes: 16 << 20,
            max_age: Duration::from_secs(5),
            debounce: Duration::from_secs(1),
            overflow: Overflow::Wait,
        }
    }
}

impl WriteBehindConfig {
    /// [`WriteBehindConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Option<WriteBehindConfig>> {
        WriteBehindConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// The write-behind the settings ask for: `None` unless `PERSISTENCE_AUTO_SAVE` is true
    /// (`true`, `1`, `yes`, `on`; unset, empty, `false`, `0`, `no`, `off`: none). With it,
    /// `PERSISTENCE_AUTO_SAVE_INTERVAL` (milliseconds) sets `max_age`, and `debounce` is the
    /// smaller of 1 s and that. A bad value is `InvalidInput` naming the variable, the value and
    /// what is valid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<WriteBehindConfig>> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let on = orbstore_core::parse_bool(AUTO_SAVE_VAR, get(AUTO_SAVE_VAR))?;
        if !on {
            return Ok(None);
        }
        let mut config = WriteBehindConfig::default();
        if let Some(v) = get(AUTO_SAVE_INTERVAL_VAR) {
            match v.trim().parse::<u64>() {
                Ok(ms) if (1..=86_400_000).contains(&ms) => {
                    config.max_age = Duration::from_millis(ms);
                    config.debounce = config.debounce.min(config.max_age);
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid {AUTO_SAVE_INTERVAL_VAR} {v:?}: expected milliseconds from 1 to 86400000 (one day)"
                    )))
                }
            }
        }
        Ok(Some(config))
    }
}

/// A write the inner backend refused for good at flush time.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The collection.
    pub collection: String,
    /// The document.
    pub id: Id,
    /// The error's kind (`Conflict` for a unique index).
    pub kind: ErrorKind,
    /// The error, as the inner backend said it.
    pub error: String,
    /// When it was refused.
    pub at: SystemTime,
}

/// Where the queue stands.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBehindStatus {
    /// Documents not yet in the inner backend (queued or being written).
    pub pending: usize,
    /// Their size as JSON.
    pub pending_bytes: usize,
    /// The age of the oldest of their writes.
    pub oldest: Option<Duration>,
    /// Documents written to the inner backend since the layer was made.
    pub flushed: u64,
    /// When the last flush succeeded.
    pub last_flush: Option<SystemTime>,
    /// The last flush's error, if it failed (cleared by the next success).
    pub last_error: Option<String>,
    /// Flushes that failed in a row.
    pub failures: u32,
    /// Writes refused for good at flush time, the most recent 1,000.
    pub rejected: Vec<Rejected>,
    /// How many were refused for good in all.
    pub rejected_total: u64,
}

/// Every layer alive, for [`flush_all`] and [`shutdown_all`].
static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// A backend whose writes are acknowledged in memory and persisted in batches (see the module
/// doc).
pub struct WriteBehindLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for WriteBehindLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehindLayer")
            .field("inner", &self.shared.inner)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl WriteBehindLayer {
    /// Wraps `inner` and starts the background flusher on the current tokio runtime (so it must
    /// be called inside one).
    pub fn new(inner: Arc<dyn PersistenceBackend>, config: WriteBehindConfig) -> WriteBehindLayer {
        let config = WriteBehindConfig { max_pending: config.max_pending.max(1), ..config };
        let shared = Arc::new(Shared::new(inner, config));
        {
            let mut live = LIVE.lock();
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&shared));
        }
        let hook: Arc<dyn orbstore_core::shutdown::ShutdownHook> = shared.clone();
        orbstore_core::shutdown::register(Arc::downgrade(&hook));
        tokio::spawn(queue::background(shared.clone()));
        WriteBehindLayer { shared }
    }

    /// Where the queue stands: pending documents and bytes, the oldest write's age, the last
    /// flush and its error, writes refused for good.
    pub fn status(&self) -> WriteBehindStatus {
        self.shared.status()
    }

    /// Flushes the queue without asking the inner backend to make it durable (what the
    /// background does); [`PersistenceBackend::flush`] does both.
    pub async fn flush_queue(&self) -> Result<()> {
        self.shared.flush_pending(None).await
    }
}

impl Drop for WriteBehindLayer {
    fn drop(&mut self) {
        // The background drains the queue, retrying, then stops; `close()` waits for that.
        self.shared.close();
    }
}

/// Flushes every write-behind layer alive (queue and inner backend); the first error is returned
/// after trying all. For shutdown paths that know no layer by name.
pub async fn flush_all() -> Result<()> {
    flush_live(false).await
}

/// Closes every write-behind layer alive to new writes (they fail with `InvalidInput` from then
/// on), then flushes each: when it returns, every write acknowledged before the call is in its
/// inner backend, as durable as that backend's `flush()` makes it. The first error is returned
/// after trying all.
pub async fn shutdown_all() -> Result<()> {
    flush_live(true).await
}

async fn flush_live(close: bool) -> Result<()> {
    let live: Vec<Arc<Shared>> = LIVE.lock().iter().filter_map(Weak::upgrade).collect();
    if close {
        for shared in &live {
            shared.close();
        }
    }
    let mut first = Ok(());
    for shared in live {
        let r = match shared.flush_pending(None).await {
            Ok(()) => shared.inner.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// Installs the process's one shutdown handler (`orbstore_core::shutdown::on_signal`): on
/// SIGINT or SIGTERM (Ctrl-C elsewhere) the learning stores' savers save, then every write-behind
/// layer is closed to new writes (none is acknowledged after the signal that would then be lost)
/// and flushed, then `then` runs (exit the process, say). The same handler as
/// `orbstore_rl::flush_on_signal`: installing both installs one.
pub fn flush_on_signal(then: impl FnOnce() + Send + 'static) {
    orbstore_core::shutdown::on_signal(then);
}

#[async_trait]
impl orbstore_core::shutdown::ShutdownHook for Shared {
    fn stage(&self) -> orbstore_core::shutdown::Stage {
        orbstore_core::shutdown::Stage::Buffers
    }

    /// What [`shutdown_all`] does for one layer.
    async fn shutdown(&self) -> Result<()> {
        self.close();
        self.flush_pending(None).await?;
        self.inner.flush().await
    }
}

#[async_trait]
impl PersistenceBackend for WriteBehindLayer {
    fn kind(&self) -> &'static str {
        self.shared.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        // Unique indexes are checked when a flush reaches the inner backend, after the write was
        // acknowledged: not enforced in the sense of the contract.
        Capabilities { unique_indexes: false, ..self.shared.inner.capabilities() }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        if self.shared.is_closed() {
            return Err(queue::closed_error());
        }
        let inner = self.shared.inner.collection(name).await?;
        Ok(Arc::new(WbCollection::new(self.shared.clone(), inner)))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        let mut names = self.shared.inner.list_collections().await?;
        // A handle kept after a drop recreates its collection with its first write.
        names.extend(self.shared.collections_pending());
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        let lock = self.shared.lock_for(name);
        let _writers = lock.lock().await;
        let (had, dropped) = self.shared.discard_and(name, self.shared.inner.drop_collection(name)).await;
        Ok(dropped? || had)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let inner = self.shared.inner.begin().await?;
        Ok(Box::new(WbTransaction { inner, shared: self.shared.clone(), touched: Mutex::new(Vec::new()) }))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        // Everything acknowledged before the call is in the inner backend's snapshot; later
        // writes stay queued, outside it.
        self.shared.flush_pending(None).await?;
        self.shared.inner.snapshot().await
    }

    async fn health(&self) -> HealthReport {
        let mut report = self.shared.inner.health().await;
        let s = self.shared.status();
        report.message.push_str(&format!("; write-behind: {} pending", s.pending));
        if let Some(e) = &s.last_error {
            report.message.push_str(&format!(", last flush failed ({} in a row): {e}", s.failures));
        }
        if s.rejected_total > 0 {
            report.message.push_str(&format!(", {} writes refused at flush", s.rejected_total));
        }
        report
    }

    async fn stats(&self) -> Result<StorageStats> {
        // Counts come from the inner backend, so the queue goes there first.
        self.shared.flush_pending(None).await?;
        self.shared.inner.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.shared.flush_pending(None).await?;
        self.shared.inner.flush().await
    }

    /// Flushes the queue, then compacts the inner backend (so what it reclaims includes the
    /// documents the queue overwrote or deleted).
    async fn compact(&self) -> Result<CompactReport> {
        self.shared.flush_pending(None).await?;
        self.shared.inner.compact().await
    }

    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.inner.cleanup(apply).await
    }

    async fn close(&self) -> Result<()> {
        self.shared.close();
        // On failure the states stay queued and the background keeps retrying; closing again
        // tries again.
        self.shared.flush_pending(None).await?;
        self.shared.stop();
        self.shared.inner.close().await
    }
}

/// A transaction of the inner backend, with the layer's queue flushed for each collection it
/// touches (see the module doc).
struct WbTransaction {
    inner: Box<dyn Transaction>,
    shared: Arc<Shared>,
    touched: Mutex<Vec<String>>,
}

#[async_trait]
impl Transaction for WbTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        let first = {
            let mut t = self.touched.lock();
            let first = !t.iter().any(|n| n == name);
            if first {
                t.push(name.to_owned());
            }
            first
        };
        if first {
            // So that the transaction reads what was acknowledged before it.
            self.shared.flush_pending(Some(&[name.to_owned()])).await?;
        }
        self.inner.collection(name).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let WbTransaction { inner, shared, touched } = *self;
        let mut names = touched.into_inner();
        // In name order: two commits never wait for each other's collections crosswise.
        names.sort();
        let locks: Vec<_> = names.iter().map(|n| shared.lock_for(n)).collect();
        let mut held = Vec::with_capacity(locks.len());
        for l in &locks {
            held.push(l.lock().await);
        }
        shared.flush_pending(Some(&names)).await?;
        inner.commit().await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }
}
