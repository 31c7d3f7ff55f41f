#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod around;

pub use around::{Around, AroundBackend, Op};
