//! The syncer: one task that checkpoints durable journal entries into the local store, seeds
//! the replica from the server, and ships entries to the server in batches.
//!
//! Shipping is idempotent by construction: an entry carries the resulting state of each
//! document it touched, so it is shipped as "make document X exactly this" (a delete and
//! re-insert of the batch's ids in one server transaction, or an upsert per document where the
//! server has no transactions) or "delete X". A batch whose outcome is unknown (the connection
//! dropped after it was sent) is simply sent again: a replayed `$inc` ships the same state, not
//! a second increment, and a replayed insert replaces its own earlier copy instead of becoming a
//! `Conflict` (a batch tried insert-only first falls back to the replace on `Conflict`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::BackoffBuilder;
use futures::{StreamExt, TryStreamExt};
use orbstore_core::{
    to_document, CollectionRef, Document, Error, ErrorKind, Filter, Id, IndexSpec, PersistenceBackend, Query,
    Result, ID_FIELD,
};
use serde_json::{json, Value};

use super::entry::Op;
use super::replica::{check_name, Entry, Shared, DEAD, META};
use super::status::DeadLetter;

/// How many document writes the syncer keeps in flight against a store without transactions.
const IN_FLIGHT: usize = 16;

/// Errors worth retrying later: the server may come back. Everything else is the server
/// refusing the write for good, which sends it to the dead-letter list. `Backend` (an error the
/// driver could not classify) is retried rather than dead-lettered: a journal stuck and
/// visible in the status is better than a write dropped on a guess.
pub(crate) fn retryable(e: &Error) -> bool {
    e.is_retryable() || matches!(e.kind(), ErrorKind::Io | ErrorKind::Backend)
}

fn backoff(shared: &Shared) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(shared.config.min_backoff)
        .with_max_delay(shared.config.max_backoff)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The syncer's loop; runs until the task is aborted (close, drop).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut delays = backoff(&shared);
    let mut durable = shared.log.subscribe();
    let mut next_try: Option<tokio::time::Instant> = None;
    let mut last_flush = tokio::time::Instant::now();
    // Halved after each failed attempt, doubled after each success: on a link that drops some
    // calls, a smaller batch (down to one entry) still gets through whole.
    let mut batch = shared.config.batch.max(1);
    let mut hint = InsertFirst::default();
    loop {
        if shared.force.swap(false, Ordering::AcqRel) {
            next_try = None;
            delays = backoff(&shared);
        }
        let due = next_try.is_none_or(|t| t <= tokio::time::Instant::now());
        // One local batch and one server batch per turn, so neither starves the other. They
        // run side by side (the local store and the server are independent), except while the
        // server is not seeded yet: seeding writes the server's documents into the local store,
        // which must not race with newer states of the same documents applied from the journal.
        let local = local_turn(&shared, &mut last_flush);
        let remote = async {
            if !due {
                return None;
            }
            Some(timed(&shared, ship(&shared, batch, &mut hint)).await)
        };
        let (mut progressed, shipped) = if shared.info.lock().seeding_pending {
            let progressed = local.await;
            (progressed, remote.await)
        } else {
            tokio::join!(local, remote)
        };
        if let Some(r) = shipped {
            match r {
                Ok(p) => {
                    progressed |= p;
                    batch = (batch * 2).min(shared.config.batch.max(1));
                    next_try = None;
                    delays = backoff(&shared);
                    let mut info = shared.info.lock();
                    info.next_attempt = None;
                    info.failed_attempts = 0;
                }
                Err(e) => {
                    batch = (batch / 2).max(1);
                    let delay = delays.next().unwrap_or(shared.config.max_backoff);
                    next_try = Some(tokio::time::Instant::now() + delay);
                    tracing::warn!(target: "orbstore::journal", "sync failed, retrying in {delay:?}: {e}");
                    let mut info = shared.info.lock();
                    info.last_error = Some(e.to_string());
                    info.failed_attempts += 1;
                    info.next_attempt = Some(SystemTime::now() + delay);
                }
            }
        }
        if progressed {
            continue;
        }
        let unflushed = {
            let p = shared.pending.lock();
            p.applied > p.checkpointed
        };
        let flush_at = unflushed.then_some(last_flush + CHECKPOINT_EVERY);
        let wake_at = match (next_try, flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
    }
}

