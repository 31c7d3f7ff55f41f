//! The queue of a write-behind layer: the latest state of each document written and not yet
//! flushed, the flush that ships those states to the inner backend, and the background task that
//! decides when.
//!
//! A document's state is what it holds after the writes (`Some(doc)`) or that it is gone
//! (`None`), so several writes to one document coalesce into one, and shipping a state twice (a
//! flush retried after a failure whose outcome was unknown) does no harm: an upsert or a delete.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use orbstore_core::{Document, Error, ErrorKind, Filter, Id, PersistenceBackend, Result};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{Overflow, Rejected, WriteBehindConfig, WriteBehindStatus};

/// The most rejected writes kept for [`WriteBehindStatus::rejected`].
const REJECTED_KEPT: usize = 1_000;
/// The most documents one inner transaction carries, when the inner backend has transactions.
const TRANSACTION_DOCS: usize = 1_000;
/// Writes of one flush in the air at once, without transactions (so that the file backend's
/// writers share fsyncs, and a server gets a few requests in parallel).
const CONCURRENT_WRITES: usize = 16;

/// One document's new state, with its size for the byte bound.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub id: Id,
    pub doc: Option<Arc<Document>>,
    pub bytes: usize,
}

impl Change {
    /// The document now holds `doc`.
    pub fn put(id: Id, doc: Document) -> Change {
        let bytes = json_len(&doc) + id.len();
        Change { id, doc: Some(Arc::new(doc)), bytes }
    }

    /// The document is deleted.
    pub fn delete(id: Id) -> Change {
        let bytes = id.len() + 16;
        Change { id, doc: None, bytes }
    }
}

/// The size of a document as JSON, counted without building the string.
fn json_len(doc: &Document) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, doc);
    c.0
}

#[derive(Debug, Clone)]
struct Slot {
    doc: Option<Arc<Document>>,
    bytes: usize,
    /// When the oldest write this state holds, not yet flushed, was acknowledged.
    since: Instant,
}

type Docs = BTreeMap<Id, Slot>;

#[derive(Debug, Default)]
struct State {
    /// Written, not yet taken by a flush.
    pending: HashMap<String, Docs>,
    /// Taken by the flush running now; back into `pending` (under newer states) if it fails.
    in_flight: HashMap<String, Docs>,
    /// Documents in `pending` plus `in_flight` (one document in both counts twice).
    entries: usize,
    bytes: usize,
    pending_entries: usize,
    pending_bytes: usize,
    last_write: Option<Instant>,
    /// After a failed flush, the background waits until then.
    retry_at: Option<Instant>,
    failures: u32,
    /// No more writes: `close()` or drop; the background drains the queue and stops.
    closed: bool,
    /// `close()` finished: the background stops now.
    stopped: bool,
    flushed: u64,
    last_flush: Option<SystemTime>,
    last_error: Option<String>,
    rejected: VecDeque<Rejected>,
    rejected_total: u64,
}

/// Why a change set was not queued.
pub(crate) enum Refused {
    Full,
    Closed,
}

