//! The journal layer: offline-first writes that are never lost and never applied twice.
//!
//! [`JournalLayer`] keeps a full replica of the inner backend's collections in memory (one
//! `orbstore_core::engine::CollectionEngine` each, as the memory backend
//! does). A write is applied to the replica, which computes its result (ids, match counts) and
//! the resulting state of every document it touched; those states are appended, under one
//! sequence number, to the journal files in `JournalConfig::dir`; the write is acknowledged
//! when that append is fsynced (concurrent writers share fsyncs). The answer is final: the
//! server ends up holding exactly the states the replica computed.
//!
//! A syncer task then (1) checkpoints durable entries into the `local` store (an embedded
//! backend: documents only, so it can be rebuilt into the replica at open), and (2) ships them to
//! the `inner` backend in sequence order and in batches, as document states, which are
//! idempotent: re-sending a batch after an ambiguous failure changes nothing. A journal file is
//! deleted only when every entry in it is both shipped and checkpointed (and the local store
//! flushed). After a crash, open rebuilds the replica from the local store plus the journal
//! entries after its checkpoint, and ships whatever the server may not have yet.
//!
//! See the crate README ("Journal") for the design choices, the costs and the assumptions.

mod entry;
mod log;
mod replica;
mod status;
mod sync;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::TryStreamExt;
use orbstore_core::engine::{CollectionEngine, FrozenStore};
use orbstore_core::{
    Capabilities, CleanupReport, CollectionRef, CollectionStats, CompactReport, Error, HealthReport,
    IndexSpec, PersistenceBackend, Query, Result, Snapshot, StorageStats, Transaction,
};
use parking_lot::Mutex;

use crate::BreakerLayer;

use entry::Op;
use replica::{
    check_name, Entry, Host, JournalCollection, JournalTransaction, Pending, Shared, State, SyncInfo,
};
pub use status::{DeadLetter, SyncStatus};

/// Settings of a [`JournalLayer`].
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Where the journal files live (`ORB_JOURNAL_DIR`, default `$ORB_DATA_DIR/journal`). One
    /// process at a time: the local store's own lock guards the replica.
    pub dir: PathBuf,
    /// Acknowledged writes not yet on the server, in journal bytes, beyond which writes fail
    /// with `Unavailable` ("the journal is full"). Default 256 MiB. The journal may exceed it by
    /// the one write that crossed it.
    pub max_pending_bytes: u64,
    /// At most this many document states per batch shipped or checkpointed (default 10,000: a
    /// backlog drains in few server transactions).
    pub batch: usize,
    /// The first retry delay after a failed sync (default 100 ms); it doubles, with jitter, up
    /// to `max_backoff` (default 30 s).
    pub min_backoff: Duration,
    /// See `min_backoff`.
    pub max_backoff: Duration,
    /// Flusher threads, each able to have one fsync in flight (default 4).
    pub flushers: usize,
    /// A journal file is closed and a new one started past this size (default 16 MiB); closed
    /// files are deleted once shipped and checkpointed.
    pub segment_bytes: u64,
    /// One attempt to reach the server (a batch, or seeding) that has not finished after this
    /// long is abandoned and retried like a failure (default 30 s): a hung connection must not
    /// stall the sync. Abandoning is safe, every step being idempotent.
    pub attempt_timeout: Duration,
}

