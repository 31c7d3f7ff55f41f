#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod factory;

pub use factory::{
    from_env, from_env_stacked, from_lookup_stacked, open, Store, BACKEND_FEATURES, COLD_START_VAR,
    SCHEMA_REFRESH_VAR, SCHEMA_VALIDATION_VAR,
};
pub use orbstore_core::*;
pub use orbstore_layers::{JournalLayer, Stacked, SyncStatus};

/// The backends compiled into this build.
pub mod backends {
    #[cfg(feature = "file")]
    pub use orbstore_file::FileBackend;
    #[cfg(feature = "memory")]
    pub use orbstore_memory::MemoryBackend;
    #[cfg(feature = "mongodb")]
    pub use orbstore_mongo::MongoBackend;
    #[cfg(feature = "postgres")]
    pub use orbstore_postgres::PostgresBackend;
    #[cfg(feature = "sqlite")]
    pub use orbstore_sqlite::SqliteBackend;
}
