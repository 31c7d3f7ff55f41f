//! Helpers shared by the file backend's own tests.
#![allow(dead_code)]

use std::path::Path;

use orbstore_core::{Document, FileConfig, FileSync, PersistenceBackend, Query};
use orbstore_file::FileBackend;

pub async fn open(dir: &Path, sync: FileSync) -> FileBackend {
    FileBackend::open(FileConfig { sync, ..FileConfig::new(dir) })
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

pub async fn all(store: &FileBackend, name: &str) -> Vec<Document> {
    store.collection(name).await.unwrap().find(&Query::all()).await.unwrap()
}

pub fn doc(v: serde_json::Value) -> Document {
    v.as_object().cloned().unwrap()
}

/// Files in `dir` whose names contain `needle`.
pub fn files_with(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(needle))
        .collect();
    v.sort();
    v
}
