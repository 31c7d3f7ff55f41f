#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod batch;
mod cleanup;
mod collection;
mod error;
mod exec;
mod json;
mod layout;
mod ops;
mod snapshot;
mod sql;
mod transaction;

pub use backend::{PostgresBackend, Shared, CONNECT_TIMEOUT, POOL_WAIT_TIMEOUT, STATEMENT_TIMEOUT};
pub use batch::{MAX_BATCH, MAX_IN_FLIGHT};
pub use collection::{Exec, PgCollection};
pub use ops::{Plan, COPY_THRESHOLD};
pub use sql::Param;
pub use transaction::{PgTransaction, TxShared};

/// The URL schemes this backend answers to.
pub const SCHEMES: &[&str] = &["postgres", "postgresql"];
