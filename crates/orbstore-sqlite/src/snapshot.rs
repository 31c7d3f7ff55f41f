//! [`SqliteSnapshot`]: a point-in-time view of the whole database, one read transaction on a
//! connection of its own (WAL keeps that snapshot while the writer goes on).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use orbstore_core::stream::{computed_stream, keyset_stream, PAGE_ROWS};
use orbstore_core::{
    validate_collection_name, DocumentStream, Error, IndexSpec, Query, Result, Snapshot, SnapshotConsistency,
};
use rusqlite::Connection;

use crate::backend::{load_catalog, open_reader, Catalog, Shared};
use crate::error::Context;
use crate::ops;

/// A read transaction held open on a dedicated connection, with the catalog read inside it (so
/// the multikey flags are those of the snapshot's own documents). Dropping it ends the
/// transaction.
pub(crate) struct SqliteSnapshot {
    conn: Arc<Mutex<Connection>>,
    catalog: Arc<Catalog>,
}

impl SqliteSnapshot {
    /// Opens the connection and starts the read transaction; `Unsupported` for `:memory:`
    /// databases, whose only connection is the writer's.
    pub(crate) async fn begin(shared: &Arc<Shared>) -> Result<SqliteSnapshot> {
        shared.check_open()?;
        let Some(path) = shared.path.clone() else {
            return Err(Error::unsupported(
                "an in-memory SQLite database has no second connection to hold a snapshot on",
            ));
        };
        let (conn, catalog) = tokio::task::spawn_blocking(move || -> Result<_> {
            let conn = open_reader(&path)?;
            // A deferred transaction takes its snapshot at its first read: the catalog's.
            conn.execute_batch("BEGIN DEFERRED").ctx("begin a snapshot")?;
            let catalog = load_catalog(&conn)?;
            Ok((conn, catalog))
        })
        .await
        .map_err(|e| Error::backend("a SQLite snapshot task failed", e))??;
        Ok(SqliteSnapshot { conn: Arc::new(Mutex::new(conn)), catalog: Arc::new(catalog) })
    }

    async fn run<R: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` cannot leave the connection half-changed: it only reads.
            let conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(|e| Error::backend("a SQLite snapshot task failed", e))?
    }
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    fn consistency(&self) -> SnapshotConsistency {
        SnapshotConsistency::PointInTime
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        Ok(self.catalog.collections.keys().cloned().collect())
    }

    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexSpec>> {
        validate_collection_name(collection)?;
        Ok(self.catalog.collections.get(collection).map(|m| m.indexes.clone()).unwrap_or_default())
    }

    async fn find_stream(&self, collection: &str, query: &Query) -> Result<DocumentStream> {
        validate_collection_name(collection)?;
        query.validate()?;
        let (name, catalog, conn) = (collection.to_owned(), self.catalog.clone(), self.conn.clone());
        if !query.in_id_order() {
            let q = query.clone();
            let docs =
                Self::run(&conn, move |c| ops::find(c, &name, catalog.collections.get(&name), &q)).await?;
            return Ok(computed_stream(docs));
        }
        Ok(keyset_stream((name, catalog, conn), query, |(name, catalog, conn), filter, after| async move {
            Self::run(&conn, move |c| {
                ops::page(c, &name, catalog.collections.get(&name), &filter, after.as_deref(), PAGE_ROWS)
            })
            .await
        }))
    }
}
