//! [`MemoryHost`]: where the memory backend's collection handles find their engines.

use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::engine::{CollectionEngine, EngineCollection, EngineHost};
use orbstore_core::Result;

use crate::backend::Shared;
use crate::transaction::TxShared;

/// A collection handle of the memory backend.
pub type MemoryCollection = EngineCollection<MemoryHost>;

/// What a handle reads and writes: the shared store, or a transaction's private copies.
#[derive(Debug, Clone)]
pub enum MemoryHost {
    /// The backend's shared state.
    Direct(Arc<Shared>),
    /// A transaction's copies.
    Tx(Arc<TxShared>),
}

#[async_trait]
impl EngineHost for MemoryHost {
    fn read<R>(&self, name: &str, f: impl FnOnce(&CollectionEngine) -> R) -> Result<R> {
        match self {
            MemoryHost::Direct(shared) => {
                shared.check_open()?;
                let state = shared.state.read();
                Ok(match state.collections.get(name) {
                    Some(c) => f(c),
                    None => f(&CollectionEngine::default()),
                })
            }
            MemoryHost::Tx(tx) => tx.with_collection(name, |c| Ok(f(c))),
        }
    }

    async fn write<R: Send>(
        &self,
        name: &str,
        f: impl for<'e> FnOnce(&'e mut CollectionEngine) -> Result<R> + Send,
    ) -> Result<R> {
        match self {
            MemoryHost::Direct(shared) => {
                shared.check_open()?;
                let mut state = shared.state.write();
                let coll = state.get_or_create(name);
                let result = f(coll);
                if std::mem::take(&mut coll.dirty) {
                    let v = state.tick();
                    if let Some(c) = state.collections.get_mut(name) {
                        c.version = v;
                    }
                }
                result
            }
            MemoryHost::Tx(tx) => tx.with_collection(name, f),
        }
    }
}
