//! [`SqliteBackend`]: opening (pragmas, migrations, catalog), reader connections, and the
//! `PersistenceBackend` implementation.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use orbstore_core::{
    validate_collection_name, Capabilities, CleanupReport, CollectionRef, CollectionStats, CompactReport,
    Error, HealthReport, IndexSpec, PersistenceBackend, Query, Result, Snapshot, SqliteConfig,
    SqliteLocation, SqliteSync, StorageStats, Transaction,
};
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OpenFlags};

use crate::collection::{Exec, SqliteCollection};
use crate::error::Context;
use crate::ops::Plan;
use crate::transaction::SqliteTransaction;
use crate::worker::{closed, Worker, Writer};
use orbstore_core::shapes::Shapes;

/// The schema migrations, embedded; `PRAGMA user_version` records how many are applied.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/sqlite/0001_catalog.sql")];

/// What the catalog says about one collection.
#[derive(Debug, Clone, Default)]
pub struct CollMeta {
    pub(crate) shapes: Shapes,
    pub(crate) indexes: Vec<IndexSpec>,
}

/// The catalog, cached in memory (this process is the only writer; see `Capabilities`).
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub collections: BTreeMap<String, CollMeta>,
}

/// The quoted table name of a collection (names are validated `[a-z][a-z0-9_]*`).
pub(crate) fn table(name: &str) -> String {
    format!("\"c_{name}\"")
}

/// What the backend, its handles and its writer share.
#[derive(Debug)]
pub struct Shared {
    pub(crate) catalog: Arc<RwLock<Catalog>>,
    pub(crate) worker: Worker,
    readers: Mutex<Vec<Connection>>,
    pub(crate) path: Option<PathBuf>,
    closed: AtomicBool,
    /// Held while open: the catalog cache is only right with one writing process.
    lock: Mutex<Option<std::fs::File>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: let the writer finish its queue and stop.
        self.worker.shutdown();
    }
}

impl Shared {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// Whether plain reads have connections of their own (file databases, in WAL mode).
    pub(crate) fn has_readers(&self) -> bool {
        self.path.is_some()
    }

    /// Runs `f` on a reader connection, off the async runtime.
    pub(crate) async fn read<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection, &Catalog) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.check_open()?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match me.readers.lock().pop() {
                Some(c) => c,
                None => open_reader(me.path.as_deref().unwrap_or(Path::new(":memory:")))?,
            };
            let result = f(&conn, &me.catalog.read());
            if !me.closed.load(Ordering::Acquire) {
                me.readers.lock().push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::backend("a SQLite reader task failed", e))?
    }
}

pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ctx(&format!("open {} for reading", path.display()))?;
    conn.busy_timeout(crate::worker::BUSY_TIMEOUT).ctx("set busy_timeout")?;
    // Opened read-write (a read-only connection was slower on the range benchmark) but refusing
    // every write: only the writer thread writes.
    conn.execute_batch(READ_PRAGMAS)
        .and_then(|()| conn.execute_batch("PRAGMA query_only = ON"))
        .ctx("set pragmas")?;
    Ok(conn)
}

/// Memory-mapped reads (up to 1 GiB) spare a `read(2)` and a copy per page, and a larger page
/// cache keeps index pages: measured on the 10k-document range query in `benches/sqlite.rs`.
const READ_PRAGMAS: &str = "PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536;";

/// The SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    shared: Arc<Shared>,
    sync: SqliteSync,
}

impl SqliteBackend {
    /// Opens (creating) a database: WAL journal, `synchronous` as configured, a busy timeout,
    /// foreign keys on, then the embedded migrations. A file that is not an SQLite database, or
    /// is damaged, is `Corrupt`; a schema newer than this code is `Unsupported`.
    pub async fn open(config: SqliteConfig) -> Result<SqliteBackend> {
        let sync = config.synchronous;
        let (conn, path, catalog, lock) = tokio::task::spawn_blocking(move || open_blocking(&config))
            .await
            .map_err(|e| Error::backend("the SQLite open task failed", e))??;
        let catalog = Arc::new(RwLock::new(catalog));
        let worker = Worker::spawn(conn, catalog.clone(), path.is_some());
        let shared = Arc::new(Shared {
            catalog,
            worker,
            readers: Mutex::new(Vec::new()),
            path,
            closed: AtomicBool::new(false),
            lock: Mutex::new(lock),
        });
        Ok(SqliteBackend { shared, sync })
    }

