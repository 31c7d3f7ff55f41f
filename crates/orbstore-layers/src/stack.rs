//! The layers the environment asks for, stacked in one fixed order over a backend (what
//! `orbstore::from_env()` applies).
//!
//! From the caller down: metrics (what the caller sees: every operation, hit or not), read cache
//! (a hit never reaches the layers below), write-behind (absorbs writes; its flushes go through
//! the rest), the circuit breaker (a retried-and-failed operation counts as one failure, and an
//! open circuit fails fast instead of starting retries), retry (closest to the backend, so each
//! attempt is one backend call), then the backend.

use std::sync::Arc;

use orbstore_core::{PersistenceBackend, Result};

use crate::{
    AroundBackend, BreakerConfig, BreakerLayer, CacheConfig, CacheLayer, MetricsLayer, RetryConfig,
    RetryLayer, WriteBehindConfig, WriteBehindLayer,
};

/// Which layers to stack, and their settings.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Retry (always on: `DB_MAX_RETRIES`, default 3; `0` turns retries off).
    pub retry: RetryConfig,
    /// The circuit breaker (always on, default settings).
    pub breaker: BreakerConfig,
    /// Write-behind, when `PERSISTENCE_AUTO_SAVE=true`.
    pub write_behind: Option<WriteBehindConfig>,
    /// The read cache, when `PERSISTENCE_CACHE_SIZE` is set and not 0.
    pub cache: Option<CacheConfig>,
}

impl StackConfig {
    /// Reads every layer's settings; a bad value is `InvalidInput` naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<StackConfig> {
        Ok(StackConfig {
            retry: RetryConfig::from_lookup(&lookup)?,
            breaker: BreakerConfig::new(),
            write_behind: WriteBehindConfig::from_lookup(&lookup)?,
            cache: CacheConfig::from_lookup(&lookup)?,
        })
    }

    /// Stacks the layers over `backend` in the order of the module docs.
    pub fn apply(self, backend: Arc<dyn PersistenceBackend>) -> Arc<dyn PersistenceBackend> {
        let kind = backend.kind();
        let mut store: Arc<dyn PersistenceBackend> =
            Arc::new(AroundBackend::new(backend, RetryLayer::new(self.retry)));
        store = Arc::new(AroundBackend::new(store, BreakerLayer::new(kind, self.breaker)));
        if let Some(wb) = self.write_behind {
            store = Arc::new(WriteBehindLayer::new(store, wb));
        }
        if let Some(cache) = self.cache {
            store = Arc::new(CacheLayer::new(store, cache));
        }
        Arc::new(AroundBackend::new(store, MetricsLayer::new(kind)))
    }
}