impl State {
    /// Queues the changes all together, or none when they do not fit (then they are handed back).
    fn try_enqueue(
        &mut self,
        config: &WriteBehindConfig,
        coll: &str,
        changes: Vec<Change>,
    ) -> Result<(), (Refused, Vec<Change>)> {
        if self.closed {
            return Err((Refused::Closed, changes));
        }
        let docs = self.pending.get(coll);
        let (mut add_entries, mut add_bytes, mut freed) = (0usize, 0usize, 0usize);
        for c in &changes {
            match docs.and_then(|d| d.get(&c.id)) {
                Some(old) => freed += old.bytes,
                None => add_entries += 1,
            }
            add_bytes += c.bytes;
        }
        let bytes_after = (self.bytes + add_bytes).saturating_sub(freed);
        // An empty queue takes anything (the caller sends what can never fit around the queue).
        if self.entries > 0
            && (self.entries + add_entries > config.max_pending || bytes_after > config.max_bytes)
        {
            return Err((Refused::Full, changes));
        }
        let now = Instant::now();
        if !self.pending.contains_key(coll) {
            self.pending.insert(coll.to_owned(), Docs::new());
        }
        let docs = self.pending.get_mut(coll).expect("just inserted");
        for c in changes {
            let slot = Slot { doc: c.doc, bytes: c.bytes, since: now };
            match docs.entry(c.id) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(slot);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    // Coalesced: the document's oldest unflushed write is still the old one's.
                    let since = o.get().since;
                    o.insert(Slot { since, ..slot });
                }
            }
        }
        self.entries += add_entries;
        self.pending_entries += add_entries;
        self.bytes = bytes_after;
        self.pending_bytes = (self.pending_bytes + add_bytes).saturating_sub(freed);
        self.last_write = Some(now);
        Ok(())
    }

    /// Moves the pending states (of `only`, or all) to `in_flight` and returns them.
    fn take(&mut self, only: Option<&[String]>) -> Vec<(String, Vec<Change>)> {
        let names: Vec<String> = match only {
            Some(names) => names.iter().filter(|n| self.pending.contains_key(*n)).cloned().collect(),
            None => self.pending.keys().cloned().collect(),
        };
        let mut batch = Vec::with_capacity(names.len());
        for name in names {
            let Some(docs) = self.pending.remove(&name) else { continue };
            for slot in docs.values() {
                self.pending_entries -= 1;
                self.pending_bytes -= slot.bytes;
            }
            let changes = docs
                .iter()
                .map(|(id, s)| Change { id: id.clone(), doc: s.doc.clone(), bytes: s.bytes })
                .collect();
            batch.push((name.clone(), changes));
            // One flush at a time, so nothing of this collection is in flight yet.
            self.in_flight.insert(name, docs);
        }
        batch
    }

    /// Ends the flush of `in_flight`: rejected documents leave the queue for the rejected list;
    /// the rest leaves the queue on success, or goes back under newer states on failure.
    fn finish(&mut self, rejected: Vec<(String, Id, Error)>, error: Option<&Error>) {
        let now = SystemTime::now();
        for (coll, id, e) in rejected {
            if let Some(slot) = self.in_flight.get_mut(&coll).and_then(|d| d.remove(&id)) {
                self.entries -= 1;
                self.bytes -= slot.bytes;
            }
            tracing::warn!(collection = %coll, id = %id, error = %e, "write-behind: the inner backend refused a write for good");
            if self.rejected.len() == REJECTED_KEPT {
                self.rejected.pop_front();
            }
            self.rejected.push_back(Rejected {
                collection: coll,
                id,
                kind: e.kind(),
                error: e.to_string(),
                at: now,
            });
            self.rejected_total += 1;
        }
        let in_flight = std::mem::take(&mut self.in_flight);
        match error {
            None => {
                for slot in in_flight.values().flat_map(|d| d.values()) {
                    self.entries -= 1;
                    self.bytes -= slot.bytes;
                    self.flushed += 1;
                }
                self.failures = 0;
                self.retry_at = None;
                self.last_error = None;
                self.last_flush = Some(now);
            }
            Some(e) => {
                for (coll, docs) in in_flight.into_iter().filter(|(_, d)| !d.is_empty()) {
                    let pending = self.pending.entry(coll).or_default();
                    for (id, slot) in docs {
                        match pending.get_mut(&id) {
                            Some(newer) => {
                                newer.since = newer.since.min(slot.since);
                                self.entries -= 1;
                                self.bytes -= slot.bytes;
                            }
                            None => {
                                self.pending_entries += 1;
                                self.pending_bytes += slot.bytes;
                                pending.insert(id, slot);
                            }
                        }
                    }
                }
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(Instant::now() + backoff(self.failures));
                self.last_error = Some(e.to_string());
            }
        }
    }

    /// Drops every state of a collection (it is being dropped); returns whether there were any.
    fn discard(&mut self, coll: &str) -> bool {
        let Some(docs) = self.pending.remove(coll) else { return false };
        for slot in docs.values() {
            self.entries -= 1;
            self.bytes -= slot.bytes;
            self.pending_entries -= 1;
            self.pending_bytes -= slot.bytes;
        }
        !docs.is_empty()
    }

    fn oldest(&self) -> Option<Instant> {
        self.pending.values().chain(self.in_flight.values()).flat_map(|d| d.values()).map(|s| s.since).min()
    }
}

