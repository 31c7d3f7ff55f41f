//! A backend opened on first use, and again on every use until an open succeeds: what lets an
//! agent start in offline mode while its server is down.
//!
//! The PostgreSQL and MongoDB backends connect when they are opened, so a store whose server is
//! down at start cannot be built, and the journal above it could not accept a single write.
//! [`LazyBackend`] stands in for the backend: every operation first opens it (one open at a
//! time; the others wait for it), and while opening fails the operation fails with that error
//! (`Unavailable`, which the journal's syncer retries with backoff). Once open, operations go
//! straight through.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use orbstore_core::{
    Capabilities, CleanupReport, CollectionRef, CompactReport, Error, HealthReport, PersistenceBackend,
    Result, Snapshot, StorageStats, Transaction,
};

/// Opens the backend; called again after a failure.
pub type Opener = Arc<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn PersistenceBackend>>> + Send + Sync>;

/// A backend opened by its first operation (see the module docs).
pub struct LazyBackend {
    kind: &'static str,
    opener: Opener,
    opened: tokio::sync::OnceCell<Arc<dyn PersistenceBackend>>,
    closed: AtomicBool,
}

impl fmt::Debug for LazyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBackend").field("kind", &self.kind).field("opened", &self.opened.get()).finish()
    }
}

impl LazyBackend {
    /// A backend of kind `kind` (what [`PersistenceBackend::kind`] says before it is open),
    /// opened by `opener` when first used.
    pub fn new(kind: &'static str, opener: Opener) -> LazyBackend {
        LazyBackend { kind, opener, opened: tokio::sync::OnceCell::new(), closed: AtomicBool::new(false) }
    }

    /// Whether an open has succeeded.
    pub fn is_open(&self) -> bool {
        self.opened.initialized()
    }

    async fn get(&self) -> Result<&Arc<dyn PersistenceBackend>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::invalid(format!("the {} backend is closed", self.kind)));
        }
        self.opened.get_or_try_init(|| (self.opener)()).await
    }
}

#[async_trait]
impl PersistenceBackend for LazyBackend {
    fn kind(&self) -> &'static str {
        self.opened.get().map_or(self.kind, |b| b.kind())
    }

    /// The backend's once open; before, nothing is promised but persistence.
    fn capabilities(&self) -> Capabilities {
        match self.opened.get() {
            Some(b) => b.capabilities(),
            None => Capabilities {
                transactions: false,
                isolated_transactions: false,
                unique_indexes: false,
                durable_flush: false,
                multi_process: false,
                persistent: true,
            },
        }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        self.get().await?.collection(name).await
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.get().await?.list_collections().await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        self.get().await?.drop_collection(name).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.get().await?.begin().await
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        self.get().await?.snapshot().await
    }

    /// Unhealthy, with the opening error, until an open succeeds.
    async fn health(&self) -> HealthReport {
        let start = std::time::Instant::now();
        match self.get().await {
            Ok(b) => b.health().await,
            Err(e) => HealthReport {
                healthy: false,
                latency: start.elapsed(),
                message: format!("not open yet: {e}"),
            },
        }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.get().await?.stats().await
    }

    /// Nothing to flush before the backend is open.
    async fn flush(&self) -> Result<()> {
        match self.opened.get() {
            Some(b) => b.flush().await,
            None => Ok(()),
        }
    }

    async fn compact(&self) -> Result<CompactReport> {
        self.get().await?.compact().await
    }

    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.get().await?.cleanup(apply).await
    }

    /// Closes the backend if it was opened; later operations are refused, never reopened.
    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        match self.opened.get() {
            Some(b) => b.close().await,
            None => Ok(()),
        }
    }
}
