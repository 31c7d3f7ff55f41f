//! The MongoDB test fixture: a server from `ORBSTORE_TEST_MONGODB_URL`, a uniquely named database
//! per test (nx-27017's aborts reach across clients within a database), dropped at teardown.
//! Without the variable at build time the tests are ignored (`build.rs` sets `orbstore_no_mongodb`;
//! never with `ORBSTORE_REQUIRE_SERVERS=1`); run anyway without it, they fail.

#![allow(dead_code)]

use std::sync::Arc;

use orbstore_core::{BackendConfig, MongoConfig, MongoQueryMode, PersistenceBackend};

use orbstore_mongo::MongoBackend;
use orbstore_testkit::{Fixture, Skip};

/// Settings for a fresh database, or why there is no server.
pub fn config(mode: MongoQueryMode) -> Result<MongoConfig, Skip> {
    let url = std::env::var("ORBSTORE_TEST_MONGODB_URL").ok().filter(|u| !u.is_empty()).ok_or_else(|| {
        Skip("ORBSTORE_TEST_MONGODB_URL is not set (no MongoDB-compatible server to test against)".into())
    })?;
    let Ok(BackendConfig::Mongo(mut cfg)) = BackendConfig::from_url(&url) else {
        panic!("ORBSTORE_TEST_MONGODB_URL is not a mongodb URL")
    };
    cfg.database = format!("orbtest_{}", uuid::Uuid::now_v7().simple());
    cfg.query_mode = mode;
    Ok(cfg)
}

/// A backend on a fresh database, dropped at teardown.
pub async fn fixture_in(mode: MongoQueryMode) -> Result<Fixture, Skip> {
    let cfg = config(mode)?;
    // Each test has a database of its own, so nx-27017's unisolated transactions are safe here.
    let store = MongoBackend::open_allowing_unisolated_transactions(cfg.clone())
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    Ok(Fixture::new(Arc::new(store.clone())).with_teardown(async move {
        let _ = store.close().await;
        drop_database(&cfg).await;
    }))
}

/// Drops a test database through a client of its own (the test may have closed its backend).
pub async fn drop_database(cfg: &MongoConfig) {
    let client =
        mongodb::Client::with_uri_str(cfg.url.expose()).await.expect("connect to drop the test database");
    client.database(&cfg.database).drop().await.expect("drop the test database");
}

/// The settings, or a panic saying why there are none: a test that cannot run fails.
pub fn require(cfg: Result<MongoConfig, Skip>) -> MongoConfig {
    cfg.unwrap_or_else(|Skip(why)| panic!("this test needs MongoDB: {why}"))
}

/// The fixture in the mode the server calls for (exact on nx-27017).
pub async fn fixture() -> Result<Fixture, Skip> {
    fixture_in(MongoQueryMode::Auto).await
}

/// The fixture forced to native mode.
pub async fn native_fixture() -> Result<Fixture, Skip> {
    fixture_in(MongoQueryMode::Native).await
}
