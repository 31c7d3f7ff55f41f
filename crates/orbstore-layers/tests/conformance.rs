//! The whole conformance suite through the generic wrapper (the identity layer over the memory
//! backend): forwarding loses or changes nothing.

use std::sync::Arc;

use orbstore_layers::around::Passthrough;
use orbstore_layers::AroundBackend;
use orbstore_testkit::{Fixture, FnFactory, Skip};

async fn fixture() -> Result<Fixture, Skip> {
    let inner = Arc::new(orbstore_memory::MemoryBackend::new());
    Ok(Fixture::new(Arc::new(AroundBackend::new(inner, Passthrough))))
}

orbstore_testkit::conformance_suite!(FnFactory(fixture));
