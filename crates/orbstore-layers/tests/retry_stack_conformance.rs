//! The whole conformance suite through metrics, the circuit breaker and retry stacked over the
//! memory backend in the factory's order (`StackConfig::apply`), and in the other order: the
//! three layers together lose or change nothing a caller can see when nothing fails.

use std::sync::Arc;

use orbstore_core::PersistenceBackend;
use orbstore_layers::{AroundBackend, BreakerConfig, BreakerLayer, MetricsLayer, RetryConfig, RetryLayer};
use orbstore_testkit::{Fixture, FnFactory, Skip};

async fn fixture() -> Result<Fixture, Skip> {
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    let retry = Arc::new(AroundBackend::new(inner, RetryLayer::new(RetryConfig::default())));
    let breaker = Arc::new(AroundBackend::new(retry, BreakerLayer::new("memory", BreakerConfig::default())));
    Ok(Fixture::new(Arc::new(AroundBackend::new(breaker, MetricsLayer::new("memory")))))
}

orbstore_testkit::conformance_suite!(FnFactory(fixture));

mod breaker_under_retry {
    use super::*;

    async fn fixture() -> Result<Fixture, Skip> {
        let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
        let breaker =
            Arc::new(AroundBackend::new(inner, BreakerLayer::new("memory", BreakerConfig::default())));
        let retry = Arc::new(AroundBackend::new(breaker, RetryLayer::new(RetryConfig::default())));
        Ok(Fixture::new(Arc::new(AroundBackend::new(retry, MetricsLayer::new("memory")))))
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}
