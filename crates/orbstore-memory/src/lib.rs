#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod collection;
mod transaction;

pub use backend::MemoryBackend;
pub use backend::Shared;
pub use collection::{MemoryCollection, MemoryHost};
pub use transaction::{MemoryTransaction, TxShared};

/// The URL scheme this backend answers to (`memory://`).
pub const SCHEME: &str = "memory";
