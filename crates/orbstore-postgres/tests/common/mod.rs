//! The PostgreSQL test fixture: a server from `ORBSTORE_TEST_POSTGRES_URL`, or else a container
//! (`orbstore_testkit::containers::postgres_url`), a uniquely named schema per test, dropped at
//! teardown. With neither at build time the tests are ignored (`build.rs` sets
//! `orbstore_no_postgres`; never with `ORBSTORE_REQUIRE_SERVERS=1`); run anyway without them,
//! they fail.

#![allow(dead_code)]

use std::sync::Arc;

use orbstore_core::config::PostgresConfig;
use orbstore_core::BackendConfig;
use orbstore_postgres::PostgresBackend;
use orbstore_testkit::{Fixture, Skip};

/// The server's settings, or why there is none.
pub fn server() -> Result<PostgresConfig, Skip> {
    let url = orbstore_testkit::containers::postgres_url().ok_or_else(|| {
        Skip("no PostgreSQL server to test against: ORBSTORE_TEST_POSTGRES_URL is unset and no Docker engine answers".into())
    })?;
    match BackendConfig::from_url(&url) {
        Ok(BackendConfig::Postgres(p)) => Ok(p),
        other => panic!("ORBSTORE_TEST_POSTGRES_URL is not a postgres URL: {other:?}"),
    }
}

/// A fresh schema name.
pub fn unique_schema() -> String {
    format!("orbtest_{}", uuid::Uuid::now_v7().simple())
}

/// Drops test schemas that earlier runs left behind (a test that panics skips its teardown),
/// once per test binary: those whose UUIDv7 name says they are more than an hour old, so runs
/// going on at the same time are left alone.
async fn sweep_stale_schemas(cfg: &PostgresConfig) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let client = connect(cfg).await;
            let rows = client
                .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'orbtest\\_%'", &[])
                .await
                .expect("list test schemas");
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            for r in rows {
                let name: String = r.get(0);
                let created_ms = name
                    .strip_prefix("orbtest_")
                    .and_then(|hex| u64::from_str_radix(hex.get(..12)?, 16).ok());
                if created_ms.is_some_and(|t| now_ms.saturating_sub(t) > 3_600_000) {
                    let _ = client
                        .batch_execute(&format!(
                            "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                        ))
                        .await;
                }
            }
        })
        .await;
}

async fn connect(cfg: &PostgresConfig) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host={} port={} user={} dbname={}", cfg.host, cfg.port, cfg.user, cfg.database),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect to the test server");
    tokio::spawn(conn);
    client
}

/// Settings for a fresh schema.
pub fn config() -> Result<PostgresConfig, Skip> {
    let mut cfg = server()?;
    cfg.schema = unique_schema();
    cfg.pool_size = 4;
    Ok(cfg)
}

/// Drops a schema with everything in it.
pub async fn drop_schema(cfg: &PostgresConfig) {
    let client = connect(cfg).await;
    // A transaction a test leaked would block the drop forever: fail loudly instead.
    client
        .batch_execute(&format!("SET lock_timeout = '20s'; DROP SCHEMA IF EXISTS \"{}\" CASCADE", cfg.schema))
        .await
        .unwrap_or_else(|e| panic!("drop test schema {}: {e}", cfg.schema));
}

/// A backend in a fresh schema, dropped at teardown.
pub async fn fixture() -> Result<Fixture, Skip> {
    let cfg = config()?;
    sweep_stale_schemas(&cfg).await;
    let store = PostgresBackend::open(cfg.clone()).await.unwrap_or_else(|e| panic!("open: {e}"));
    Ok(Fixture::new(Arc::new(store.clone())).with_teardown(async move {
        let _ = orbstore_core::PersistenceBackend::close(&store).await;
        drop_schema(&cfg).await;
    }))
}

/// A backend in a fresh schema with its settings; panics without a server (the test is ignored
/// then, unless run with `--ignored`). The caller drops the schema with [`drop_schema`].
pub async fn setup() -> (PostgresBackend, PostgresConfig) {
    let cfg = require(config());
    sweep_stale_schemas(&cfg).await;
    let store = PostgresBackend::open(cfg.clone()).await.unwrap_or_else(|e| panic!("open: {e}"));
    (store, cfg)
}

/// The settings, or a panic saying why there are none: a test that cannot run fails.
pub fn require(cfg: Result<PostgresConfig, Skip>) -> PostgresConfig {
    cfg.unwrap_or_else(|Skip(why)| panic!("this test needs PostgreSQL: {why}"))
}
