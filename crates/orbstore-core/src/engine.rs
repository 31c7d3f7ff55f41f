//! [`CollectionEngine`]: one collection held in memory, with the whole contract of
//! [`Collection`](crate::Collection) (unique indexes, atomic batches, updates, queries) as plain
//! synchronous methods. The memory and file backends keep their data in it; the caller holds
//! whatever lock it needs around each call.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::backend::{IndexSpec, Upserted};
use crate::document::{id_of, Document};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::id::Id;
use crate::order::OrdValue;
use crate::path::FieldPath;
use crate::query::Query;
use crate::update::Update;

/// A unique index: its spec and the key of every document it constrains.
#[derive(Debug, Clone)]
struct UniqueKeys {
    paths: Vec<FieldPath>,
    keys: BTreeMap<Vec<OrdValue>, Id>,
}

impl UniqueKeys {
    /// The document's key, or `None` when a field is missing or null (not constrained).
    fn key_of(&self, doc: &Document) -> Option<Vec<OrdValue>> {
        self.paths
            .iter()
            .map(|p| match p.combined_value(doc) {
                None | Some(Value::Null) => None,
                Some(v) => Some(OrdValue(v)),
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Index {
    spec: IndexSpec,
    unique: Option<UniqueKeys>,
}

/// A change the engine made, in the order it made them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The document with this id now has this content.
    Put(Arc<Document>),
    /// The document with this id was deleted.
    Delete(Id),
    /// An index was created.
    Index(IndexSpec),
}

/// A collection's documents by id. A persistent map (structural sharing): cloning it is O(1), so a
/// snapshot or a transaction's copy of a large collection costs nothing until one side writes.
pub type Docs = imbl::OrdMap<Id, Arc<Document>>;

/// One collection's documents and indexes, in memory.
///
/// Cloning is cheap in documents (they are shared `Arc`s) but copies the maps.
#[derive(Debug, Clone, Default)]
pub struct CollectionEngine {
    docs: Docs,
    indexes: Vec<Index>,
    /// Free for the owner's use (the memory backend keeps a version for its transactions).
    pub version: u64,
    /// Set by every mutation that changed something; the owner reads and clears it.
    pub dirty: bool,
    /// When true, every change is also appended to `changes` (for backends that log them).
    pub record_changes: bool,
    /// The changes made since the owner last drained them (only with `record_changes`).
    pub changes: Vec<Change>,
}

/// One pending replacement: the id, the old document (if any), the new one (if any).
type Replacement = (Id, Option<Arc<Document>>, Option<Arc<Document>>);

impl CollectionEngine {
    /// An empty collection at `version`.
    pub fn empty(version: u64) -> CollectionEngine {
        CollectionEngine { version, ..CollectionEngine::default() }
    }

    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The size of the documents serialized as JSON (computed, so O(n)).
    pub fn approx_bytes(&self) -> u64 {
        self.docs.values().map(|d| serde_json::to_vec(&**d).map_or(0, |v| v.len() as u64)).sum()
    }

    /// How many indexes it has.
    pub fn index_count(&self) -> usize {
        self.indexes.len()
    }

    /// Every document, in `_id` order.
    pub fn documents(&self) -> impl Iterator<Item = &Arc<Document>> + '_ {
        self.docs.values()
    }

    /// Loads a document as stored (no validation, no unique check, no change recorded): for
    /// backends rebuilding their state from their own files. Call [`CollectionEngine::rebuild_indexes`]
    /// after loading.
    pub fn load(&mut self, doc: Document) {
        if let Some(id) = id_of(&doc).map(str::to_owned) {
            self.docs.insert(id, Arc::new(doc));
        }
    }

    /// Removes a document as stored (no change recorded), for replaying a log.
    pub fn unload(&mut self, id: &str) {
        self.docs.remove(id);
    }

    /// Declares an index without checking the documents (no change recorded), for loading.
    pub fn load_index(&mut self, spec: IndexSpec) {
        self.indexes.retain(|i| i.spec.name != spec.name);
        let unique = spec.unique.then(|| UniqueKeys {
            paths: spec.fields.iter().map(FieldPath::new).collect(),
            keys: BTreeMap::new(),
        });
        self.indexes.push(Index { spec, unique });
        self.indexes.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    }

    /// Rebuilds the unique keys from the documents after loading; returns the names of unique
    /// indexes the loaded documents break (those are kept, but not enforced on the duplicates).
    pub fn rebuild_indexes(&mut self) -> Vec<String> {
        let mut broken = Vec::new();
        for index in &mut self.indexes {
            if let Some(u) = &mut index.unique {
                u.keys.clear();
                for (id, doc) in &self.docs {
                    if let Some(k) = u.key_of(doc) {
                        if u.keys.insert(k, id.clone()).is_some() && !broken.contains(&index.spec.name) {
                            broken.push(index.spec.name.clone());
                        }
                    }
                }
            }
        }
        broken
    }

    /// The documents matching a filter, in `_id` order; key lookups when the filter pins `_id`
    /// to a list (`$eq` or `$in`).
    fn candidates<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a Arc<Document>> + 'a {
        let (some, all) = match filter.pinned_ids() {
            Some(ids) => (Some(ids.into_iter().filter_map(|id| self.docs.get(id))), None),
            None => (None, Some(self.docs.values())),
        };
        some.into_iter().flatten().chain(all.into_iter().flatten()).filter(move |d| filter.matches(d))
    }

    /// The documents and index specs as they are now, for a snapshot (O(1): the map is shared).
    pub fn frozen(&self) -> Frozen {
        Frozen { docs: self.docs.clone(), indexes: self.list_indexes() }
    }

    /// The documents matching a query, sorted, sliced and projected.
    pub fn find(&self, query: &Query) -> Vec<Document> {
        let mut out: Vec<Document> = self.candidates(&query.filter).map(|d| (**d).clone()).collect();
        query.finish(&mut out);
        out
    }

    /// The document with this id.
    pub fn find_by_id(&self, id: &str) -> Option<Document> {
        self.docs.get(id).map(|d| (**d).clone())
    }

    /// How many documents match.
    pub fn count(&self, filter: &Filter) -> u64 {
        self.candidates(filter).count() as u64
    }

    /// Inserts documents already passed through [`prepare_document`](crate::prepare_document),
    /// all or none.
    pub fn insert_many(&mut self, docs: Vec<(Id, Document)>) -> Result<Vec<Id>> {
        let mut ids = Vec::with_capacity(docs.len());
        let mut changes = Vec::with_capacity(docs.len());
        let mut batch_ids = std::collections::HashSet::with_capacity(docs.len());
        for (id, doc) in docs {
            if self.docs.contains_key(&id) || !batch_ids.insert(id.clone()) {
                return Err(duplicate_id(&id));
            }
            ids.push(id.clone());
            changes.push((id, None, Some(Arc::new(doc))));
        }
        self.apply(changes)?;
        Ok(ids)
    }

    /// Stores a document already passed through [`prepare_document`](crate::prepare_document)
    /// under its id, replacing or inserting.
    pub fn upsert(&mut self, id: Id, doc: Document) -> Result<Upserted> {
        let old = self.docs.get(&id).cloned();
        let inserted = old.is_none();
        self.apply(vec![(id.clone(), old, Some(Arc::new(doc)))])?;
        Ok(Upserted { id, inserted })
    }

    /// Upserts documents already passed through [`prepare_document`](crate::prepare_document),
    /// all or none; a repeated id: the last one is stored.
    pub fn upsert_many(&mut self, docs: Vec<(Id, Document)>) -> Result<Vec<Upserted>> {
        let mut last = std::collections::HashMap::with_capacity(docs.len());
        for (n, (id, _)) in docs.iter().enumerate() {
            last.insert(id.clone(), n);
        }
        let mut seen = std::collections::HashSet::with_capacity(docs.len());
        let mut out = Vec::with_capacity(docs.len());
        let mut changes = Vec::with_capacity(last.len());
        for (n, (id, doc)) in docs.into_iter().enumerate() {
            let old = self.docs.get(&id).cloned();
            out.push(Upserted { id: id.clone(), inserted: old.is_none() && seen.insert(id.clone()) });
            if last.get(&id) == Some(&n) {
                changes.push((id, old, Some(Arc::new(doc))));
            }
        }
        self.apply(changes)?;
        Ok(out)
    }

    /// Applies an update to the first match in `_id` order (`only_first`) or to every match,
    /// all or nothing; returns how many matched.
    pub fn update(&mut self, filter: &Filter, update: &Update, only_first: bool) -> Result<u64> {
        let targets: Vec<Arc<Document>> =
            self.candidates(filter).take(if only_first { 1 } else { usize::MAX }).cloned().collect();
        let mut changes = Vec::with_capacity(targets.len());
        for old in targets {
            let mut new = (*old).clone();
            update.apply(&mut new).map_err(|e| {
                Error::new(e.kind(), format!("document {:?}: {}", id_of(&old).unwrap_or(""), e.message()))
            })?;
            let id = id_of(&old).unwrap_or_default().to_owned();
            changes.push((id, Some(old), Some(Arc::new(new))));
        }
        let n = changes.len() as u64;
        self.apply(changes)?;
        Ok(n)
    }

    /// Deletes the first match in `_id` order (`only_first`) or every match; returns how many.
    pub fn delete(&mut self, filter: &Filter, only_first: bool) -> u64 {
        let targets: Vec<Arc<Document>> =
            self.candidates(filter).take(if only_first { 1 } else { usize::MAX }).cloned().collect();
        let changes: Vec<Replacement> =
            targets.into_iter().map(|d| (id_of(&d).unwrap_or_default().to_owned(), Some(d), None)).collect();
        let n = changes.len() as u64;
        // Deleting cannot break a unique index.
        let _ = self.apply(changes);
        n
    }

    /// Creates an index (see [`Collection::create_index`](crate::Collection::create_index)).
    pub fn create_index(&mut self, spec: IndexSpec) -> Result<()> {
        if let Some(existing) = self.indexes.iter().find(|i| i.spec.name == spec.name) {
            return spec.check_same_as(&existing.spec);
        }
        let unique = if spec.unique {
            let mut u =
                UniqueKeys { paths: spec.fields.iter().map(FieldPath::new).collect(), keys: BTreeMap::new() };
            for (id, doc) in &self.docs {
                if let Some(key) = u.key_of(doc) {
                    if let Some(other) = u.keys.insert(key, id.clone()) {
                        return Err(Error::conflict(format!(
                            "cannot create unique index {:?}: documents {other:?} and {id:?} share the same {:?}",
                            spec.name, spec.fields
                        )));
                    }
                }
            }
            Some(u)
        } else {
            None
        };
        if self.record_changes {
            self.changes.push(Change::Index(spec.clone()));
        }
        self.indexes.push(Index { spec, unique });
        self.indexes.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        self.dirty = true;
        Ok(())
    }

    /// The indexes, sorted by name.
    pub fn list_indexes(&self) -> Vec<IndexSpec> {
        self.indexes.iter().map(|i| i.spec.clone()).collect()
    }

    /// Applies changes all together or not at all: unique keys are moved first, and a conflict
    /// puts every key back before returning.
    fn apply(&mut self, changes: Vec<Replacement>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        for i in 0..self.indexes.len() {
            if let Err(e) = self.move_keys(i, &changes) {
                for j in 0..i {
                    self.unmove_keys(j, &changes);
                }
                return Err(e);
            }
        }
        for (id, _, new) in changes {
            match new {
                Some(doc) => {
                    if self.record_changes {
                        self.changes.push(Change::Put(doc.clone()));
                    }
                    self.docs.insert(id, doc);
                }
                None => {
                    self.docs.remove(&id);
                    if self.record_changes {
                        self.changes.push(Change::Delete(id));
                    }
                }
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn move_keys(&mut self, i: usize, changes: &[Replacement]) -> Result<()> {
        let Index { spec, unique } = &mut self.indexes[i];
        let Some(u) = unique else { return Ok(()) };
        for (_, old, _) in changes {
            if let Some(k) = old.as_deref().and_then(|d| u.key_of(d)) {
                u.keys.remove(&k);
            }
        }
        for (n, (id, _, new)) in changes.iter().enumerate() {
            let Some(k) = new.as_deref().and_then(|d| u.key_of(d)) else { continue };
            if let Some(other) = u.keys.get(&k) {
                let err = Error::conflict(format!(
                    "unique index {:?} on {:?}: document {id:?} has the same value as {other:?}",
                    spec.name, spec.fields
                ));
                // Undo this index: drop the new keys added so far, restore the old ones.
                for (_, _, added) in &changes[..n] {
                    if let Some(k) = added.as_deref().and_then(|d| u.key_of(d)) {
                        u.keys.remove(&k);
                    }
                }
                for (oid, old, _) in changes {
                    if let Some(k) = old.as_deref().and_then(|d| u.key_of(d)) {
                        u.keys.insert(k, oid.clone());
                    }
                }
                return Err(err);
            }
            u.keys.insert(k, id.clone());
        }
        Ok(())
    }

    fn unmove_keys(&mut self, i: usize, changes: &[Replacement]) {
        let Some(u) = &mut self.indexes[i].unique else { return };
        for (_, _, new) in changes {
            if let Some(k) = new.as_deref().and_then(|d| u.key_of(d)) {
                u.keys.remove(&k);
            }
        }
        for (id, old, _) in changes {
            if let Some(k) = old.as_deref().and_then(|d| u.key_of(d)) {
                u.keys.insert(k, id.clone());
            }
        }
    }
}

fn duplicate_id(id: &str) -> Error {
    Error::conflict(format!("a document with _id {id:?} already exists"))
}

/// Where an [`EngineCollection`] keeps its engine: the backend's shared state, or a
/// transaction's private copies. The host runs each closure under whatever lock it needs and,
/// for writes, persists what the engine recorded before returning.
#[async_trait::async_trait]
pub trait EngineHost: Send + Sync + std::fmt::Debug {
    /// Runs `f` on the named collection's engine (an empty one when it does not exist).
    fn read<R>(&self, name: &str, f: impl FnOnce(&CollectionEngine) -> R) -> Result<R>;

    /// Runs `f` on the named collection's engine, creating the collection if needed, and makes
    /// the changes as durable as the backend promises before returning.
    async fn write<R: Send>(
        &self,
        name: &str,
        f: impl for<'e> FnOnce(&'e mut CollectionEngine) -> Result<R> + Send,
    ) -> Result<R>;
}

/// The [`Collection`](crate::Collection) implementation for every backend that keeps its data in
/// [`CollectionEngine`]s: inputs are validated before the host is called.
#[derive(Debug)]
pub struct EngineCollection<H> {
    name: String,
    host: H,
}

impl<H> EngineCollection<H> {
    /// A handle on the named collection of `host`.
    pub fn new(name: impl Into<String>, host: H) -> Self {
        EngineCollection { name: name.into(), host }
    }
}

#[async_trait::async_trait]
impl<H: EngineHost> crate::backend::Collection for EngineCollection<H> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn insert_one(&self, doc: Document) -> Result<Id> {
        let prepared = crate::document::prepare_documents(vec![doc])?;
        let mut ids = self.host.write(&self.name, |c| c.insert_many(prepared)).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = crate::document::prepare_documents(docs)?;
        self.host.write(&self.name, |c| c.insert_many(prepared)).await
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        let id = crate::document::prepare_document(&mut doc)?;
        self.host.write(&self.name, |c| c.upsert(id, doc)).await
    }

    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = crate::document::prepare_documents(docs)?;
        self.host.write(&self.name, |c| c.upsert_many(prepared)).await
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        crate::id::validate_id(id)?;
        self.host.read(&self.name, |c| c.find_by_id(id))
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        query.validate()?;
        self.host.read(&self.name, |c| c.find(query))
    }

    async fn find_stream(&self, query: &Query) -> Result<crate::backend::DocumentStream> {
        query.validate()?;
        // The collection is frozen under the host's lock (O(1), the map is shared), then read
        // page by page outside it: a consistent view, in bounded memory, without blocking writers.
        let frozen = self.host.read(&self.name, CollectionEngine::frozen)?;
        Ok(frozen.find_stream(query))
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        self.host.write(&self.name, |c| c.update(filter, update, true)).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        self.host.write(&self.name, |c| c.update(filter, update, false)).await
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.host.write(&self.name, |c| Ok(c.delete(filter, true))).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.host.write(&self.name, |c| Ok(c.delete(filter, false))).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.host.read(&self.name, |c| c.count(filter))
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        spec.validate()?;
        self.host.write(&self.name, |c| c.create_index(spec)).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.host.read(&self.name, CollectionEngine::list_indexes)
    }
}

/// One page of a keyset scan over a map of documents.
fn page_of(docs: &Docs, filter: &Filter, after: Option<&str>, rows: u64) -> crate::stream::Page {
    use std::ops::Bound;
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut page = crate::stream::Page::default();
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    for (read, (id, doc)) in docs.range::<_, str>((start, Bound::Unbounded)).enumerate() {
        if read == rows {
            return page;
        }
        page.next = Some(id.clone());
        if filter.matches(doc) {
            page.docs.push((**doc).clone());
        }
    }
    page.next = None;
    page
}

/// A collection frozen at one moment: what memory and file snapshots read.
#[derive(Debug, Clone, Default)]
pub struct Frozen {
    docs: Docs,
    indexes: Vec<IndexSpec>,
}

impl Frozen {
    /// The index specs, sorted by name.
    pub fn indexes(&self) -> Vec<IndexSpec> {
        let mut specs = self.indexes.clone();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    /// The query's documents, streamed page by page in `_id` order, or computed for other orders.
    pub fn find_stream(&self, query: &Query) -> crate::backend::DocumentStream {
        if !query.in_id_order() {
            let mut out: Vec<Document> =
                self.docs.values().filter(|d| query.filter.matches(d)).map(|d| (**d).clone()).collect();
            query.finish(&mut out);
            return crate::stream::computed_stream(out);
        }
        crate::stream::keyset_stream(self.docs.clone(), query, |docs, filter, after| {
            let page = page_of(&docs, &filter, after.as_deref(), crate::stream::PAGE_ROWS);
            async move { Ok(page) }
        })
    }
}

/// Every collection of a store frozen at one moment: the point-in-time [`Snapshot`] of the
/// memory and file backends.
///
/// [`Snapshot`]: crate::Snapshot
#[derive(Debug, Default)]
pub struct FrozenStore {
    collections: BTreeMap<String, Frozen>,
}

impl FrozenStore {
    /// A snapshot of these collections (taken by the caller under one lock).
    pub fn new(collections: impl IntoIterator<Item = (String, Frozen)>) -> FrozenStore {
        FrozenStore { collections: collections.into_iter().collect() }
    }
}

#[async_trait::async_trait]
impl crate::Snapshot for FrozenStore {
    fn consistency(&self) -> crate::SnapshotConsistency {
        crate::SnapshotConsistency::PointInTime
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        Ok(self.collections.keys().cloned().collect())
    }

    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexSpec>> {
        crate::validate_collection_name(collection)?;
        Ok(self.collections.get(collection).map(Frozen::indexes).unwrap_or_default())
    }

