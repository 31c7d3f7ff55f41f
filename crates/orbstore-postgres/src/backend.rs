//! [`PostgresBackend`]: connecting (pool, TLS, timeouts), migrations, the catalog cache, and the
//! `PersistenceBackend` implementation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use orbstore_core::config::PostgresConfig;
use orbstore_core::shapes::Shapes;
use orbstore_core::{
    validate_collection_name, Capabilities, CleanupReport, CollectionRef, CollectionStats, CompactReport,
    Error, HealthReport, PersistenceBackend, Result, StorageStats, Transaction,
};
use parking_lot::RwLock;
use tokio_postgres::config::SslMode;

use crate::collection::{Exec, PgCollection};
use crate::error::{self, Context};
use crate::layout::Layout;
use crate::transaction::PgTransaction;

/// The schema migrations, embedded; `_migrations` records which are applied.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "catalog", include_str!("../../../migrations/postgres/0001_catalog.sql")),
    (2, "index columns", include_str!("../../../migrations/postgres/0002_index_columns.sql")),
];

/// How long opening a connection may take, unless configured
/// ([`PostgresConfig::connect_timeout`]).
pub const CONNECT_TIMEOUT: Duration = PostgresConfig::DEFAULT_CONNECT_TIMEOUT;
/// How long one statement may run before the server cancels it (`statement_timeout`), unless
/// configured ([`PostgresConfig::statement_timeout`]).
pub const STATEMENT_TIMEOUT: Duration = PostgresConfig::DEFAULT_STATEMENT_TIMEOUT;

/// How long sent data may stay unacknowledged before the connection is dropped (Linux's
/// `TCP_USER_TIMEOUT`): longer than any statement's network round trip, far shorter than the
/// kernel's default retransmission time of about 15 minutes.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an operation waits for a free pooled connection.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled connection.
pub(crate) type Client = ClientWrapper;

/// What the backend and its handles share.
pub struct Shared {
    pool: Pool,
    /// The schema's quoted identifier.
    pub(crate) quoted_schema: String,
    /// The schema's name.
    schema_name: String,
    /// Multikey flags per collection, as last read or written by this process. Only a cache:
    /// every query that relies on it checks it in the same statement (see `ops`).
    shapes: RwLock<HashMap<String, Shapes>>,
    /// Index-column layouts per collection, as last read (see `crate::layout`): only a cache,
    /// since writers behind it are corrected by the table's triggers and readers fail on a
    /// missing column and read it again.
    layouts: RwLock<HashMap<String, Arc<Layout>>>,
    /// Collections this process knows to exist (a write that finds one gone re-creates it).
    pub(crate) known: RwLock<std::collections::HashSet<String>>,
    closed: AtomicBool,
    /// `host:port/database`, for messages (never the password).
    pub(crate) target: String,
    /// How long one operation may wait for the server on the client (see [`Shared::bounded`]);
    /// `None` when the statement timeout is off.
    deadline: Option<Duration>,
    /// The configured timeouts, for messages.
    connect_timeout: Duration,
    statement_timeout: Duration,
    /// Each collection's queue of single inserts (see `crate::batch`).
    inserts: RwLock<HashMap<String, Arc<crate::batch::Inserts>>>,
    insert_counters: crate::batch::Counters,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("target", &self.target).field("schema", &self.schema_name).finish()
    }
}

/// The error for operations after `close()`.
pub(crate) fn closed() -> Error {
    Error::invalid("the PostgreSQL backend was closed")
}

/// What an operation is about, for the deadline's message, formatted only when it is needed:
/// `Subject("collection", "items")` reads `collection "items"`.
pub(crate) struct Subject<'a>(pub(crate) &'static str, pub(crate) &'a str);

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.0, self.1)
    }
}

impl Shared {
    /// Runs one operation within the client-side deadline: the statement timeout plus the
    /// connect timeout (the server's own `statement_timeout` cancels a slow statement first; this
    /// bound is for a server that stopped answering altogether: paused, partitioned away, or
    /// behind a silent network, where nothing on the server ever fires and TCP keeps the
    /// connection open). Past it the operation is a retryable `Unavailable` and the connection it
    /// held is closed, never returned to the pool. With the statement timeout off, unbounded.
    pub(crate) async fn bounded<T>(
        &self,
        what: impl std::fmt::Display,
        operation: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(deadline) = self.deadline else { return operation.await };
        match tokio::time::timeout(deadline, operation).await {
            Ok(result) => result,
            Err(_) => Err(Error::unavailable(format!(
                "{what}: PostgreSQL at {} did not answer within {deadline:?} (statement timeout {:?} \
                 + connect timeout {:?}); its connection was closed",
                self.target, self.statement_timeout, self.connect_timeout
            ))),
        }
    }

