//! The factory: turn a [`Config`] (explicit, or read from the environment) into a backend.

use std::sync::Arc;

use orbstore_core::{BackendConfig, Config, Error, ErrorKind, PersistenceBackend, Result};
use orbstore_layers::{LazyBackend, Opener, Stacked};

/// A shared handle to whichever backend was opened.
pub type Store = Arc<dyn PersistenceBackend>;

/// The cargo features that compile a backend in, in the order of the README's table.
pub const BACKEND_FEATURES: &[&str] = &["memory", "file", "sqlite", "postgres", "mongodb"];

/// Backends that exist in this version of orbstore (the others are planned; see the README).
const BUILT: &[&str] = &["memory", "file", "sqlite", "postgres", "mongodb"];

/// Opens the backend the environment chooses: `DATABASE_URL` > `DB_BACKEND` (with `DB_*`) >
/// `ORB_PERSISTENCE` > the file backend in `ORB_DATA_DIR` (default `./data`), with the layers
/// the environment asks for stacked over it (`orbstore_layers::StackConfig`: retry with
/// `DB_MAX_RETRIES`, default 3, and a circuit breaker always; the journal with
/// `PERSISTENCE_OFFLINE_MODE`; write-behind with `PERSISTENCE_AUTO_SAVE`; a read cache with
/// `PERSISTENCE_CACHE_SIZE`; metrics).
///
/// A bad value is `InvalidInput` naming the variable, the value and the valid choices; a
/// backend that is not compiled in, or not built yet, is `Unsupported` saying which. Every
/// setting is checked before anything is opened.
pub async fn from_env() -> Result<Store> {
    Ok(from_env_stacked().await?.store)
}

/// [`from_env`], with handles on the layers: the journal (for `sync_status()` and `sync_now()`)
/// and the circuit breaker.
pub async fn from_env_stacked() -> Result<Stacked> {
    from_lookup_stacked(|k| std::env::var(k).ok()).await
}

/// [`from_env_stacked`] over variables read through `lookup` (tests pass a map).
///
/// With `PERSISTENCE_OFFLINE_MODE=true` the journal sits over the backend, its replica kept by a
/// file backend in `$ORB_JOURNAL_DIR/replica`, and a server that does not answer at open
/// (`Unavailable`) does not stop the store from opening: the backend is opened on first use
/// ([`orbstore_layers::LazyBackend`]) and the journal ships to it once it answers, unless the
/// journal is fresh (see [`COLD_START_VAR`]). Any other error at open (a bad password, say) is
/// returned as without offline mode.
///
/// On top of everything sits [`orbstore_schema::SchemaLayer`], which validates writes against
/// the collections' stored schemas (rereading them every `ORB_SCHEMA_REFRESH`, default 5 s),
/// unless `ORB_SCHEMA_VALIDATION=off`.
pub async fn from_lookup_stacked(lookup: impl Fn(&str) -> Option<String>) -> Result<Stacked> {
    let schemas = SchemaSettings::from_lookup(&lookup)?;
    let mut stacked = open_stacked(lookup).await?;
    if let Some(refresh) = schemas.refresh {
        stacked.store = Arc::new(orbstore_schema::SchemaLayer::with_refresh(stacked.store, refresh));
    }
    Ok(stacked)
}

/// The variable that turns validation on write off (`on` by default).
pub const SCHEMA_VALIDATION_VAR: &str = "ORB_SCHEMA_VALIDATION";

/// The variable setting how often the stored schemas are reread (a duration, default 5 s).
pub const SCHEMA_REFRESH_VAR: &str = "ORB_SCHEMA_REFRESH";

struct SchemaSettings {
    /// `None`: validation off.
    refresh: Option<std::time::Duration>,
}

impl SchemaSettings {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<SchemaSettings> {
        let on = match lookup(SCHEMA_VALIDATION_VAR).filter(|v| !v.trim().is_empty()) {
            None => true,
            set => orbstore_core::parse_bool(SCHEMA_VALIDATION_VAR, set)?,
        };
        let refresh = match lookup(SCHEMA_REFRESH_VAR).filter(|v| !v.trim().is_empty()) {
            None => orbstore_schema::DEFAULT_REFRESH,
            Some(v) => humantime::parse_duration(v.trim()).map_err(|e| {
                Error::invalid(format!(
                    "invalid {SCHEMA_REFRESH_VAR}={v:?}: {e} (a duration such as 5s or 1m)"
                ))
            })?,
        };
        Ok(SchemaSettings { refresh: on.then_some(refresh) })
    }
}

