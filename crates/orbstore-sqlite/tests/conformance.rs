//! The whole conformance suite, property tests included, against SQLite: on a database file in
//! a fresh temporary directory per test, and on `:memory:`.

use std::sync::Arc;

use orbstore_core::{SqliteConfig, SqliteLocation};
use orbstore_sqlite::SqliteBackend;
use orbstore_testkit::{Fixture, Skip};

async fn on_file() -> Result<Fixture, Skip> {
    let dir = tempfile::tempdir().map_err(|e| Skip(format!("no temporary directory: {e}")))?;
    let store = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(dir.path().join("t.sqlite3"))))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    Ok(Fixture::new(Arc::new(store)).with_teardown(async move { drop(dir) }))
}

async fn in_memory() -> Result<Fixture, Skip> {
    let store = SqliteBackend::open(SqliteConfig::new(SqliteLocation::Memory))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    Ok(Fixture::new(Arc::new(store)))
}

mod file {
    use super::*;
    orbstore_testkit::conformance_suite!(orbstore_testkit::FnFactory(on_file));
}

mod memory {
    use super::*;
    orbstore_testkit::conformance_suite!(orbstore_testkit::FnFactory(in_memory));
}
