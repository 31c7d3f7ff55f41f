//! [`MongoBackend`]: connecting (bounded server selection), asking the server what it is, and the
//! `PersistenceBackend` implementation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use orbstore_core::{
    validate_collection_name, Capabilities, CleanupReport, CollectionRef, CollectionStats, CompactReport,
    Error, HealthReport, MongoConfig, MongoQueryMode, PersistenceBackend, Result, StorageStats, Transaction,
};

use crate::collection::MongoCollection;
use crate::error::Context;
use crate::transaction::MongoTransaction;

/// How long finding a server may take before an operation fails with `Unavailable`.
pub const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The collection holding orbstore's index catalog (a name no collection can have: collection
/// names start with a letter).
pub(crate) const INDEX_CATALOG: &str = "_orbstore_indexes";

/// How queries run (see `docs/architecture.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The query goes to the server.
    Native,
    /// `_id` lookups go to the server; orbstore's evaluator decides the rest.
    Exact,
}

/// What the backend and its handles share.
#[derive(Debug)]
pub struct Shared {
    pub(crate) db: Database,
    pub(crate) client: Client,
    pub(crate) mode: Mode,
    caps: Capabilities,
    closed: AtomicBool,
    /// What the server said it is, for messages.
    pub(crate) server: String,
}

impl Shared {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::invalid("the MongoDB backend was closed"))
        } else {
            Ok(())
        }
    }
}

/// The MongoDB backend: one MongoDB collection per collection, in one database.
#[derive(Debug, Clone)]
pub struct MongoBackend {
    shared: Arc<Shared>,
}

/// Whether `buildInfo` describes MongoDB itself: it has a `gitVersion`, and no section naming
/// another implementation (FerretDB adds `ferretdb`; nx-27017 answers with `process: nx_27017`).
fn is_mongodb(build: &BsonDocument) -> bool {
    build.contains_key("gitVersion")
        && !build.contains_key("ferretdb")
        && build.get_str("process").map_or(true, |p| p == "mongod" || p == "mongos")
}

impl MongoBackend {
    /// Connects (a server that does not answer is a retryable `Unavailable` within
    /// [`SERVER_SELECTION_TIMEOUT`]), asks the server what it is, and chooses the query mode.
    pub async fn open(config: MongoConfig) -> Result<MongoBackend> {
        Self::open_with(config, false).await
    }

    /// [`MongoBackend::open`], also offering transactions on a server that runs them without
    /// isolation (nx-27017: other clients see uncommitted writes, and an abort rolls back other
    /// clients' writes to the same database). For tests that give each client a database of its
    /// own; `capabilities().isolated_transactions` stays false.
    pub async fn open_allowing_unisolated_transactions(config: MongoConfig) -> Result<MongoBackend> {
        Self::open_with(config, true).await
    }

    async fn open_with(config: MongoConfig, allow_unisolated: bool) -> Result<MongoBackend> {
        let mut options = ClientOptions::parse(config.url.expose()).await.map_err(|e| {
            Error::invalid(format!(
                "invalid MongoDB URL {}: {e}",
                orbstore_core::config::redact_url(config.url.expose())
            ))
        })?;
        options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "orbstore".to_owned());
        let target = options.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
        let client = Client::with_options(options)
            .map_err(|e| crate::error::map("configure the MongoDB client", e))?;
        let admin = client.database("admin");
        let build = admin.run_command(doc! {"buildInfo": 1}).await.map_err(|e| {
            let e = crate::error::map(&format!("connect to MongoDB at {target}"), e);
            Error::new(e.kind(), e.message().to_owned()).with_source(e)
        })?;
        let hello = admin.run_command(doc! {"hello": 1}).await.ctx("ask the server what it is")?;
        let mongodb = is_mongodb(&build);
        let mode = match config.query_mode {
            MongoQueryMode::Native => Mode::Native,
            MongoQueryMode::Exact => Mode::Exact,
            MongoQueryMode::Auto if mongodb => Mode::Native,
            MongoQueryMode::Auto => Mode::Exact,
        };
        let version = build.get_str("version").unwrap_or("?");
        let replicated = hello.contains_key("setName") || hello.get_str("msg") == Ok("isdbgrid");
        let server = format!(
            "{} {version} at {target} ({}, {} queries)",
            if mongodb { "MongoDB" } else { "a MongoDB-compatible server" },
            if replicated { "replicated" } else { "standalone" },
            if mode == Mode::Native { "native" } else { "exact" }
        );
        // MongoDB runs isolated transactions on replica sets and sharded clusters; whether the
        // server really runs one is asked, not assumed (a standalone mongod refuses).
        let isolated = mongodb && replicated;
        let transactions =
            (isolated || allow_unisolated) && probe_transaction(&client, &config.database).await;
        let caps = Capabilities {
            transactions,
            isolated_transactions: transactions && isolated,
            // Native only: a compatible server's own unique indexes follow its own semantics.
            unique_indexes: mode == Mode::Native,
            // Acknowledged writes are journaled by a replica set's majority; a standalone or a
            // compatible server says nothing we can rely on.
            durable_flush: mongodb && replicated,
            multi_process: true,
            persistent: true,
        };
        tracing::debug!(server = %server, "opened the MongoDB backend");
        let db = client.database(&config.database);
        Ok(MongoBackend {
            shared: Arc::new(Shared { db, client, mode, caps, closed: AtomicBool::new(false), server }),
        })
    }

    /// How this backend runs queries.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// What the server said it is.
    pub fn server(&self) -> &str {
        &self.shared.server
    }

    /// The database, for tests and tools that look at it directly.
    pub fn database(&self) -> &Database {
        &self.shared.db
    }

    async fn collection_names(&self) -> Result<Vec<String>> {
        let mut names = self.shared.db.list_collection_names().await.ctx("list collections")?;
        names.retain(|n| validate_collection_name(n).is_ok());
        names.sort();
        Ok(names)
    }
}