impl JournalConfig {
    /// The defaults, with the journal files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            max_pending_bytes: 256 << 20,
            batch: 10_000,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            flushers: 4,
            segment_bytes: 16 << 20,
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// The variable that turns the journal on in `orbstore::from_env()` (`true`).
pub const OFFLINE_MODE_VAR: &str = "PERSISTENCE_OFFLINE_MODE";
/// The journal's directory (default `$ORB_DATA_DIR/journal`, `ORB_DATA_DIR` defaulting to
/// `./data`): the journal files in `log/`, the local replica's store in `replica/`.
pub const JOURNAL_DIR_VAR: &str = "ORB_JOURNAL_DIR";
/// [`JournalConfig::max_pending_bytes`], in bytes.
pub const JOURNAL_MAX_BYTES_VAR: &str = "ORB_JOURNAL_MAX_BYTES";

/// What the environment asks of a journal ([`OfflineConfig::from_lookup`]): the layer's
/// settings and where its local replica's store lives. The store itself is opened by the
/// caller (`orbstore::from_env()` opens a file backend there), since this crate knows only
/// the contract.
#[derive(Debug, Clone)]
pub struct OfflineConfig {
    /// The layer's settings; `dir` is `$ORB_JOURNAL_DIR/log`.
    pub journal: JournalConfig,
    /// `$ORB_JOURNAL_DIR/replica`: where the local store keeps the replica.
    pub replica_dir: PathBuf,
}

impl OfflineConfig {
    /// `None` unless `PERSISTENCE_OFFLINE_MODE` is true (the spellings of
    /// [`orbstore_core::parse_bool`]). With it, the directory from `ORB_JOURNAL_DIR` and the
    /// limit from `ORB_JOURNAL_MAX_BYTES` (a whole number of bytes, at least 1 MiB). A bad
    /// value is `InvalidInput` naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<OfflineConfig>> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        if !orbstore_core::parse_bool(OFFLINE_MODE_VAR, get(OFFLINE_MODE_VAR))? {
            return Ok(None);
        }
        let dir = match get(JOURNAL_DIR_VAR) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(get("ORB_DATA_DIR").unwrap_or_else(|| "./data".to_owned())).join("journal"),
        };
        let mut journal = JournalConfig::new(dir.join("log"));
        if let Some(raw) = get(JOURNAL_MAX_BYTES_VAR) {
            journal.max_pending_bytes =
                raw.trim().parse::<u64>().ok().filter(|n| *n >= 1 << 20).ok_or_else(|| {
                    Error::invalid(format!(
                        "invalid {JOURNAL_MAX_BYTES_VAR} {raw:?}: a whole number of bytes, at least 1048576 (1 MiB)"
                    ))
                })?;
        }
        Ok(Some(OfflineConfig { journal, replica_dir: dir.join("replica") }))
    }
}

/// A backend whose writes are durable in a local journal before they are acknowledged, and
/// reach the inner backend exactly once in effect (see the module documentation).
#[derive(Debug)]
pub struct JournalLayer {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The circuit breaker between the journal and the server, when there is one: its state
    /// is part of the sync status.
    breaker: Option<Arc<BreakerLayer>>,
}

/// A meta record of the local store, parsed.
fn meta_indexes(doc: &orbstore_core::Document) -> Result<Vec<IndexSpec>> {
    let specs = doc.get("indexes").cloned().unwrap_or(serde_json::Value::Array(Vec::new()));
    serde_json::from_value(specs).map_err(|e| Error::corrupt(format!("a journal meta record: {e}")))
}

/// Applies a journal op to the replica as it was recorded (no checks: it was checked when
/// it was first applied).
fn replay(state: &mut State, op: &Op) {
    fn engine<'s>(state: &'s mut State, c: &str) -> &'s mut CollectionEngine {
        if !state.collections.contains_key(c) {
            state.install(c, CollectionEngine::default());
        }
        state.collections.get_mut(c).expect("installed above")
    }
    match op {
        Op::Create { c } => {
            engine(state, c);
        }
        Op::Drop { c } => {
            state.collections.remove(c);
        }
        Op::Put { c, doc } => engine(state, c).load((**doc).clone()),
        Op::Delete { c, id } => engine(state, c).unload(id),
        Op::Index { c, spec } => engine(state, c).load_index(spec.clone()),
    }
}

