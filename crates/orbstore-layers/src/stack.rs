//! The layers the environment asks for, stacked in one fixed order over a backend (what
//! `orbstore::from_env()` applies).
//!
//! From the caller down: metrics (what the caller sees: every operation, hit or not), read cache
//! (a hit never reaches the layers below), write-behind (absorbs writes; its flushes go through
//! the rest) or, in its place, the journal (acknowledges once a write is durable locally; its
//! syncer ships through the rest; the two are never stacked together), the circuit breaker (a retried-and-failed operation counts as one failure,
//! and an open circuit fails fast instead of starting retries), retry (closest to the backend,
//! so each attempt is one backend call), then the backend.

use std::sync::Arc;

use orbstore_core::{Error, PersistenceBackend, Result};

use crate::{
    AroundBackend, BreakerConfig, BreakerLayer, CacheConfig, CacheLayer, JournalLayer, MetricsLayer,
    OfflineConfig, RetryConfig, RetryLayer, WriteBehindConfig, WriteBehindLayer,
};

/// Which layers to stack, and their settings.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Retry (always on: `DB_MAX_RETRIES`, default 3; `0` turns retries off).
    pub retry: RetryConfig,
    /// The circuit breaker (always on, default settings).
    pub breaker: BreakerConfig,
    /// The journal, when `PERSISTENCE_OFFLINE_MODE=true`.
    pub offline: Option<OfflineConfig>,
    /// Write-behind, when `PERSISTENCE_AUTO_SAVE=true`.
    pub write_behind: Option<WriteBehindConfig>,
    /// The read cache, when `PERSISTENCE_CACHE_SIZE` is set and not 0.
    pub cache: Option<CacheConfig>,
}

/// What [`StackConfig::open`] built: the store to use, and handles on the layers that have
/// more to say than the backend contract carries.
#[derive(Debug, Clone)]
pub struct Stacked {
    /// The top of the stack.
    pub store: Arc<dyn PersistenceBackend>,
    /// The journal, when there is one (`sync_status()`, `sync_now()`, `orb sync`).
    pub journal: Option<Arc<JournalLayer>>,
    /// The circuit breaker in front of the backend.
    pub breaker: Arc<BreakerLayer>,
}

impl StackConfig {
    /// Reads every layer's settings; a bad value is `InvalidInput` naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<StackConfig> {
        let config = StackConfig {
            retry: RetryConfig::from_lookup(&lookup)?,
            breaker: BreakerConfig::new(),
            offline: OfflineConfig::from_lookup(&lookup)?,
            write_behind: WriteBehindConfig::from_lookup(&lookup)?,
            cache: CacheConfig::from_lookup(&lookup)?,
        };
        if config.offline.is_some() && config.write_behind.is_some() {
            // Both absorb writes; write-behind over the journal would acknowledge before the
            // journal's fsync and so bring back the loss window the journal exists to close.
            return Err(Error::invalid(
                "PERSISTENCE_AUTO_SAVE=true and PERSISTENCE_OFFLINE_MODE=true cannot be combined: choose \
                 write-behind (acknowledged at once, may lose its last second) or the journal (acknowledged \
                 once fsynced locally, never lost); the journal already batches what it ships",
            ));
        }
        Ok(config)
    }

    /// Stacks the layers over `backend` in the order of the module docs. `local` is the store
    /// of the journal's replica, needed exactly when `offline` is set (`InvalidInput`
    /// otherwise): an embedded backend in `offline.replica_dir`, which the caller opens since
    /// this crate knows no backend.
    pub async fn open(
        self,
        backend: Arc<dyn PersistenceBackend>,
        local: Option<Arc<dyn PersistenceBackend>>,
    ) -> Result<Stacked> {
        let kind = backend.kind();
        let breaker = Arc::new(BreakerLayer::new(kind, self.breaker));
        let mut store: Arc<dyn PersistenceBackend> =
            Arc::new(AroundBackend::new(backend, RetryLayer::new(self.retry)));
        store = Arc::new(AroundBackend::with_shared(store, breaker.clone()));
        let journal = match (self.offline, local) {
            (Some(offline), Some(local)) => {
                let layer =
                    JournalLayer::open(store, local, offline.journal).await?.with_breaker(breaker.clone());
                let layer = Arc::new(layer);
                store = layer.clone();
                Some(layer)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid("the journal (offline mode) needs a local store for its replica"))
            }
            (None, Some(_)) => {
                return Err(Error::invalid("a local store was given but offline mode (the journal) is off"))
            }
        };
        if let Some(wb) = self.write_behind {
            store = Arc::new(WriteBehindLayer::new(store, wb));
        }
        if let Some(cache) = self.cache {
            store = Arc::new(CacheLayer::new(store, cache));
        }
        let store = Arc::new(AroundBackend::new(store, MetricsLayer::new(kind)));
        Ok(Stacked { store, journal, breaker })
    }
}
