//! [`SchemaLayer`]: validation on write, by each collection's stored schema and mode.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::TryStreamExt;
use orbstore_core::{
    id_of, Capabilities, CleanupReport, Collection, CollectionRef, CompactReport, Document, DocumentStream,
    Error, Filter, HealthReport, Id, IndexSpec, PersistenceBackend, Query, Result, Snapshot, StorageStats,
    Transaction, Update, Upserted, ID_FIELD,
};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::compiled::{CompiledSchema, Violation};
use crate::registry::{Mode, SchemaEntry, SCHEMAS_COLLECTION};

/// How often a process rereads the stored schemas by default, to see another process's changes
/// (its own are seen at once).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// How many violations a refused write names before "and N more".
const NAMED_VIOLATIONS: usize = 3;

enum Rule {
    Check {
        mode: Mode,
        schema: CompiledSchema,
    },
    /// A stored schema that does not read or compile (restored from a newer version, say):
    /// that collection's writes fail with this error; the others' go on.
    Broken(Error),
}

#[derive(Default)]
struct Cache {
    /// When the schemas were last read; `None`: never.
    loaded_at: Option<Instant>,
    /// This process changed them: read again before the next check.
    stale: bool,
    rules: HashMap<String, Arc<Rule>>,
}

struct Shared {
    inner: Arc<dyn PersistenceBackend>,
    refresh: Duration,
    cache: RwLock<Cache>,
    // One reload at a time; writers that find it taken use the schemas they have.
    reloading: tokio::sync::Mutex<()>,
    warned: Mutex<BTreeMap<String, u64>>,
}

/// Validates every write against its collection's schema (kept in `orbstore_schemas`,
/// [`crate::set_schema`]): `strict` refuses a failing write with `InvalidInput` naming the
/// document, the path and the rule, and writes nothing of it (nothing of a whole
/// `insert_many`); `warn` writes it, logs a warning and counts it ([`SchemaLayer::warnings`],
/// the `orbstore_schema_violations_total` metric); `off` does not check.
///
/// Updates are checked by applying them to the documents they match, as read just before the
/// write: a document changed by another writer between that read and the update is not
/// checked again. Reads pass through untouched.
#[derive(Clone)]
pub struct SchemaLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SchemaLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaLayer").field("inner", &self.shared.inner).finish_non_exhaustive()
    }
}

impl SchemaLayer {
    /// Wraps `inner`, rereading the schemas every [`DEFAULT_REFRESH`].
    pub fn new(inner: Arc<dyn PersistenceBackend>) -> SchemaLayer {
        SchemaLayer::with_refresh(inner, DEFAULT_REFRESH)
    }