/// The local half of a turn: one batch of durable entries into the local store, and a
/// checkpoint when one is due; true when it wrote entries.
async fn local_turn(shared: &Shared, last_flush: &mut tokio::time::Instant) -> bool {
    let progressed = match apply(shared).await {
        Ok(p) => {
            shared.info.lock().local_error = None;
            p
        }
        Err(e) => {
            tracing::warn!(target: "orbstore::journal", "writing the local store failed (retried): {e}");
            shared.info.lock().local_error = Some(e.to_string());
            false
        }
    };
    if last_flush.elapsed() >= CHECKPOINT_EVERY {
        *last_flush = tokio::time::Instant::now();
        if let Err(e) = checkpoint(shared).await {
            tracing::warn!(target: "orbstore::journal", "flushing the local store failed (retried): {e}");
            shared.info.lock().local_error = Some(e.to_string());
        }
    }
    progressed
}

/// Runs one attempt to reach the server, abandoned after `attempt_timeout` (as `Unavailable`).
pub(crate) async fn timed<T>(
    shared: &Shared,
    attempt: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let limit = shared.config.attempt_timeout;
    tokio::time::timeout(limit, attempt).await.unwrap_or_else(|_| {
        Err(Error::unavailable(format!(
            "the server did not answer within {limit:?} (attempt abandoned, retried)"
        )))
    })
}

/// Handles on the local store's collections, opened once per pass.
#[derive(Default)]
struct Handles(HashMap<String, CollectionRef>);

impl Handles {
    async fn get(&mut self, store: &dyn PersistenceBackend, name: &str) -> Result<CollectionRef> {
        if let Some(c) = self.0.get(name) {
            return Ok(c.clone());
        }
        let c = store.collection(name).await?;
        self.0.insert(name.to_owned(), c.clone());
        Ok(c)
    }
}

