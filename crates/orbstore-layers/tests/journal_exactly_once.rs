//! Exactly once in effect, shown without timing luck: the server applies writes but the answer
//! is lost (every third write through a wrapper succeeds on the server and then reports
//! `Unavailable`, as a connection dropped after the batch was sent would), on a server with
//! transactions (batches replaced in one transaction, the commit's answer lost) and one without
//! (one upsert or delete per document). The journal re-sends; every insert lands once and every
//! counter equals its acknowledged increments. And a write the server refuses for good (a unique
//! index another writer's data holds) goes to the dead-letter list with its error, persisted
//! across a reopen, while the rest of the journal goes on.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use orbstore_core::{
    Capabilities, CollectionExt, CollectionRef, Error, Filter, HealthReport, IndexSpec, PersistenceBackend,
    Query, Result, StorageStats, Transaction, Update,
};
use orbstore_layers::{Around, AroundBackend, JournalConfig, JournalLayer, Op};
use orbstore_memory::MemoryBackend;
use serde_json::json;

/// Lets every `every`-th write reach the server and then reports it failed.
struct LoseAnswers {
    every: u64,
    writes: AtomicU64,
    lost: Arc<AtomicU64>,
}

impl Around for LoseAnswers {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let result = f().await;
            let ambiguous = (op.write && !op.in_transaction) || op.name == "commit";
            if ambiguous
                && result.is_ok()
                && self.writes.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.every)
            {
                self.lost.fetch_add(1, Ordering::Relaxed);
                return Err(Error::unavailable(format!(
                    "{}: connection lost after the server applied it",
                    op.name
                )));
            }
            result
        })
    }
}

/// The memory backend without transactions (as a MongoDB standalone or nx-27017 reports).
#[derive(Debug)]
struct NoTransactions(Arc<MemoryBackend>);

#[async_trait]
impl PersistenceBackend for NoTransactions {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { transactions: false, isolated_transactions: false, ..self.0.capabilities() }
    }
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        self.0.collection(name).await
    }
    async fn list_collections(&self) -> Result<Vec<String>> {
        self.0.list_collections().await
    }
    async fn drop_collection(&self, name: &str) -> Result<bool> {
        self.0.drop_collection(name).await
    }
    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Err(Error::unsupported("no transactions here"))
    }
    async fn health(&self) -> HealthReport {
        self.0.health().await
    }
    async fn stats(&self) -> Result<StorageStats> {
        self.0.stats().await
    }
    async fn flush(&self) -> Result<()> {
        self.0.flush().await
    }
    async fn close(&self) -> Result<()> {
        self.0.close().await
    }
}

fn config(dir: &std::path::Path) -> JournalConfig {
    let mut c = JournalConfig::new(dir.join("journal"));
    c.min_backoff = Duration::from_millis(5);
    c.max_backoff = Duration::from_millis(20);
    c.batch = 50;
    c
}

async fn lost_answers_apply_each_write_once(with_transactions: bool) {
    let server = Arc::new(MemoryBackend::new());
    let lost = Arc::new(AtomicU64::new(0));
    let faulty: Arc<dyn PersistenceBackend> =
        if with_transactions { server.clone() } else { Arc::new(NoTransactions(server.clone())) };
    let inner = Arc::new(AroundBackend::new(
        faulty,
        LoseAnswers { every: 3, writes: AtomicU64::new(0), lost: lost.clone() },
    ));
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(
        JournalLayer::open(inner, Arc::new(MemoryBackend::new()), config(dir.path())).await.expect("open"),
    );
    let counters = layer.collection("counters").await.unwrap();
    counters.insert_value(json!({"_id": "c", "n": 0})).await.unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let layer = layer.clone();
            tokio::spawn(async move {
                let items = layer.collection("items").await.unwrap();
                let counters = layer.collection("counters").await.unwrap();
                for i in 0..150 {
                    items.insert_value(json!({"tag": format!("{w}-{i}")})).await.unwrap();
                    assert!(counters.update_by_id("c", &Update::new().inc("n", 1)).await.unwrap());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let status = layer.sync_now(Duration::from_secs(60)).await.expect("drains");
    assert!(status.synced && status.dead_letters.is_empty(), "{status:?}");
    assert!(lost.load(Ordering::Relaxed) > 3, "the wrapper must have lost answers");
    let items = server.collection("items").await.unwrap().find(&Query::all()).await.unwrap();
    let mut tags: Vec<&str> = items.iter().map(|d| d["tag"].as_str().unwrap()).collect();
    tags.sort();
    let before = tags.len();
    tags.dedup();
    assert_eq!((before, tags.len()), (600, 600), "every insert exactly once");
    let c = server.collection("counters").await.unwrap().find_by_id("c").await.unwrap().unwrap();
    assert_eq!(c["n"], 600, "a re-sent increment must not count twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_apply_each_write_once_with_transactions() {
    lost_answers_apply_each_write_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_apply_each_write_once_without_transactions() {
    lost_answers_apply_each_write_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_server_refuses_goes_to_dead_letters_and_the_rest_goes_on() {
    let server = Arc::new(MemoryBackend::new());
    let dir = tempfile::tempdir().unwrap();
    let local_dir = dir.path().join("replica");
    let open = |server: Arc<MemoryBackend>| {
        let (config, local_dir) = (config(dir.path()), local_dir.clone());
        async move {
            let local =
                orbstore_file::FileBackend::open(orbstore_core::FileConfig::new(local_dir)).await.unwrap();
            JournalLayer::open(server, Arc::new(local), config).await.unwrap()
        }
    };
    let layer = open(server.clone()).await;
    let users = layer.collection("users").await.unwrap();
    layer.sync_now(Duration::from_secs(10)).await.unwrap();
    // Another writer, on the server only: a unique index and a document holding the email.
    let theirs = server.collection("users").await.unwrap();
    theirs.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
    theirs.insert_value(json!({"_id": "theirs", "email": "a@example.org"})).await.unwrap();
    users.insert_value(json!({"_id": "before", "email": "b@example.org"})).await.unwrap();
    users.insert_value(json!({"_id": "mine", "email": "a@example.org"})).await.unwrap();
    users.insert_value(json!({"_id": "after", "email": "c@example.org"})).await.unwrap();
    let status = layer.sync_now(Duration::from_secs(10)).await.expect("the rest is shipped");
    assert!(status.synced, "{status:?}");
    assert_eq!(status.dead_letters.len(), 1, "{status:?}");
    let dead = &status.dead_letters[0];
    assert_eq!(
        (dead.collection.as_str(), dead.id.as_deref(), dead.op.as_str()),
        ("users", Some("mine"), "put")
    );
    assert!(dead.error.starts_with("conflict"), "{}", dead.error);
    let ids: Vec<String> = theirs
        .find(&Query::new(Filter::All))
        .await
        .unwrap()
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["after", "before", "theirs"]);
    // The local replica keeps the write; the dead letter survives a reopen.
    assert!(users.find_by_id("mine").await.unwrap().is_some());
    layer.close().await.unwrap();
    let layer = open(server.clone()).await;
    assert_eq!(layer.sync_status().dead_letters, status.dead_letters);
    assert_eq!(layer.clear_dead_letters().await.unwrap(), 1);
    assert!(layer.sync_status().dead_letters.is_empty());
    layer.close().await.unwrap();
}
