//! The generic wrapper for layers that treat every operation alike: [`Around`] runs one
//! operation (given as a closure that can be called again, for retries), and [`AroundBackend`]
//! routes every method of a backend, its collections and its transactions through it.
//!
//! Written by hand: the layer crates of the ecosystem (tower) wrap request/response services,
//! not a trait of twenty async methods; this module is that forwarding, once.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use orbstore_core::{
    Capabilities, CleanupReport, Collection, CollectionRef, CompactReport, Document, DocumentStream, Filter,
    HealthReport, Id, IndexSpec, PersistenceBackend, Query, Result, Snapshot, StorageStats, Transaction,
    Update, Upserted,
};

/// What an operation is, for a layer deciding how to run it.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// The method's name (`"find"`, `"insert_many"`, `"begin"`, ...).
    pub name: &'static str,
    /// The collection, for collection methods.
    pub collection: Option<&'a str>,
    /// It changes data.
    pub write: bool,
    /// Running it twice has the effect and the result of running it once, so it may be retried
    /// after a failure whose outcome is unknown (reads, `upsert`, `create_index`).
    pub idempotent: bool,
    /// Inside a transaction (retrying one statement of a transaction is never safe: the
    /// transaction may be gone).
    pub in_transaction: bool,
}

/// How a layer runs each operation: `f` starts the operation and may be called again (a retry).
pub trait Around: Send + Sync + 'static {
    /// Runs the operation described by `op`.
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a;

    /// What the layer adds to a health report (its state: "circuit closed", say).
    fn health(&self, report: HealthReport) -> HealthReport {
        report
    }
}

/// A backend whose every operation runs through an [`Around`].
pub struct AroundBackend<A> {
    inner: Arc<dyn PersistenceBackend>,
    layer: Arc<A>,
}

impl<A: Around> AroundBackend<A> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PersistenceBackend>, layer: A) -> AroundBackend<A> {
        AroundBackend { inner, layer: Arc::new(layer) }
    }

    /// Wraps `inner` with a layer the caller keeps a handle on (to read a breaker's state, say).
    pub fn with_shared(inner: Arc<dyn PersistenceBackend>, layer: Arc<A>) -> AroundBackend<A> {
        AroundBackend { inner, layer }
    }

    /// The layer.
    pub fn layer(&self) -> &A {
        &self.layer
    }
}

impl<A> fmt::Debug for AroundBackend<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AroundBackend").field("inner", &self.inner).finish()
    }
}

fn op<'a>(
    name: &'static str,
    collection: Option<&'a str>,
    write: bool,
    idempotent: bool,
    tx: bool,
) -> Op<'a> {
    Op { name, collection, write, idempotent, in_transaction: tx }
}

#[async_trait]
impl<A: Around> PersistenceBackend for AroundBackend<A> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        let inner = &self.inner;
        let c = self
            .layer
            .call(op("collection", Some(name), false, true, false), || inner.collection(name))
            .await?;
        Ok(Arc::new(AroundCollection { inner: c, layer: self.layer.clone(), tx: false }))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        let inner = &self.inner;
        self.layer.call(op("list_collections", None, false, true, false), || inner.list_collections()).await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        let inner = &self.inner;
        self.layer
            .call(op("drop_collection", Some(name), true, false, false), || inner.drop_collection(name))
            .await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let inner = &self.inner;
        let tx = self.layer.call(op("begin", None, false, true, false), || inner.begin()).await?;
        Ok(Box::new(AroundTransaction { inner: tx, layer: self.layer.clone() }))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        // Streams are not operations a layer can retry halfway; the snapshot passes through.
        self.inner.snapshot().await
    }

    async fn health(&self) -> HealthReport {
        self.layer.health(self.inner.health().await)
    }

    async fn stats(&self) -> Result<StorageStats> {
        let inner = &self.inner;
        self.layer.call(op("stats", None, false, true, false), || inner.stats()).await
    }

    async fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        self.layer.call(op("flush", None, true, true, false), || inner.flush()).await
    }

    async fn compact(&self) -> Result<CompactReport> {
        let inner = &self.inner;
        self.layer.call(op("compact", None, true, true, false), || inner.compact()).await
    }

    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        let inner = &self.inner;
        self.layer.call(op("cleanup", None, apply, true, false), || inner.cleanup(apply)).await
    }

    async fn close(&self) -> Result<()> {
        // Never retried nor refused by a breaker: closing must always reach the backend.
        self.inner.close().await
    }
}

