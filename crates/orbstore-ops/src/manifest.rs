//! `manifest.json`: what an archive holds, written last so that its presence marks a complete
//! archive.

use orbstore_core::{validate_collection_name, Error, IndexSpec, Result, SnapshotConsistency};
use serde::{Deserialize, Serialize};

/// The value of [`Manifest::format`].
pub const FORMAT: &str = "orbstore-backup";

/// The archive format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The entry path of the manifest.
pub const MANIFEST_PATH: &str = "manifest.json";

/// The entry path of a collection's documents.
pub fn documents_path(collection: &str) -> String {
    format!("collections/{collection}/documents.jsonl")
}

/// The entry path of a collection's index specs.
pub fn indexes_path(collection: &str) -> String {
    format!("collections/{collection}/indexes.json")
}

/// What an entry path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Manifest,
    Documents(String),
    Indexes(String),
    Unknown,
}

impl EntryKind {
    pub(crate) fn of(path: &str) -> EntryKind {
        if path == MANIFEST_PATH {
            return EntryKind::Manifest;
        }
        let Some(rest) = path.strip_prefix("collections/") else { return EntryKind::Unknown };
        let Some((name, file)) = rest.split_once('/') else { return EntryKind::Unknown };
        if validate_collection_name(name).is_err() {
            return EntryKind::Unknown;
        }
        match file {
            "documents.jsonl" => EntryKind::Documents(name.to_owned()),
            "indexes.json" => EntryKind::Indexes(name.to_owned()),
            _ => EntryKind::Unknown,
        }
    }
}

/// The manifest of an archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The archive format version ([`FORMAT_VERSION`] for archives this crate writes).
    pub format_version: u32,
    /// The version of orbstore that wrote the archive.
    pub orbstore_version: String,
    /// The kind of backend the data came from (`"postgres"`, ...): never a URL or a password.
    pub source_backend: String,
    /// When the backup started (RFC 3339, UTC).
    pub created_at: String,
    /// What the backup promises about writes made while it ran: `point-in-time` or
    /// `per-collection`.
    pub consistency: String,
    /// How each collection's content hash is defined.
    pub content_hash: String,
    /// One entry per collection, sorted by name.
    pub collections: Vec<CollectionManifest>,
}

/// The value of [`Manifest::content_hash`].
pub const CONTENT_HASH: &str = "sha256 of canonical JSON lines in _id order (docs/operations.md)";

/// One collection in a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionManifest {
    /// The collection's name.
    pub name: String,
    /// How many documents it held.
    pub count: u64,
    /// The size of its `documents.jsonl`.
    pub bytes: u64,
    /// SHA-256 of its `documents.jsonl` (lowercase hex): its content hash.
    pub sha256: String,
    /// Its indexes, sorted by name (the implicit `_id` index not listed).
    pub indexes: Vec<IndexSpec>,
}

impl Manifest {
    /// A manifest for a backup starting now.
    pub(crate) fn new(
        source_backend: &str,
        created_at: String,
        consistency: SnapshotConsistency,
    ) -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            orbstore_version: env!("CARGO_PKG_VERSION").to_owned(),
            source_backend: source_backend.to_owned(),
            created_at,
            consistency: consistency.as_str().to_owned(),
            content_hash: CONTENT_HASH.to_owned(),
            collections: Vec::new(),
        }
    }

    /// Reads a manifest: `Corrupt` when it is not one, `Unsupported` when it is of a format
    /// version this crate does not know.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Manifest> {
        // The version is read first and alone, so a newer format whose other fields changed is
        // reported as newer, not as damaged.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            format_version: Option<u64>,
        }
        let head: Head = orbstore_core::serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("{MANIFEST_PATH} is not valid JSON ({e})")))?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(Error::corrupt(format!(
                "{MANIFEST_PATH} does not describe an orbstore backup (format {:?}, expected {FORMAT:?})",
                head.format
            )));
        }
        match head.format_version {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::unsupported(format!(
                    "archive format version {v} is not known to orbstore {} (it reads version {FORMAT_VERSION}); \
                     use the orbstore release that wrote it",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            None => return Err(Error::corrupt(format!("{MANIFEST_PATH} has no format_version"))),
        }
        let m: Manifest = orbstore_core::serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("{MANIFEST_PATH} is malformed ({e})")))?;
        let mut previous: Option<&str> = None;
        for c in &m.collections {
            validate_collection_name(&c.name).map_err(|e| {
                Error::corrupt(format!("{MANIFEST_PATH} names a bad collection: {}", e.message()))
            })?;
            if previous.is_some_and(|p| p >= c.name.as_str()) {
                return Err(Error::corrupt(format!(
                    "{MANIFEST_PATH} lists collections out of order or twice (at {:?})",
                    c.name
                )));
            }
            previous = Some(&c.name);
            for spec in &c.indexes {
                spec.validate().map_err(|e| {
                    Error::corrupt(format!("{MANIFEST_PATH}: collection {:?}: {}", c.name, e.message()))
                })?;
            }
        }
        if m.consistency != SnapshotConsistency::PointInTime.as_str()
            && m.consistency != SnapshotConsistency::PerCollection.as_str()
        {
            return Err(Error::corrupt(format!(
                "{MANIFEST_PATH} has an unknown consistency {:?}",
                m.consistency
            )));
        }
        Ok(m)
    }

    /// The manifest entry of a collection.
    pub fn collection(&self, name: &str) -> Option<&CollectionManifest> {
        self.collections.iter().find(|c| c.name == name)
    }

    /// The total number of documents.
    pub fn total_documents(&self) -> u64 {
        self.collections.iter().map(|c| c.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_recognized_only_for_valid_names() {
        assert_eq!(EntryKind::of("manifest.json"), EntryKind::Manifest);
        assert_eq!(EntryKind::of(&documents_path("users")), EntryKind::Documents("users".into()));
        assert_eq!(EntryKind::of(&indexes_path("users")), EntryKind::Indexes("users".into()));
        for p in
            ["collections/Users/documents.jsonl", "collections/u/x", "collections/u", "../etc/passwd", ""]
        {
            assert_eq!(EntryKind::of(p), EntryKind::Unknown, "{p}");
        }
    }

    #[test]
    fn an_unknown_version_is_unsupported_and_other_damage_corrupt() {
        use orbstore_core::ErrorKind;
        let e =
            Manifest::parse(br#"{"format":"orbstore-backup","format_version":99,"whatever":1}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("version 99"), "{e}");
        for bad in [&b"{"[..], br#"{"format":"x","format_version":1}"#, br#"{"format":"orbstore-backup"}"#] {
            assert_eq!(Manifest::parse(bad).unwrap_err().kind(), ErrorKind::Corrupt);
        }
    }
}
