//! [`FileHost`]: where the file backend's collection handles find their engines, and how a
//! write reaches the log.

use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::engine::{CollectionEngine, EngineCollection, EngineHost};
use orbstore_core::Result;

use crate::backend::Inner;
use crate::log::encode_changes;
use crate::transaction::TxShared;

/// A collection handle of the file backend.
pub type FileCollection = EngineCollection<FileHost>;

/// What a handle reads and writes: the backend's collections, or a transaction's copies.
#[derive(Debug, Clone)]
pub enum FileHost {
    /// The backend's collections; writes go to the log.
    Direct(Arc<Inner>),
    /// A transaction's private copies; writes reach the logs at commit.
    Tx(Arc<TxShared>),
}

#[async_trait]
impl EngineHost for FileHost {
    fn read<R>(&self, name: &str, f: impl FnOnce(&CollectionEngine) -> R) -> Result<R> {
        match self {
            FileHost::Direct(inner) => {
                inner.check_usable()?;
                let state = inner.state.read();
                Ok(match state.collections.get(name) {
                    Some(c) => f(&c.engine),
                    None => f(&CollectionEngine::default()),
                })
            }
            FileHost::Tx(tx) => tx.with_collection(name, |c| Ok(f(c))),
        }
    }

    async fn write<R: Send>(
        &self,
        name: &str,
        f: impl for<'e> FnOnce(&'e mut CollectionEngine) -> Result<R> + Send,
    ) -> Result<R> {
        let inner = match self {
            FileHost::Tx(tx) => return tx.with_collection(name, f),
            FileHost::Direct(inner) => inner,
        };
        inner.check_usable()?;
        // Apply and append under the state lock, so the log's order is the order of changes;
        // wait for durability after releasing it, so concurrent writers share one fsync.
        let (result, pending) = {
            let mut state = inner.state.write();
            let coll = inner.get_or_create(&mut state, name)?;
            let result = f(&mut coll.engine);
            let changes = std::mem::take(&mut coll.engine.changes);
            let mut pending = None;
            if !changes.is_empty() {
                let mut bytes = Vec::with_capacity(256 * changes.len());
                encode_changes(&changes, None, &mut bytes);
                let seq = coll.log.append(&bytes, changes.len());
                pending = Some((coll.log.clone(), seq));
            }
            if std::mem::take(&mut coll.engine.dirty) {
                let v = state.tick();
                if let Some(c) = state.collections.get_mut(name) {
                    c.engine.version = v;
                }
            }
            (result, pending)
        };
        if let Some((log, seq)) = pending {
            inner.persist(name, log, seq).await?;
        }
        result
    }
}
