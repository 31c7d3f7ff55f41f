//! Stores for the tests: a fresh one of each backend (memory, file and SQLite always; PostgreSQL
//! and MongoDB in a schema or database of their own, named `orbtest_<UUIDv7>` so the server
//! crates' sweepers recognize leftovers), the fixture data, and comparisons.
//!
//! Server tests are ignored when their URL was not set at build time (`build.rs`, as in the
//! server crates); with `ORBSTORE_REQUIRE_SERVERS=1` nothing is ignored and a missing server
//! fails.

#![allow(dead_code)]

use std::sync::Arc;

use futures::StreamExt;
use orbstore::{BackendConfig, Config, Document, IndexSpec, PersistenceBackend, Query, Store};
use serde_json::{json, Value};

/// A store of one backend and what to clean up.
pub struct Target {
    pub name: &'static str,
    pub config: Option<Config>,
    pub store: Store,
    pub dir: Option<tempfile::TempDir>,
}

/// A fresh, empty store of one backend: `memory`, `file`, `sqlite`, `postgres` or `mongodb`.
/// On MongoDB, transactions are allowed where the server runs them unisolated (nx-27017): each
/// test has a database of its own, so no other client is affected.
pub async fn target(name: &'static str) -> Target {
    let (config, dir) = match name {
        "memory" => {
            let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
            return Target { name, config: None, store, dir: None };
        }
        "file" => {
            let dir = tempfile::tempdir().unwrap();
            (url_config(format!("file://{}", dir.path().join("data").display())), Some(dir))
        }
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            (url_config(format!("sqlite://{}", dir.path().join("ops.sqlite3").display())), Some(dir))
        }
        "postgres" => {
            let url = orbstore_testkit::containers::postgres_url()
                .expect("this test needs a PostgreSQL server: ORBSTORE_TEST_POSTGRES_URL or a Docker engine");
            let sep = if url.contains('?') { '&' } else { '?' };
            (url_config(format!("{url}{sep}schema={}", unique_name())), None)
        }
        "mongodb" => {
            let url = server_url("ORBSTORE_TEST_MONGODB_URL");
            let (base, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
            let config = url_config(format!("{}/{}?{query}", base.trim_end_matches('/'), unique_name()));
            let BackendConfig::Mongo(m) = config.backend.clone() else { unreachable!() };
            let store = orbstore::backends::MongoBackend::open_allowing_unisolated_transactions(m)
                .await
                .unwrap_or_else(|e| panic!("mongodb: {e}"));
            return Target { name, config: Some(config), store: Arc::new(store), dir: None };
        }
        other => panic!("no backend {other}"),
    };
    let store = orbstore::open(config.clone()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    Target { name, config: Some(config), store, dir }
}

fn url_config(url: String) -> Config {
    Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap()
}

fn unique_name() -> String {
    format!("orbtest_{}", orbstore::generate_id().replace('-', ""))
}

/// A server's URL; a panic without it (the test is ignored then, unless run with `--ignored`).
fn server_url(var: &str) -> String {
    std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| panic!("this test needs {var}"))
}

impl Target {
    /// Closes the store and drops the schema or database of a server backend.
    pub async fn cleanup(self) {
        let _ = self.store.close().await;
        match self.config.as_ref().map(|c| &c.backend) {
            Some(BackendConfig::Postgres(pg)) => {
                let mut pg = pg.clone();
                pg.pool_size = 1;
                let b = orbstore::backends::PostgresBackend::open(pg.clone()).await.unwrap();
                let c = b.raw_client().await.unwrap();
                c.batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", pg.schema)).await.unwrap();
                let _ = b.close().await;
            }
            Some(BackendConfig::Mongo(m)) => {
                let b = orbstore::backends::MongoBackend::open(m.clone()).await.unwrap();
                b.database().drop().await.unwrap();
                let _ = b.close().await;
            }
            _ => {}
        }
    }
}

pub fn doc(v: Value) -> Document {
    v.as_object().expect("an object").clone()
}

