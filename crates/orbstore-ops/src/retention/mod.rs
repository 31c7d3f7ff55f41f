//! Retention: per-collection policies stored in the store, a run that deletes what is due in
//! bounded batches or archives it first into cold archives (see `docs/operations.md`).

pub mod cold;
mod policy;
mod run;

pub use cold::{archive_path, ColdArchive};
pub use policy::{
    policies, presets, remove_policy, set_policy, Action, KeepNewest, RetentionPolicy, TimeUnit, POLICIES,
};
pub use run::{
    run, CollectionRetention, RetentionOptions, RetentionReport, ARCHIVE_DIR_VAR, ARCHIVE_ROUND, DELETE_BATCH,
};
