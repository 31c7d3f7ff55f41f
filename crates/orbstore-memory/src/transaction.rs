//! Transactions of the memory backend: private copies, committed at once, first committer wins.

use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::engine::{overtaken, CollectionEngine, OpenWorkspace};
use orbstore_core::{validate_collection_name, CollectionRef, Result, Transaction};

use crate::backend::Shared;
use crate::collection::{MemoryCollection, MemoryHost};

/// What a transaction and its handles share.
#[derive(Debug)]
pub struct TxShared {
    shared: Arc<Shared>,
    work: OpenWorkspace,
}

impl TxShared {
    /// Runs `f` on the transaction's copy of the collection, copying it on first touch.
    pub(crate) fn with_collection<R>(
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

/// A transaction of the memory backend.
#[derive(Debug)]
pub struct MemoryTransaction {
    inner: Arc<TxShared>,
}

impl MemoryTransaction {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        MemoryTransaction { inner: Arc::new(TxShared { shared, work: OpenWorkspace::default() }) }
    }
}

impl Drop for MemoryTransaction {
    fn drop(&mut self) {
        // Rollback on drop: discard the copies (a no-op after commit or rollback).
        self.inner.work.discard();
    }
}

#[async_trait]
impl Transaction for MemoryTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        // Touch it now, so the transaction's view of it starts here.
        self.inner.with_collection(name, |_| Ok(()))?;
        Ok(Arc::new(MemoryCollection::new(name, MemoryHost::Tx(self.inner.clone()))))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.inner.shared.check_open()?;
        let work = self.inner.work.finish()?;
        let mut state = self.inner.shared.state.write();
        if let Some(name) = work.conflict(|n| state.collections.get(n).map(|c| c.version)) {
            return Err(overtaken(name));
        }
        for (name, mut engine) in work.into_written() {
            engine.record_changes = false;
            engine.changes.clear();
            engine.version = state.tick();
            state.collections.insert(name, engine);
        }
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.work.discard();
        Ok(())
    }
}
