#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod archive;
pub mod audit;
pub mod backup;
mod builder;
pub mod canonical;
pub mod export;
mod fsutil;
pub mod inspect;
pub mod maintenance;
pub mod manifest;
pub mod migrate;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod rotation;
pub mod subjects;
pub mod validate;
mod verify;

pub use archive::Compression;
pub use backup::{backup, BackupOptions, BackupReport};
pub use canonical::{ContentDigest, ContentHasher};
pub use export::{export, export_to_file, ExportFormat, ExportOptions, ExportReport};
pub use inspect::{inspect, InspectReport, InspectedCollection};
pub use manifest::{CollectionManifest, Manifest, FORMAT_VERSION};
pub use migrate::{migrate, CollectionMigration, Differences, MigrateOptions, MigrateReport, MigrationState};
pub use progress::{NoProgress, Progress, Unit};
pub use restore::{restore, CollectionRestore, RestoreError, RestoreOptions, RestoreReport, RestoreState};