/// 100 ms after the first failure, doubling, at most 10 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.saturating_sub(1).min(7)))
        .min(Duration::from_secs(10))
}

/// The state one layer, its collections, its transactions and its background task share.
pub(crate) struct Shared {
    pub inner: Arc<dyn PersistenceBackend>,
    pub config: WriteBehindConfig,
    state: Mutex<State>,
    /// Wakes the background task (queue no longer empty, half full, closing).
    wake: Notify,
    /// Wakes writers waiting for room.
    room: Notify,
    /// One flush at a time.
    flushing: tokio::sync::Mutex<()>,
    /// Per collection: held by every write that reads before it queues, so that what it read is
    /// still the view when it queues (see `collection.rs`).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    pub fn new(inner: Arc<dyn PersistenceBackend>, config: WriteBehindConfig) -> Shared {
        Shared {
            inner,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            room: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn lock_for(&self, coll: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(coll.to_owned()).or_default().clone()
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Refuses writes from now on and has the background drain the queue.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
        // Writers waiting for room must learn that it is closed.
        self.room.notify_waiters();
    }

    /// The background stops (after `close()` flushed everything).
    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.wake.notify_one();
    }

    /// Whether the changes can ever be queued (else the caller writes around the queue).
    pub fn fits(&self, changes: &[Change]) -> bool {
        changes.len() <= self.config.max_pending
            && changes.iter().map(|c| c.bytes).sum::<usize>() <= self.config.max_bytes
    }

    /// Queues the changes of one write, all together: the write is acknowledged when this
    /// returns. A full queue waits for room or fails, as configured.
    pub async fn enqueue(&self, coll: &str, mut changes: Vec<Change>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        loop {
            changes = match self.try_enqueue(coll, changes) {
                Ok(()) => return Ok(()),
                Err((Refused::Closed, _)) => return Err(closed_error()),
                Err((Refused::Full, _)) if self.config.overflow == Overflow::Fail => {
                    return Err(self.full_error())
                }
                Err((Refused::Full, changes)) => changes,
            };
            // Registered before trying again, so that a flush ending in between is not missed
            // (and only after a refusal: the common case takes no lock of the `Notify`).
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            changes = match self.try_enqueue(coll, changes) {
                Ok(()) => return Ok(()),
                Err((Refused::Closed, _)) => return Err(closed_error()),
                Err((Refused::Full, changes)) => changes,
            };
            self.wake.notify_one();
            room.await;
        }
    }

