//! [`MemoryCollection`]: one `Collection` implementation for plain and transactional handles.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use orbstore_core::{
    prepare_document, validate_id, Collection, Document, DocumentStream, Filter, Id, IndexSpec, Query,
    Result, Update, Upserted,
};

use crate::backend::Shared;
use crate::transaction::TxShared;
use orbstore_core::engine::CollectionEngine;

/// What a handle reads and writes: the shared store, or a transaction's private copies.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Direct(Arc<Shared>),
    Tx(Arc<TxShared>),
}

/// A collection handle of the memory backend.
#[derive(Debug)]
pub struct MemoryCollection {
    name: String,
    target: Target,
}

impl MemoryCollection {
    pub(crate) fn new(name: &str, target: Target) -> Self {
        MemoryCollection { name: name.to_owned(), target }
    }

    fn read<R>(&self, f: impl FnOnce(&CollectionEngine) -> R) -> Result<R> {
        match &self.target {
            Target::Direct(shared) => {
                shared.check_open()?;
                let state = shared.state.read();
                Ok(match state.collections.get(&self.name) {
                    Some(c) => f(c),
                    None => f(&CollectionEngine::default()),
                })
            }
            Target::Tx(tx) => tx.with_collection(&self.name, |c| Ok(f(c))),
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut CollectionEngine) -> Result<R>) -> Result<R> {
        match &self.target {
            Target::Direct(shared) => {
                shared.check_open()?;
                let mut state = shared.state.write();
                let coll = state.get_or_create(&self.name);
                let result = f(coll);
                if std::mem::take(&mut coll.dirty) {
                    let v = state.tick();
                    if let Some(c) = state.collections.get_mut(&self.name) {
                        c.version = v;
                    }
                }
                result
            }
            Target::Tx(tx) => tx.with_collection(&self.name, f),
        }
    }
}

#[async_trait]
impl Collection for MemoryCollection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn insert_one(&self, doc: Document) -> Result<Id> {
        let prepared = prepare(vec![doc])?;
        let mut ids = self.write(|c| c.insert_many(prepared))?;
        Ok(ids.pop().unwrap_or_default())
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = prepare(docs)?;
        self.write(|c| c.insert_many(prepared))
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        let id = prepare_document(&mut doc)?;
        self.write(|c| c.upsert(id, doc))
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        validate_id(id)?;
        self.read(|c| c.find_by_id(id))
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        query.validate()?;
        self.read(|c| c.find(query))
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        // The result is computed under the lock (a consistent snapshot), then streamed.
        let docs = self.find(query).await?;
        Ok(stream::iter(docs.into_iter().map(Ok)).boxed())
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        self.write(|c| c.update(filter, update, true))
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        self.write(|c| c.update(filter, update, false))
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.write(|c| Ok(c.delete(filter, true)))
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.write(|c| Ok(c.delete(filter, false)))
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.read(|c| c.count(filter))
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        spec.validate()?;
        self.write(|c| c.create_index(spec))
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.read(CollectionEngine::list_indexes)
    }
}

/// Validates documents and gives each its id, before any lock is taken.
fn prepare(docs: Vec<Document>) -> Result<Vec<(Id, Document)>> {
    docs.into_iter().map(|mut d| prepare_document(&mut d).map(|id| (id, d))).collect()
}