    async fn find_stream(&self, collection: &str, query: &Query) -> Result<crate::backend::DocumentStream> {
        crate::validate_collection_name(collection)?;
        query.validate()?;
        Ok(self.collections.get(collection).cloned().unwrap_or_default().find_stream(query))
    }
}

/// A transaction's private copy of one collection.
#[derive(Debug)]
pub struct TxCopy {
    /// The collection's version when the transaction first touched it (`None`: it did not exist).
    pub base: Option<u64>,
    /// The copy, recording its changes.
    pub engine: CollectionEngine,
    /// Whether the transaction changed it.
    pub written: bool,
}

/// The private copies of a transaction: copy on first touch, check versions at commit
/// (first committer wins).
#[derive(Debug, Default)]
pub struct Workspace {
    copies: BTreeMap<String, TxCopy>,
}

impl Workspace {
    /// Runs `f` on the transaction's copy of `name`; `current` gives the collection's version
    /// and engine the first time.
    pub fn with<R>(
        &mut self,
        name: &str,
        current: impl FnOnce() -> (Option<u64>, CollectionEngine),
        f: impl FnOnce(&mut CollectionEngine) -> Result<R>,
    ) -> Result<R> {
        let copy = self.copies.entry(name.to_owned()).or_insert_with(|| {
            let (base, mut engine) = current();
            engine.record_changes = true;
            engine.changes.clear();
            engine.dirty = false;
            TxCopy { base, engine, written: false }
        });
        let result = f(&mut copy.engine);
        if std::mem::take(&mut copy.engine.dirty) {
            copy.written = true;
        }
        result
    }

