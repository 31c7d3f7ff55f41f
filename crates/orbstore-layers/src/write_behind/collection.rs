//! A collection through the write-behind layer: the view is the inner backend's documents with
//! the queued states laid over them.
//!
//! Reads:
//! - `find_by_id`, and any query whose filter pins one `_id` (what `update_by_id` and
//!   `delete_by_id` send): the queued state when there is one (no I/O), else the inner backend's.
//! - `find`: the inner backend's answer to the same filter and sort, with the offset dropped and
//!   the limit widened by `offset + q` (q = the collection's queued documents): at most q of those
//!   documents are replaced or removed by queued states, so the first `offset + limit` of the view
//!   are among them and the queued documents that match. Then the query is applied again (sort,
//!   offset, limit, projection) over that merged set. The cost over a plain `find`: q more
//!   documents read, and a copy of the collection's queue.
//! - `count`: the inner count of the matching documents outside the queue (`$nin` of the queued
//!   ids, up to 1,024 of them; beyond, the matching ids are read and compared), plus the queued
//!   documents that match.
//! - Each document read is in a state it held between the start and the end of the read; a read
//!   racing with a flush is not a point-in-time snapshot of the whole collection (like a MongoDB
//!   cursor's), but never counts a document twice or misses one written before it began.
//!
//! Writes that read first (updates, deletes, inserts with a given `_id`, upserts) hold the
//! collection's write lock from their read to their queueing, so no other write through the
//! layer changes the view in between: their counts and the states they queue are exact.
//! Flushes do not take that lock: they move states from the queue to the inner backend without
//! changing the view. An insert without `_id` does not take it: a new generated id conflicts
//! with nothing.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::{
    id_of, prepare_document, prepare_documents, validate_id, Collection, CollectionRef, Document,
    DocumentStream, Error, Filter, Id, IndexSpec, Projection, Query, Result, Update, Upserted, ID_FIELD,
};
use serde_json::Value;

use super::queue::{closed_error, Change, Shared};

/// Up to this many queued ids go into a `$nin` for `count`.
const NIN_IDS: usize = 1_024;
/// Up to this many ids are checked with `find_by_id` each; more with one `$in` query.
const LOOKUP_IDS: usize = 8;

pub(crate) struct WbCollection {
    shared: Arc<Shared>,
    inner: CollectionRef,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for WbCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WbCollection").field("inner", &self.inner).finish()
    }
}

impl WbCollection {
    pub fn new(shared: Arc<Shared>, inner: CollectionRef) -> WbCollection {
        let lock = shared.lock_for(inner.name());
        WbCollection { shared, inner, lock }
    }

    fn open(&self) -> Result<()> {
        if self.shared.is_closed() {
            Err(closed_error())
        } else {
            Ok(())
        }
    }

    fn names(&self) -> [String; 1] {
        [self.inner.name().to_owned()]
    }

    /// The view's answer to a query (see the module doc).
    async fn view_find(&self, query: &Query) -> Result<Vec<Document>> {
        if let Some(id) = query.filter.pinned_id() {
            // One document at most (`update_by_id`, `delete_by_id`): no copy of the queue.
            return match self.shared.lookup(self.inner.name(), id) {
                None => self.inner.find(query).await,
                Some(state) => {
                    let mut docs: Vec<Document> = state
                        .filter(|d| query.filter.matches(d))
                        .map(Arc::unwrap_or_clone)
                        .into_iter()
                        .collect();
                    query.finish(&mut docs);
                    Ok(docs)
                }
            };
        }
        let overlay = self.shared.overlay(self.inner.name());
        if overlay.is_empty() {
            return self.inner.find(query).await;
        }
        let widened = Query {
            filter: query.filter.clone(),
            sort: query.sort.clone(),
            offset: 0,
            limit: query.limit.map(|l| l.saturating_add(query.offset).saturating_add(overlay.len() as u64)),
            projection: None,
        };
        let mut docs = self.inner.find(&widened).await?;
        docs.retain(|d| id_of(d).is_none_or(|id| !overlay.contains_key(id)));
        docs.extend(
            overlay.into_values().flatten().filter(|d| query.filter.matches(d)).map(|d| (*d).clone()),
        );
        query.finish(&mut docs);
        Ok(docs)
    }

