//! The local replica in memory (one [`CollectionEngine`] per collection, as in the memory
//! backend) and the write path: apply to the replica, journal the resulting states, wait for
//! the journal's fsync, acknowledge.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::engine::{
    overtaken, Change, CollectionEngine, EngineCollection, EngineHost, OpenWorkspace,
};
use orbstore_core::{
    validate_collection_name, CollectionRef, Error, PersistenceBackend, Result, Transaction,
};
use parking_lot::{Mutex, RwLock};

use super::entry::{encode, Op, Record};
use super::log::JournalLog;
use super::status::DeadLetter;
use super::JournalConfig;

/// The local collections the layer keeps for itself; refused as user collection names.
pub(crate) const META: &str = "orbstore_journal_meta";
/// Dead letters, in the local store.
pub(crate) const DEAD: &str = "orbstore_journal_dead";

/// Refuses invalid and reserved names.
pub(crate) fn check_name(name: &str) -> Result<()> {
    validate_collection_name(name)?;
    if name == META || name == DEAD {
        return Err(Error::invalid(format!("collection name {name:?} is reserved by the journal layer")));
    }
    Ok(())
}

/// Every collection of the replica, the clock that versions them for transactions, and the
/// last sequence number handed out.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) collections: BTreeMap<String, CollectionEngine>,
    clock: u64,
    pub(crate) last_seq: u64,
}

impl State {
    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The collection, created if needed; true when it was created.
    fn get_or_create(&mut self, name: &str) -> bool {
        if self.collections.contains_key(name) {
            return false;
        }
        let mut engine = CollectionEngine::empty(self.tick());
        engine.record_changes = true;
        self.collections.insert(name.to_owned(), engine);
        true
    }

    /// Puts a loaded engine in place (at open and when seeding).
    pub(crate) fn install(&mut self, name: &str, mut engine: CollectionEngine) {
        engine.record_changes = true;
        engine.changes.clear();
        engine.version = self.tick();
        self.collections.insert(name.to_owned(), engine);
    }
}

/// One journaled write waiting to be checkpointed into the local store or shipped to the server.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) ops: Arc<Vec<Op>>,
    pub(crate) bytes: u64,
}

/// The journal entries still needed, and how far the two consumers got.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Entries after `min(applied, shipped)`, in sequence order.
    pub(crate) entries: VecDeque<Entry>,
    /// Every entry up to here is on the server (or dead-lettered).
    pub(crate) shipped: u64,
    /// Every entry up to here is written to the local store (maybe not yet flushed).
    pub(crate) applied: u64,
    /// Every entry up to here is in the local store, flushed: journal files up to
    /// `min(checkpointed, shipped)` may go.
    pub(crate) checkpointed: u64,
    /// Entries after `shipped`: count and bytes.
    pub(crate) unshipped: u64,
    pub(crate) unshipped_bytes: u64,
}

impl Pending {
    pub(crate) fn push(&mut self, e: Entry) {
        self.unshipped += 1;
        self.unshipped_bytes += e.bytes;
        self.entries.push_back(e);
    }

    /// Entries after `after`, up to `upto`, at most `max_ops` operations (at least one entry).
    pub(crate) fn take(&self, after: u64, upto: u64, max_ops: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut ops = 0;
        for e in self.entries.iter().filter(|e| e.seq > after && e.seq <= upto) {
            if !out.is_empty() && ops + e.ops.len() > max_ops {
                break;
            }
            ops += e.ops.len();
            out.push(e.clone());
        }
        out
    }

    pub(crate) fn mark_shipped(&mut self, upto: u64) {
        for e in self.entries.iter().filter(|e| e.seq > self.shipped && e.seq <= upto) {
            self.unshipped -= 1;
            self.unshipped_bytes -= e.bytes;
        }
        self.shipped = self.shipped.max(upto);
        self.trim();
    }

    pub(crate) fn mark_applied(&mut self, upto: u64) {
        self.applied = self.applied.max(upto);
        self.trim();
    }

    pub(crate) fn mark_checkpointed(&mut self, upto: u64) {
        self.checkpointed = self.checkpointed.max(upto);
        self.mark_applied(upto);
    }

    fn trim(&mut self) {
        let done = self.shipped.min(self.applied);
        while self.entries.front().is_some_and(|e| e.seq <= done) {
            self.entries.pop_front();
        }
    }
}

