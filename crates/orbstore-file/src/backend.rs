//! [`FileBackend`]: opening a directory (lock, load, replay, repair), the write path's
//! durability, flushing, compaction, and the `PersistenceBackend` implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orbstore_core::engine::CollectionEngine;
use orbstore_core::{
    validate_collection_name, Capabilities, CleanupReport, CollectionRef, CollectionStats, CompactReport,
    Error, FileConfig, FileSync, HealthReport, PersistenceBackend, Result, StorageStats, Transaction,
};
use parking_lot::{Mutex, RwLock};

use crate::collection::{FileCollection, FileHost};
use crate::lock::{DirLock, LOCK_FILE};
use crate::log::{self, Log, Record};
use crate::recovery;
use crate::snapshot::{self, ReadError};
use crate::transaction::FileTransaction;
use crate::txlog::TxLog;

/// Buffered records that force a flush in debounced mode.
pub(crate) const MAX_PENDING: usize = 1_000;
/// A log shorter than this is never compacted.
const COMPACT_MIN_BYTES: u64 = 64 << 20;
/// A log is compacted when it grows past this many times its snapshot (and the minimum): each
/// byte written is then rewritten about 1.5 times in all, and replay at open reads at most twice
/// the snapshot's size of log.
const COMPACT_RATIO: u64 = 2;

/// One open collection: its engine and its log.
#[derive(Debug)]
pub(crate) struct Coll {
    pub(crate) engine: CollectionEngine,
    pub(crate) log: Arc<Log>,
    /// Size of the snapshot the log applies to.
    pub(crate) snapshot_bytes: u64,
    /// The snapshot at `<name>.json` was written by another tool: keep its bytes aside before
    /// replacing it.
    pub(crate) snapshot_foreign: bool,
    /// The current log holds records of transactions (whose markers must then be kept).
    pub(crate) has_tx_records: bool,
}

/// Every open collection, and the clock that versions them.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) collections: BTreeMap<String, Coll>,
    clock: u64,
}

impl State {
    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

/// What the backend, its handles, its transactions and its flusher share.
#[derive(Debug)]
pub struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) sync: FileSync,
    pub(crate) state: RwLock<State>,
    pub(crate) txlog: Mutex<TxLog>,
    closed: AtomicBool,
    /// Set when a write could not reach the disk: memory and disk may differ from then on.
    poisoned: Mutex<Option<String>>,
    warnings: Mutex<Vec<String>>,
    lock: Mutex<Option<DirLock>>,
    /// Held while a compaction writes a snapshot, and by drop_collection.
    files_gate: tokio::sync::Mutex<()>,
    compacting: Mutex<BTreeSet<String>>,
}

