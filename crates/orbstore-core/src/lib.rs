#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
pub mod config;
mod document;
pub mod engine;
mod error;
mod ext;
mod filter;
mod id;
mod name;
pub mod order;
mod path;
mod query;
pub mod shapes;
pub mod shutdown;
mod snapshot;
pub mod sqltree;
pub mod stream;
mod typed;
mod update;

pub use backend::{
    Capabilities, CleanupReport, Collection, CollectionRef, CollectionStats, CompactReport, DocumentStream,
    HealthReport, IndexSpec, Orphan, PersistenceBackend, StorageStats, StoredDocument, StoredDocumentStream,
    Transaction, Upserted, QUARANTINE_KEEP,
};
pub use config::{
    parse_bool, BackendConfig, Config, FileConfig, FileSync, MongoConfig, MongoQueryMode, Origin,
    PostgresConfig, Secret, SqliteConfig, SqliteLocation, SqliteSync,
};
pub use document::{id_of, prepare_document, prepare_documents, to_document, type_name, Document, ID_FIELD};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use ext::{CollectionExt, TypedExt};
pub use filter::{Condition, Filter};
pub use id::{generate_id, validate_id, Id, MAX_ID_LEN};
pub use name::{validate_collection_name, MAX_COLLECTION_NAME_LEN};
pub use path::{FieldPath, SortKey};
pub use query::{Direction, Projection, Query, SortField};
pub use snapshot::{read_snapshot, Snapshot, SnapshotConsistency};
pub use typed::TypedCollection;
pub use update::{Update, UpdateOp};

/// Re-exported so backends and users build documents with the same `serde_json`.
pub use serde_json;
