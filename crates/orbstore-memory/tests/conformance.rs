//! The whole conformance suite, property tests included, against the memory backend.

use std::sync::Arc;

use orbstore_memory::MemoryBackend;
use orbstore_testkit::{Fixture, FnFactory};

orbstore_testkit::conformance_suite!(FnFactory(|| async {
    Ok(Fixture::new(Arc::new(MemoryBackend::new())))
}));
