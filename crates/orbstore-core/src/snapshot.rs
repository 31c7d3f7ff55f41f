//! Consistent reads of a whole store, for backups and migrations: [`Snapshot`], and
//! [`read_snapshot`], which falls back to per-collection reads where a backend has no snapshot.

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{DocumentStream, IndexSpec, PersistenceBackend};
use crate::error::{ErrorKind, Result};
use crate::query::Query;

/// What a [`Snapshot`] promises about documents written while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotConsistency {
    /// Every collection is read as of one moment: a write that committed after the snapshot was
    /// taken is invisible in every collection, and a transaction is seen whole or not at all.
    PointInTime,
    /// Each collection is read as of some moment during the read, possibly a different one per
    /// collection (and, on some backends, per page of a long stream).
    PerCollection,
}

impl SnapshotConsistency {
    /// `"point-in-time"` or `"per-collection"`, for reports and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotConsistency::PointInTime => "point-in-time",
            SnapshotConsistency::PerCollection => "per-collection",
        }
    }
}

/// A read-only view of a whole store.
///
/// Streams it returns may be read while other writers go on; what they see is what
/// [`Snapshot::consistency`] says. A snapshot holds resources (a server transaction, a read lock
/// on a file, a copy of maps) until it is dropped.
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// What this snapshot promises.
    fn consistency(&self) -> SnapshotConsistency;

    /// The names of the collections, sorted, as of the snapshot.
    async fn list_collections(&self) -> Result<Vec<String>>;

    /// The collection's indexes, sorted by name. A collection missing from the snapshot has none.
    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexSpec>>;

    /// The documents of [`Collection::find`](crate::Collection::find) for this query on the
    /// snapshot, in the same order, streamed with bounded memory when the query has no sort keys.
    /// A collection missing from the snapshot streams nothing.
    async fn find_stream(&self, collection: &str, query: &Query) -> Result<DocumentStream>;
}

/// A snapshot of the store: the backend's own ([`PersistenceBackend::snapshot`]), or, where it
/// has none (`Unsupported`), per-collection reads through ordinary handles.
pub async fn read_snapshot(store: &Arc<dyn PersistenceBackend>) -> Result<Box<dyn Snapshot>> {
    match store.snapshot().await {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(Box::new(LiveReads(store.clone()))),
        Err(e) => Err(e),
    }
}

/// Per-collection reads through a backend's ordinary handles.
struct LiveReads(Arc<dyn PersistenceBackend>);

#[async_trait]
impl Snapshot for LiveReads {
    fn consistency(&self) -> SnapshotConsistency {
        SnapshotConsistency::PerCollection
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.0.list_collections().await
    }

    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexSpec>> {
        self.0.collection(collection).await?.list_indexes().await
    }

    async fn find_stream(&self, collection: &str, query: &Query) -> Result<DocumentStream> {
        self.0.collection(collection).await?.find_stream(query).await
    }
}