    /// How a query on a collection runs: the SQL orbstore generates (values as parameters),
    /// whether it is exact or needs the evaluator, and SQLite's `EXPLAIN QUERY PLAN` lines.
    pub async fn explain(&self, collection: &str, query: &Query) -> Result<(Plan, Vec<String>)> {
        validate_collection_name(collection)?;
        query.validate()?;
        self.shared.check_open()?;
        let (name, q) = (collection.to_owned(), query.clone());
        self.shared
            .worker
            .call(move |w| {
                let meta = w.catalog.read().collections.get(&name).cloned();
                crate::ops::explain(&w.conn, &name, meta.as_ref(), &q)
            })
            .await
    }

    /// The database file (`None` for `:memory:`).
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }
}

/// Takes `<db>.orbstore-lock` with an OS lock (released when the process dies), so that a second
/// process gets a clear error instead of a stale catalog cache.
fn lock_database(path: &Path) -> Result<std::fs::File> {
    let lock_path = PathBuf::from(format!("{}.orbstore-lock", path.display()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("cannot open the lock file {}", lock_path.display()), e))?;
    // Retry briefly: a child forked by another thread holds inherited locks until it execs.
    let deadline = Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::unavailable(format!(
                "{} is open in another orbstore process; one process may use an SQLite database at a time",
                path.display()
            )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", lock_path.display()), e))
            }
        }
    }
}

type Opened = (Connection, Option<PathBuf>, Catalog, Option<std::fs::File>);

/// The mode of the files the backend creates: the database, its lock file and (SQLite's unix VFS
/// gives them the database's mode, whatever the umask) its `-wal`, `-shm` and `-journal` files.
const PRIVATE_FILE: u32 = 0o600;
/// The mode of the directories the backend creates; an existing directory keeps its own.
const PRIVATE_DIR: u32 = 0o700;

/// Creates the database's missing parent directories (0700) and the database file itself (0600,
/// empty: SQLite takes an empty file for a new database) before SQLite opens it, which would
/// create it 0644 less the umask. Existing directories and an existing database keep their modes.
fn create_private(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR)
            .create(parent)
            .map_err(|e| Error::io(format!("cannot create the directory {}", parent.display()), e))?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(path)
        .map(drop)
        .map_err(|e| Error::io(format!("cannot create the database {}", path.display()), e))
}

fn open_blocking(config: &SqliteConfig) -> Result<Opened> {
    let (conn, path, lock) = match &config.location {
        SqliteLocation::Memory => {
            (Connection::open_in_memory().ctx("open an in-memory database")?, None, None)
        }
        SqliteLocation::File(path) => {
            create_private(path)?;
            let lock = lock_database(path)?;
            (Connection::open(path).ctx(&format!("open {}", path.display()))?, Some(path.clone()), Some(lock))
        }
    };
    let what = path.as_ref().map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string());
    let corrupt = |e: Error| {
        if e.kind() == orbstore_core::ErrorKind::Corrupt {
            Error::corrupt(format!("{what} is not a usable SQLite database: {}", e.message()))
        } else {
            e
        }
    };
    conn.busy_timeout(crate::worker::BUSY_TIMEOUT).ctx("set busy_timeout")?;
    if path.is_some() {
        let mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).ctx("set WAL").map_err(corrupt)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::unsupported(format!("{what}: SQLite refused the WAL journal (got {mode})")));
        }
    }
    let sync = match config.synchronous {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"))
        .ctx("set pragmas")?;
    migrate(&conn, &what).map_err(corrupt)?;
    let catalog = load_catalog(&conn).map_err(corrupt)?;
    Ok((conn, path, catalog, lock))
}