/// [`from_lookup_stacked`] without the schema layer.
async fn open_stacked(lookup: impl Fn(&str) -> Option<String>) -> Result<Stacked> {
    let config = Config::from_lookup(&lookup)?;
    let layers = orbstore_layers::StackConfig::from_lookup(&lookup)?;
    let kind = config.backend.kind();
    check_available(kind, feature_enabled(kind), &config)?;
    let Some(offline) = &layers.offline else {
        return layers.open(open(config).await?, None).await;
    };
    let local = open_replica_store(&offline.replica_dir).await?;
    let backend = match open(config.clone()).await {
        Ok(backend) => backend,
        Err(e) if e.kind() == ErrorKind::Unavailable => {
            // A fresh journal has an empty replica: an agent starting on it would see an empty
            // store (a blank Q-table, say), and the states it then writes would replace the
            // server's documents when the server returns. Refused unless asked for.
            let cold = local.list_collections().await?.is_empty();
            if cold && !orbstore_core::parse_bool(COLD_START_VAR, lookup(COLD_START_VAR))? {
                let _ = local.close().await;
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{}; offline mode does not start a fresh journal (an empty replica in {}) while the server is \
                         down: what the application writes then would replace the server's documents when it \
                         returns. Start once with the server up, or set {COLD_START_VAR}=true to accept that",
                        e.message(),
                        offline.replica_dir.display()
                    ),
                )
                .with_source(e));
            }
            tracing::warn!(
                target: "orbstore::factory",
                "offline mode: the {kind} backend did not answer ({e}); the journal accepts writes and ships them \
                 once it does"
            );
            let opener: Opener = Arc::new(move || {
                let config = config.clone();
                Box::pin(open(config))
            });
            Arc::new(LazyBackend::new(kind, opener))
        }
        Err(e) => return Err(e),
    };
    layers.open(backend, Some(local)).await
}

/// The variable that lets offline mode start a fresh journal while the server is down.
pub const COLD_START_VAR: &str = "ORB_OFFLINE_COLD_START";

/// The journal's local replica store: a file backend, debounced (the journal flushes it before
/// it deletes the journal files it holds, so nothing depends on its own fsyncs).
#[cfg(feature = "file")]
async fn open_replica_store(dir: &std::path::Path) -> Result<Store> {
    let config = orbstore_core::FileConfig {
        dir: dir.to_path_buf(),
        sync: orbstore_core::FileSync::Debounced(std::time::Duration::from_secs(1)),
        strict: false,
    };
    Ok(Arc::new(orbstore_file::FileBackend::open(config).await?))
}

#[cfg(not(feature = "file"))]
async fn open_replica_store(_dir: &std::path::Path) -> Result<Store> {
    Err(Error::unsupported(
        "PERSISTENCE_OFFLINE_MODE=true keeps the journal's replica in a file backend: enable the `file` cargo \
         feature of orbstore",
    ))
}

/// Opens the backend a configuration names.
pub async fn open(config: Config) -> Result<Store> {
    let kind = config.backend.kind();
    check_available(kind, feature_enabled(kind), &config)?;
    match config.backend {
        #[cfg(feature = "memory")]
        BackendConfig::Memory => Ok(Arc::new(orbstore_memory::MemoryBackend::new())),
        #[cfg(feature = "file")]
        BackendConfig::File(file) => Ok(Arc::new(orbstore_file::FileBackend::open(file).await?)),
        #[cfg(feature = "sqlite")]
        BackendConfig::Sqlite(sqlite) => Ok(Arc::new(orbstore_sqlite::SqliteBackend::open(sqlite).await?)),
        #[cfg(feature = "postgres")]
        BackendConfig::Postgres(pg) => Ok(Arc::new(orbstore_postgres::PostgresBackend::open(pg).await?)),
        #[cfg(feature = "mongodb")]
        BackendConfig::Mongo(m) => Ok(Arc::new(orbstore_mongo::MongoBackend::open(m).await?)),
        // Reached only when a backend's feature is off, which check_available refused above.
        #[allow(unreachable_patterns)]
        _ => Err(not_built(kind, &config)),
    }
}