    /// A collection's queue of single inserts.
    pub(crate) fn inserts(&self, name: &str) -> Arc<crate::batch::Inserts> {
        if let Some(q) = self.inserts.read().get(name) {
            return q.clone();
        }
        self.inserts
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(crate::batch::Inserts::new()))
            .clone()
    }

    /// The batched inserts' counters.
    pub(crate) fn insert_counters(&self) -> &crate::batch::Counters {
        &self.insert_counters
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object> {
        self.check_open()?;
        self.pool.get().await.map_err(error::pool)
    }

    /// The quoted, schema-qualified table of a collection (names are validated `[a-z][a-z0-9_]*`).
    pub(crate) fn table(&self, name: &str) -> String {
        format!("{}.\"{name}\"", self.quoted_schema)
    }

    /// The schema's name (unquoted).
    pub(crate) fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// A catalog table of the schema.
    pub(crate) fn catalog(&self, table: &str) -> String {
        format!("{}.{table}", self.quoted_schema)
    }

    /// The cached multikey flags of a collection, read from the catalog on first use.
    pub(crate) async fn shapes(&self, c: &Client, name: &str) -> Result<Shapes> {
        if let Some(s) = self.shapes.read().get(name) {
            return Ok(s.clone());
        }
        self.reload_shapes(c, name).await
    }

    /// Reads a collection's multikey flags from the catalog.
    pub(crate) async fn reload_shapes(&self, c: &Client, name: &str) -> Result<Shapes> {
        let sql = format!("SELECT path, kind FROM {} WHERE collection = $1", self.catalog("_shapes"));
        let stmt = c.prepare_cached(&sql).await.ctx("prepare")?;
        let rows = c.query(&stmt, &[&name]).await.ctx("read the multikey flags")?;
        let mut shapes = Shapes::default();
        for r in rows {
            let (path, kind): (String, String) = (r.get(0), r.get(1));
            if kind == "array" {
                shapes.arrays.insert(path);
            } else {
                shapes.objects.insert(path);
            }
        }
        self.shapes.write().insert(name.to_owned(), shapes.clone());
        Ok(shapes)
    }

    /// Adds paths this process wrote to the cache.
    pub(crate) fn learn(&self, name: &str, paths: &[(String, &'static str)]) {
        if paths.is_empty() {
            return;
        }
        let mut all = self.shapes.write();
        let Some(s) = all.get_mut(name) else { return };
        for (path, kind) in paths {
            if *kind == "array" {
                s.arrays.insert(path.clone());
            } else {
                s.objects.insert(path.clone());
            }
        }
    }

    /// The cached index-column layout of a collection, read from the catalog on first use and
    /// again once it is older than [`crate::layout::REFRESH`].
    pub(crate) async fn layout(&self, c: &Client, name: &str) -> Result<Arc<Layout>> {
        if let Some(l) = self.layouts.read().get(name) {
            if l.loaded.elapsed() < crate::layout::REFRESH {
                return Ok(l.clone());
            }
        }
        self.reload_layout(c, name).await
    }

    /// Reads a collection's index-column layout from the catalog.
    pub(crate) async fn reload_layout(&self, c: &Client, name: &str) -> Result<Arc<Layout>> {
        let sql = format!(
            "SELECT c.index_version, i.path, i.base FROM {} c LEFT JOIN {} i ON i.collection = c.name \
             WHERE c.name = $1 ORDER BY i.path",
            self.catalog("_collections"),
            self.catalog("_index_columns")
        );
        let stmt = c.prepare_cached(&sql).await.ctx("prepare")?;
        let rows = c.query(&stmt, &[&name]).await.ctx("read the index columns")?;
        let mut layout = Layout::empty();
        for r in rows {
            layout.version = r.get(0);
            if let (Some(path), Some(base)) = (r.get::<_, Option<String>>(1), r.get::<_, Option<String>>(2)) {
                layout.paths.push((orbstore_core::FieldPath::new(path), base));
            }
        }
        let layout = Arc::new(layout);
        self.layouts.write().insert(name.to_owned(), layout.clone());
        Ok(layout)
    }

    /// Forgets the cached index-column layout of a collection.
    pub(crate) fn forget_layout(&self, name: &str) {
        self.layouts.write().remove(name);
    }

    /// Forgets what is cached about a collection.
    pub(crate) fn forget(&self, name: &str) {
        self.shapes.write().remove(name);
        self.layouts.write().remove(name);
        self.known.write().remove(name);
    }
}

/// The PostgreSQL backend: one table per collection in a schema of its own, shared safely by
/// many processes.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    shared: Arc<Shared>,
}

/// Checks a schema name: `[a-z_][a-z0-9_]*`, at most 63 bytes (it is quoted anyway; the rule
/// keeps it one obvious identifier).
fn validate_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid PostgreSQL schema name {schema:?}: 1 to 63 characters from [a-z0-9_], not starting with a digit"
        )))
    }
}

fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

impl PostgresBackend {
    /// Connects, creates the schema if needed and applies the migrations it lacks (under an
    /// advisory lock, so processes opening at once apply each exactly once).
    ///
    /// A server that does not answer is a retryable `Unavailable` within the connect timeout
    /// (for the connection) plus the statement timeout (for the migration check).
    pub async fn open(config: PostgresConfig) -> Result<PostgresBackend> {
        validate_schema(&config.schema)?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .dbname(&config.database)
            .user(&config.user)
            .application_name("orbstore")
            .connect_timeout(config.connect_timeout)
            // A peer that vanishes (a cut cable, a dropped route) is noticed by the kernel:
            // unacknowledged sends give up after TCP_USER_TIMEOUT, an idle connection after
            // the keepalive probes (10 s idle, then 3 probes 5 s apart), instead of the
            // system's two hours. A server that answers TCP but not queries is bounded only by
            // the server's statement_timeout, or RetryConfig::with_attempt_timeout above it.
            .tcp_user_timeout(TCP_USER_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .options(format!(
                // plan_cache_mode: a generic plan of a prepared range query cannot see its
                // bounds and picked a plan 25% slower on the range benchmark; planning each
                // execution costs tens of microseconds.
                "-c statement_timeout={} -c plan_cache_mode=force_custom_plan",
                config.statement_timeout.as_millis()
            ));
        if let Some(p) = &config.password {
            pg.password(p.expose());
        }
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if config.ssl {
            pg.ssl_mode(SslMode::Require);
            Manager::from_config(pg, tls_connector(), manager_config)
        } else {
            pg.ssl_mode(SslMode::Disable);
            Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| Error::invalid(format!("PostgreSQL pool configuration: {e}")))?;
        let target = format!("{}:{}/{}", config.host, config.port, config.database);
        let shared = Arc::new(Shared {
            pool,
            quoted_schema: format!("\"{}\"", config.schema),
            schema_name: config.schema.clone(),
            shapes: RwLock::new(HashMap::new()),
            layouts: RwLock::new(HashMap::new()),
            known: RwLock::new(Default::default()),
            closed: AtomicBool::new(false),
            target: target.clone(),
            deadline: (!config.statement_timeout.is_zero())
                .then(|| config.statement_timeout + config.connect_timeout),
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
            inserts: RwLock::new(HashMap::new()),
            insert_counters: crate::batch::Counters::default(),
        });
        let mut client = shared.client().await.map_err(|e| {
            Error::new(e.kind(), format!("cannot connect to PostgreSQL at {target}: {}", e.message()))
                .with_source(e)
        })?;
        let migrated = shared.bounded("apply migrations", migrate(&mut client, &config.schema)).await;
        if migrated.is_err() {
            // Possibly mid-transaction: close it rather than pool it.
            drop(Object::take(client));
        }
        migrated?;
        tracing::debug!(target = %target, schema = %config.schema, "opened the PostgreSQL backend");
        Ok(PostgresBackend { shared })
    }

    /// How many statements the single inserts outside transactions took, and how many
    /// documents they carried (concurrent inserts into one collection share statements: see
    /// [`MAX_BATCH`](crate::MAX_BATCH)).
    pub fn insert_statements(&self) -> (u64, u64) {
        let c = self.shared.insert_counters();
        (c.statements.load(Ordering::Relaxed), c.documents.load(Ordering::Relaxed))
    }

    /// How many stored rows of a collection hold typed index columns that disagree with their
    /// document (the columns' values computed again in SQL from the `json` text): 0 unless a
    /// write path is wrong or the table was edited by hand. A consistency check for tests and
    /// tools; it reads the whole table.
    pub async fn index_column_mismatches(&self, collection: &str) -> Result<u64> {
        let sh = &self.shared;
        let c = sh.client().await?;
        let layout = sh.reload_layout(&c, collection).await?;
        if layout.is_empty() {
            return Ok(0);
        }
        let mut differs = Vec::new();
        for (path, base) in &layout.paths {
            let stored = crate::layout::names(base);
            let computed = crate::sql::columns(path).expect("indexed paths hold no NUL");
            for (s, e) in stored.iter().zip(computed) {
                differs.push(format!("{s} IS DISTINCT FROM {e}"));
            }
        }
        let sql = format!("SELECT count(*) FROM {} WHERE {}", sh.table(collection), differs.join(" OR "));
        let n: i64 = c.query_one(&sql, &[]).await.ctx("check the index columns")?.get(0);
        Ok(n as u64)
    }

    /// The schema holding this backend's tables.
    pub fn schema(&self) -> &str {
        &self.shared.schema_name
    }

    /// A pooled connection, for tests and tools that look at the tables directly.
    pub async fn raw_client(&self) -> Result<Object> {
        self.shared.client().await
    }

    /// The plan of a query and PostgreSQL's `EXPLAIN` of it.
    pub async fn explain(
        &self,
        collection: &str,
        query: &orbstore_core::Query,
    ) -> Result<(crate::Plan, Vec<String>)> {
        validate_collection_name(collection)?;
        query.validate()?;
        self.shared
            .bounded("explain", async {
                let client = self.shared.client().await?;
                crate::ops::explain(&client, &self.shared, collection, query).await
            })
            .await
    }
}

/// Creates the schema and applies missing migrations in one transaction under an advisory lock.
async fn migrate(client: &mut Object, schema: &str) -> Result<()> {
    let tx = client.transaction().await.ctx("begin the migration")?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("orbstore-migrate:{schema}")])
        .await
        .ctx("take the migration lock")?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         SET LOCAL search_path TO \"{schema}\";
         CREATE TABLE IF NOT EXISTS _migrations (
             version int PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .ctx("create the schema")?;
    let applied: i32 = tx
        .query_one("SELECT COALESCE(max(version), 0) FROM _migrations", &[])
        .await
        .ctx("read migrations")?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > known {
        return Err(Error::unsupported(format!(
            "schema \"{schema}\" is at migration {applied}, newer than this orbstore knows ({known}); upgrade orbstore"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        tx.batch_execute(sql).await.ctx(&format!("apply migration {version} ({name})"))?;
        tx.execute("INSERT INTO _migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .ctx("record a migration")?;
        tracing::info!(schema, version, name, "applied a PostgreSQL migration");
    }
    tx.commit().await.ctx("commit the migration")
}

#[async_trait]
impl PersistenceBackend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: true,
            isolated_transactions: true,
            unique_indexes: true,
            durable_flush: true,
            multi_process: true,
            persistent: true,
        }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        let coll = PgCollection::new(name, Exec::Direct(self.shared.clone()));
        coll.ensure().await?;
        Ok(Arc::new(coll))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.shared
            .bounded("list collections", async {
                let c = self.shared.client().await?;
                let sql = format!("SELECT name FROM {} ORDER BY name", self.shared.catalog("_collections"));
                let rows = c.query(&sql, &[]).await.ctx("list collections")?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        let exec = Exec::Direct(self.shared.clone());
        let existed = self
            .shared
            .bounded(Subject("drop collection", name), async {
                let scope = exec.scope(true).await?;
                let result = crate::ops::drop_collection(scope.client(), &self.shared, name).await;
                scope.end(result).await
            })
            .await?;
        self.shared.forget(name);
        Ok(existed)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(PgTransaction::begin(self.shared.clone()).await?))
    }

    async fn snapshot(&self) -> Result<Box<dyn orbstore_core::Snapshot>> {
        Ok(Box::new(crate::snapshot::PgSnapshot::begin(self.shared.clone()).await?))
    }

    async fn health(&self) -> HealthReport {
        let start = Instant::now();
        let result = self
            .shared
            .bounded("health check", async {
                let c = self.shared.client().await?;
                let v: String = c.query_one("SELECT version()", &[]).await.ctx("health check")?.get(0);
                Ok::<_, Error>(v)
            })
            .await;
        let latency = start.elapsed();
        match result {
            Ok(version) => HealthReport {
                healthy: true,
                latency,
                message: format!("{} answered in {latency:?}: {version}", self.shared.target),
            },
            Err(e) => HealthReport { healthy: false, latency, message: e.to_string() },
        }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.shared.bounded("read statistics", self.read_stats()).await
    }

    async fn flush(&self) -> Result<()> {
        // Every acknowledged write was committed with synchronous_commit (the server default).
        self.shared.check_open()
    }

    /// `VACUUM (ANALYZE)` of every collection table: dead rows' space becomes reusable and the
    /// planner's statistics are refreshed. (Not `VACUUM FULL`, which would lock each table
    /// against every reader while it rewrites it; the bytes may therefore not shrink.) The
    /// statement timeout and the client-side deadline do not apply to the VACUUMs.
    async fn compact(&self) -> Result<CompactReport> {
        self.vacuum().await
    }

    /// Finds, in the backend's schema only, catalog rows without their table, catalog index
    /// rows without their index, `_ix_…` indexes the catalog does not describe, and tables named
    /// like a collection without a catalog row (listed, never dropped: they hold data); see
    /// `crate::cleanup`. The listing reads one snapshot; each collection's orphans are removed
    /// in a transaction holding its advisory lock, as `drop_collection` takes it, after looking
    /// again under the lock.
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.check_open()?;
        self.shared.bounded("cleanup", crate::cleanup::run(&self.shared, apply)).await
    }

    async fn close(&self) -> Result<()> {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            self.shared.pool.close();
        }
        Ok(())
    }
}