/// A collection whose every operation runs through an [`Around`].
struct AroundCollection<A> {
    inner: CollectionRef,
    layer: Arc<A>,
    tx: bool,
}

impl<A> fmt::Debug for AroundCollection<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AroundCollection").field("inner", &self.inner).finish()
    }
}

impl<A: Around> AroundCollection<A> {
    fn op(&self, name: &'static str, write: bool, idempotent: bool) -> Op<'_> {
        op(name, Some(self.inner.name()), write, idempotent, self.tx)
    }
}

#[async_trait]
impl<A: Around> Collection for AroundCollection<A> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn insert_one(&self, doc: Document) -> Result<Id> {
        let c = &self.inner;
        self.layer.call(self.op("insert_one", true, false), || c.insert_one(doc.clone())).await
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        let c = &self.inner;
        self.layer.call(self.op("insert_many", true, false), || c.insert_many(docs.clone())).await
    }

    async fn upsert(&self, doc: Document) -> Result<Upserted> {
        // Idempotent in effect; the `inserted` flag of a retry after an ambiguous failure may say
        // "replaced" for a document the first attempt inserted, so it is not marked idempotent.
        let c = &self.inner;
        self.layer.call(self.op("upsert", true, false), || c.upsert(doc.clone())).await
    }

    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        // As `upsert`: idempotent in effect, not in its answer.
        let c = &self.inner;
        self.layer.call(self.op("upsert_many", true, false), || c.upsert_many(docs.clone())).await
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        let c = &self.inner;
        self.layer.call(self.op("find_by_id", false, true), || c.find_by_id(id)).await
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        let c = &self.inner;
        self.layer.call(self.op("find", false, true), || c.find(query)).await
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        let c = &self.inner;
        self.layer.call(self.op("find_stream", false, true), || c.find_stream(query)).await
    }

    async fn find_stored_stream(&self, query: &Query) -> Result<orbstore_core::StoredDocumentStream> {
        let c = &self.inner;
        self.layer.call(self.op("find_stored_stream", false, true), || c.find_stored_stream(query)).await
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        let c = &self.inner;
        self.layer.call(self.op("update_one", true, false), || c.update_one(filter, update)).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        let c = &self.inner;
        self.layer.call(self.op("update_many", true, false), || c.update_many(filter, update)).await
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        let c = &self.inner;
        self.layer.call(self.op("delete_one", true, false), || c.delete_one(filter)).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        let c = &self.inner;
        self.layer.call(self.op("delete_many", true, false), || c.delete_many(filter)).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let c = &self.inner;
        self.layer.call(self.op("count", false, true), || c.count(filter)).await
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        let c = &self.inner;
        self.layer.call(self.op("create_index", true, true), || c.create_index(spec.clone())).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        let c = &self.inner;
        self.layer.call(self.op("list_indexes", false, true), || c.list_indexes()).await
    }
}

/// A transaction whose operations run through an [`Around`].
struct AroundTransaction<A> {
    inner: Box<dyn Transaction>,
    layer: Arc<A>,
}

#[async_trait]
impl<A: Around> Transaction for AroundTransaction<A> {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        let c = self.inner.collection(name).await?;
        Ok(Arc::new(AroundCollection { inner: c, layer: self.layer.clone(), tx: true }))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let AroundTransaction { inner, layer } = *self;
        // Called once: a commit is not repeatable (the first call consumes the transaction).
        let mut inner = Some(inner);
        layer
            .call(op("commit", None, true, false, true), move || {
                let tx = inner.take();
                async move {
                    match tx {
                        Some(tx) => tx.commit().await,
                        None => Err(orbstore_core::Error::invalid("a commit cannot be retried")),
                    }
                }
            })
            .await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }
}

/// Runs every operation as it is: the identity layer (for tests of the wrapper itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct Passthrough;

impl Around for Passthrough {
    fn call<'a, T, F, Fut>(&'a self, _op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move { f().await })
    }
}
