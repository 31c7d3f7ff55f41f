//! Where an operation runs, and its transaction scope: a pooled connection (with `BEGIN` and
//! `COMMIT` around operations that must be atomic), or a transaction's connection (with a
//! savepoint around each operation, so a failed one leaves the transaction usable).

use std::sync::Arc;

use deadpool_postgres::Object;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A connection held for one operation. Dropped before [`Scope::end`] finished (a cancelled
/// future, or the client-side deadline of [`Shared::bounded`]), the connection is closed rather
/// than reused with an unknown part of the operation done, or a statement still waiting for a
/// server that stopped answering; for a transaction, that ends the transaction (the server rolls
/// it back when the connection closes) and marks it lost.
pub(crate) struct Scope<'a> {
    obj: Option<Object>,
    /// The transaction's slot, to put the connection back into.
    slot: Option<MutexGuard<'a, Option<Object>>>,
    /// The transaction's "connection lost" flag, set when the scope is abandoned.
    lost: Option<&'a AtomicBool>,
    /// `BEGIN` or a savepoint is open.
    open: bool,
    /// [`Scope::end`] ran to completion: the connection is in a known state.
    ended: bool,
    /// The operation failed with a serialization failure and rolled the transaction back.
    pub(crate) aborted: bool,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            if !self.ended {
                drop(Object::take(obj));
                if let Some(lost) = self.lost {
                    lost.store(true, Ordering::Release);
                }
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
        self.ended = true;
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

/// A connection whose session state is not known yet (a `BEGIN` in flight): closed, not
/// returned to the pool, unless [`Unsettled::settle`] says the statements it waited for finished.
pub(crate) struct Unsettled(Option<Object>);

impl Unsettled {
    pub(crate) fn new(obj: Object) -> Unsettled {
        Unsettled(Some(obj))
    }

    /// The connection, for the statements being waited for.
    pub(crate) fn client(&self) -> &Client {
        self.0.as_ref().expect("an unsettled connection holds it until settled")
    }

    /// The statements finished: the connection may be kept.
    pub(crate) fn settle(mut self) -> Object {
        self.0.take().expect("settled once")
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            drop(Object::take(obj));
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
                let mut scope = Scope {
                    obj: Some(obj),
                    slot: None,
                    lost: None,
                    open: false,
                    ended: false,
                    aborted: false,
                };
                if atomic {
                    scope.client().batch_execute("BEGIN").await.ctx("begin")?;
                    scope.open = true;
                }
                Ok(scope)
            }
            Exec::Session(tx) => {
                tx.shared.check_open()?;
                let mut slot = tx.conn.lock().await;
                let obj = match slot.take() {
                    Some(obj) => obj,
                    None => return Err(tx.gone()),
                };
                let mut scope = Scope {
                    obj: Some(obj),
                    slot: Some(slot),
                    lost: Some(&tx.lost),
                    open: false,
                    ended: false,
                    aborted: false,
                };
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

/// The error for using a transaction whose connection was closed under an unfinished operation.
pub(crate) fn tx_lost() -> Error {
    Error::unavailable(
        "the transaction's connection was closed under an operation that did not finish (the \
         connection failed, the server stopped answering, or the operation was cancelled); \
         nothing of the transaction was committed; retry it",
    )
}