impl Inner {
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::invalid(format!("the file backend on {} was closed", self.dir.display())));
        }
        if let Some(why) = self.poisoned.lock().as_ref() {
            return Err(Error::new(
                orbstore_core::ErrorKind::Io,
                format!("an earlier write could not reach the disk ({why}); reopen the store"),
            ));
        }
        Ok(())
    }

    /// Marks the store unusable after a failed write, and returns the error to report.
    pub(crate) fn fail(&self, what: &str, e: io::Error) -> Error {
        let msg = format!("{what} in {}: {e}", self.dir.display());
        tracing::error!("{msg}");
        self.poisoned.lock().get_or_insert(msg.clone());
        Error::io(msg, e)
    }

    fn warn(&self, msg: String) {
        tracing::warn!("{msg}");
        self.warnings.lock().push(msg);
    }

    pub(crate) fn snapshot_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub(crate) fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn old_log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log.old"))
    }

    /// The collection, created empty (with its log file) if needed. Runs under the state lock.
    pub(crate) fn get_or_create<'s>(&self, state: &'s mut State, name: &str) -> Result<&'s mut Coll> {
        if !state.collections.contains_key(name) {
            let log = Log::open(self.log_path(name), 0)
                .map_err(|e| Error::io(format!("cannot create the log of collection {name:?}"), e))?;
            let version = state.tick();
            let mut engine = CollectionEngine::empty(version);
            engine.record_changes = true;
            state.collections.insert(
                name.to_owned(),
                Coll {
                    engine,
                    log: Arc::new(log),
                    snapshot_bytes: 0,
                    snapshot_foreign: false,
                    has_tx_records: false,
                },
            );
        }
        Ok(state.collections.get_mut(name).expect("inserted above"))
    }

    /// Makes an append durable as the sync mode says, then compacts if the log grew large.
    pub(crate) async fn persist(self: &Arc<Self>, name: &str, log: Arc<Log>, seq: u64) -> Result<()> {
        match self.sync {
            FileSync::Always => log.durable(seq).await.map_err(|e| self.fail("writing a log", e))?,
            FileSync::Never => log.sync_to(seq, false).map_err(|e| self.fail("writing a log", e))?,
            FileSync::Debounced(_) => {
                if log.pending_records() >= MAX_PENDING {
                    log.durable(seq).await.map_err(|e| self.fail("writing a log", e))?;
                }
            }
        }
        self.maybe_compact(name, &log);
        Ok(())
    }

    async fn sync_log(self: &Arc<Self>, log: Arc<Log>, seq: u64, fsync: bool) -> Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || log.sync_to(seq, fsync).map_err(|e| me.fail("writing a log", e)))
            .await
            .map_err(|e| Error::backend("the log writer task failed", e))?
    }

    fn maybe_compact(self: &Arc<Self>, name: &str, log: &Log) {
        let threshold = {
            let state = self.state.read();
            state
                .collections
                .get(name)
                .map_or(u64::MAX, |c| c.snapshot_bytes.saturating_mul(COMPACT_RATIO).max(COMPACT_MIN_BYTES))
        };
        if log.bytes_on_disk() <= threshold || !self.compacting.lock().insert(name.to_owned()) {
            return;
        }
        let me = self.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = me.compact_blocking(&name) {
                me.warn(format!("compaction of collection {name:?} failed: {e}"));
            }
            me.compacting.lock().remove(&name);
        });
    }

    /// Writes a fresh snapshot of the collection and empties its log. Blocking.
    ///
    /// Under the state lock the log is rotated to `<name>.log.old` and the engine copied; then,
    /// without the lock, the snapshot is written atomically and the old log removed. A crash at
    /// any point leaves a snapshot and logs whose replay gives the same state (records are
    /// whole documents, so replaying one twice is harmless).
    pub(crate) fn compact_blocking(&self, name: &str) -> Result<()> {
        let _gate = self.files_gate.blocking_lock();
        let old = self.old_log_path(name);
        let (engine, foreign) = {
            let mut state = self.state.write();
            let Some(coll) = state.collections.get_mut(name) else { return Ok(()) };
            coll.log.rotate(&old).map_err(|e| self.fail("rotating a log", e))?;
            coll.has_tx_records = false;
            (coll.engine.clone(), coll.snapshot_foreign)
        };
        let path = self.snapshot_path(name);
        if foreign {
            let orig = recovery::aside_path(&path, "orig");
            fs::hard_link(&path, &orig)
                .map_err(|e| Error::io(format!("cannot keep the original {} aside", path.display()), e))?;
        }
        let size = snapshot::write(&self.dir, &path, name, &engine)
            .map_err(|e| Error::io(format!("cannot write the snapshot {}", path.display()), e))?;
        fs::remove_file(&old).map_err(|e| Error::io(format!("cannot remove {}", old.display()), e))?;
        snapshot::sync_dir(&self.dir).map_err(|e| Error::io("cannot sync the data directory", e))?;
        let mut state = self.state.write();
        if let Some(coll) = state.collections.get_mut(name) {
            coll.snapshot_bytes = size;
            coll.snapshot_foreign = false;
        }
        if !state.collections.values().any(|c| c.has_tx_records) {
            self.txlog.lock().truncate().map_err(|e| Error::io("cannot empty the transaction log", e))?;
        }
        Ok(())
    }

    /// Writes and fsyncs every log (and the transaction log). Blocking.
    pub(crate) fn flush_blocking(&self) -> Result<()> {
        let logs: Vec<Arc<Log>> = self.state.read().collections.values().map(|c| c.log.clone()).collect();
        let fsync = self.sync != FileSync::Never;
        for log in logs {
            log.sync_to(log.last_seq(), fsync).map_err(|e| self.fail("flushing a log", e))?;
        }
        Ok(())
    }

    /// The debounce loop: flushes logs whose writes have been quiet long enough.
    async fn flusher(weak: Weak<Inner>, quiet: Duration) {
        let max_delay = quiet * 5;
        let tick = (quiet / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
        loop {
            tokio::time::sleep(tick).await;
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            let due: Vec<Arc<Log>> = inner
                .state
                .read()
                .collections
                .values()
                .filter(|c| c.log.due(now, quiet, max_delay, MAX_PENDING))
                .map(|c| c.log.clone())
                .collect();
            for log in due {
                let seq = log.last_seq();
                if inner.sync_log(log, seq, true).await.is_err() {
                    return; // poisoned; writers will see the error
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping the backend (and every handle) flushes, as closing does.
        if !self.closed.load(Ordering::Acquire) && self.poisoned.lock().is_none() {
            if let Err(e) = self.flush_blocking() {
                tracing::error!("flushing {} on drop failed: {e}", self.dir.display());
            }
        }
    }
}

/// The crash-safe JSON file backend.
///
/// Each collection is a snapshot `<name>.json` plus an append-only log `<name>.log` of
/// checksummed JSON lines. See the crate documentation for the files and the durability modes.
#[derive(Debug, Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

impl FileBackend {
    /// Opens (creating) a data directory. Must run inside a Tokio runtime.
    ///
    /// Fails with `Unavailable` when another process holds the directory (naming its PID),
    /// `Io` when the directory cannot be created or written, and, in strict mode, `Corrupt`
    /// when a snapshot cannot be read or a log is corrupt (naming the file, the offset and the
    /// reason). A torn last write is cut off (a copy kept) in both modes.
    pub async fn open(config: FileConfig) -> Result<FileBackend> {
        let sync = config.sync;
        let inner = tokio::task::spawn_blocking(move || open_blocking(config))
            .await
            .map_err(|e| Error::backend("the open task failed", e))??;
        let inner = Arc::new(inner);
        if let FileSync::Debounced(quiet) = sync {
            tokio::spawn(Inner::flusher(Arc::downgrade(&inner), quiet));
        }
        Ok(FileBackend { inner })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Rewrites the collection's snapshot and empties its log now (it also happens on its own
    /// when the log outgrows the snapshot).
    pub async fn compact_collection(&self, name: &str) -> Result<()> {
        validate_collection_name(name)?;
        self.inner.check_usable()?;
        let inner = self.inner.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || inner.compact_blocking(&name))
            .await
            .map_err(|e| Error::backend("the compaction task failed", e))?
    }

    /// How many fsyncs the open collections' logs have done since open (for monitoring, and to
    /// see group commit at work: concurrent writers share fsyncs).
    pub fn log_fsyncs(&self) -> u64 {
        self.inner.state.read().collections.values().map(|c| c.log.fsyncs()).sum()
    }

    /// Warnings about the files found at open (and since): torn tails cut off, corrupt logs
    /// recovered, unreadable snapshots moved aside, foreign entries left out; each names the
    /// copy kept of the file as found.
    pub fn warnings(&self) -> Vec<String> {
        self.inner.warnings.lock().clone()
    }

    async fn blocking<R: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Inner) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| Error::backend(what, e))?
    }
}

