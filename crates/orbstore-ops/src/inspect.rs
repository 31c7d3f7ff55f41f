//! `inspect`: what an archive holds and whether it is intact, read offline (no backend).

use std::path::{Path, PathBuf};

use orbstore_core::{Error, IndexSpec, Result};

use crate::archive::Compression;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::verify;

/// One collection of an inspected archive.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectedCollection {
    /// Its name.
    pub name: String,
    /// Documents, as the manifest says.
    pub count: u64,
    /// Bytes of its `documents.jsonl`, as the manifest says.
    pub bytes: u64,
    /// Its content hash, as the manifest says.
    pub sha256: String,
    /// Its indexes.
    pub indexes: Vec<IndexSpec>,
    /// Whether its entries are intact and agree with the manifest.
    pub verified: bool,
}

/// What [`inspect`] found.
#[derive(Debug, Clone)]
pub struct InspectReport {
    /// The archive.
    pub path: PathBuf,
    /// Its compression, from its first bytes.
    pub compression: Compression,
    /// Its size on disk.
    pub archive_bytes: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its collections, in the manifest's order.
    pub collections: Vec<InspectedCollection>,
    /// Whether every check passed (every checksum, count and size verifies).
    pub verified: bool,
    /// Every problem found, each naming the entry and what was wrong.
    pub problems: Vec<String>,
}

/// Reads the whole archive at `path` and checks it, without any backend (blocking).
///
/// An archive whose manifest cannot be read (missing, so the archive is incomplete; not JSON;
/// of an unknown format version) is an error: `Corrupt`, or `Unsupported` for the version. Any
/// other damage is reported in [`InspectReport::problems`] with `verified: false`. A path that is
/// not a file is `InvalidInput`.
pub fn inspect(path: &Path, progress: &dyn Progress) -> Result<InspectReport> {
    let ex = verify::examine(path, progress)?;
    let findings = ex.findings();
    let manifest = match &ex.manifest {
        Some(Ok(m)) => m.clone(),
        _ => {
            let first = findings.first().expect("a missing or unreadable manifest is a finding");
            return Err(Error::new(first.kind, format!("archive {}: {}", path.display(), first.message)));
        }
    };
    let collections = manifest
        .collections
        .iter()
        .map(|c| InspectedCollection {
            name: c.name.clone(),
            count: c.count,
            bytes: c.bytes,
            sha256: c.sha256.clone(),
            indexes: c.indexes.clone(),
            // Damage that stopped the reading leaves every collection unverified.
            verified: ex.stopped.is_none()
                && !findings.iter().any(|f| f.collection.as_deref() == Some(c.name.as_str())),
        })
        .collect();
    Ok(InspectReport {
        path: path.to_owned(),
        compression: ex.compression,
        archive_bytes: ex.archive_bytes,
        verified: findings.is_empty(),
        problems: findings.into_iter().map(|f| f.message).collect(),
        collections,
        manifest,
    })
}
