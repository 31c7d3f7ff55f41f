//! Where an operation runs, and its transaction scope: a pooled connection (with `BEGIN` and
//! `COMMIT` around operations that must be atomic), or a transaction's connection (with a
//! savepoint around each operation, so a failed one leaves the transaction usable).

use std::sync::Arc;

use deadpool_postgres::Object;
use orbstore_core::engine::finished_transaction;
use std::sync::atomic::Ordering;

use orbstore_core::{Error, ErrorKind, Result};
use tokio::sync::MutexGuard;

use crate::backend::{Client, Shared};
use crate::error::Context;
use crate::transaction::TxShared;

/// Where a handle's operations run.
#[derive(Debug, Clone)]
pub enum Exec {
    /// On pooled connections.
    Direct(Arc<Shared>),
    /// On a transaction's connection.
    Session(Arc<TxShared>),
}

/// A connection held for one operation. Dropped before [`Scope::end`] (a cancelled future)
/// while a `BEGIN` or savepoint is open, the connection is closed rather than reused with an
/// unknown part of the operation done; for a transaction, that ends the transaction.
pub(crate) struct Scope<'a> {
    obj: Option<Object>,
    /// The transaction's slot, to put the connection back into.
    slot: Option<MutexGuard<'a, Option<Object>>>,
    /// `BEGIN` or a savepoint is open.
    open: bool,
    /// The operation failed with a serialization failure and rolled the transaction back.
    pub(crate) aborted: bool,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            if self.open {
                drop(Object::take(obj));
            } else if let Some(slot) = self.slot.as_mut() {
                **slot = Some(obj);
            }
        }
    }
}

impl Scope<'_> {
    /// The connection.
    pub(crate) fn client(&self) -> &Client {
        self.obj.as_ref().expect("a scope holds its connection until it ends")
    }

    /// Commits (or releases the savepoint) when `result` is a success, rolls back otherwise,
    /// and gives the connection back.
    pub(crate) async fn end<R>(self, result: Result<R>) -> Result<R> {
        self.end_reporting(result).await.0
    }

    /// [`Scope::end`], also saying whether the transaction was rolled back whole.
    async fn end_reporting<R>(mut self, result: Result<R>) -> (Result<R>, bool) {
        let result = self.finish(result).await;
        (result, self.aborted)
    }

    async fn finish<R>(&mut self, result: Result<R>) -> Result<R> {
        if self.open {
            let sql = match (self.slot.is_some(), result.is_ok()) {
                (false, true) => "COMMIT",
                (false, false) => "ROLLBACK",
                (true, true) => "RELEASE SAVEPOINT orbstore_op",
                (true, false) => "ROLLBACK TO SAVEPOINT orbstore_op; RELEASE SAVEPOINT orbstore_op",
            };
            let ended = self.client().batch_execute(sql).await.ctx("end a transaction");
            self.open = false;
            if let (Some(slot), Err(e)) = (self.slot.as_mut(), &result) {
                if e.kind() == ErrorKind::Aborted {
                    // A serialization failure dooms the whole transaction: end it now, so its
                    // locks do not outlive it while the caller decides to retry.
                    if let Some(obj) = self.obj.take() {
                        // The connection goes back to the pool if the rollback worked, is
                        // closed otherwise.
                        if obj.batch_execute("ROLLBACK").await.is_err() {
                            drop(Object::take(obj));
                        }
                    }
                    **slot = None;
                    self.aborted = true;
                }
            }
            let value = result?;
            ended?;
            Ok(value)
        } else {
            result
        }
    }
}

impl Exec {
    /// The backend's shared state.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        match self {
            Exec::Direct(s) => s,
            Exec::Session(t) => &t.shared,
        }
    }

    /// Ends a scope (see [`Scope::end`]), recording in the transaction when a serialization
    /// failure rolled it back.
    pub(crate) async fn end<R>(&self, scope: Scope<'_>, result: Result<R>) -> Result<R> {
        let (result, aborted) = scope.end_reporting(result).await;
        if let (true, Exec::Session(tx)) = (aborted, self) {
            tx.aborted.store(true, Ordering::Release);
        }
        result
    }

    /// A connection for one operation; with `atomic`, its statements commit together or not at
    /// all (inside a transaction they always run in a savepoint).
    pub(crate) async fn scope(&self, atomic: bool) -> Result<Scope<'_>> {
        match self {
            Exec::Direct(shared) => {
                let obj = shared.client().await?;
                if atomic {
                    obj.batch_execute("BEGIN").await.ctx("begin")?;
                }
                Ok(Scope { obj: Some(obj), slot: None, open: atomic, aborted: false })
            }
            Exec::Session(tx) => {
                tx.shared.check_open()?;
                let mut slot = tx.conn.lock().await;
                let obj = match slot.take() {
                    Some(obj) => obj,
                    None if tx.aborted.load(Ordering::Acquire) => return Err(tx_aborted()),
                    None => return Err(finished_transaction()),
                };
                let mut scope = Scope { obj: Some(obj), slot: Some(slot), open: false, aborted: false };
                scope.client().batch_execute("SAVEPOINT orbstore_op").await.ctx("savepoint")?;
                scope.open = true;
                Ok(scope)
            }
        }
    }
}

/// The error for using a transaction that a serialization failure already rolled back.
pub(crate) fn tx_aborted() -> Error {
    Error::aborted("the transaction was rolled back by an earlier serialization failure; retry it")
}
