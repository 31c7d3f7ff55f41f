//! [`MemoryBackend`]: the `PersistenceBackend` implementation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use orbstore_core::{
    validate_collection_name, Capabilities, CleanupReport, CollectionRef, CollectionStats, CompactReport,
    Error, HealthReport, PersistenceBackend, Result, Snapshot, StorageStats, Transaction,
};
use parking_lot::RwLock;

use crate::collection::{MemoryCollection, MemoryHost};
use crate::transaction::MemoryTransaction;
use orbstore_core::engine::{CollectionEngine, FrozenStore};

/// The state shared by a backend, its handles and its transactions.
#[derive(Debug, Default)]
pub struct Shared {
    pub(crate) state: RwLock<State>,
    closed: AtomicBool,
}

/// Every collection, and the clock that versions them.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) collections: BTreeMap<String, CollectionEngine>,
    clock: u64,
}

impl State {
    /// A new version number, never handed out before (so a dropped and re-created collection
    /// never looks unchanged to a transaction).
    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The collection, created empty if needed.
    pub(crate) fn get_or_create(&mut self, name: &str) -> &mut CollectionEngine {
        if !self.collections.contains_key(name) {
            let version = self.tick();
            self.collections.insert(name.to_owned(), CollectionEngine::empty(version));
        }
        self.collections.get_mut(name).expect("inserted above")
    }
}

impl Shared {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::invalid("the memory backend was closed"))
        } else {
            Ok(())
        }
    }
}

/// The in-process memory backend. Nothing outlives the process.
///
/// All collections live behind one reader-writer lock, never held across an `.await`, so
/// concurrent tasks see each write whole. Transactions work on private copies of the
/// collections they touch and commit them at once; a transaction that finds one of its
/// collections changed by someone else since it first touched it fails with `Aborted`
/// (first committer wins), which makes transactions serializable.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }
}

#[async_trait]
impl PersistenceBackend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: true,
            isolated_transactions: true,
            unique_indexes: true,
            durable_flush: false,
            multi_process: false,
            persistent: false,
        }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        self.shared.state.write().get_or_create(name);
        Ok(Arc::new(MemoryCollection::new(name, MemoryHost::Direct(self.shared.clone()))))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.shared.check_open()?;
        Ok(self.shared.state.read().collections.keys().cloned().collect())
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        Ok(self.shared.state.write().collections.remove(name).is_some())
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.shared.check_open()?;
        Ok(Box::new(MemoryTransaction::new(self.shared.clone())))
    }

    /// Point in time: every collection frozen under one read lock (O(1) each, the maps are shared).
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        self.shared.check_open()?;
        let state = self.shared.state.read();
        let frozen = state.collections.iter().map(|(name, c)| (name.clone(), c.frozen()));
        Ok(Box::new(FrozenStore::new(frozen)))
    }

    async fn health(&self) -> HealthReport {
        let start = Instant::now();
        let result = self.shared.check_open().map(|()| self.shared.state.read().collections.len());
        HealthReport {
            healthy: result.is_ok(),
            latency: start.elapsed(),
            message: match result {
                Ok(n) => format!("in-memory store answered ({n} collections)"),
                Err(e) => e.to_string(),
            },
        }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.shared.check_open()?;
        let state = self.shared.state.read();
        Ok(StorageStats {
            backend: "memory".to_owned(),
            collections: state
                .collections
                .iter()
                .map(|(name, c)| CollectionStats {
                    name: name.clone(),
                    documents: c.len() as u64,
                    bytes: Some(c.approx_bytes()),
                    indexes: c.index_count() as u64,
                })
                .collect(),
            warnings: Vec::new(),
            storage_bytes: None,
        })
    }

    async fn flush(&self) -> Result<()> {
        // Nothing to make durable: Capabilities::durable_flush is false.
        self.shared.check_open()
    }

    /// Nothing to reclaim: only live documents are held (deleted ones are freed at once).
    async fn compact(&self) -> Result<CompactReport> {
        self.shared.check_open()?;
        Ok(CompactReport {
            backend: "memory".into(),
            actions: vec!["nothing to reclaim: the memory backend frees deleted documents at once".into()],
            bytes_before: None,
            bytes_after: None,
        })
    }

    /// Nothing can be left behind: a collection and its indexes are one map entry, created and
    /// removed at once.
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.check_open()?;
        Ok(CleanupReport {
            backend: "memory".into(),
            applied: apply,
            orphans: Vec::new(),
            notes: vec!["nothing to look for: a collection and its indexes are one map entry, created and removed at once"
                .into()],
        })
    }

    async fn close(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.state.write().collections.clear();
        Ok(())
    }
}
