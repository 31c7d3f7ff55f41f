#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod cleanup;
mod collection;
mod lock;
mod log;
mod recovery;
mod snapshot;
mod transaction;
mod txlog;

pub use backend::{FileBackend, Inner};
pub use collection::{FileCollection, FileHost};
pub use log::MAX_WRITE;
pub use transaction::{FileTransaction, TxShared};

/// The URL scheme this backend answers to (`file://<dir>`).
pub const SCHEME: &str = "file";
