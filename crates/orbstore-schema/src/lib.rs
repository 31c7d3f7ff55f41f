#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod compiled;
mod layer;
mod registry;
pub mod sanitize;

pub use compiled::{CompiledSchema, Violation};
pub use layer::{SchemaLayer, DEFAULT_REFRESH};
pub use registry::{
    get_schema, list_schemas, remove_schema, set_schema, Mode, SchemaEntry, SCHEMAS_COLLECTION,
};
pub use sanitize::{sanitize, Change};