/// The fixture: unicode keys and values, integers at the i64 limits, floats, nested arrays and
/// objects, empty objects and arrays, a 1 MiB document; 2,500 plain documents (several restore
/// batches) with plain indexes and, when `unique`, a unique one; an empty collection.
pub async fn fill_fixture(store: &Store, unique: bool) {
    let mixed = store.collection("mixed").await.unwrap();
    let docs = vec![
        json!({"_id": "unicode", "ключ": "значение", "日本語": "テキスト", "emoji😀": "🎉 ok", "ü": {"ß": "ç"},
               "escapes": "quote \" backslash \\ newline \n tab \t bell \u{7} nul-free", "slash": "a/b"}),
        json!({"_id": "ints", "max": i64::MAX, "min": i64::MIN, "zero": 0, "minus_one": -1, "big": 9_007_199_254_740_993i64}),
        json!({"_id": "floats", "half": 0.5, "third": 1.0 / 3.0, "huge": 1e300, "tiny": 5e-324, "neg": -2.5e-10,
               "integral": 2.0, "pi": std::f64::consts::PI}),
        json!({"_id": "nested", "a": [1, [2, [3, {"b": [], "c": {}}]], {"d": {"e": {"f": [true, false, null]}}}],
               "empty_object": {}, "empty_array": [], "null": null}),
        json!({"_id": "1mib", "blob": "x".repeat(1 << 20), "n": 1}),
        json!({"_id": "ünïcode-id-日本", "v": 1}),
    ];
    mixed.insert_many(docs.into_iter().map(doc).collect()).await.unwrap();
    let items = store.collection("items").await.unwrap();
    items.create_index(IndexSpec::new(["n"])).await.unwrap();
    if unique {
        items.create_index(IndexSpec::new(["code"]).unique()).await.unwrap();
    }
    items.create_index(IndexSpec::new(["group", "n"]).named("by_group")).await.unwrap();
    let batch: Vec<Document> = (0..2500)
        .map(|i| {
            doc(json!({"_id": format!("item-{i:05}"), "n": i, "code": format!("c{i}"), "group": i % 7,
                       "score": f64::from(i) / 8.0, "tags": ["a", format!("t{}", i % 3)]}))
        })
        .collect();
    items.insert_many(batch).await.unwrap();
    store.collection("empty").await.unwrap();
}

/// Each collection's documents in canonical bytes, in `_id` order.
pub async fn contents(store: &Store) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for name in store.list_collections().await.unwrap() {
        let c = store.collection(&name).await.unwrap();
        let mut s = c.find_stream(&Query::all()).await.unwrap();
        let mut docs = Vec::new();
        while let Some(d) = s.next().await {
            docs.push(orbstore_ops::canonical::to_bytes(&d.unwrap()));
        }
        out.push((name, docs));
    }
    out
}

/// Each collection's index specs.
pub async fn indexes(store: &Store) -> Vec<(String, Vec<IndexSpec>)> {
    let mut out = Vec::new();
    for name in store.list_collections().await.unwrap() {
        out.push((name.clone(), store.collection(&name).await.unwrap().list_indexes().await.unwrap()));
    }
    out
}

/// Backup options writing into `dir` with no rotation.
pub fn options_in(dir: &std::path::Path) -> orbstore_ops::BackupOptions {
    orbstore_ops::BackupOptions { dir: dir.to_owned(), retention_days: 0, ..Default::default() }
}

pub fn backend(store: &Store) -> &dyn PersistenceBackend {
    &**store
}

/// One test per backend running `$run(backend_name)`: `every_backend!(run; memory_test: "memory",
/// postgres_test: "postgres" if orbstore_no_postgres, ...)`; a server test is ignored when its
/// URL was not set at build time.
#[macro_export]
macro_rules! every_backend {
    ($run:ident; $($name:ident: $backend:literal $(if $cfg:meta)?),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[cfg_attr($cfg, ignore = "needs a server URL (ORBSTORE_TEST_POSTGRES_URL / ORBSTORE_TEST_MONGODB_URL)")])?
        async fn $name() {
            $run($backend).await
        }
    )+};
}
