//! The whole conformance suite through write-behind over the memory backend: with the default
//! settings (most writes stay queued for the whole case, so reads are answered from the view),
//! with a tiny queue flushed every few writes and milliseconds (reads race with flushes), and
//! with `Overflow::Fail` over a queue that never fills; and over the file backend
//! (`sync = always`, a transaction per flush on disk) with the tiny queue. Unique indexes are not enforced at
//! acknowledgement (the layer says so in its capabilities), so the suite skips those cases;
//! `write_behind_behaviour.rs` tests what happens to such writes at flush time.

use std::sync::Arc;
use std::time::Duration;

use orbstore_layers::{Overflow, WriteBehindConfig, WriteBehindLayer};
use orbstore_testkit::{Fixture, FnFactory, Skip};

fn fixture_with(config: WriteBehindConfig) -> Fixture {
    let inner = Arc::new(orbstore_memory::MemoryBackend::new());
    Fixture::new(Arc::new(WriteBehindLayer::new(inner, config)))
}

async fn fixture() -> Result<Fixture, Skip> {
    Ok(fixture_with(WriteBehindConfig::default()))
}

orbstore_testkit::conformance_suite!(FnFactory(fixture));

mod tiny {
    use super::*;

    async fn fixture() -> Result<Fixture, Skip> {
        Ok(fixture_with(WriteBehindConfig {
            max_pending: 4,
            max_bytes: 4 << 20,
            max_age: Duration::from_millis(3),
            debounce: Duration::from_millis(1),
            overflow: Overflow::Wait,
        }))
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}

mod fail_when_full {
    use super::*;

    async fn fixture() -> Result<Fixture, Skip> {
        Ok(fixture_with(WriteBehindConfig {
            max_pending: 100_000,
            max_bytes: 1 << 30,
            overflow: Overflow::Fail,
            ..WriteBehindConfig::default()
        }))
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}

mod file_tiny {
    use super::*;
    use orbstore_core::{FileConfig, FileSync};

    async fn fixture() -> Result<Fixture, Skip> {
        let dir = tempfile::tempdir().map_err(|e| Skip(format!("no temporary directory: {e}")))?;
        let file = orbstore_file::FileBackend::open(FileConfig {
            sync: FileSync::Always,
            ..FileConfig::new(dir.path())
        })
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.path().display()));
        let config = WriteBehindConfig {
            max_pending: 4,
            max_bytes: 4 << 20,
            max_age: Duration::from_millis(3),
            debounce: Duration::from_millis(1),
            overflow: Overflow::Wait,
        };
        Ok(Fixture::new(Arc::new(WriteBehindLayer::new(Arc::new(file), config)))
            .with_teardown(async move { drop(dir) }))
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}
