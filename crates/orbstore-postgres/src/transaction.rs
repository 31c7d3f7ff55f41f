//! Transactions: one pooled connection between `BEGIN ISOLATION LEVEL SERIALIZABLE` and
//! `COMMIT` or `ROLLBACK`. PostgreSQL's serializable snapshot isolation makes a transaction
//! whose reads or writes were overtaken fail (SQLSTATE 40001) rather than lose a write; that
//! failure is a retryable `Aborted`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Object;
use orbstore_core::engine::finished_transaction;
use orbstore_core::{validate_collection_name, CollectionRef, Result, Transaction};
use tokio::sync::Mutex;

use crate::backend::Shared;
use crate::collection::PgCollection;
use crate::error::Context;
use crate::exec::{tx_aborted, Exec};

/// What a transaction and its handles share: its connection.
#[derive(Debug)]
pub struct TxShared {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Mutex<Option<Object>>,
    /// A serialization failure rolled the transaction back.
    pub(crate) aborted: AtomicBool,
}

impl TxShared {
    async fn end(&self, sql: &str) -> Result<()> {
        let obj = match self.conn.lock().await.take() {
            Some(obj) => obj,
            None if self.aborted.swap(false, Ordering::AcqRel) => return Err(tx_aborted()),
            None => return Err(finished_transaction()),
        };
        obj.batch_execute(sql).await.ctx(&sql.to_lowercase())
    }
}

impl Drop for TxShared {
    fn drop(&mut self) {
        // Never committed: close the connection (the server rolls back) instead of returning
        // it to the pool inside a transaction.
        if let Some(obj) = self.conn.get_mut().take() {
            drop(Object::take(obj));
        }
    }
}

/// A PostgreSQL transaction.
#[derive(Debug)]
pub struct PgTransaction {
    inner: Arc<TxShared>,
}

impl PgTransaction {
    pub(crate) async fn begin(shared: Arc<Shared>) -> Result<PgTransaction> {
        let obj = shared.client().await?;
        obj.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE").await.ctx("begin a transaction")?;
        Ok(PgTransaction {
            inner: Arc::new(TxShared {
                shared,
                conn: Mutex::new(Some(obj)),
                aborted: AtomicBool::new(false),
            }),
        })
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        // Dropped without commit or rollback: roll back now, by closing the connection, even
        // if handles from the transaction are still around.
        if let Ok(mut slot) = self.inner.conn.try_lock() {
            if let Some(obj) = slot.take() {
                drop(Object::take(obj));
            }
        }
    }
}

#[async_trait]
impl Transaction for PgTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        let coll = PgCollection::new(name, Exec::Session(self.inner.clone()));
        coll.ensure().await?;
        Ok(Arc::new(coll))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.inner.shared.check_open()?;
        self.inner.end("COMMIT").await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.end("ROLLBACK").await
    }
}