/// Applies the embedded migrations not applied yet, in one transaction that also checks the
/// version again (another process may have migrated meanwhile).
fn migrate(conn: &Connection, what: &str) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    conn.execute_batch("BEGIN IMMEDIATE").ctx("begin the migrations")?;
    let result = (|| {
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx("read the schema version")?;
        if version > known {
            return Err(Error::unsupported(format!(
                "{what} has schema version {version}, newer than this orbstore knows ({known}); upgrade orbstore"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            conn.execute_batch(sql).ctx(&format!("apply migration {}", i + 1))?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {known}")).ctx("record the schema version")?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").ctx("commit the migrations"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Reads the catalog tables.
pub(crate) fn load_catalog(conn: &Connection) -> Result<Catalog> {
    let mut catalog = Catalog::default();
    let mut stmt = conn.prepare("SELECT name FROM orbstore_collections").ctx("read the catalog")?;
    for name in stmt.query_map([], |r| r.get::<_, String>(0)).ctx("read the catalog")? {
        catalog.collections.entry(name.ctx("read the catalog")?).or_default();
    }
    let mut stmt = conn
        .prepare("SELECT collection, spec FROM orbstore_indexes ORDER BY name")
        .ctx("read the catalog")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .ctx("read the catalog")?;
    for row in rows {
        let (coll, spec) = row.ctx("read the catalog")?;
        let spec: IndexSpec = serde_json::from_str(&spec)
            .map_err(|e| Error::corrupt(format!("index spec of {coll:?}: {e}")))?;
        catalog.collections.entry(coll).or_default().indexes.push(spec);
    }
    let mut stmt =
        conn.prepare("SELECT collection, path, kind FROM orbstore_shapes").ctx("read the catalog")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .ctx("read the catalog")?;
    for row in rows {
        let (coll, path, kind) = row.ctx("read the catalog")?;
        let shapes = &mut catalog.collections.entry(coll).or_default().shapes;
        if kind == "array" {
            shapes.arrays.insert(path);
        } else {
            shapes.objects.insert(path);
        }
    }
    Ok(catalog)
}

#[async_trait]
impl PersistenceBackend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn capabilities(&self) -> Capabilities {
        let file = self.shared.path.is_some();
        Capabilities {
            transactions: true,
            // On a file, plain reads use their own WAL connections and never see a transaction's
            // writes; in `:memory:` everything shares the one connection and waits for it.
            isolated_transactions: file,
            unique_indexes: true,
            durable_flush: file,
            // The catalog (multikey flags) is cached per process.
            multi_process: false,
            persistent: file,
        }
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        // An existing collection needs no trip to the writer (which a transaction may hold).
        if !self.shared.catalog.read().collections.contains_key(name) {
            let n = name.to_owned();
            self.shared.worker.call(move |w| crate::ops::ensure_collection(w, &n)).await?;
        }
        Ok(Arc::new(SqliteCollection::new(name, Exec::Direct(self.shared.clone()))))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.shared.check_open()?;
        Ok(self.shared.catalog.read().collections.keys().cloned().collect())
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        self.shared.check_open()?;
        let n = name.to_owned();
        self.shared.worker.call(move |w| crate::ops::drop_collection(w, &n)).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.shared.check_open()?;
        Ok(Box::new(SqliteTransaction::begin(self.shared.clone()).await?))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(crate::snapshot::SqliteSnapshot::begin(&self.shared).await?))
    }

    async fn health(&self) -> HealthReport {
        let start = Instant::now();
        // A real query; on a file it runs on a reader, so an open transaction does not delay it.
        let check = match self.shared.check_open() {
            Err(e) => Err(e),
            Ok(()) if self.shared.has_readers() => {
                self.shared
                    .read(|c, _| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).ctx("health check"))
                    .await
            }
            Ok(()) => {
                self.shared
                    .worker
                    .call(|w: &mut Writer| {
                        w.conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).ctx("health check")
                    })
                    .await
            }
        };
        HealthReport {
            healthy: check.is_ok(),
            latency: start.elapsed(),
            message: match check {
                Ok(_) => format!("SQLite {} answered SELECT 1", rusqlite::version()),
                Err(e) => e.to_string(),
            },
        }
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.shared.check_open()?;
        let names: Vec<String> = self.shared.catalog.read().collections.keys().cloned().collect();
        let path = self.shared.path.clone();
        self.shared
            .worker
            .call(move |w| {
                let mut collections = Vec::new();
                for name in names {
                    let (documents, bytes): (i64, i64) = w
                        .conn
                        .query_row(
                            &format!(
                                "SELECT count(*), coalesce(sum(length(id) + length(doc)), 0) FROM {}",
                                table(&name)
                            ),
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .ctx("collection statistics")?;
                    let indexes = w.catalog.read().collections.get(&name).map_or(0, |m| m.indexes.len());
                    collections.push(CollectionStats {
                        name,
                        documents: documents as u64,
                        bytes: Some(bytes as u64),
                        indexes: indexes as u64,
                    });
                }
                let storage_bytes = path.map(|p| {
                    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
                    size(p.clone()) + size(PathBuf::from(format!("{}-wal", p.display())))
                });
                Ok(StorageStats {
                    backend: "sqlite".into(),
                    collections,
                    warnings: Vec::new(),
                    storage_bytes,
                })
            })
            .await
    }

    async fn flush(&self) -> Result<()> {
        self.shared.check_open()?;
        let normal = self.sync == SqliteSync::Normal;
        // With FULL every commit is already durable; the call still waits for queued writes.
        // With NORMAL the WAL is synced by a checkpoint.
        self.shared
            .worker
            .call(move |w| {
                if normal && w.file {
                    w.conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(())).ctx("checkpoint")?;
                }
                Ok(())
            })
            .await
    }

    /// Checkpoints and truncates the WAL, rewrites the database without its free pages
    /// (`VACUUM`), and refreshes the planner's statistics (`PRAGMA optimize`).
    async fn compact(&self) -> Result<CompactReport> {
        let before = self.stats().await?.storage_bytes;
        self.shared.check_open()?;
        let busy = self
            .shared
            .worker
            .call(|w| {
                w.conn.execute_batch("VACUUM").ctx("compaction (VACUUM)")?;
                // `busy` is a result row, not an error: a reader elsewhere kept the WAL's old
                // frames (and the values in them) from being removed.
                let busy: i64 = w
                    .conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                    .ctx("compaction (WAL checkpoint)")?;
                w.conn.execute_batch("PRAGMA optimize").ctx("compaction (PRAGMA optimize)")?;
                Ok(busy != 0)
            })
            .await?;
        let after = self.stats().await?.storage_bytes;
        Ok(CompactReport {
            backend: "sqlite".into(),
            actions: vec![
                "VACUUM: rewrote the database without its free pages".into(),
                if busy {
                    "the WAL could not be checkpointed and truncated: another connection was reading; run compact again"
                        .into()
                } else {
                    "checkpointed and truncated the WAL".into()
                },
                "PRAGMA optimize".into(),
            ],
            bytes_before: before,
            bytes_after: after,
        })
    }

    /// Finds catalog rows without their table, catalog index rows without their index,
    /// `ix_…` indexes the catalog does not describe, and `c_…` tables without a catalog row
    /// (listed, never dropped: they hold data); see `crate::cleanup`. Runs as one job on the
    /// writer thread, like `drop_collection`, so no write runs meanwhile; the removals commit
    /// together and the catalog cache is reloaded after them.
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.check_open()?;
        self.shared.worker.call(move |w| crate::cleanup::run(w, apply)).await
    }

    async fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.worker.shutdown();
        self.shared.readers.lock().clear();
        self.shared.lock.lock().take();
        Ok(())
    }
}