#[async_trait]
impl PersistenceBackend for FileBackend {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: true,
            isolated_transactions: true,
            unique_indexes: true,
            durable_flush: self.inner.sync != FileSync::Never,
            multi_process: false,
            persistent: true,
        }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.inner.check_usable()?;
        {
            let mut state = self.inner.state.write();
            self.inner.get_or_create(&mut state, name)?;
        }
        Ok(Arc::new(FileCollection::new(name, FileHost::Direct(self.inner.clone()))))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.inner.check_usable()?;
        Ok(self.inner.state.read().collections.keys().cloned().collect())
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        self.inner.check_usable()?;
        let _gate = self.inner.files_gate.lock().await;
        let name = name.to_owned();
        self.blocking("the drop task failed", move |inner| {
            let mut state = inner.state.write();
            let Some(coll) = state.collections.remove(&name) else { return Ok(false) };
            // A drop marker first, so a crash between the removals below cannot bring back
            // an old snapshot with its log.
            let mut marker = Vec::new();
            log::encode_drop(&mut marker);
            let seq = coll.log.append(&marker, 1);
            coll.log.sync_to(seq, true).map_err(|e| inner.fail("writing a drop marker", e))?;
            for path in [inner.snapshot_path(&name), inner.old_log_path(&name), inner.log_path(&name)] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(format!("cannot remove {}", path.display()), e)),
                }
            }
            snapshot::sync_dir(&inner.dir).map_err(|e| Error::io("cannot sync the data directory", e))?;
            Ok(true)
        })
        .await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.inner.check_usable()?;
        Ok(Box::new(FileTransaction::new(self.inner.clone())))
    }

    /// Point in time: every collection frozen under one read lock (O(1) each, the maps are
    /// shared), as a transaction's commit applies all its collections under the write lock.
    async fn snapshot(&self) -> Result<Box<dyn orbstore_core::Snapshot>> {
        self.inner.check_usable()?;
        let state = self.inner.state.read();
        let frozen = state.collections.iter().map(|(name, c)| (name.clone(), c.engine.frozen()));
        Ok(Box::new(orbstore_core::engine::FrozenStore::new(frozen)))
    }

    async fn health(&self) -> HealthReport {
        let start = Instant::now();
        let check = self.inner.check_usable().and_then(|()| {
            fs::metadata(self.inner.dir.join(LOCK_FILE))
                .map(|_| ())
                .map_err(|e| Error::io(format!("cannot read {}", self.inner.dir.display()), e))
        });
        HealthReport {
            healthy: check.is_ok(),
            latency: start.elapsed(),
            message: match check {
                Ok(()) => format!(
                    "data directory {} readable, {} collections open",
                    self.inner.dir.display(),
                    self.inner.state.read().collections.len()
                ),
                Err(e) => e.to_string(),
            },
        }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.inner.check_usable()?;
        let state = self.inner.state.read();
        Ok(StorageStats {
            backend: "file".to_owned(),
            collections: state
                .collections
                .iter()
                .map(|(name, c)| CollectionStats {
                    name: name.clone(),
                    documents: c.engine.len() as u64,
                    bytes: Some(c.snapshot_bytes + c.log.bytes_on_disk()),
                    indexes: c.engine.index_count() as u64,
                })
                .collect(),
            warnings: self.inner.warnings.lock().clone(),
            storage_bytes: Some(
                state.collections.values().map(|c| c.snapshot_bytes + c.log.bytes_on_disk()).sum::<u64>(),
            ),
        })
    }

    async fn flush(&self) -> Result<()> {
        self.inner.check_usable()?;
        self.blocking("the flush task failed", |inner| inner.flush_blocking()).await
    }

    /// Rewrites every collection's snapshot and empties its log (and the transaction log).
    async fn compact(&self) -> Result<CompactReport> {
        let before = self.stats().await?.storage_bytes;
        let names: Vec<String> = self.inner.state.read().collections.keys().cloned().collect();
        let mut actions = Vec::new();
        for name in names {
            self.compact_collection(&name).await?;
            actions.push(format!("rewrote the snapshot of {name} and emptied its log"));
        }
        if actions.is_empty() {
            actions.push("no collections".to_owned());
        }
        let after = self.stats().await?.storage_bytes;
        Ok(CompactReport { backend: "file".into(), actions, bytes_before: before, bytes_after: after })
    }

    /// Temporary files, old quarantined copies and logs of dropped collections
    /// (`crate::cleanup`), with compactions and drops held off while it looks.
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.inner.check_usable()?;
        let _gate = self.inner.files_gate.lock().await;
        self.blocking("the cleanup task failed", move |inner| {
            let state = inner.state.read();
            crate::cleanup::scan(&inner.dir, &state.collections, std::time::SystemTime::now(), apply)
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let flushed = if self.inner.poisoned.lock().is_none() {
            self.blocking("the flush task failed", |inner| inner.flush_blocking()).await
        } else {
            Ok(())
        };
        self.inner.closed.store(true, Ordering::Release);
        self.inner.state.write().collections.clear();
        self.inner.lock.lock().take();
        flushed
    }
}

