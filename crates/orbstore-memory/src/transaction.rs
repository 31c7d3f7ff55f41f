//! Transactions of the memory backend: private copies, committed at once, first committer wins.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::{validate_collection_name, CollectionRef, Error, Result, Transaction};
use parking_lot::Mutex;

use crate::backend::Shared;
use crate::collection::{MemoryCollection, Target};
use orbstore_core::engine::CollectionEngine;

/// A transaction's private copy of one collection.
#[derive(Debug)]
struct Copy {
    /// The collection's version when first touched (`None`: it did not exist).
    base: Option<u64>,
    state: CollectionEngine,
    written: bool,
}

/// What a transaction and its handles share. `None` once committed or rolled back.
#[derive(Debug)]
pub(crate) struct TxShared {
    shared: Arc<Shared>,
    copies: Mutex<Option<BTreeMap<String, Copy>>>,
}

impl TxShared {
    /// Runs `f` on the transaction's copy of the collection, copying it on first touch.
    pub(crate) fn with_collection<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut CollectionEngine) -> Result<R>,
    ) -> Result<R> {
        self.shared.check_open()?;
        let mut guard = self.copies.lock();
        let copies = guard
            .as_mut()
            .ok_or_else(|| Error::invalid("the transaction is finished (committed or rolled back)"))?;
        if !copies.contains_key(name) {
            let state = self.shared.state.read();
            let (base, state) = match state.collections.get(name) {
                Some(c) => (Some(c.version), c.clone()),
                None => (None, CollectionEngine::default()),
            };
            copies.insert(name.to_owned(), Copy { base, state, written: false });
        }
        let copy = copies.get_mut(name).expect("inserted above");
        let result = f(&mut copy.state);
        if std::mem::take(&mut copy.state.dirty) {
            copy.written = true;
        }
        result
    }
}

/// A transaction of the memory backend.
#[derive(Debug)]
pub struct MemoryTransaction {
    inner: Arc<TxShared>,
}

impl MemoryTransaction {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        MemoryTransaction { inner: Arc::new(TxShared { shared, copies: Mutex::new(Some(BTreeMap::new())) }) }
    }
}

impl Drop for MemoryTransaction {
    fn drop(&mut self) {
        // Rollback on drop: discard the copies (a no-op after commit or rollback).
        self.inner.copies.lock().take();
    }
}

#[async_trait]
impl Transaction for MemoryTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        // Touch it now, so the transaction's view of it starts here.
        self.inner.with_collection(name, |_| Ok(()))?;
        Ok(Arc::new(MemoryCollection::new(name, Target::Tx(self.inner.clone()))))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.inner.shared.check_open()?;
        let copies = self
            .inner
            .copies
            .lock()
            .take()
            .ok_or_else(|| Error::invalid("the transaction is already finished"))?;
        let mut state = self.inner.shared.state.write();
        for (name, copy) in &copies {
            let now = state.collections.get(name).map(|c| c.version);
            if now != copy.base {
                return Err(Error::aborted(format!(
                    "collection {name:?} was changed by another writer during the transaction; retry it"
                )));
            }
        }
        for (name, copy) in copies {
            if copy.written {
                let mut coll = copy.state;
                coll.version = state.tick();
                state.collections.insert(name, coll);
            }
        }
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.copies.lock().take();
        Ok(())
    }
}
