//! Transactions: one pooled connection between `BEGIN ISOLATION LEVEL SERIALIZABLE` and
//! `COMMIT` or `ROLLBACK`. PostgreSQL's serializable snapshot isolation makes a transaction
//! whose reads or writes were overtaken fail (SQLSTATE 40001) rather than lose a write; that
//! failure is a retryable `Aborted`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Object;
use orbstore_core::engine::finished_transaction;
use orbstore_core::{validate_collection_name, CollectionRef, Error, ErrorKind, Result, Transaction};
use tokio::sync::Mutex;

use crate::backend::Shared;
use crate::collection::PgCollection;
use crate::error::Context;
use crate::exec::{tx_aborted, tx_lost, Exec, Unsettled};

/// What a transaction and its handles share: its connection.
#[derive(Debug)]
pub struct TxShared {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Mutex<Option<Object>>,
    /// A serialization failure rolled the transaction back.
    pub(crate) aborted: AtomicBool,
    /// Its connection was closed under an unfinished operation (see `exec::Scope`).
    pub(crate) lost: AtomicBool,
}

impl TxShared {
    /// Why the transaction has no connection: rolled back by a serialization failure, lost, or
    /// already committed or rolled back.
    pub(crate) fn gone(&self) -> Error {
        if self.aborted.load(Ordering::Acquire) {
            tx_aborted()
        } else if self.lost.load(Ordering::Acquire) {
            tx_lost()
        } else {
            finished_transaction()
        }
    }

    /// `COMMIT` or `ROLLBACK`, within the client-side deadline. A `COMMIT` whose answer never
    /// comes is reported `Unavailable` and its connection closed: the server may or may not have
    /// committed it, which the message says (a transaction is never reported committed when it
    /// was not).
    async fn end(&self, sql: &str) -> Result<()> {
        let obj = match self.conn.lock().await.take() {
            Some(obj) => obj,
            None => {
                let e = self.gone();
                self.aborted.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let what = sql.to_lowercase();
        let ended = self.shared.bounded(&what, async { obj.batch_execute(sql).await.ctx(&what) }).await;
        match ended {
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                drop(Object::take(obj));
                Err(if sql == "COMMIT" {
                    Error::unavailable(format!(
                        "{}; whether the server committed the transaction is unknown",
                        e.message()
                    ))
                    .with_source(e)
                } else {
                    e
                })
            }
            other => other,
        }
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
        let obj = shared
            .bounded("begin a transaction", async {
                let obj = Unsettled::new(shared.client().await?);
                obj.client()
                    .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                    .await
                    .ctx("begin a transaction")?;
                Ok(obj.settle())
            })
            .await?;
        Ok(PgTransaction {
            inner: Arc::new(TxShared {
                shared,
                conn: Mutex::new(Some(obj)),
                aborted: AtomicBool::new(false),
                lost: AtomicBool::new(false),
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
