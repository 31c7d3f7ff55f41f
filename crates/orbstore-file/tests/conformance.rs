//! The whole conformance suite, property tests included, against the file backend in a fresh
//! temporary directory per test: once with `sync = always`, once debounced.

use std::sync::Arc;

use orbstore_core::{FileConfig, FileSync};
use orbstore_file::FileBackend;
use orbstore_testkit::{Fixture, Skip};

async fn fixture(sync: FileSync) -> Result<Fixture, Skip> {
    let dir = tempfile::tempdir().map_err(|e| Skip(format!("no temporary directory: {e}")))?;
    let store = FileBackend::open(FileConfig { sync, ..FileConfig::new(dir.path()) })
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.path().display()));
    Ok(Fixture::new(Arc::new(store)).with_teardown(async move { drop(dir) }))
}

mod always {
    use super::*;
    orbstore_testkit::conformance_suite!(orbstore_testkit::FnFactory(|| fixture(FileSync::Always)));
}

mod debounced {
    use super::*;
    orbstore_testkit::conformance_suite!(orbstore_testkit::FnFactory(|| fixture(FileSync::Debounced(
        std::time::Duration::from_millis(20)
    ))));
}