/// Writes document states to a collection, several in flight (a store with group commit then
/// shares its fsyncs between them). Each write is idempotent.
async fn put_states(coll: &CollectionRef, states: Vec<(Id, Option<Arc<Document>>)>) -> Result<()> {
    futures::stream::iter(states)
        .map(|(id, state)| {
            let coll = coll.clone();
            async move {
                match state {
                    Some(doc) => coll.upsert((*doc).clone()).await.map(drop),
                    None => coll.delete_one(&Filter::eq(ID_FIELD, id)).await.map(drop),
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

fn meta_key(name: &str) -> String {
    format!("c:{name}")
}

/// Records the replica's collection and its index specs in the local meta collection (the
/// local store holds documents only: unique indexes are enforced by the replica).
async fn write_meta(shared: &Shared, name: &str, indexes: &[IndexSpec]) -> Result<()> {
    let doc = json!({ "_id": meta_key(name), "name": name, "indexes": indexes });
    shared.local.collection(META).await?.upsert(to_document(doc)?).await.map(drop)
}

async fn write_cursor(shared: &Shared) -> Result<()> {
    let (checkpointed, shipped) = {
        let p = shared.pending.lock();
        (p.checkpointed, p.shipped)
    };
    let doc = json!({ "_id": "cursor", "checkpointed": checkpointed, "shipped": shipped });
    shared.local.collection(META).await?.upsert(to_document(doc)?).await.map(drop)
}

fn release(shared: &Shared) {
    let done = {
        let p = shared.pending.lock();
        p.checkpointed.min(p.shipped)
    };
    shared.log.release(done);
}

/// How often the local store is flushed (when it was written): the journal files it covers
/// can then be deleted. Between flushes the local store needs no fsync of its own.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Writes one batch of durable entries to the local store (no flush); true when it did.
async fn apply(shared: &Shared) -> Result<bool> {
    let batch = {
        let p = shared.pending.lock();
        p.take(p.applied, shared.log.durable().seq, shared.config.batch)
    };
    let Some(upto) = batch.last().map(|e| e.seq) else { return Ok(false) };
    apply_local(shared, &batch).await?;
    shared.pending.lock().mark_applied(upto);
    Ok(true)
}

/// Flushes the local store, then records how far it holds the journal and deletes the
/// journal files that are both checkpointed and shipped.
pub(crate) async fn checkpoint(shared: &Shared) -> Result<()> {
    let (applied, checkpointed) = {
        let p = shared.pending.lock();
        (p.applied, p.checkpointed)
    };
    if applied == checkpointed {
        return Ok(());
    }
    shared.local.flush().await?;
    shared.pending.lock().mark_checkpointed(applied);
    write_cursor(shared).await?;
    release(shared);
    Ok(())
}

async fn apply_local(shared: &Shared, batch: &[Entry]) -> Result<()> {
    let local = &*shared.local;
    let mut handles = Handles::default();
    let mut docs: BTreeMap<String, BTreeMap<Id, Option<Arc<Document>>>> = BTreeMap::new();
    let mut indexes: HashMap<String, Vec<IndexSpec>> = HashMap::new();
    async fn flush_docs(
        local: &dyn PersistenceBackend,
        handles: &mut Handles,
        docs: &mut BTreeMap<String, BTreeMap<Id, Option<Arc<Document>>>>,
    ) -> Result<()> {
        for (c, states) in std::mem::take(docs) {
            let coll = handles.get(local, &c).await?;
            put_states(&coll, states.into_iter().collect()).await?;
        }
        Ok(())
    }
    for op in batch.iter().flat_map(|e| e.ops.iter()) {
        match op {
            Op::Put { c, doc } => {
                let id = orbstore_core::id_of(doc).unwrap_or_default().to_owned();
                docs.entry(c.clone()).or_default().insert(id, Some(doc.clone()));
            }
            Op::Delete { c, id } => {
                docs.entry(c.clone()).or_default().insert(id.clone(), None);
            }
            Op::Create { c } => {
                flush_docs(local, &mut handles, &mut docs).await?;
                handles.get(local, c).await?;
                indexes.insert(c.clone(), Vec::new());
                write_meta(shared, c, &[]).await?;
            }
            Op::Drop { c } => {
                flush_docs(local, &mut handles, &mut docs).await?;
                handles.0.remove(c);
                local.drop_collection(c).await?;
                indexes.remove(c);
                local.collection(META).await?.delete_one(&Filter::eq(ID_FIELD, meta_key(c))).await?;
            }
            Op::Index { c, spec } => {
                if !indexes.contains_key(c) {
                    let stored = local.collection(META).await?.find_by_id(&meta_key(c)).await?;
                    let specs = stored
                        .and_then(|d| d.get("indexes").cloned())
                        .map(serde_json::from_value::<Vec<IndexSpec>>)
                        .transpose()
                        .map_err(|e| Error::corrupt(format!("the journal's meta record of {c:?}: {e}")))?
                        .unwrap_or_default();
                    indexes.insert(c.clone(), specs);
                }
                let specs = indexes.get_mut(c).expect("inserted above");
                if !specs.iter().any(|s| s.name == spec.name) {
                    specs.push(spec.clone());
                }
                write_meta(shared, c, specs).await?;
            }
        }
    }
    flush_docs(local, &mut handles, &mut docs).await
}

/// Seeds what is not seeded yet, then ships one batch; true when it shipped something.
async fn ship(shared: &Shared, max_ops: usize, hint: &mut InsertFirst) -> Result<bool> {
    if shared.info.lock().seeding_pending {
        seed(shared).await?;
    }
    let batch = {
        let p = shared.pending.lock();
        p.take(p.shipped, shared.log.durable().seq, max_ops)
    };
    let Some(upto) = batch.last().map(|e| e.seq) else { return Ok(false) };
    let start = Instant::now();
    let dead = ship_batch(&*shared.inner, &batch, hint).await?;
    let latency = start.elapsed();
    if !dead.is_empty() {
        record_dead(shared, &dead).await;
    }
    shared.pending.lock().mark_shipped(upto);
    {
        let mut info = shared.info.lock();
        info.last_sync = Some(SystemTime::now());
        info.last_latency = Some(latency);
        info.last_error = None;
        info.dead.extend(dead);
    }
    shared.shipped.send_replace(upto);
    // Advisory (a stale cursor only re-ships idempotent entries after a crash).
    if let Err(e) = write_cursor(shared).await {
        tracing::warn!(target: "orbstore::journal", "cannot record the sync cursor locally: {e}");
    }
    release(shared);
    Ok(true)
}

async fn record_dead(shared: &Shared, dead: &[DeadLetter]) {
    let result = async {
        let coll = shared.local.collection(DEAD).await?;
        for (i, d) in dead.iter().enumerate() {
            let mut doc =
                to_document(serde_json::to_value(d).map_err(|e| Error::backend("a dead letter", e))?)?;
            doc.insert(ID_FIELD.to_owned(), Value::String(format!("{:020}-{i:06}", d.seq)));
            coll.upsert(doc).await?;
        }
        shared.local.flush().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(target: "orbstore::journal", "cannot keep dead letters in the local store: {e}");
        shared.info.lock().warnings.push(format!("dead letters kept in memory only: {e}"));
    }
}

/// Whether to try the next plan insert-only (see [`replace_in_transaction`]): yes, until one
/// needs the full replace; then not for the next 1, 2, 4, ... 64 plans (doubling while
/// insert-only keeps failing, as under a stream of updates), then yes again.
#[derive(Debug, Default)]
pub(crate) struct InsertFirst {
    skip: u32,
    penalty: u32,
}

impl InsertFirst {
    fn now(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    fn learn(&mut self, tried: bool, fell_back: bool) {
        if fell_back {
            self.penalty = (self.penalty * 2).clamp(1, 64);
            self.skip = self.penalty;
        } else if tried {
            self.penalty = 0;
        }
    }
}

/// What a batch does to one collection, coalesced: at most one state per document.
#[derive(Default)]
struct Plan {
    drop: bool,
    docs: BTreeMap<Id, Option<Arc<Document>>>,
    indexes: Vec<IndexSpec>,
}

/// Ships a batch coalesced; when the server refuses part of it for good, ships it again entry
/// by entry in sequence order to find and dead-letter exactly the refused writes. `hint`
/// decides whether collections are tried insert-only first, and learns from the outcome.
pub(crate) async fn ship_batch(
    inner: &dyn PersistenceBackend,
    batch: &[Entry],
    hint: &mut InsertFirst,
) -> Result<Vec<DeadLetter>> {
    let mut plans: Vec<(String, Plan)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for op in batch.iter().flat_map(|e| e.ops.iter()) {
        let c = op.collection();
        let i = *at.entry(c.to_owned()).or_insert_with(|| {
            plans.push((c.to_owned(), Plan::default()));
            plans.len() - 1
        });
        let plan = &mut plans[i].1;
        match op {
            // Whatever came before a drop is dropped with the collection.
            Op::Drop { .. } => *plan = Plan { drop: true, ..Plan::default() },
            Op::Create { .. } => {}
            Op::Put { doc, .. } => {
                plan.docs.insert(op.doc_id().unwrap_or_default().to_owned(), Some(doc.clone()));
            }
            Op::Delete { id, .. } => {
                plan.docs.insert(id.clone(), None);
            }
            Op::Index { spec, .. } => plan.indexes.push(spec.clone()),
        }
    }
    let mut failed = None;
    for (c, plan) in &plans {
        let insert_first = hint.now();
        match ship_plan(inner, c, plan, insert_first).await {
            Ok(fell_back) => hint.learn(insert_first, fell_back),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    match failed {
        None => Ok(Vec::new()),
        Some(e) if retryable(&e) => Err(e),
        Some(e) => {
            tracing::warn!(target: "orbstore::journal", "the server refused part of a batch ({e}); shipping it write by write");
            ship_one_by_one(inner, batch).await
        }
    }
}

/// Ships one collection's plan; true when an insert-only attempt had to be replaced (see
/// [`replace_in_transaction`]).
async fn ship_plan(inner: &dyn PersistenceBackend, c: &str, plan: &Plan, insert_first: bool) -> Result<bool> {
    if plan.drop {
        inner.drop_collection(c).await?;
    }
    let coll = inner.collection(c).await?;
    let mut fell_back = false;
    if !plan.docs.is_empty() {
        if inner.capabilities().transactions && plan.docs.len() > 1 {
            fell_back = replace_in_transaction(inner, c, plan, insert_first).await?;
        } else {
            put_states(&coll, plan.docs.iter().map(|(id, s)| (id.clone(), s.clone())).collect()).await?;
        }
    }
    // After the documents: the batch's final states satisfy the index (the replica enforced
    // it), while the states in between might not.
    for spec in &plan.indexes {
        coll.create_index(spec.clone()).await?;
    }
    Ok(fell_back)
}

/// Deletes every id of the batch and inserts the new states, in one transaction: two statements
/// for any batch size (the insert is a binary COPY on PostgreSQL), idempotent, and free of
/// spurious unique-index conflicts between the batch's own documents (after the delete none of
/// them holds a key).
///
/// With `insert_first`, it first tries the batch without deleting the documents it puts (only
/// those it deletes): when none of them is on the server (a backlog of new documents) that is
/// the same outcome for one statement less. If one of them is there after all (an update, a
/// batch re-sent after its commit's answer was lost, another writer's document), the insert
/// fails with `Conflict`, the transaction is rolled back whole, and the batch is replaced as
/// above; true is then returned (the caller stops trying insert-only for a while).
async fn replace_in_transaction(
    inner: &dyn PersistenceBackend,
    c: &str,
    plan: &Plan,
    insert_first: bool,
) -> Result<bool> {
    let deleted: Vec<Value> =
        plan.docs.iter().filter(|(_, s)| s.is_none()).map(|(id, _)| Value::String(id.clone())).collect();
    let has_puts = plan.docs.values().any(Option::is_some);
    if insert_first && has_puts {
        match replace_attempts(inner, c, plan, deleted).await {
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            other => return other.map(|()| false),
        }
    }
    let all: Vec<Value> = plan.docs.keys().map(|id| Value::String(id.clone())).collect();
    replace_attempts(inner, c, plan, all).await?;
    Ok(insert_first && has_puts)
}

/// One transaction deleting `delete` and inserting the plan's states, retried (up to five
/// times) when a concurrent transaction overtakes it.
async fn replace_attempts(
    inner: &dyn PersistenceBackend,
    c: &str,
    plan: &Plan,
    delete: Vec<Value>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tx = inner.begin().await?;
        let result = async {
            let tc = tx.collection(c).await?;
            if !delete.is_empty() {
                tc.delete_many(&Filter::is_in(ID_FIELD, delete.clone())).await?;
            }
            // Cloned per attempt: the backend takes the documents by value.
            let puts: Vec<Document> = plan.docs.values().flatten().map(|d| (**d).clone()).collect();
            if !puts.is_empty() {
                tc.insert_many(puts).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        let result = match result {
            Ok(()) => tx.commit().await,
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        match result {
            Err(e) if e.kind() == ErrorKind::Aborted && attempt < 5 => continue,
            other => return other,
        }
    }
}

async fn apply_one(inner: &dyn PersistenceBackend, op: &Op) -> Result<()> {
    match op {
        Op::Create { c } => inner.collection(c).await.map(drop),
        Op::Drop { c } => inner.drop_collection(c).await.map(drop),
        Op::Put { c, doc } => inner.collection(c).await?.upsert((**doc).clone()).await.map(drop),
        Op::Delete { c, id } => {
            inner.collection(c).await?.delete_one(&Filter::eq(ID_FIELD, id.clone())).await.map(drop)
        }
        Op::Index { c, spec } => inner.collection(c).await?.create_index(spec.clone()).await,
    }
}

async fn ship_one_by_one(inner: &dyn PersistenceBackend, batch: &[Entry]) -> Result<Vec<DeadLetter>> {
    let mut dead = Vec::new();
    for e in batch {
        for op in e.ops.iter() {
            match apply_one(inner, op).await {
                Ok(()) => {}
                Err(err) if retryable(&err) => return Err(err),
                Err(err) => {
                    tracing::warn!(target: "orbstore::journal", "the server refused write #{} ({}): {err}", e.seq, op.kind());
                    dead.push(DeadLetter {
                        seq: e.seq,
                        collection: op.collection().to_owned(),
                        id: op.doc_id().map(str::to_owned),
                        op: op.kind().to_owned(),
                        value: match op {
                            Op::Put { doc, .. } => Some(Value::Object((**doc).clone())),
                            Op::Index { spec, .. } => serde_json::to_value(spec).ok(),
                            _ => None,
                        },
                        error: err.to_string(),
                        at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                    });
                }
            }
        }
    }
    Ok(dead)
}

/// Copies the server's collections that are not seeded yet into the replica and the local store.
pub(crate) async fn seed(shared: &Shared) -> Result<()> {
    let names = shared.inner.list_collections().await?;
    for name in names {
        if check_name(&name).is_err() || shared.info.lock().seeded.contains(&name) {
            continue;
        }
        seed_one(shared, &name).await?;
        shared.info.lock().seeded.insert(name);
    }
    shared.info.lock().seeding_pending = false;
    Ok(())
}

/// Seeds one collection in `_id` order, merging: a document the replica holds, or that an
/// unshipped journal entry touches, is the newer one and is kept (local writes win per
/// document); a collection with an unshipped drop is not copied (the drop will reach the server).
async fn seed_one(shared: &Shared, name: &str) -> Result<()> {
    let (touched, dropped) = {
        let p = shared.pending.lock();
        let mut touched = HashSet::new();
        let mut dropped = false;
        for op in p.entries.iter().filter(|e| e.seq > p.shipped).flat_map(|e| e.ops.iter()) {
            if op.collection() == name {
                match op {
                    Op::Drop { .. } => dropped = true,
                    _ => {
                        if let Some(id) = op.doc_id() {
                            touched.insert(id.to_owned());
                        }
                    }
                }
            }
        }
        (touched, dropped)
    };
    if !dropped {
        let coll = shared.inner.collection(name).await?;
        let specs = coll.list_indexes().await?;
        let mut stream = coll.find_stream(&Query::all()).await?;
        let local = shared.local.collection(name).await?;
        let mut chunk = Vec::with_capacity(1000);
        loop {
            let next = stream.try_next().await?;
            let done = next.is_none();
            chunk.extend(next);
            if chunk.len() >= 1000 || (done && !chunk.is_empty()) {
                let loaded = load_chunk(shared, name, std::mem::take(&mut chunk), &touched);
                put_states(&local, loaded).await?;
            }
            if done {
                break;
            }
        }
        let indexes = {
            let mut state = shared.state.write();
            if !state.collections.contains_key(name) {
                state.install(name, Default::default());
            }
            let engine = state.collections.get_mut(name).expect("installed above");
            let have: BTreeSet<String> = engine.list_indexes().into_iter().map(|s| s.name).collect();
            for spec in specs.into_iter().filter(|s| !have.contains(&s.name)) {
                engine.load_index(spec);
            }
            let broken = engine.rebuild_indexes();
            if !broken.is_empty() {
                shared.info.lock().warnings.push(format!(
                    "collection {name:?}: the server's documents merged with local writes break unique indexes {broken:?}"
                ));
            }
            engine.list_indexes()
        };
        write_meta(shared, name, &indexes).await?;
    }
    let doc = json!({ "_id": format!("seeded:{name}") });
    shared.local.collection(META).await?.upsert(to_document(doc)?).await?;
    shared.local.flush().await
}

fn load_chunk(
    shared: &Shared,
    name: &str,
    docs: Vec<Document>,
    touched: &HashSet<String>,
) -> Vec<(Id, Option<Arc<Document>>)> {
    let mut state = shared.state.write();
    if !state.collections.contains_key(name) {
        state.install(name, Default::default());
    }
    let version = state.tick();
    let engine = state.collections.get_mut(name).expect("installed above");
    let mut loaded = Vec::with_capacity(docs.len());
    for doc in docs {
        let Some(id) = orbstore_core::id_of(&doc).map(str::to_owned) else { continue };
        if touched.contains(&id) || engine.find_by_id(&id).is_some() {
            continue;
        }
        let doc = Arc::new(doc);
        engine.load((*doc).clone());
        loaded.push((id, Some(doc)));
    }
    // Transactions that read this collection before the seed must not commit over it.
    engine.version = version;
    loaded
}

/// Waits until everything journaled before the call reached the server, or `timeout`.
pub(crate) async fn wait_shipped(shared: &Shared, target: u64, timeout: Duration) -> bool {
    let mut rx = shared.shipped.subscribe();
    tokio::time::timeout(timeout, rx.wait_for(|s| *s >= target)).await.is_ok_and(|r| r.is_ok())
}