    /// Wraps `inner`, rereading the schemas every `refresh`.
    pub fn with_refresh(inner: Arc<dyn PersistenceBackend>, refresh: Duration) -> SchemaLayer {
        SchemaLayer {
            shared: Arc::new(Shared {
                inner,
                refresh,
                cache: RwLock::new(Cache::default()),
                reloading: tokio::sync::Mutex::new(()),
                warned: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Writes accepted in `warn` mode despite a violation, per collection, since the layer opened.
    pub fn warnings(&self) -> BTreeMap<String, u64> {
        self.shared.warned.lock().clone()
    }
}

impl Shared {
    fn forget_schemas(&self) {
        self.cache.write().stale = true;
    }

    async fn rule(&self, collection: &str) -> Result<Option<Arc<Rule>>> {
        if collection.starts_with("orbstore_") {
            return Ok(None);
        }
        {
            let cache = self.cache.read();
            if !cache.stale && cache.loaded_at.is_some_and(|t| t.elapsed() < self.refresh) {
                return Ok(cache.rules.get(collection).cloned());
            }
        }
        let guard = match self.reloading.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(rule) = self.stale_rule(collection) {
                    return Ok(rule);
                }
                self.reloading.lock().await
            }
        };
        if let Err(e) = self.reload().await {
            let mut cache = self.cache.write();
            if cache.loaded_at.is_none() {
                return Err(Error::new(
                    e.kind(),
                    format!("reading the collections' schemas: {}", e.message()),
                )
                .with_source(e));
            }
            // Keep checking with the schemas last read, and try again after `refresh`.
            tracing::warn!(error = %e, "rereading the collections' schemas failed; using the ones last read");
            cache.loaded_at = Some(Instant::now());
            cache.stale = false;
        }
        drop(guard);
        Ok(self.cache.read().rules.get(collection).cloned())
    }

    /// The rule last read, when schemas were read at all.
    fn stale_rule(&self, collection: &str) -> Option<Option<Arc<Rule>>> {
        let cache = self.cache.read();
        cache.loaded_at.map(|_| cache.rules.get(collection).cloned())
    }

    async fn reload(&self) -> Result<()> {
        // Asking for the collection would create it on most backends: look first.
        let docs = if self.inner.list_collections().await?.iter().any(|c| c == SCHEMAS_COLLECTION) {
            self.inner.collection(SCHEMAS_COLLECTION).await?.find(&Query::all()).await?
        } else {
            Vec::new()
        };
        let mut rules = HashMap::new();
        for doc in docs {
            let collection = id_of(&doc).unwrap_or_default().to_owned();
            let rule = match SchemaEntry::from_document(doc).and_then(|e| e.validate().map(|s| (e.mode, s))) {
                Ok((Mode::Off, _)) => continue,
                Ok((mode, schema)) => Rule::Check { mode, schema },
                Err(e) => {
                    tracing::error!(collection, error = %e, "a stored schema is unusable; writes to its collection fail");
                    Rule::Broken(Error::new(
                        e.kind(),
                        format!("the stored schema of {collection:?} is unusable (fix it with `orb schema set`): {}", e.message()),
                    ))
                }
            };
            rules.insert(collection, Arc::new(rule));
        }
        *self.cache.write() = Cache { loaded_at: Some(Instant::now()), stale: false, rules };
        Ok(())
    }

    /// Checks documents about to be written to `collection`: `Err` when a strict schema refuses one.
    fn check<'d>(
        &self,
        collection: &str,
        rule: &Rule,
        docs: impl IntoIterator<Item = &'d mut Document>,
    ) -> Result<()> {
        let (mode, schema) = match rule {
            Rule::Check { mode, schema } => (*mode, schema),
            Rule::Broken(e) => return Err(Error::new(e.kind(), e.message())),
        };
        for doc in docs {
            let violations = schema.document_violations(doc);
            let doc = &*doc;
            if violations.is_empty() {
                continue;
            }
            let id = id_of(doc).unwrap_or("(new)");
            match mode {
                Mode::Off => {}
                Mode::Warn => {
                    tracing::warn!(collection, id, violations = %describe(&violations), "a write does not match its collection's schema (warn mode: written)");
                    metrics::counter!("orbstore_schema_violations_total", "collection" => collection.to_owned()).increment(1);
                    *self.warned.lock().entry(collection.to_owned()).or_default() += 1;
                }
                Mode::Strict => {
                    return Err(Error::invalid(format!(
                        "document {id} of {collection:?} does not match the collection's schema, nothing written: {}",
                        describe(&violations)
                    )))
                }
            }
        }
        Ok(())
    }
}

fn describe(violations: &[Violation]) -> String {
    let mut s: Vec<String> = violations.iter().take(NAMED_VIOLATIONS).map(Violation::to_string).collect();
    if violations.len() > NAMED_VIOLATIONS {
        s.push(format!("and {} more", violations.len() - NAMED_VIOLATIONS));
    }
    s.join("; ")
}

#[async_trait]
impl PersistenceBackend for SchemaLayer {
    fn kind(&self) -> &'static str {
        self.shared.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.inner.capabilities()
    }

    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        let inner = self.shared.inner.collection(name).await?;
        Ok(Arc::new(Checked { inner, shared: self.shared.clone() }))
    }

    async fn list_collections(&self) -> Result<Vec<String>> {
        self.shared.inner.list_collections().await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        let dropped = self.shared.inner.drop_collection(name).await;
        if name == SCHEMAS_COLLECTION {
            self.shared.forget_schemas();
        }
        dropped
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let inner = self.shared.inner.begin().await?;
        Ok(Box::new(CheckedTransaction { inner, shared: self.shared.clone() }))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        self.shared.inner.snapshot().await
    }

    async fn health(&self) -> HealthReport {
        self.shared.inner.health().await
    }

    async fn stats(&self) -> Result<StorageStats> {
        self.shared.inner.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.shared.inner.flush().await
    }

    async fn close(&self) -> Result<()> {
        self.shared.inner.close().await
    }

    async fn compact(&self) -> Result<CompactReport> {
        self.shared.inner.compact().await
    }

    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        self.shared.inner.cleanup(apply).await
    }
}

