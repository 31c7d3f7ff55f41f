//! The whole conformance suite through the journal layer: over the memory backend as the
//! server, with the replica's local store on the file backend (debounced, as the factory builds
//! it) and on the memory backend. Guards against the replica answering differently from a real
//! backend (results of journaled writes are final, so they must be right).

use std::sync::Arc;
use std::time::Duration;

use orbstore_core::{FileConfig, FileSync, PersistenceBackend};
use orbstore_layers::{JournalConfig, JournalLayer};
use orbstore_testkit::{Fixture, FnFactory, Skip};

async fn journaled(local: Arc<dyn PersistenceBackend>, dir: tempfile::TempDir) -> Result<Fixture, Skip> {
    let inner = Arc::new(orbstore_memory::MemoryBackend::new());
    let layer = JournalLayer::open(inner, local, JournalConfig::new(dir.path().join("journal")))
        .await
        .expect("open the journal");
    Ok(Fixture::new(Arc::new(layer)).with_teardown(async move { drop(dir) }))
}

mod file_local {
    use super::*;

    async fn fixture() -> Result<Fixture, Skip> {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = FileConfig {
            dir: dir.path().join("replica"),
            sync: FileSync::Debounced(Duration::from_secs(1)),
            strict: false,
        };
        let local = Arc::new(orbstore_file::FileBackend::open(config).await.expect("open the file backend"));
        journaled(local, dir).await
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}

mod memory_local {
    use super::*;

    async fn fixture() -> Result<Fixture, Skip> {
        let dir = tempfile::tempdir().expect("temp dir");
        journaled(Arc::new(orbstore_memory::MemoryBackend::new()), dir).await
    }

    orbstore_testkit::conformance_suite!(FnFactory(fixture));
}
