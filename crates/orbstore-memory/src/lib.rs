#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod collection;
mod transaction;

pub use backend::MemoryBackend;
pub use collection::MemoryCollection;
pub use transaction::MemoryTransaction;

/// The URL scheme this backend answers to (`memory://`).
pub const SCHEME: &str = "memory";