/// What a data-directory scan found for one collection.
#[derive(Debug, Default)]
struct Found {
    /// `<name>.json`, or a foreign file mapped to this name (`user-profiles.json`).
    snapshot: Option<PathBuf>,
    log: bool,
    old_log: bool,
}

/// The collection name a foreign file maps to: lowercase, `-` and spaces as `_`.
fn map_foreign_name(stem: &str) -> String {
    stem.to_ascii_lowercase().replace(['-', ' '], "_")
}

fn open_blocking(config: FileConfig) -> Result<Inner> {
    let dir = config.dir.clone();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io(format!("cannot create the data directory {}", dir.display()), e))?;
    let lock = DirLock::acquire(&dir)?;
    let mut warnings = Vec::new();
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let entries = fs::read_dir(&dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".json.tmp") {
            let _ = fs::remove_file(entry.path()); // a snapshot write that did not finish
        } else if let Some(stem) = file_name.strip_suffix(".log.old") {
            if validate_collection_name(stem).is_ok() {
                found.entry(stem.to_owned()).or_default().old_log = true;
            }
        } else if let Some(stem) = file_name.strip_suffix(".log") {
            if validate_collection_name(stem).is_ok() {
                found.entry(stem.to_owned()).or_default().log = true;
            }
        } else if let Some(stem) = file_name.strip_suffix(".json") {
            let name =
                if validate_collection_name(stem).is_ok() { stem.to_owned() } else { map_foreign_name(stem) };
            if validate_collection_name(&name).is_err() {
                warnings.push(format!("{file_name}: not a valid collection name, ignored"));
                continue;
            }
            let exact = stem == name;
            let slot = found.entry(name.clone()).or_default();
            match (&slot.snapshot, exact) {
                (None, _) => slot.snapshot = Some(entry.path()),
                (Some(previous), true) => {
                    warnings.push(format!(
                        "{}: collection {name:?} is read from {file_name}; this file is ignored",
                        previous.display()
                    ));
                    slot.snapshot = Some(entry.path());
                }
                (Some(_), false) => warnings.push(format!(
                    "{file_name}: collection {name:?} is read from {name}.json; this file is ignored"
                )),
            }
        }
    }

    let txlog_path = dir.join(crate::txlog::TXLOG_FILE);
    let committed = TxLog::read(&txlog_path, config.strict, &mut warnings)?;
    let mut state = State::default();
    let mut to_compact = Vec::new();
    for (name, f) in found {
        let loaded = load_collection(&dir, &name, &f, &committed, config.strict, &mut warnings)?;
        let Some((mut engine, snapshot_bytes, foreign, has_tx, valid_len, needs_compaction)) = loaded else {
            continue;
        };
        engine.record_changes = true;
        engine.version = state.tick();
        let log = Log::open(dir.join(format!("{name}.log")), valid_len)
            .map_err(|e| Error::io(format!("cannot open the log of {name:?}"), e))?;
        if needs_compaction {
            to_compact.push(name.clone());
        }
        state.collections.insert(
            name,
            Coll {
                engine,
                log: Arc::new(log),
                snapshot_bytes,
                snapshot_foreign: foreign,
                has_tx_records: has_tx,
            },
        );
    }
    // Created only now, so that a strict refusal above leaves a new directory as it was.
    let txlog = TxLog::open(&txlog_path, &committed)?;
    for w in &warnings {
        tracing::warn!("{}: {w}", dir.display());
    }
    let inner = Inner {
        dir,
        sync: config.sync,
        state: RwLock::new(state),
        txlog: Mutex::new(txlog),
        closed: AtomicBool::new(false),
        poisoned: Mutex::new(None),
        warnings: Mutex::new(warnings),
        lock: Mutex::new(Some(lock)),
        files_gate: tokio::sync::Mutex::new(()),
        compacting: Mutex::new(BTreeSet::new()),
    };
    for name in to_compact {
        inner.compact_blocking(&name)?;
    }
    Ok(inner)
}