impl JournalLayer {
    /// Opens the journal over `inner` (the server) with `local` as the embedded store of the
    /// replica (built by the factory in the journal directory; it needs no fsync per write, the
    /// layer flushes it before deleting journal files).
    ///
    /// Rebuilds the replica from `local` and the journal, then, when the server answers, copies
    /// into the replica the server collections not copied before (all of them on first open),
    /// and starts the syncer, which ships what the journal holds. When the server does not
    /// answer, the layer opens anyway (offline) and the syncer seeds later; until then, writes
    /// act on the local data only (see the crate README).
    pub async fn open(
        inner: Arc<dyn PersistenceBackend>,
        local: Arc<dyn PersistenceBackend>,
        config: JournalConfig,
    ) -> Result<JournalLayer> {
        let opened = log::JournalLog::open(&config.dir, config.segment_bytes, config.flushers)?;
        let meta = local.collection(replica::META).await?.find(&Query::all()).await?;
        let (mut checkpointed, mut shipped) = (0, 0);
        let mut info = SyncInfo { seeding_pending: true, warnings: opened.warnings, ..SyncInfo::default() };
        let mut state = State::default();
        for doc in &meta {
            let id = orbstore_core::id_of(doc).unwrap_or_default();
            if id == "cursor" {
                checkpointed = doc.get("checkpointed").and_then(|v| v.as_u64()).unwrap_or(0);
                shipped = doc.get("shipped").and_then(|v| v.as_u64()).unwrap_or(0);
            } else if let Some(name) = id.strip_prefix("seeded:") {
                info.seeded.insert(name.to_owned());
            } else if let Some(name) = id.strip_prefix("c:") {
                let mut engine = CollectionEngine::default();
                let mut docs = local.collection(name).await?.find_stream(&Query::all()).await?;
                while let Some(d) = docs.try_next().await? {
                    engine.load(d);
                }
                for spec in meta_indexes(doc)? {
                    engine.load_index(spec);
                }
                state.install(name, engine);
            }
        }
        let records = opened.records;
        for r in records.iter().filter(|r| r.seq > checkpointed) {
            for op in &r.ops {
                replay(&mut state, op);
            }
        }
        for (name, engine) in &mut state.collections {
            let broken = engine.rebuild_indexes();
            if !broken.is_empty() {
                info.warnings
                    .push(format!("collection {name:?}: stored documents break unique indexes {broken:?}"));
            }
        }
        state.last_seq = records.last().map_or(0, |r| r.seq).max(checkpointed).max(shipped);
        opened.log.set_durable(state.last_seq);
        let mut pending = Pending::default();
        let keep_after = checkpointed.min(shipped);
        for r in records.into_iter().filter(|r| r.seq > keep_after) {
            let mut frame = Vec::new();
            entry::encode(&r, &mut frame);
            pending.push(Entry { seq: r.seq, ops: Arc::new(r.ops), bytes: frame.len() as u64 });
        }
        pending.mark_shipped(shipped);
        pending.mark_checkpointed(checkpointed);
        for d in local.collection(replica::DEAD).await?.find(&Query::all()).await? {
            if let Ok(letter) = serde_json::from_value::<DeadLetter>(serde_json::Value::Object(d)) {
                info.dead.push(letter);
            }
        }
        let shared = Arc::new(Shared {
            config,
            inner,
            local,
            state: parking_lot::RwLock::new(state),
            log: opened.log,
            pending: Mutex::new(pending),
            info: Mutex::new(info),
            shipped: tokio::sync::watch::Sender::new(shipped),
            wake: tokio::sync::Notify::new(),
            force: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        // Seed now when the server answers, so that the first writes act on its data.
        if let Err(e) = sync::timed(&shared, sync::seed(&shared)).await {
            tracing::warn!(target: "orbstore::journal", "opening offline, the server did not answer: {e}");
            shared.info.lock().last_error = Some(e.to_string());
        }
        let task = tokio::spawn(sync::run(shared.clone()));
        Ok(JournalLayer { shared, task: Mutex::new(Some(task)), breaker: None })
    }

    /// Reports `breaker`'s state in [`JournalLayer::sync_status`] (the breaker the layer's
    /// inner backend runs through; `StackConfig` passes it).
    pub fn with_breaker(mut self, breaker: Arc<BreakerLayer>) -> JournalLayer {
        self.breaker = Some(breaker);
        self
    }

    /// Where the sync stands (never fails; a closed layer reports what it last knew).
    pub fn sync_status(&self) -> SyncStatus {
        let s = &self.shared;
        let (pending_writes, pending_bytes) = {
            let p = s.pending.lock();
            (p.unshipped, p.unshipped_bytes)
        };
        let breaker = self.breaker.as_ref().map(|b| b.state());
        let info = s.info.lock();
        let mut warnings = info.warnings.clone();
        if let Some(e) = &info.local_error {
            warnings.push(format!("the local store failed a checkpoint (retried): {e}"));
        }
        SyncStatus {
            synced: pending_writes == 0,
            pending_writes,
            pending_bytes,
            max_pending_bytes: s.config.max_pending_bytes,
            journal_disk_bytes: s.log.disk_bytes(),
            last_sync: info.last_sync,
            next_attempt: info.next_attempt,
            last_sync_latency: info.last_latency,
            last_error: info.last_error.clone(),
            failed_attempts: info.failed_attempts,
            seeding_pending: info.seeding_pending,
            dead_letters: info.dead.clone(),
            warnings,
            circuit: breaker.as_ref().map(|b| b.circuit.as_str()),
            circuit_detail: breaker.map(|b| b.to_string()),
        }
    }

    /// Ships everything acknowledged before the call and waits until the server has it (or the
    /// dead-letter list does), trying at once whatever the backoff says. After `timeout`,
    /// `Unavailable` with what is still pending and the last error.
    pub async fn sync_now(&self, timeout: Duration) -> Result<SyncStatus> {
        self.shared.check_open()?;
        let target = self.shared.state.read().last_seq;
        self.shared.force.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if sync::wait_shipped(&self.shared, target, timeout).await {
            return Ok(self.sync_status());
        }
        let status = self.sync_status();
        Err(Error::unavailable(format!(
            "the journal did not reach the server within {timeout:?}: {} writes ({} bytes) pending; last error: {}",
            status.pending_writes,
            status.pending_bytes,
            status.last_error.as_deref().unwrap_or("none")
        )))
    }

    /// What `orb sync [--wait SECONDS]` does: with `wait`, [`JournalLayer::sync_now`] (and the
    /// status as it is after a timeout); without, the status. The CLI prints the status
    /// (`Display`, or `serde_json` of it with `--json`) and exits 0 only when it is synced.
    pub async fn sync_command(&self, wait: Option<Duration>) -> SyncStatus {
        if let Some(timeout) = wait {
            if let Ok(status) = self.sync_now(timeout).await {
                return status;
            }
        }
        self.sync_status()
    }

    /// Removes the dead letters (after an operator dealt with them); returns how many.
    pub async fn clear_dead_letters(&self) -> Result<usize> {
        self.shared.check_open()?;
        let n = self
            .shared
            .local
            .collection(replica::DEAD)
            .await?
            .delete_many(&orbstore_core::Filter::All)
            .await?;
        self.shared.local.flush().await?;
        self.shared.info.lock().dead.clear();
        Ok(n as usize)
    }

    fn handle(&self, name: &str) -> CollectionRef {
        Arc::new(JournalCollection::new(name, Host::Direct(self.shared.clone())))
    }

    fn stop(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

impl Drop for JournalLayer {
    fn drop(&mut self) {
        // Aborting the syncer mid-batch is safe: every step is idempotent and the journal keeps
        // what was not confirmed.
        self.stop();
        self.shared.log.shutdown();
    }
}

#[async_trait]
impl PersistenceBackend for JournalLayer {
    fn kind(&self) -> &'static str {
        "journal"
    }

    /// The replica's: serializable transactions and unique indexes as in memory, durable at
    /// every acknowledgement, one process.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: true,
            isolated_transactions: true,
            unique_indexes: true,
            durable_flush: true,
            multi_process: false,
            persistent: true,
        }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        check_name(name)?;
        let seq = self.shared.create(name)?;
        self.shared.log.wait(seq).await?;
        Ok(self.handle(name))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.shared.check_open()?;
        Ok(self.shared.state.read().collections.keys().cloned().collect())
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        let (existed, seq) = self.shared.drop_collection(name)?;
        self.shared.log.wait(seq).await?;
        Ok(existed)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.shared.check_open()?;
        Ok(Box::new(JournalTransaction::new(self.shared.clone())))
    }

    /// Point in time, from the replica (O(1) per collection).
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        self.shared.check_open()?;
        let state = self.shared.state.read();
        let frozen = state.collections.iter().map(|(name, c)| (name.clone(), c.frozen()));
        Ok(Box::new(FrozenStore::new(frozen)))
    }

