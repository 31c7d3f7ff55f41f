//! The whole conformance suite through the read cache over the memory backend: with the default
//! settings, and with a cache so small and short-lived that evictions and expirations happen in
//! every case. A cache that served a stale answer after a write through it would fail here.

use std::sync::Arc;
use std::time::Duration;

use orbstore_layers::{CacheConfig, CacheLayer};
use orbstore_testkit::{Fixture, FnFactory, Skip};

async fn fixture() -> Result<Fixture, Skip> {
    let inner = Arc::new(orbstore_memory::MemoryBackend::new());
    Ok(Fixture::new(Arc::new(CacheLayer::new(inner, CacheConfig::default()))))
}

orbstore_testkit::conformance_suite!(FnFactory(fixture));

mod tiny {
    use super::*;

    async fn fixture() -> Result<Fixture, Skip> {
        let inner = Arc::new(orbstore_memory::MemoryBackend::new());
        let config = CacheConfig { capacity: 3, ttl: Duration::from_millis(20) };
        Ok(Fixture::new(Arc::new(CacheLayer::new(inner, config))))
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}
