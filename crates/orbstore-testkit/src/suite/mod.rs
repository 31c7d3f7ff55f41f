//! The conformance suite: one plain async function per behaviour, each taking a
//! [`BackendFactory`](crate::BackendFactory) and working on a fresh backend from it.
//! [`conformance_suite!`](crate::conformance_suite) turns them all into tests.

mod backend;
mod crud;
mod index;
mod property;
mod query;
mod scale;
mod stream;
mod transaction;

pub use backend::*;
pub use crud::*;
pub use index::*;
pub use property::*;
pub use query::*;
pub use scale::*;
pub use stream::*;
pub use transaction::*;