    /// Healthy while the journal accepts writes (the server may be down: that is what the
    /// journal is for); the message says how far the sync is.
    async fn health(&self) -> HealthReport {
        let start = Instant::now();
        let open = self.shared.check_open();
        let status = self.sync_status();
        let healthy = open.is_ok();
        let message = match open {
            Err(e) => e.to_string(),
            Ok(()) if status.synced => "journal: synced with the server".to_owned(),
            Ok(()) => format!(
                "journal: {} writes ({} bytes) wait for the server; last error: {}",
                status.pending_writes,
                status.pending_bytes,
                status.last_error.as_deref().unwrap_or("none")
            ),
        };
        HealthReport { healthy, latency: start.elapsed(), message }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.shared.check_open()?;
        let status = self.sync_status();
        let mut warnings = status.warnings.clone();
        if !status.synced {
            warnings.push(format!("{} journaled writes are not on the server yet", status.pending_writes));
        }
        if !status.dead_letters.is_empty() {
            warnings.push(format!(
                "{} writes were refused by the server (dead letters)",
                status.dead_letters.len()
            ));
        }
        let state = self.shared.state.read();
        Ok(StorageStats {
            backend: self.kind().to_owned(),
            collections: state
                .collections
                .iter()
                .map(|(name, c)| CollectionStats {
                    name: name.clone(),
                    documents: c.len() as u64,
                    bytes: Some(c.approx_bytes()),
                    indexes: c.index_count() as u64,
                })
                .collect(),
            warnings,
            storage_bytes: Some(status.journal_disk_bytes),
        })
    }