/// The syncer's progress, for the status.
#[derive(Debug, Default)]
pub(crate) struct SyncInfo {
    pub(crate) last_sync: Option<std::time::SystemTime>,
    pub(crate) last_latency: Option<std::time::Duration>,
    pub(crate) next_attempt: Option<std::time::SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) failed_attempts: u64,
    pub(crate) seeding_pending: bool,
    pub(crate) dead: Vec<DeadLetter>,
    pub(crate) warnings: Vec<String>,
    pub(crate) local_error: Option<String>,
    /// The server collections already copied into the replica.
    pub(crate) seeded: std::collections::HashSet<String>,
}

/// Everything the layer, its handles, its transactions and its syncer share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: JournalConfig,
    pub(crate) inner: Arc<dyn PersistenceBackend>,
    pub(crate) local: Arc<dyn PersistenceBackend>,
    pub(crate) state: RwLock<State>,
    pub(crate) log: Arc<JournalLog>,
    pub(crate) pending: Mutex<Pending>,
    pub(crate) info: Mutex<SyncInfo>,
    /// Sequence number shipped so far, watched by `sync_now`.
    pub(crate) shipped: tokio::sync::watch::Sender<u64>,
    /// Wakes the syncer (sync_now, close).
    pub(crate) wake: tokio::sync::Notify,
    /// Set by sync_now: try the server now, whatever the backoff says.
    pub(crate) force: AtomicBool,
    pub(crate) closed: AtomicBool,
}

impl Shared {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::invalid("the journal layer was closed"));
        }
        if let Some(why) = self.log.durable().failed {
            return Err(Error::new(
                orbstore_core::ErrorKind::Io,
                format!("the journal failed and refuses writes until it is reopened: {why}"),
            ));
        }
        Ok(())
    }

    /// `Unavailable` when the journal holds `max_pending_bytes` of unshipped writes.
    fn check_room(&self) -> Result<()> {
        let (n, bytes) = {
            let p = self.pending.lock();
            (p.unshipped, p.unshipped_bytes)
        };
        if bytes < self.config.max_pending_bytes {
            return Ok(());
        }
        let why = self.info.lock().last_error.clone().unwrap_or_else(|| "none yet".to_owned());
        Err(Error::unavailable(format!(
            "the journal is full: {n} writes ({bytes} bytes) wait for the server, the limit is {} bytes; \
             nothing was written. Last server error: {why}",
            self.config.max_pending_bytes
        )))
    }

    /// Appends a record of `ops` to the journal under the write lock `state`; returns its
    /// sequence number.
    fn journal(&self, state: &mut State, ops: Vec<Op>) -> u64 {
        state.last_seq += 1;
        let record = Record { seq: state.last_seq, ops };
        let mut frame = Vec::with_capacity(256);
        encode(&record, &mut frame);
        self.log.append(record.seq, &frame);
        self.pending.lock().push(Entry {
            seq: record.seq,
            ops: Arc::new(record.ops),
            bytes: frame.len() as u64,
        });
        record.seq
    }

    /// Runs a write on one collection of the replica and journals what it changed; returns the
    /// result and the sequence number to wait for.
    pub(crate) fn write<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut CollectionEngine) -> Result<R>,
    ) -> Result<(R, u64)> {
        self.check_open()?;
        self.check_room()?;
        let mut state = self.state.write();
        let created = state.get_or_create(name);
        let coll = state.collections.get_mut(name).expect("created above");
        let result = f(coll);
        let changes = std::mem::take(&mut coll.changes);
        let dirty = std::mem::take(&mut coll.dirty);
        if dirty {
            let v = state.tick();
            if let Some(c) = state.collections.get_mut(name) {
                c.version = v;
            }
        }
        let mut ops = Vec::with_capacity(changes.len() + 1);
        if created {
            ops.push(Op::Create { c: name.to_owned() });
        }
        ops.extend(changes.into_iter().map(|ch| to_op(name, ch)));
        // A write that changed nothing still waits for what it may have read: an answer
        // ("0 matched") must not rest on a write a crash could still lose.
        let seq = if ops.is_empty() { state.last_seq } else { self.journal(&mut state, ops) };
        Ok((result?, seq))
    }

    /// Creates a collection if missing; the sequence number to wait for.
    pub(crate) fn create(&self, name: &str) -> Result<u64> {
        self.check_open()?;
        let state = self.state.read();
        if state.collections.contains_key(name) {
            return Ok(state.last_seq);
        }
        drop(state);
        self.check_room()?;
        let mut state = self.state.write();
        if !state.get_or_create(name) {
            return Ok(state.last_seq);
        }
        Ok(self.journal(&mut state, vec![Op::Create { c: name.to_owned() }]))
    }

    /// Drops a collection; whether it existed, and the sequence number to wait for.
    pub(crate) fn drop_collection(&self, name: &str) -> Result<(bool, u64)> {
        self.check_open()?;
        self.check_room()?;
        let mut state = self.state.write();
        if state.collections.remove(name).is_none() {
            return Ok((false, state.last_seq));
        }
        Ok((true, self.journal(&mut state, vec![Op::Drop { c: name.to_owned() }])))
    }
}