    fn try_enqueue(&self, coll: &str, changes: Vec<Change>) -> Result<(), (Refused, Vec<Change>)> {
        let mut st = self.state.lock();
        let was_idle = st.pending_entries == 0;
        st.try_enqueue(&self.config, coll, changes)?;
        let half = st.pending_entries * 2 >= self.config.max_pending
            || st.pending_bytes * 2 >= self.config.max_bytes;
        drop(st);
        if was_idle || half {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn full_error(&self) -> Error {
        let st = self.state.lock();
        Error::unavailable(format!(
            "the write-behind queue is full ({} documents, {} bytes; at most {} and {}): \
             the inner backend is not keeping up{}",
            st.entries,
            st.bytes,
            self.config.max_pending,
            self.config.max_bytes,
            st.last_error.as_ref().map(|e| format!(" (last flush error: {e})")).unwrap_or_default()
        ))
    }

    /// The unflushed state of one document: `Some(None)` when it is deleted, `None` when it has
    /// no unflushed write.
    pub fn lookup(&self, coll: &str, id: &str) -> Option<Option<Arc<Document>>> {
        let st = self.state.lock();
        st.pending
            .get(coll)
            .and_then(|d| d.get(id))
            .or_else(|| st.in_flight.get(coll).and_then(|d| d.get(id)))
            .map(|s| s.doc.clone())
    }

    /// Every unflushed state of one collection, newest first taken.
    pub fn overlay(&self, coll: &str) -> BTreeMap<Id, Option<Arc<Document>>> {
        let st = self.state.lock();
        let mut out = BTreeMap::new();
        for docs in [st.in_flight.get(coll), st.pending.get(coll)].into_iter().flatten() {
            for (id, s) in docs {
                out.insert(id.clone(), s.doc.clone());
            }
        }
        out
    }

    /// The collections with unflushed writes.
    pub fn collections_pending(&self) -> Vec<String> {
        let st = self.state.lock();
        st.pending.keys().chain(st.in_flight.keys()).cloned().collect()
    }

    /// Waits for any flush to end, then drops the collection's unflushed writes and runs `drop`
    /// (the inner `drop_collection`) before another flush can start.
    pub async fn discard_and<T>(&self, coll: &str, drop: impl std::future::Future<Output = T>) -> (bool, T) {
        let _one = self.flushing.lock().await;
        let had = self.state.lock().discard(coll);
        self.room.notify_waiters();
        (had, drop.await)
    }

    /// Ships the unflushed writes (of `only`, or all) to the inner backend. On failure they stay
    /// queued (the error says why, and the background retries with backoff); writes the inner
    /// backend refuses for good (`Conflict`, `InvalidInput`) leave the queue for the rejected list.
    pub async fn flush_pending(&self, only: Option<&[String]>) -> Result<()> {
        let _one = self.flushing.lock().await;
        let batch = self.state.lock().take(only);
        if batch.is_empty() {
            return Ok(());
        }
        let (rejected, error) = apply(&*self.inner, &batch).await;
        self.state.lock().finish(rejected, error.as_ref());
        self.room.notify_waiters();
        match error {
            None => Ok(()),
            Some(e) => {
                tracing::warn!(error = %e, "write-behind: flushing to the inner backend failed; will retry");
                // The states are back in the queue: the background schedules the retry.
                self.wake.notify_one();
                Err(e)
            }
        }
    }

    pub fn status(&self) -> WriteBehindStatus {
        let st = self.state.lock();
        WriteBehindStatus {
            pending: st.entries,
            pending_bytes: st.bytes,
            oldest: st.oldest().map(|t| t.elapsed()),
            flushed: st.flushed,
            last_flush: st.last_flush,
            last_error: st.last_error.clone(),
            failures: st.failures,
            rejected: st.rejected.iter().cloned().collect(),
            rejected_total: st.rejected_total,
        }
    }
}

pub(crate) fn closed_error() -> Error {
    Error::invalid("the write-behind layer was closed")
}

/// Whether the inner backend refused a write for good (retrying would fail the same way).
fn refused_for_good(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Conflict | ErrorKind::InvalidInput)
}

/// Writes a batch; returns the documents refused for good and the error that leaves the rest to
/// retry (states are idempotent, so writing again what did land is harmless).
async fn apply(
    inner: &dyn PersistenceBackend,
    batch: &[(String, Vec<Change>)],
) -> (Vec<(String, Id, Error)>, Option<Error>) {
    if inner.capabilities().transactions {
        // Atomic and cheap (one commit, one fsync). A refusal aborts the whole transaction, so
        // the writes are then made one by one to find the documents at fault.
        match apply_in_transactions(inner, batch).await {
            Ok(()) => return (Vec::new(), None),
            Err(e) if refused_for_good(&e) => {}
            Err(e) => return (Vec::new(), Some(e)),
        }
    }
    apply_one_by_one(inner, batch).await
}

async fn apply_in_transactions(
    inner: &dyn PersistenceBackend,
    batch: &[(String, Vec<Change>)],
) -> Result<()> {
    let all: Vec<(&str, &Change)> =
        batch.iter().flat_map(|(coll, changes)| changes.iter().map(move |c| (coll.as_str(), c))).collect();
    for chunk in all.chunks(TRANSACTION_DOCS) {
        let tx = inner.begin().await?;
        let mut handles: HashMap<&str, orbstore_core::CollectionRef> = HashMap::new();
        // Deletes first, so that a document taking a unique key another one gave up finds it free.
        for deletes in [true, false] {
            for (coll, c) in chunk.iter().filter(|(_, c)| c.doc.is_none() == deletes) {
                let h = match handles.get(coll) {
                    Some(h) => h.clone(),
                    None => {
                        let h = tx.collection(coll).await?;
                        handles.insert(coll, h.clone());
                        h
                    }
                };
                write_one(&h, c).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn apply_one_by_one(
    inner: &dyn PersistenceBackend,
    batch: &[(String, Vec<Change>)],
) -> (Vec<(String, Id, Error)>, Option<Error>) {
    let mut rejected = Vec::new();
    let mut error = None;
    for (coll, changes) in batch {
        let h = match inner.collection(coll).await {
            Ok(h) => h,
            Err(e) => {
                error.get_or_insert(e);
                continue;
            }
        };
        for deletes in [true, false] {
            // Owned futures: a stream of borrowing closures is not `Send` enough for async-trait.
            let mut writes = Vec::new();
            for c in changes.iter().filter(|c| c.doc.is_none() == deletes) {
                writes.push(write_owned(h.clone(), c.clone()));
            }
            let results: Vec<(Id, Result<()>)> =
                futures::stream::iter(writes).buffer_unordered(CONCURRENT_WRITES).collect().await;
            for (id, r) in results {
                match r {
                    Ok(()) => {}
                    Err(e) if refused_for_good(&e) => rejected.push((coll.clone(), id, e)),
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
        }
    }
    (rejected, error)
}

async fn write_owned(h: orbstore_core::CollectionRef, c: Change) -> (Id, Result<()>) {
    let r = write_one(&h, &c).await;
    (c.id, r)
}

async fn write_one(h: &orbstore_core::CollectionRef, c: &Change) -> Result<()> {
    match &c.doc {
        Some(doc) => h.upsert((**doc).clone()).await.map(|_| ()),
        None => h.delete_one(&Filter::eq(orbstore_core::ID_FIELD, c.id.clone())).await.map(|_| ()),
    }
}

/// When the background should flush next.
enum Next {
    Now,
    At(Instant),
    Idle,
    Stop,
}

impl State {
    fn next(&self, config: &WriteBehindConfig) -> Next {
        if self.stopped {
            return Next::Stop;
        }
        if self.pending_entries == 0 {
            return if self.closed && self.in_flight.is_empty() { Next::Stop } else { Next::Idle };
        }
        let now = Instant::now();
        let oldest = self.pending.values().flat_map(|d| d.values()).map(|s| s.since).min().unwrap_or(now);
        let quiet = self.last_write.unwrap_or(now) + config.debounce;
        let mut due = quiet.min(oldest + config.max_age);
        if self.closed
            || self.pending_entries * 2 >= config.max_pending
            || self.pending_bytes * 2 >= config.max_bytes
        {
            due = now;
        }
        if let Some(retry) = self.retry_at {
            due = due.max(retry);
        }
        if due <= now {
            Next::Now
        } else {
            Next::At(due)
        }
    }
}

/// The background task: flushes when the oldest write is `max_age` old, after `debounce` without
/// writes, when the queue is half full, and, closing, until it is empty. Holds the shared state
/// until the layer is closed or dropped.
pub(crate) async fn background(shared: Arc<Shared>) {
    loop {
        let next = shared.state.lock().next(&shared.config);
        match next {
            Next::Stop => return,
            Next::Now => {
                // The error is in the status; the next round waits for the backoff.
                let _ = shared.flush_pending(None).await;
            }
            Next::At(t) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(t.into()) => {}
                }
            }
            Next::Idle => shared.wake.notified().await,
        }
    }
}