    /// Which of these ids have a document in the view.
    async fn existing(&self, ids: &[&Id]) -> Result<HashSet<Id>> {
        let mut found = HashSet::new();
        let mut ask = Vec::new();
        for id in ids {
            match self.shared.lookup(self.inner.name(), id) {
                Some(Some(_)) => {
                    found.insert((*id).clone());
                }
                Some(None) => {}
                None => ask.push(*id),
            }
        }
        if ask.len() <= LOOKUP_IDS {
            for id in ask {
                if self.inner.find_by_id(id).await?.is_some() {
                    found.insert(id.clone());
                }
            }
        } else {
            let q = Query::new(Filter::is_in(ID_FIELD, ask.iter().map(|id| Value::from(id.as_str()))))
                .project(Projection::include([ID_FIELD]));
            for d in self.inner.find(&q).await? {
                found.extend(id_of(&d).map(str::to_owned));
            }
        }
        Ok(found)
    }

    /// The documents the filter selects in the view (`first`: the first in `_id` order).
    async fn matching(&self, filter: &Filter, first: bool) -> Result<Vec<Document>> {
        let q = Query::new(filter.clone());
        self.view_find(&if first { q.limit(1) } else { q }).await
    }

    /// Flushes this collection's queue, for a write that goes straight to the inner backend.
    async fn flush_mine(&self) -> Result<()> {
        self.shared.flush_pending(Some(&self.names())).await
    }

    async fn update(&self, filter: &Filter, update: &Update, first: bool) -> Result<u64> {
        self.open()?;
        filter.validate()?;
        update.validate()?;
        let _writers = self.lock.lock().await;
        let matched = self.matching(filter, first).await?;
        let mut changes = Vec::with_capacity(matched.len());
        for old in &matched {
            let id = id_of(old).unwrap_or_default().to_owned();
            let mut new = old.clone();
            update
                .apply(&mut new)
                .map_err(|e| Error::new(e.kind(), format!("document {id:?}: {}", e.message())))?;
            if new != *old {
                changes.push(Change::put(id, new));
            }
        }
        if !self.shared.fits(&changes) {
            self.flush_mine().await?;
            return if first {
                self.inner.update_one(filter, update).await
            } else {
                self.inner.update_many(filter, update).await
            };
        }
        self.shared.enqueue(self.inner.name(), changes).await?;
        Ok(matched.len() as u64)
    }

    async fn delete(&self, filter: &Filter, first: bool) -> Result<u64> {
        self.open()?;
        filter.validate()?;
        let _writers = self.lock.lock().await;
        let q = Query::new(filter.clone()).project(Projection::include([ID_FIELD]));
        let matched = self.view_find(&if first { q.limit(1) } else { q }).await?;
        let changes: Vec<Change> =
            matched.iter().filter_map(|d| id_of(d)).map(|id| Change::delete(id.to_owned())).collect();
        if !self.shared.fits(&changes) {
            self.flush_mine().await?;
            return if first {
                self.inner.delete_one(filter).await
            } else {
                self.inner.delete_many(filter).await
            };
        }
        let n = changes.len() as u64;
        self.shared.enqueue(self.inner.name(), changes).await?;
        Ok(n)
    }
}