struct CheckedTransaction {
    inner: Box<dyn Transaction>,
    shared: Arc<Shared>,
}

#[async_trait]
impl Transaction for CheckedTransaction {
    async fn collection(&self, name: &str) -> Result<CollectionRef> {
        let inner = self.inner.collection(name).await?;
        Ok(Arc::new(Checked { inner, shared: self.shared.clone() }))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.inner.commit().await?;
        // A schema written inside the transaction counts from its commit.
        self.shared.forget_schemas();
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }
}

struct Checked {
    inner: CollectionRef,
    shared: Arc<Shared>,
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked").field("inner", &self.inner).finish()
    }
}

impl Checked {
    async fn rule(&self) -> Result<Option<Arc<Rule>>> {
        self.shared.rule(self.inner.name()).await
    }

    fn wrote(&self) {
        if self.inner.name() == SCHEMAS_COLLECTION {
            self.shared.forget_schemas();
        }
    }

    /// Checks what `update` makes of the documents `query` selects, as they are now.
    async fn check_update(&self, rule: &Rule, query: &Query, update: &Update) -> Result<()> {
        let mut stream = self.inner.find_stream(query).await?;
        while let Some(mut doc) = stream.try_next().await? {
            update.apply(&mut doc)?;
            self.shared.check(self.inner.name(), rule, [&mut doc])?;
        }
        Ok(())
    }
}

#[async_trait]
impl Collection for Checked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn insert_one(&self, mut doc: Document) -> Result<Id> {
        if let Some(rule) = self.rule().await? {
            self.shared.check(self.name(), &rule, [&mut doc])?;
        }
        let id = self.inner.insert_one(doc).await?;
        self.wrote();
        Ok(id)
    }

    async fn insert_many(&self, mut docs: Vec<Document>) -> Result<Vec<Id>> {
        if let Some(rule) = self.rule().await? {
            self.shared.check(self.name(), &rule, &mut docs)?;
        }
        let ids = self.inner.insert_many(docs).await?;
        self.wrote();
        Ok(ids)
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        if let Some(rule) = self.rule().await? {
            self.shared.check(self.name(), &rule, [&mut doc])?;
        }
        let up = self.inner.upsert(doc).await?;
        self.wrote();
        Ok(up)
    }

    async fn upsert_many(&self, mut docs: Vec<Document>) -> Result<Vec<Upserted>> {
        if let Some(rule) = self.rule().await? {
            self.shared.check(self.name(), &rule, &mut docs)?;
        }
        let up = self.inner.upsert_many(docs).await?;
        self.wrote();
        Ok(up)
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        self.inner.find_by_id(id).await
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        self.inner.find(query).await
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        self.inner.find_stream(query).await
    }

    async fn find_stored_stream(&self, query: &Query) -> Result<orbstore_core::StoredDocumentStream> {
        self.inner.find_stored_stream(query).await
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        let Some(rule) = self.rule().await? else {
            let n = self.inner.update_one(filter, update).await?;
            self.wrote();
            return Ok(n);
        };
        // Which document `update_one` picks is the backend's choice: pick it here, check it,
        // and update exactly that one.
        let Some(mut doc) = self.inner.find(&Query::new(filter.clone()).limit(1)).await?.pop() else {
            return Ok(0);
        };
        let id = id_of(&doc).map(str::to_owned);
        update.apply(&mut doc)?;
        self.shared.check(self.name(), &rule, [&mut doc])?;
        let pinned = match id {
            Some(id) => Filter::and([filter.clone(), Filter::eq(ID_FIELD, Value::String(id))]),
            None => filter.clone(),
        };
        self.inner.update_one(&pinned, update).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        if let Some(rule) = self.rule().await? {
            self.check_update(&rule, &Query::new(filter.clone()), update).await?;
        }
        let n = self.inner.update_many(filter, update).await?;
        self.wrote();
        Ok(n)
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        let n = self.inner.delete_one(filter).await?;
        self.wrote();
        Ok(n)
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        let n = self.inner.delete_many(filter).await?;
        self.wrote();
        Ok(n)
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.inner.count(filter).await
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        self.inner.create_index(spec).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.inner.list_indexes().await
    }
}