/// Each backend kind and whether its cargo feature is on in this build.
const COMPILED: &[(&str, bool)] = &[
    ("memory", cfg!(feature = "memory")),
    ("file", cfg!(feature = "file")),
    ("sqlite", cfg!(feature = "sqlite")),
    ("postgres", cfg!(feature = "postgres")),
    ("mongodb", cfg!(feature = "mongodb")),
];

/// Whether the cargo feature of a backend kind is on in this build.
fn feature_enabled(kind: &str) -> bool {
    COMPILED.iter().any(|(k, on)| *k == kind && *on)
}

/// "Known but not compiled" and "not built yet" are different errors, both naming where the
/// choice came from.
fn check_available(kind: &str, compiled: bool, config: &Config) -> Result<()> {
    if !compiled {
        return Err(Error::unsupported(format!(
            "the {kind} backend, chosen by {}, is not compiled in: enable the `{kind}` cargo feature of \
             orbstore (backend features: {})",
            config.origin,
            BACKEND_FEATURES.join(", ")
        )));
    }
    if !BUILT.contains(&kind) {
        return Err(not_built(kind, config));
    }
    Ok(())
}

fn not_built(kind: &str, config: &Config) -> Error {
    Error::unsupported(format!(
        "the {kind} backend, chosen by {}, is not built yet in orbstore {} (see \"Not built yet\" in the \
         README); backends available now: {}. For example set ORB_PERSISTENCE=memory",
        config.origin,
        env!("CARGO_PKG_VERSION"),
        BUILT.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbstore_core::{ErrorKind, Origin};
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned()).unwrap()
    }

    #[test]
    fn compiled_out_names_feature_and_variable() {
        let c = cfg(&[("DATABASE_URL", "postgres://u:secret@h/db")]);
        let e = check_available("postgres", false, &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let m = e.to_string();
        for needle in ["enable the `postgres` cargo feature", "DATABASE_URL", "postgres://u:***@h/db"] {
            assert!(m.contains(needle), "{m} lacks {needle}");
        }
        assert!(!m.contains("secret"), "{m}");
    }

    #[test]
    fn not_built_differs_from_compiled_out() {
        // Every backend is built now; the message for one that is not is still distinct.
        let c = cfg(&[("DB_BACKEND", "mongodb")]);
        let m = not_built("mongodb", &c).to_string();
        assert!(m.contains("not built yet") && m.contains("DB_BACKEND"), "{m}");
        assert!(!m.contains("cargo feature"), "{m}");
    }

    /// The layers `from_env()` stacks (schema validation, metrics, breaker, retry, a read cache)
    /// pass `find_stored_stream` through, so a reader over the default stack still gets
    /// SQLite's stored texts (the replay buffer's open depends on it).
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn the_stack_hands_over_stored_texts() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.sqlite3").display());
        let vars: HashMap<&str, String> =
            HashMap::from([("DATABASE_URL", url), ("PERSISTENCE_CACHE_SIZE", "10".to_owned())]);
        let stacked = from_lookup_stacked(|k| vars.get(k).cloned()).await.unwrap();
        let c = stacked.store.collection("t").await.unwrap();
        c.insert_many(vec![orbstore_core::to_document(serde_json::json!({"_id": "a", "n": 1})).unwrap()])
            .await
            .unwrap();
        let items: Vec<_> = c.find_stored_stream(&orbstore_core::Query::all()).await.unwrap().collect().await;
        assert!(
            matches!(items.as_slice(), [Ok(orbstore_core::StoredDocument::Json(t))] if t.contains("\"n\"")),
            "{items:?}"
        );
        stacked.store.close().await.unwrap();
    }

    #[cfg(feature = "file")]
    #[tokio::test]
    async fn default_is_the_file_backend_in_orb_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let c = cfg(&[("ORB_DATA_DIR", data.to_str().unwrap())]);
        assert_eq!(c.origin, Origin::Default);
        let store = open(c).await.unwrap();
        assert_eq!(store.kind(), "file");
        store.collection("t").await.unwrap();
        store.close().await.unwrap();
        assert!(data.join("t.log").exists());
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn memory_opens_from_every_spelling() {
        for vars in [
            vec![("DATABASE_URL", "memory://")],
            vec![("DB_BACKEND", "in-memory")],
            vec![("ORB_PERSISTENCE", "memory")],
        ] {
            let store = open(cfg(&vars)).await.unwrap();
            assert_eq!(store.kind(), "memory");
            assert!(store.health().await.healthy);
        }
        let store = open(Config::new(BackendConfig::Memory)).await.unwrap();
        assert_eq!(store.kind(), "memory");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_opens_from_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.sqlite3");
        for vars in [
            vec![("DATABASE_URL", "sqlite::memory:")],
            vec![("DATABASE_URL", &format!("sqlite://{}", db.display()) as &str)],
            vec![("DB_BACKEND", "sqlite"), ("DB_NAME", db.to_str().unwrap())],
            vec![("ORB_PERSISTENCE", "sql"), ("ORB_SQLITE_PATH", db.to_str().unwrap())],
        ] {
            let store = open(cfg(&vars)).await.unwrap();
            assert_eq!(store.kind(), "sqlite");
            assert!(store.health().await.healthy);
            store.close().await.unwrap();
        }
        assert!(db.exists());
    }

    /// Opens PostgreSQL from `DATABASE_URL` and from `DB_*` variables, on the test server in
    /// `ORBSTORE_TEST_POSTGRES_URL` (ignored when it was not set at build time: see `build.rs`), in
    /// a schema of its own that is dropped afterwards.
    #[cfg(feature = "postgres")]
    #[tokio::test]
    #[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
    async fn postgres_opens_from_url_and_db_variables() {
        let url = orbstore_testkit::containers::postgres_url()
            .expect("this test needs a PostgreSQL server: ORBSTORE_TEST_POSTGRES_URL or a Docker engine");
        let schema = format!("orbtest_factory_{}", std::process::id());
        let BackendConfig::Postgres(server) = BackendConfig::from_url(&url).unwrap() else { panic!("{url}") };
        let port = server.port.to_string();
        let with_schema = format!("{url}{}schema={schema}", if url.contains('?') { "&" } else { "?" });
        for vars in [
            vec![("DATABASE_URL", with_schema.as_str())],
            vec![
                ("DB_BACKEND", "postgresql"),
                ("DB_HOST", server.host.as_str()),
                ("DB_PORT", port.as_str()),
                ("DB_NAME", server.database.as_str()),
                ("DB_USER", server.user.as_str()),
                ("DB_SCHEMA", schema.as_str()),
            ],
        ] {
            let store = open(cfg(&vars)).await.unwrap_or_else(|e| panic!("{vars:?}: {e}"));
            assert_eq!(store.kind(), "postgres");
            assert!(store.health().await.healthy);
            store.collection("t").await.unwrap();
            assert_eq!(store.list_collections().await.unwrap(), ["t"]);
            assert!(store.drop_collection("t").await.unwrap());
            store.close().await.unwrap();
        }
        let BackendConfig::Postgres(mut pg) = BackendConfig::from_url(&with_schema).unwrap() else {
            unreachable!()
        };
        pg.pool_size = 1;
        let store = orbstore_postgres::PostgresBackend::open(pg).await.unwrap();
        let client = store.raw_client().await.unwrap();
        client.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
    }

    /// Opens MongoDB from `DATABASE_URL` on the test server in `ORBSTORE_TEST_MONGODB_URL`
    /// (ignored when it was not set at build time: see `build.rs`), in a database of its own that
    /// is dropped afterwards.
    #[cfg(feature = "mongodb")]
    #[tokio::test]
    #[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
    async fn mongodb_opens_from_url() {
        let url =
            std::env::var("ORBSTORE_TEST_MONGODB_URL").expect("this test needs ORBSTORE_TEST_MONGODB_URL");
        let db = format!("orbtest_factory_{}", std::process::id());
        let (base, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let with_db = format!("{}/{db}?{query}", base.trim_end_matches('/'));
        let store = open(cfg(&[("DATABASE_URL", with_db.as_str())]))
            .await
            .unwrap_or_else(|e| panic!("{with_db}: {e}"));
        assert_eq!(store.kind(), "mongodb");
        assert!(store.health().await.healthy);
        store.collection("t").await.unwrap();
        assert_eq!(store.list_collections().await.unwrap(), ["t"]);
        assert!(store.drop_collection("t").await.unwrap());
        store.close().await.unwrap();
        let BackendConfig::Mongo(m) = BackendConfig::from_url(&with_db).unwrap() else { unreachable!() };
        let direct = orbstore_mongo::MongoBackend::open(m).await.unwrap();
        direct.database().drop().await.unwrap();
    }
}