pub(crate) fn to_op(name: &str, change: Change) -> Op {
    let c = name.to_owned();
    match change {
        Change::Put(doc) => Op::Put { c, doc },
        Change::Delete(id) => Op::Delete { c, id },
        Change::Index(spec) => Op::Index { c, spec },
    }
}

/// A collection handle of the journal layer.
pub(crate) type JournalCollection = EngineCollection<Host>;

/// What a handle reads and writes: the replica, or a transaction's private copies.
#[derive(Debug, Clone)]
pub(crate) enum Host {
    Direct(Arc<Shared>),
    Tx(Arc<TxShared>),
}

#[async_trait]
impl EngineHost for Host {
    fn read<R>(&self, name: &str, f: impl FnOnce(&CollectionEngine) -> R) -> Result<R> {
        match self {
            Host::Direct(shared) => {
                shared.check_open()?;
                let state = shared.state.read();
                Ok(match state.collections.get(name) {
                    Some(c) => f(c),
                    None => f(&CollectionEngine::default()),
                })
            }
            Host::Tx(tx) => tx.with_collection(name, |c| Ok(f(c))),
        }
    }

    async fn write<R: Send>(
        &self,
        name: &str,
        f: impl for<'e> FnOnce(&'e mut CollectionEngine) -> Result<R> + Send,
    ) -> Result<R> {
        match self {
            Host::Direct(shared) => {
                let (result, seq) = shared.write(name, f)?;
                shared.log.wait(seq).await?;
                Ok(result)
            }
            Host::Tx(tx) => tx.with_collection(name, f),
        }
    }
}

/// What a transaction and its handles share.
#[derive(Debug)]
pub(crate) struct TxShared {
    shared: Arc<Shared>,
    work: OpenWorkspace,
}

impl TxShared {
    fn with_collection<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut CollectionEngine) -> Result<R>,
    ) -> Result<R> {
        self.shared.check_open()?;
        let current = || {
            let state = self.shared.state.read();
            match state.collections.get(name) {
                Some(c) => (Some(c.version), c.clone()),
                None => (None, CollectionEngine::default()),
            }
        };
        self.work.with(name, current, f)
    }
}

/// A transaction: private copies of the collections it touches (as in the memory backend);
/// the commit journals every change of every collection as one record, so it lands whole on
/// the server too (shipped in one batch).
#[derive(Debug)]
pub(crate) struct JournalTransaction {
    inner: Arc<TxShared>,
}

impl JournalTransaction {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        JournalTransaction { inner: Arc::new(TxShared { shared, work: OpenWorkspace::default() }) }
    }
}

impl Drop for JournalTransaction {
    fn drop(&mut self) {
        self.inner.work.discard();
    }
}

#[async_trait]
impl Transaction for JournalTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        check_name(name)?;
        self.inner.with_collection(name, |_| Ok(()))?;
        Ok(Arc::new(JournalCollection::new(name, Host::Tx(self.inner.clone()))))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let shared = &self.inner.shared;
        shared.check_open()?;
        shared.check_room()?;
        let work = self.inner.work.finish()?;
        let seq = {
            let mut state = shared.state.write();
            if let Some(name) = work.conflict(|n| state.collections.get(n).map(|c| c.version)) {
                return Err(overtaken(name));
            }
            let mut ops = Vec::new();
            for (name, mut engine) in work.into_written() {
                if !state.collections.contains_key(&name) {
                    ops.push(Op::Create { c: name.clone() });
                }
                ops.extend(std::mem::take(&mut engine.changes).into_iter().map(|ch| to_op(&name, ch)));
                state.install(&name, engine);
            }
            if ops.is_empty() {
                state.last_seq
            } else {
                shared.journal(&mut state, ops)
            }
        };
        shared.log.wait(seq).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.work.discard();
        Ok(())
    }
}
