//! Transactions of the file backend: private copies (as in memory), then at commit the records
//! of every written collection go to its log tagged with the transaction's id, and one marker in
//! the transaction log commits them all. See `txlog.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::engine::{overtaken, CollectionEngine, OpenWorkspace, Workspace};
use orbstore_core::{validate_collection_name, CollectionRef, Error, FileSync, Result, Transaction};

use crate::backend::Inner;
use crate::collection::{FileCollection, FileHost};
use crate::log::encode_changes;

/// What a transaction and its handles share.
#[derive(Debug)]
pub struct TxShared {
    inner: Arc<Inner>,
    work: OpenWorkspace,
}

impl TxShared {
    pub(crate) fn with_collection<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut CollectionEngine) -> Result<R>,
    ) -> Result<R> {
        self.inner.check_usable()?;
        let current = || {
            let state = self.inner.state.read();
            match state.collections.get(name) {
                Some(c) => (Some(c.engine.version), c.engine.clone()),
                None => (None, CollectionEngine::default()),
            }
        };
        self.work.with(name, current, f)
    }
}

/// A transaction of the file backend.
#[derive(Debug)]
pub struct FileTransaction {
    shared: Arc<TxShared>,
}

impl FileTransaction {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        FileTransaction { shared: Arc::new(TxShared { inner, work: OpenWorkspace::default() }) }
    }
}

impl Drop for FileTransaction {
    fn drop(&mut self) {
        self.shared.work.discard();
    }
}

/// The commit, blocking: everything under the state lock, so no write can slip between the
/// records, their fsync, the marker and the swap of the engines.
fn commit_blocking(inner: &Inner, work: Workspace) -> Result<()> {
    let mut state = inner.state.write();
    if let Some(name) = work.conflict(|n| state.collections.get(n).map(|c| c.engine.version)) {
        return Err(overtaken(name));
    }
    let written: Vec<(String, CollectionEngine)> = work.into_written().collect();
    if written.is_empty() {
        return Ok(());
    }
    let fsync = inner.sync != FileSync::Never;
    let id = inner.txlog.lock().next_id();
    for (name, engine) in &written {
        let coll = inner.get_or_create(&mut state, name)?;
        let mut bytes = Vec::new();
        encode_changes(&engine.changes, Some(id), &mut bytes);
        let seq = coll.log.append(&bytes, engine.changes.len());
        coll.log.sync_to(seq, fsync).map_err(|e| inner.fail("writing a transaction", e))?;
        coll.has_tx_records = true;
    }
    inner.txlog.lock().commit(id).map_err(|e| inner.fail("writing a commit marker", e))?;
    for (name, mut engine) in written {
        engine.changes.clear();
        engine.record_changes = true;
        engine.version = state.tick();
        if let Some(coll) = state.collections.get_mut(&name) {
            coll.engine = engine;
        }
    }
    Ok(())
}

#[async_trait]
impl Transaction for FileTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.shared.with_collection(name, |_| Ok(()))?;
        Ok(Arc::new(FileCollection::new(name, FileHost::Tx(self.shared.clone()))))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.shared.inner.check_usable()?;
        let work = self.shared.work.finish()?;
        let inner = self.shared.inner.clone();
        tokio::task::spawn_blocking(move || commit_blocking(&inner, work))
            .await
            .map_err(|e| Error::backend("the commit task failed", e))?
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.shared.work.discard();
        Ok(())
    }
}