#[async_trait]
impl PersistenceBackend for MongoBackend {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.caps
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        let coll = MongoCollection::new(name, self.shared.clone());
        coll.ensure().await?;
        Ok(Arc::new(coll))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.shared.check_open()?;
        self.collection_names().await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        let existed = self.collection_names().await?.iter().any(|n| n == name);
        if existed {
            self.shared.db.collection::<BsonDocument>(name).drop().await.ctx("drop a collection")?;
        }
        self.shared
            .db
            .collection::<BsonDocument>(INDEX_CATALOG)
            .delete_many(doc! {"collection": name})
            .await
            .ctx("update the index catalog")?;
        Ok(existed)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.shared.check_open()?;
        if !self.shared.caps.transactions {
            return Err(Error::unsupported(format!(
                "transactions need a MongoDB replica set or sharded cluster; connected to {}",
                self.shared.server
            )));
        }
        Ok(Box::new(MongoTransaction::begin(self.shared.clone()).await?))
    }

    async fn health(&self) -> HealthReport {
        let start = Instant::now();
        let result = async {
            self.shared.check_open()?;
            self.shared.db.run_command(doc! {"ping": 1}).await.ctx("ping")
        }
        .await;
        let latency = start.elapsed();
        match result {
            Ok(_) => HealthReport {
                healthy: true,
                latency,
                message: format!("{} answered a ping in {latency:?}", self.shared.server),
            },
            Err(e) => HealthReport { healthy: false, latency, message: e.to_string() },
        }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.shared.check_open()?;
        let mut collections = Vec::new();
        let mut warnings = Vec::new();
        let catalog = self.shared.db.collection::<BsonDocument>(INDEX_CATALOG);
        for name in self.collection_names().await? {
            let coll = self.shared.db.collection::<BsonDocument>(&name);
            let documents = coll.count_documents(doc! {}).await.ctx("count documents")?;
            let indexes = catalog.count_documents(doc! {"collection": &name}).await.ctx("count indexes")?;
            let bytes = match self.shared.db.run_command(doc! {"collStats": &name}).await {
                Ok(s) => s.get("storageSize").and_then(bson_u64).or_else(|| s.get("size").and_then(bson_u64)),
                Err(e) => {
                    warnings.push(format!("no size for {name:?}: the server refused collStats ({e})"));
                    None
                }
            };
            collections.push(CollectionStats { name, documents, bytes, indexes });
        }
        Ok(StorageStats { backend: "mongodb".into(), collections, warnings, storage_bytes: None })
    }

    async fn flush(&self) -> Result<()> {
        // Every write was acknowledged by the server before it returned.
        self.shared.check_open()
    }

    /// MongoDB's `compact` per collection; a server that refuses it (a compatible server, or a
    /// user without the privilege) is reported in the actions, not as an error. The sizes are
    /// the collections' storage sizes, as `stats` reports them.
    async fn compact(&self) -> Result<CompactReport> {
        let sizes = |s: &StorageStats| -> Option<u64> { s.collections.iter().map(|c| c.bytes).sum() };
        let before = self.stats().await?;
        let mut actions = Vec::new();
        for c in &before.collections {
            match self.shared.db.run_command(doc! {"compact": &c.name}).await {
                Ok(_) => actions.push(format!("compact {}", c.name)),
                Err(e) => actions.push(format!("{}: the server refused compact ({e})", c.name)),
            }
        }
        if actions.is_empty() {
            actions.push("no collections".to_owned());
        }
        let after = self.stats().await?;
        Ok(CompactReport {
            backend: "mongodb".into(),
            actions,
            bytes_before: sizes(&before),
            bytes_after: sizes(&after),
        })
    }

    /// MongoDB keeps collections and indexes itself (an index drops with its collection); what
    /// can be left behind is in orbstore's index catalog: rows whose collection or index is
    /// missing, and indexes shaped like orbstore's that no row describes (what a crash between
    /// the two steps of `create_index` or `drop_collection` leaves); see `crate::cleanup`.
    /// MongoDB has no lock those take, so each removal looks again just before it.
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.check_open()?;
        let live = self.collection_names().await?;
        crate::cleanup::run(&self.shared, live, apply).await
    }

    async fn close(&self) -> Result<()> {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            self.shared.client.clone().shutdown().await;
        }
        Ok(())
    }
}

/// Whether the server runs a transaction: start one, read in it, abort it.
async fn probe_transaction(client: &Client, database: &str) -> bool {
    let Ok(mut session) = client.start_session().await else { return false };
    if session.start_transaction().await.is_err() {
        return false;
    }
    let coll = client.database(database).collection::<BsonDocument>(INDEX_CATALOG);
    let read = coll.find_one(doc! {}).session(&mut session).await.is_ok();
    let _ = session.abort_transaction().await;
    read
}

fn bson_u64(b: &Bson) -> Option<u64> {
    match b {
        Bson::Int32(i) => u64::try_from(*i).ok(),
        Bson::Int64(i) => u64::try_from(*i).ok(),
        Bson::Double(f) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}