    /// Ships what the journal holds (at most 30 s; its files are deleted once shipped and
    /// checkpointed, so written values leave them), then compacts the local replica's store and
    /// the server's. A server that cannot be reached or compacted is reported in the actions,
    /// not as an error: the journal works offline.
    async fn compact(&self) -> Result<CompactReport> {
        self.shared.check_open()?;
        let mut actions = Vec::new();
        if let Err(e) = self.sync_now(Duration::from_secs(30)).await {
            actions.push(format!("the journal was not drained, its files keep what is not shipped: {e}"));
        }
        let local = self.shared.local.compact().await?;
        actions.extend(local.actions.iter().map(|a| format!("local replica: {a}")));
        let (mut before, mut after) = (local.bytes_before, local.bytes_after);
        match self.shared.inner.compact().await {
            Ok(server) => {
                actions.extend(server.actions.iter().map(|a| format!("server: {a}")));
                before = before.zip(server.bytes_before).map(|(a, b)| a + b);
                after = after.zip(server.bytes_after).map(|(a, b)| a + b);
            }
            Err(e) => actions.push(format!("server not compacted: {e}")),
        }
        Ok(CompactReport { backend: "journal".into(), actions, bytes_before: before, bytes_after: after })
    }

    /// The local replica's orphans, then the server's (an unreachable server is a note, not an
    /// error: the replica's still count).
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.check_open()?;
        let mut report = self.shared.local.cleanup(apply).await?;
        report.backend = "journal".into();
        for o in &mut report.orphans {
            o.name = format!("local replica: {}", o.name);
        }
        report.notes = report.notes.iter().map(|n| format!("local replica: {n}")).collect();
        match self.shared.inner.cleanup(apply).await {
            Ok(server) => {
                report.orphans.extend(server.orphans);
                report.notes.extend(server.notes.iter().map(|n| format!("server: {n}")));
            }
            Err(e) => report.notes.push(format!("server not checked: {e}")),
        }
        Ok(report)
    }

    /// Returns when every write acknowledged before it is durable in the journal (it already
    /// is: a write is acknowledged only then). It does not wait for the server: that is
    /// [`JournalLayer::sync_now`].
    async fn flush(&self) -> Result<()> {
        self.shared.check_open()?;
        let seq = self.shared.state.read().last_seq;
        self.shared.log.wait(seq).await
    }

    /// Stops the syncer (what is not shipped stays in the journal for the next open), stops the
    /// journal's flushers after their last fsync, and closes the local and inner backends.
    async fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let seq = self.shared.state.read().last_seq;
        let durable = self.shared.log.wait(seq).await;
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.shared.log.shutdown();
        let local = self.shared.local.close().await;
        let inner = self.shared.inner.close().await;
        durable.and(local).and(inner)
    }
}
