#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod bson;
mod cleanup;
mod collection;
mod error;
mod transaction;

pub use backend::{Mode, MongoBackend, Shared, CONNECT_TIMEOUT, SERVER_SELECTION_TIMEOUT};
pub use collection::{filter_bson, native_safe, sort_bson, update_bson, value_bson, MongoCollection};
pub use transaction::{MongoTransaction, TxShared};

/// The URL schemes this backend answers to.
pub const SCHEMES: &[&str] = &["mongodb", "mongodb+srv"];