/// Loads one collection: snapshot, then `.log.old`, then `.log`. Returns `None` when the logs
/// end with a drop marker (the collection was dropped; its files are removed).
#[allow(clippy::type_complexity)]
fn load_collection(
    dir: &Path,
    name: &str,
    f: &Found,
    committed: &BTreeSet<u64>,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<(CollectionEngine, u64, bool, bool, u64, bool)>> {
    let mut engine = CollectionEngine::default();
    let mut snapshot_bytes = 0;
    let mut foreign = false;
    let mut needs_compaction = f.old_log;
    if let Some(path) = &f.snapshot {
        match snapshot::read(path) {
            Ok(Some(loaded)) => {
                snapshot_bytes = loaded.bytes;
                // Only a foreign file at our own snapshot path is ever replaced (and kept aside).
                foreign =
                    loaded.foreign && path.file_name().is_some_and(|n| n == format!("{name}.json").as_str());
                if loaded.foreign {
                    warnings.push(format!(
                        "{}: imported as collection {name:?} ({} documents)",
                        path.display(),
                        loaded.docs.len()
                    ));
                }
                if !loaded.skipped.is_empty() {
                    warnings.push(format!(
                        "{}: {} entries are not valid documents and were left out (the file keeps them): {}",
                        path.display(),
                        loaded.skipped.len(),
                        loaded.skipped.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                    ));
                }
                for spec in loaded.indexes {
                    engine.load_index(spec);
                }
                for doc in loaded.docs {
                    engine.load(doc);
                }
            }
            Ok(None) => {}
            Err(ReadError::Io(e)) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
            Err(ReadError::Unreadable(why)) => {
                if strict {
                    return Err(Error::corrupt(format!(
                        "snapshot {} is unreadable ({why}); strict mode refuses to open",
                        path.display()
                    )));
                }
                let aside = recovery::move_aside(path, "corrupt")
                    .map_err(|e| Error::io(format!("cannot move {} aside", path.display()), e))?;
                warnings.push(format!(
                    "snapshot {} is unreadable ({why}); moved aside to {}; collection {name:?} opens with the records of its log only",
                    path.display(),
                    aside.display()
                ));
            }
        }
    }
    let mut has_tx = false;
    let mut valid_len = 0;
    let mut last_was_drop = false;
    for (path, is_current) in
        [(dir.join(format!("{name}.log.old")), false), (dir.join(format!("{name}.log")), true)]
    {
        if (is_current && !f.log) || (!is_current && !f.old_log) {
            continue;
        }
        let replay: log::Replay =
            log::read_log(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if recovery::check_log(&path, &replay, strict, warnings)? {
            // The copy is kept: now the unreadable tail can go (appends continue after the last
            // valid record), and unreadable lines in the middle go with the compaction below.
            // `.log.old` is removed whole by that compaction.
            if is_current && replay.valid_len < replay.file_len {
                let file = fs::OpenOptions::new().write(true).open(&path);
                file.and_then(|f| f.set_len(replay.valid_len).and_then(|()| f.sync_all())).map_err(|e| {
                    Error::io(format!("cannot cut the unreadable tail of {}", path.display()), e)
                })?;
            }
            needs_compaction |= replay.corrupt_lines > 0;
        }
        if is_current {
            valid_len = replay.valid_len;
        }
        for record in replay.records {
            if let Some(tx) = record.tx() {
                if !committed.contains(&tx) {
                    continue; // its transaction never committed
                }
                has_tx = true;
            }
            last_was_drop = matches!(record, Record::Drop);
            match record {
                Record::Put { doc, .. } => engine.load(doc),
                Record::Del { id, .. } => engine.unload(&id),
                Record::Index { spec, .. } => engine.load_index(spec),
                Record::Drop => engine = CollectionEngine::default(),
            }
        }
    }
    if last_was_drop {
        for ext in ["json", "log", "log.old"] {
            let _ = fs::remove_file(dir.join(format!("{name}.{ext}")));
        }
        return Ok(None);
    }
    for broken in engine.rebuild_indexes() {
        warnings.push(format!(
            "collection {name:?}: the stored documents break unique index {broken:?}; it is enforced for new writes only"
        ));
    }
    Ok(Some((engine, snapshot_bytes, foreign, has_tx, valid_len, needs_compaction)))
}

/// Appends `bytes` to a file and fsyncs it (used by the transaction log).
pub(crate) fn append_durable(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_data()
}