    /// The first collection whose current version differs from the one the transaction saw.
    pub fn conflict(&self, current_version: impl Fn(&str) -> Option<u64>) -> Option<&str> {
        self.copies.iter().find(|(name, copy)| current_version(name) != copy.base).map(|(n, _)| n.as_str())
    }

    /// The collections the transaction wrote, with their copies.
    pub fn into_written(self) -> impl Iterator<Item = (String, CollectionEngine)> {
        self.copies.into_iter().filter(|(_, c)| c.written).map(|(n, c)| (n, c.engine))
    }
}

/// A transaction's workspace while it is open: what a transaction and its collection handles
/// share. Once finished (committed, rolled back or dropped), every use is `InvalidInput`.
#[derive(Debug)]
pub struct OpenWorkspace(std::sync::Mutex<Option<Workspace>>);

impl Default for OpenWorkspace {
    fn default() -> Self {
        OpenWorkspace(std::sync::Mutex::new(Some(Workspace::default())))
    }
}

impl OpenWorkspace {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Workspace>> {
        // The guarded data is a plain map that a panic cannot leave half-updated.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the transaction's copy of `name` (see [`Workspace::with`]).
    pub fn with<R>(
        &self,
        name: &str,
        current: impl FnOnce() -> (Option<u64>, CollectionEngine),
        f: impl FnOnce(&mut CollectionEngine) -> Result<R>,
    ) -> Result<R> {
        self.lock().as_mut().ok_or_else(finished_transaction)?.with(name, current, f)
    }

    /// Ends the transaction and hands over its copies, for a commit.
    pub fn finish(&self) -> Result<Workspace> {
        self.lock().take().ok_or_else(finished_transaction)
    }

    /// Ends the transaction, discarding its copies (rollback; a no-op when already finished).
    pub fn discard(&self) {
        self.lock().take();
    }
}

/// The error of every operation on a finished transaction.
pub fn finished_transaction() -> Error {
    Error::invalid("the transaction is finished (committed or rolled back)")
}

/// The error for a commit overtaken by another writer.
pub fn overtaken(name: &str) -> Error {
    Error::aborted(format!(
        "collection {name:?} was changed by another writer during the transaction; retry it"
    ))
}
