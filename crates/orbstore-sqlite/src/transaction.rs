//! Transactions: a session on the writer thread between `BEGIN IMMEDIATE` and `COMMIT` or
//! `ROLLBACK`, serving only this transaction's jobs. Other writers wait for it (and give up with
//! `Unavailable` after the busy timeout); plain reads on a file database use their own WAL
//! connections and see only committed data.

use std::sync::mpsc;
use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::engine::finished_transaction;
use orbstore_core::{validate_collection_name, CollectionRef, Error, Result, Transaction};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::backend::{load_catalog, Shared};
use crate::collection::{Exec, SqliteCollection};
use crate::error::Context;
use crate::worker::{Job, Writer};

enum SessionMsg {
    Job(Job),
    End { commit: bool, reply: oneshot::Sender<Result<()>> },
}

/// What a transaction and its handles share: the channel into its session.
#[derive(Debug)]
pub struct TxShared {
    shared: Arc<Shared>,
    #[allow(clippy::type_complexity)]
    session: Mutex<Option<mpsc::Sender<SessionMsg>>>,
}

impl std::fmt::Debug for SessionMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionMsg::Job(_) => "Job",
            SessionMsg::End { .. } => "End",
        })
    }
}

impl TxShared {
    /// Runs `f` inside the transaction.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.shared.check_open()?;
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = reply.send(f(w));
        });
        {
            let session = self.session.lock();
            let session = session.as_ref().ok_or_else(finished_transaction)?;
            session.send(SessionMsg::Job(job)).map_err(|_| finished_transaction())?;
        }
        rx.await.map_err(|_| finished_transaction())?
    }

    async fn end(&self, commit: bool) -> Result<()> {
        let session = self.session.lock().take().ok_or_else(finished_transaction)?;
        let (reply, rx) = oneshot::channel();
        session.send(SessionMsg::End { commit, reply }).map_err(|_| finished_transaction())?;
        rx.await.map_err(|_| Error::backend("the SQLite writer stopped", "reply dropped"))?
    }
}

/// Ends the session; after a rollback (or a failed commit) the catalog cache is reloaded, since
/// the session may have created tables or indexes that no longer exist.
fn finish(w: &mut Writer, commit: bool) -> Result<()> {
    let result = if commit { w.conn.execute_batch("COMMIT").ctx("commit") } else { Ok(()) };
    if !commit || result.is_err() {
        let _ = w.conn.execute_batch("ROLLBACK");
        if let Ok(catalog) = load_catalog(&w.conn) {
            *w.catalog.write() = catalog;
        }
    }
    result
}

/// A transaction of the SQLite backend.
#[derive(Debug)]
pub struct SqliteTransaction {
    inner: Arc<TxShared>,
}

impl SqliteTransaction {
    pub(crate) async fn begin(shared: Arc<Shared>) -> Result<SqliteTransaction> {
        let (tx, rx) = mpsc::channel::<SessionMsg>();
        let (ready, ready_rx) = oneshot::channel::<Result<()>>();
        shared
            .worker
            .submit(
                move |w: &mut Writer| {
                    if let Err(e) = w.conn.execute_batch("BEGIN IMMEDIATE").ctx("begin a transaction") {
                        let _ = ready.send(Err(e));
                        return;
                    }
                    let _ = ready.send(Ok(()));
                    loop {
                        match rx.recv() {
                            Ok(SessionMsg::Job(job)) => job(w),
                            Ok(SessionMsg::End { commit, reply }) => {
                                let _ = reply.send(finish(w, commit));
                                return;
                            }
                            // Every handle and the transaction were dropped: roll back.
                            Err(_) => {
                                let _ = finish(w, false);
                                return;
                            }
                        }
                    }
                },
                ready_rx,
            )
            .await??;
        Ok(SqliteTransaction { inner: Arc::new(TxShared { shared, session: Mutex::new(Some(tx)) }) })
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        // Dropping the sender ends the session with a rollback once no handle holds it either;
        // handles keep no sender of their own, so this is the last one.
        self.inner.session.lock().take();
    }
}

#[async_trait]
impl Transaction for SqliteTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        let n = name.to_owned();
        self.inner.call(move |w| crate::ops::ensure_collection(w, &n)).await?;
        Ok(Arc::new(SqliteCollection::new(name, Exec::Session(self.inner.clone()))))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.inner.end(true).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.end(false).await
    }
}