impl PostgresBackend {
    async fn read_stats(&self) -> Result<StorageStats> {
        let c = self.shared.client().await?;
        let sh = &self.shared;
        let sql = format!(
            "SELECT c.name, to_regclass($1 || '.\"' || c.name || '\"') IS NOT NULL,
                    COALESCE(pg_total_relation_size(to_regclass($1 || '.\"' || c.name || '\"')), 0),
                    (SELECT count(*) FROM {} i WHERE i.collection = c.name)
             FROM {} c ORDER BY c.name",
            sh.catalog("_indexes"),
            sh.catalog("_collections")
        );
        let rows = c.query(&sql, &[&sh.quoted_schema]).await.ctx("read statistics")?;
        let mut collections = Vec::with_capacity(rows.len());
        let mut warnings = Vec::new();
        for r in rows {
            let (name, exists, bytes, indexes): (String, bool, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if !exists {
                warnings.push(format!("collection {name:?} is in the catalog but its table is missing"));
                continue;
            }
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {}", sh.table(&name)), &[])
                .await
                .ctx("count documents")?
                .get(0);
            collections.push(CollectionStats {
                name,
                documents: n as u64,
                bytes: Some(bytes as u64),
                indexes: indexes as u64,
            });
        }
        let total: i64 = c
            .query_one(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                &[&sh.schema_name],
            )
            .await
            .ctx("read the schema size")?
            .get(0);
        Ok(StorageStats {
            backend: "postgres".into(),
            collections,
            warnings,
            storage_bytes: Some(total as u64),
        })
    }

    async fn vacuum(&self) -> Result<CompactReport> {
        let before = self.stats().await?;
        let c = self.shared.client().await?;
        let mut actions = Vec::new();
        // A VACUUM of a large table outlasts the session's statement_timeout; VACUUM cannot run
        // in a transaction (so no SET LOCAL): lift it for this session and reset it after.
        c.batch_execute("SET statement_timeout = 0").await.ctx("lift the statement timeout for VACUUM")?;
        let mut vacuumed = Ok(());
        for coll in &before.collections {
            let r = c
                .batch_execute(&format!("VACUUM (ANALYZE) {}", self.shared.table(&coll.name)))
                .await
                .ctx(&format!("VACUUM (ANALYZE) of {}", coll.name));
            if let Err(e) = r {
                vacuumed = Err(e);
                break;
            }
            actions.push(format!("VACUUM (ANALYZE) {}", coll.name));
        }
        c.batch_execute("RESET statement_timeout").await.ctx("reset the statement timeout")?;
        vacuumed?;
        if actions.is_empty() {
            actions.push("no collections".to_owned());
        }
        drop(c);
        let after = self.stats().await?.storage_bytes;
        Ok(CompactReport {
            backend: "postgres".into(),
            actions,
            bytes_before: before.storage_bytes,
            bytes_after: after,
        })
    }
}
