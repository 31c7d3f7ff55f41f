//! [`PgSnapshot`]: a point-in-time view of the whole schema, one `REPEATABLE READ READ ONLY`
//! transaction on a connection of its own. Every statement of the transaction sees the same
//! snapshot of every table, so a backup read through it is consistent across collections.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::stream::computed_stream;
use orbstore_core::{
    validate_collection_name, Collection, DocumentStream, IndexSpec, Query, Result, Snapshot,
    SnapshotConsistency,
};
use tokio::sync::Mutex;

use crate::backend::Shared;
use crate::collection::PgCollection;
use crate::error::Context;
use crate::exec::Exec;
use crate::transaction::TxShared;

/// The snapshot's transaction (read through ordinary handles bound to it) and the collections
/// it holds. The connection is closed, ending the transaction, when the snapshot and every
/// stream from it are dropped.
pub(crate) struct PgSnapshot {
    tx: Arc<TxShared>,
    collections: Vec<String>,
}

impl PgSnapshot {
    pub(crate) async fn begin(shared: Arc<Shared>) -> Result<PgSnapshot> {
        let obj = shared.client().await?;
        let list = format!("SELECT name FROM {} ORDER BY name", shared.catalog("_collections"));
        // Owned by the TxShared at once, so a failure below closes the connection instead of
        // returning it to the pool inside a transaction.
        let tx = Arc::new(TxShared {
            shared,
            conn: Mutex::new(Some(obj)),
            aborted: AtomicBool::new(false),
            lost: AtomicBool::new(false),
        });
        let bounded = tx.shared.clone();
        let collections = bounded
            .bounded("begin a snapshot", async {
                let slot = tx.conn.lock().await;
                let c = slot.as_ref().expect("just stored");
                c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .ctx("begin a snapshot")?;
                let rows = c.query(&list, &[]).await.ctx("list collections")?;
                let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                // As pg_dump does: a table dropped after the snapshot began would be gone from it
                // too (the catalog is not versioned like rows), so the tables are share-locked for
                // the snapshot's life. A concurrent drop waits for the snapshot to end.
                if !names.is_empty() {
                    let tables: Vec<String> = names.iter().map(|n| tx.shared.table(n)).collect();
                    let lock = format!("LOCK TABLE {} IN ACCESS SHARE MODE", tables.join(", "));
                    c.batch_execute(&lock).await.ctx("lock the snapshot's tables")?;
                }
                Ok(names)
            })
            .await?;
        Ok(PgSnapshot { tx, collections })
    }

    fn handle(&self, name: &str) -> PgCollection {
        PgCollection::new(name, Exec::Session(self.tx.clone()))
    }
}

#[async_trait]
impl Snapshot for PgSnapshot {
    fn consistency(&self) -> SnapshotConsistency {
        SnapshotConsistency::PointInTime
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        Ok(self.collections.clone())
    }

    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexSpec>> {
        validate_collection_name(collection)?;
        if !self.collections.iter().any(|c| c == collection) {
            return Ok(Vec::new());
        }
        self.handle(collection).list_indexes().await
    }

    async fn find_stream(&self, collection: &str, query: &Query) -> Result<DocumentStream> {
        validate_collection_name(collection)?;
        query.validate()?;
        if !self.collections.iter().any(|c| c == collection) {
            return Ok(computed_stream(Vec::new()));
        }
        self.handle(collection).find_stream(query).await
    }
}
