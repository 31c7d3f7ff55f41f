//! The data of one collection and the operations on it, shared by plain and transactional
//! handles. Everything here is synchronous and runs under a lock held by the caller.

use std::collections::BTreeMap;
use std::sync::Arc;

use orbstore_core::order::OrdValue;
use orbstore_core::{id_of, Document, Error, Filter, Id, IndexSpec, Query, Result, Update, Upserted};
use serde_json::Value;

use orbstore_core::FieldPath;

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
            .map(|p| match p.sort_key(doc) {
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

/// One collection's documents and indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct CollState {
    docs: BTreeMap<Id, Arc<Document>>,
    indexes: Vec<Index>,
    /// Changes whenever the content changes; transactions compare it at commit.
    pub(crate) version: u64,
    /// Set by every mutation; the caller clears it and bumps `version`.
    pub(crate) dirty: bool,
}

/// One pending replacement: the id, the old document (if any), the new one (if any).
type Change = (Id, Option<Arc<Document>>, Option<Arc<Document>>);

impl CollState {
    /// An empty collection at `version`.
    pub(crate) fn empty(version: u64) -> CollState {
        CollState { version, ..CollState::default() }
    }

    pub(crate) fn len(&self) -> usize {
        self.docs.len()
    }

    pub(crate) fn approx_bytes(&self) -> u64 {
        self.docs.values().map(|d| serde_json::to_vec(&**d).map_or(0, |v| v.len() as u64)).sum()
    }

    pub(crate) fn index_count(&self) -> usize {
        self.indexes.len()
    }

    /// The documents matching a filter, in `_id` order; a key lookup when the filter pins `_id`.
    fn candidates<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a Arc<Document>> + 'a {
        let (one, all) = match filter.pinned_id() {
            Some(id) => (self.docs.get(id), None),
            None => (None, Some(self.docs.values())),
        };
        one.into_iter().chain(all.into_iter().flatten()).filter(move |d| filter.matches(d))
    }

    pub(crate) fn find(&self, query: &Query) -> Vec<Document> {
        let mut out: Vec<Document> = self.candidates(&query.filter).map(|d| (**d).clone()).collect();
        query.finish(&mut out);
        out
    }

    pub(crate) fn find_by_id(&self, id: &str) -> Option<Document> {
        self.docs.get(id).map(|d| (**d).clone())
    }

    pub(crate) fn count(&self, filter: &Filter) -> u64 {
        self.candidates(filter).count() as u64
    }

    /// Inserts documents already passed through `prepare_document`, all or none.
    pub(crate) fn insert_many(&mut self, docs: Vec<(Id, Document)>) -> Result<Vec<Id>> {
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

    /// Stores a document already passed through `prepare_document` under its id.
    pub(crate) fn upsert(&mut self, id: Id, doc: Document) -> Result<Upserted> {
        let old = self.docs.get(&id).cloned();
        let inserted = old.is_none();
        self.apply(vec![(id.clone(), old, Some(Arc::new(doc)))])?;
        Ok(Upserted { id, inserted })
    }

    pub(crate) fn update(&mut self, filter: &Filter, update: &Update, only_first: bool) -> Result<u64> {
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

    pub(crate) fn delete(&mut self, filter: &Filter, only_first: bool) -> u64 {
        let targets: Vec<Arc<Document>> =
            self.candidates(filter).take(if only_first { 1 } else { usize::MAX }).cloned().collect();
        let changes: Vec<Change> =
            targets.into_iter().map(|d| (id_of(&d).unwrap_or_default().to_owned(), Some(d), None)).collect();
        let n = changes.len() as u64;
        // Deleting cannot break a unique index.
        let _ = self.apply(changes);
        n
    }

    pub(crate) fn create_index(&mut self, spec: IndexSpec) -> Result<()> {
        if let Some(existing) = self.indexes.iter().find(|i| i.spec.name == spec.name) {
            return if existing.spec == spec {
                Ok(())
            } else {
                Err(Error::conflict(format!(
                    "an index named {:?} already exists with fields {:?}, unique = {}",
                    spec.name, existing.spec.fields, existing.spec.unique
                )))
            };
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
        self.indexes.push(Index { spec, unique });
        self.indexes.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        self.dirty = true;
        Ok(())
    }

    pub(crate) fn list_indexes(&self) -> Vec<IndexSpec> {
        self.indexes.iter().map(|i| i.spec.clone()).collect()
    }

    /// Applies changes all together or not at all: unique keys are moved first, and a conflict
    /// puts every key back before returning.
    fn apply(&mut self, changes: Vec<Change>) -> Result<()> {
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
                Some(doc) => self.docs.insert(id, doc),
                None => self.docs.remove(&id),
            };
        }
        self.dirty = true;
        Ok(())
    }

    fn move_keys(&mut self, i: usize, changes: &[Change]) -> Result<()> {
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

    fn unmove_keys(&mut self, i: usize, changes: &[Change]) {
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
