#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod cleanup;
mod collection;
mod error;
mod ops;
mod query;
mod snapshot;
mod transaction;
mod worker;

pub use backend::{CollMeta, Shared, SqliteBackend};
pub use collection::{Exec, SqliteCollection};
pub use ops::Plan;
pub use transaction::{SqliteTransaction, TxShared};

/// The URL scheme this backend answers to (`sqlite://<path>`, `sqlite::memory:`).
pub const SCHEME: &str = "sqlite";
