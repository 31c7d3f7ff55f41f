//! Transactions: a driver session with a transaction in progress, shared by the handles the
//! transaction gives out. MongoDB offers them on replica sets and sharded clusters; a write
//! conflict with another transaction is a retryable `Aborted`.

use std::sync::Arc;

use async_trait::async_trait;
use mongodb::ClientSession;
use orbstore_core::engine::finished_transaction;
use orbstore_core::{validate_collection_name, CollectionRef, Result, Transaction};
use tokio::sync::Mutex;

use crate::backend::Shared;
use crate::collection::MongoCollection;
use crate::error::Context;

/// What a transaction and its handles share: the session.
#[derive(Debug)]
pub struct TxShared {
    pub(crate) shared: Arc<Shared>,
    pub(crate) session: Mutex<Option<ClientSession>>,
}

/// A MongoDB transaction.
#[derive(Debug)]
pub struct MongoTransaction {
    inner: Arc<TxShared>,
}

impl MongoTransaction {
    pub(crate) async fn begin(shared: Arc<Shared>) -> Result<MongoTransaction> {
        let mut session = shared.client.start_session().await.ctx("start a session")?;
        session.start_transaction().await.ctx("start a transaction")?;
        Ok(MongoTransaction { inner: Arc::new(TxShared { shared, session: Mutex::new(Some(session)) }) })
    }

    async fn take(&self) -> Result<ClientSession> {
        self.inner.shared.check_open()?;
        self.inner.session.lock().await.take().ok_or_else(finished_transaction)
    }
}

impl Drop for MongoTransaction {
    fn drop(&mut self) {
        // Dropped without commit or rollback: the driver aborts a session's transaction in
        // progress when the session is dropped, so drop it now even if handles are still around.
        if let Ok(mut slot) = self.inner.session.try_lock() {
            slot.take();
        }
    }
}

#[async_trait]
impl Transaction for MongoTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.inner.shared.check_open()?;
        let coll = MongoCollection::in_transaction(name, self.inner.clone());
        coll.ensure().await?;
        Ok(Arc::new(coll))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let mut session = self.take().await?;
        session.commit_transaction().await.ctx("commit")
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        let mut session = self.take().await?;
        // A transaction the server already aborted (after a failed write) is rolled back too.
        match session.abort_transaction().await {
            Ok(()) => Ok(()),
            Err(e) if crate::error::code(&e) == Some(crate::error::NO_SUCH_TRANSACTION) => Ok(()),
            Err(e) => Err(crate::error::map("roll back", e)),
        }
    }
}