#[async_trait]
impl Collection for WbCollection {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn insert_one(&self, mut doc: Document) -> Result<Id> {
        if !doc.contains_key(ID_FIELD) {
            // The hot path of write-behind: a generated id, queued with no check and no lock.
            self.open()?;
            let id = prepare_document(&mut doc)?;
            let change = vec![Change::put(id.clone(), doc)];
            if self.shared.fits(&change) {
                self.shared.enqueue(self.inner.name(), change).await?;
                return Ok(id);
            }
            doc = change.into_iter().find_map(|c| c.doc).map(Arc::unwrap_or_clone).unwrap_or_default();
        }
        let mut ids = self.insert_many(vec![doc]).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        self.open()?;
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let given: Vec<bool> = docs.iter().map(|d| d.contains_key(ID_FIELD)).collect();
        let prepared = prepare_documents(docs)?;
        let mut seen = HashSet::with_capacity(prepared.len());
        if let Some((id, _)) = prepared.iter().find(|(id, _)| !seen.insert(id.as_str())) {
            return Err(Error::conflict(format!("_id {id:?} appears twice in the batch")));
        }
        let ids: Vec<Id> = prepared.iter().map(|(id, _)| id.clone()).collect();
        let changes: Vec<Change> = prepared.into_iter().map(|(id, doc)| Change::put(id, doc)).collect();
        if !given.contains(&true) && self.shared.fits(&changes) {
            // Generated ids only: nothing to check, no lock, no I/O.
            self.shared.enqueue(self.inner.name(), changes).await?;
            return Ok(ids);
        }
        let _writers = self.lock.lock().await;
        if !self.shared.fits(&changes) {
            self.flush_mine().await?;
            let docs = changes.into_iter().filter_map(|c| c.doc).map(Arc::unwrap_or_clone).collect();
            return self.inner.insert_many(docs).await;
        }
        let check: Vec<&Id> = ids.iter().zip(&given).filter(|(_, g)| **g).map(|(id, _)| id).collect();
        let existing = self.existing(&check).await?;
        if let Some(id) = check.iter().find(|id| existing.contains(**id)) {
            return Err(Error::conflict(format!("a document with _id {id:?} already exists")));
        }
        self.shared.enqueue(self.inner.name(), changes).await?;
        Ok(ids)
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        self.open()?;
        let given = doc.contains_key(ID_FIELD);
        let id = prepare_document(&mut doc)?;
        let change = vec![Change::put(id.clone(), doc)];
        if !given && self.shared.fits(&change) {
            self.shared.enqueue(self.inner.name(), change).await?;
            return Ok(Upserted { id, inserted: true });
        }
        let _writers = self.lock.lock().await;
        if !self.shared.fits(&change) {
            self.flush_mine().await?;
            let doc = change.into_iter().find_map(|c| c.doc).map(Arc::unwrap_or_clone).unwrap_or_default();
            return self.inner.upsert(doc).await;
        }
        let inserted = self.existing(&[&id]).await?.is_empty();
        self.shared.enqueue(self.inner.name(), change).await?;
        Ok(Upserted { id, inserted })
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        self.open()?;
        validate_id(id)?;
        match self.shared.lookup(self.inner.name(), id) {
            Some(state) => Ok(state.map(Arc::unwrap_or_clone)),
            None => self.inner.find_by_id(id).await,
        }
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        self.open()?;
        query.validate()?;
        self.view_find(query).await
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        self.open()?;
        query.validate()?;
        if self.shared.overlay(self.inner.name()).is_empty() {
            return self.inner.find_stream(query).await;
        }
        // Queued writes: computed whole (bounded by the query's own result plus the queue).
        Ok(orbstore_core::stream::computed_stream(self.view_find(query).await?))
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        self.update(filter, update, true).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        self.update(filter, update, false).await
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        self.delete(filter, true).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.delete(filter, false).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.open()?;
        filter.validate()?;
        let overlay: BTreeMap<Id, Option<Arc<Document>>> = self.shared.overlay(self.inner.name());
        if overlay.is_empty() {
            return self.inner.count(filter).await;
        }
        let queued = overlay.values().flatten().filter(|d| filter.matches(d)).count() as u64;
        let outside = if overlay.len() <= NIN_IDS {
            let ids = overlay.keys().map(|id| Value::from(id.as_str()));
            self.inner.count(&Filter::and([filter.clone(), Filter::not_in(ID_FIELD, ids)])).await?
        } else {
            let q = Query::new(filter.clone()).project(Projection::include([ID_FIELD]));
            let docs = self.inner.find(&q).await?;
            docs.iter().filter(|d| id_of(d).is_some_and(|id| !overlay.contains_key(id))).count() as u64
        };
        Ok(outside + queued)
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        self.open()?;
        spec.validate()?;
        // The index is built over the view: the queue goes to the inner backend first.
        let _writers = self.lock.lock().await;
        self.flush_mine().await?;
        self.inner.create_index(spec).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.open()?;
        self.inner.list_indexes().await
    }
}
