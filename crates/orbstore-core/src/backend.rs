//! The contract every backend implements: [`PersistenceBackend`], [`Collection`],
//! [`Transaction`], and the plain structs they report with.
//!
//! Each method's documentation states its contract in sentences; the conformance suite in
//! `orbstore-testkit` has a test for each sentence.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::document::Document;
use crate::error::Result;
use crate::filter::Filter;
use crate::id::Id;
use crate::query::Query;
use crate::snapshot::Snapshot;
use crate::update::Update;

/// A stream of documents, for exports and other reads too large to hold at once.
pub type DocumentStream = BoxStream<'static, Result<Document>>;

/// A stored document as a backend has it at hand: a backend keeping documents as JSON text
/// hands the text over unparsed, for a reader that deserializes it straight into its own types
/// (a `Document` costs an allocation per key and string value).
#[derive(Debug, Clone, PartialEq)]
pub enum StoredDocument {
    /// The document's JSON text (an object).
    Json(String),
    /// The document, parsed.
    Parsed(Document),
}

impl StoredDocument {
    /// Deserializes the document into `T`: from the text directly (no `Document` built on the
    /// way), or from the parsed document.
    pub fn deserialize<T: serde::de::DeserializeOwned>(self) -> serde_json::Result<T> {
        match self {
            StoredDocument::Json(text) => serde_json::from_str(&text),
            StoredDocument::Parsed(doc) => serde_json::from_value(serde_json::Value::Object(doc)),
        }
    }
}

/// A stream of [`StoredDocument`]s ([`Collection::find_stored_stream`]).
pub type StoredDocumentStream = BoxStream<'static, Result<StoredDocument>>;

/// A shared handle to a collection.
pub type CollectionRef = Arc<dyn Collection>;

/// What a backend can do. Callers and the conformance suite branch on these, never on the
/// backend's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// [`PersistenceBackend::begin`] works: writes in a transaction land together or not at all.
    pub transactions: bool,
    /// Uncommitted writes of a transaction are invisible to everyone else, and a transaction
    /// whose reads or writes were overtaken by a concurrent write fails instead of losing it.
    pub isolated_transactions: bool,
    /// Unique indexes are enforced.
    pub unique_indexes: bool,
    /// When [`PersistenceBackend::flush`] returns, every acknowledged write survives a crash.
    pub durable_flush: bool,
    /// Several processes may open the same store at once.
    pub multi_process: bool,
    /// Data outlives the process (false for the memory backend).
    pub persistent: bool,
}

/// The result of a health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// Whether the backend answered a real request.
    pub healthy: bool,
    /// How long the check took.
    pub latency: Duration,
    /// What was checked, or what went wrong.
    pub message: String,
}

/// Statistics of one collection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollectionStats {
    /// The collection's name.
    pub name: String,
    /// How many documents it holds.
    pub documents: u64,
    /// Bytes used on storage (or an estimate in memory), when the backend knows.
    pub bytes: Option<u64>,
    /// How many indexes it has (the implicit `_id` index not counted).
    pub indexes: u64,
}

/// Statistics of a whole store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageStats {
    /// The backend's kind (`"memory"`, `"file"`, ...), for display.
    pub backend: String,
    /// One entry per collection, sorted by name.
    pub collections: Vec<CollectionStats>,
    /// Anything an operator should know (for example, a corrupt file moved aside).
    pub warnings: Vec<String>,
    /// Bytes the whole store occupies on disk (files, WAL), when the backend knows.
    pub storage_bytes: Option<u64>,
}

/// What [`PersistenceBackend::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CompactReport {
    /// The backend's kind.
    pub backend: String,
    /// What was done, in words (`rewrote the snapshot of q_values`, `VACUUM`, ...), and what
    /// could not be (a server that refuses `compact` says so here, not as an error).
    pub actions: Vec<String>,
    /// Bytes the store occupied before, when the backend knows.
    pub bytes_before: Option<u64>,
    /// Bytes it occupies after.
    pub bytes_after: Option<u64>,
}

/// Something a backend left behind that belongs to no collection, found by
/// [`PersistenceBackend::cleanup`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Orphan {
    /// What it is: `temporary file`, `quarantined file`, `log of a dropped collection`,
    /// `catalog row without a table`, `index without a collection`, ...
    pub kind: String,
    /// Its name: a path, or a table's, index's or catalog row's name.
    pub name: String,
    /// Its size, when known.
    pub bytes: Option<u64>,
    /// Why it is an orphan (`no collection "old_events"`, `modified 41 days ago`).
    pub detail: String,
    /// Whether this cleanup removed it.
    pub removed: bool,
}

/// What [`PersistenceBackend::cleanup`] found, and removed when asked.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CleanupReport {
    /// The backend's kind.
    pub backend: String,
    /// Whether orphans were removed (`apply`), or only listed.
    pub applied: bool,
    /// What was found.
    pub orphans: Vec<Orphan>,
    /// What was looked at and how (`looked for temporary files in ./data`), and what the backend
    /// cannot look for.
    pub notes: Vec<String>,
}

/// Quarantined copies of damaged files (`*.corrupt-*`, `*.torn-*`) younger than this are kept
/// by a cleanup: they are what someone investigating the damage needs.
pub const QUARANTINE_KEEP: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

impl StorageStats {
    /// The total number of documents.
    pub fn total_documents(&self) -> u64 {
        self.collections.iter().map(|c| c.documents).sum()
    }
}

/// An index over one or more fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IndexSpec {
    /// The index's name; [`IndexSpec::new`] derives it from the fields (`a_1_b.c_1`).
    pub name: String,
    /// The indexed dotted paths, in order.
    pub fields: Vec<String>,
    /// Whether two documents may not share the same values. A unique index constrains only the
    /// documents in which every indexed field is present and not null.
    pub unique: bool,
}

impl IndexSpec {
    /// An index over `fields`, named after them (`a_1_b.c_1`; characters a name cannot hold
    /// become `_`, and the name is cut at 63 bytes).
    pub fn new<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> IndexSpec {
        let fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        let name: String = fields
            .iter()
            .map(|f| format!("{f}_1"))
            .collect::<Vec<_>>()
            .join("_")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
            .take(63)
            .collect();
        IndexSpec { name, fields, unique: false }
    }

    /// Makes the index unique.
    pub fn unique(mut self) -> IndexSpec {
        self.unique = true;
        self
    }

    /// Gives the index another name.
    pub fn named(mut self, name: impl Into<String>) -> IndexSpec {
        self.name = name.into();
        self
    }

    /// For `create_index` when an index of this name exists: nothing to do if it has the same
    /// spec, `Conflict` naming the existing one otherwise.
    pub fn check_same_as(&self, existing: &IndexSpec) -> Result<()> {
        if existing == self {
            Ok(())
        } else {
            Err(crate::error::Error::conflict(format!(
                "an index named {:?} already exists with fields {:?}, unique = {}",
                self.name, existing.fields, existing.unique
            )))
        }
    }

    /// The error of a failed index build: a `Conflict` (duplicate keys) becomes "stored
    /// documents already share the same values"; other errors pass through.
    pub fn build_error(&self, e: crate::error::Error) -> crate::error::Error {
        if e.kind() == crate::error::ErrorKind::Conflict {
            crate::error::Error::conflict(format!(
                "cannot create unique index {:?}: stored documents share the same {:?}",
                self.name, self.fields
            ))
            .with_source(e)
        } else {
            e
        }
    }

    /// Checks the name (`[A-Za-z0-9_.]`, 1 to 63 bytes) and the fields (at least one, valid
    /// paths, no repeats).
    pub fn validate(&self) -> Result<()> {
        use crate::error::Error;
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !name_ok {
            return Err(Error::invalid(format!(
                "invalid index name {:?}: 1 to 63 characters from [A-Za-z0-9_.]",
                self.name
            )));
        }
        if self.fields.is_empty() {
            return Err(Error::invalid(format!("index {:?} has no fields", self.name)));
        }
        for (i, f) in self.fields.iter().enumerate() {
            crate::path::FieldPath::parse(f)?;
            if self.fields[..i].contains(f) {
                return Err(Error::invalid(format!("index {:?} lists field {f:?} twice", self.name)));
            }
        }
        Ok(())
    }
}

/// What [`Collection::upsert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// The document's id.
    pub id: Id,
    /// True when no document had this id and one was inserted; false when one was replaced.
    pub inserted: bool,
}

/// A set of documents with a name.
///
/// Every method validates its inputs before any I/O: an invalid document, filter, query, update
/// or index is `InvalidInput` naming what was wrong. "In `_id` order" means ascending byte order
/// of the `_id` strings.
#[async_trait]
pub trait Collection: Send + Sync + fmt::Debug {
    /// The collection's name.
    fn name(&self) -> &str;

    /// Inserts one document and returns its id.
    ///
    /// A document without `_id` gets a generated time-ordered id. Inserting an `_id` that exists
    /// is `Conflict` and leaves the stored document unchanged. A document that would break a
    /// unique index is `Conflict` and is not written.
    async fn insert_one(&self, doc: Document) -> Result<Id>;

    /// Inserts documents atomically and returns their ids in input order.
    ///
    /// An empty batch returns an empty list. When any document is invalid, has an `_id` that
    /// exists or repeats within the batch, or breaks a unique index, the call fails and no
    /// document of the batch is stored.
    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>>;

    /// Stores the document under its `_id`, replacing a stored one whole, or inserting it.
    ///
    /// Replacing keeps no field of the old document. A document without `_id` is inserted with a
    /// generated id. A document that would break a unique index is `Conflict` and nothing changes.
    async fn upsert(&self, doc: Document) -> Result<Upserted>;

    /// Upserts documents as [`Collection::upsert`] does, in input order, in one batch, and
    /// returns what happened to each. A repeated `_id` within the batch: the last one is
    /// stored (the first occurrence reports `inserted` when the id was new, later ones report a
    /// replacement). Every document is checked first: when any is invalid, or the batch would
    /// break a unique index, the call fails and no document of it is stored. An empty batch
    /// returns an empty list.
    ///
    /// The default upserts one document at a time after checking them all (a unique-index
    /// conflict then leaves the documents before it stored); the built backends store the
    /// batch at once, all or nothing (MongoDB by undoing, as its other multi-document writes).
    /// A batch that swaps unique keys between its documents is accepted by the memory and file
    /// backends and refused by the others, which check row by row.
    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        let mut prepared = Vec::with_capacity(docs.len());
        for mut doc in docs {
            crate::document::prepare_document(&mut doc)?;
            prepared.push(doc);
        }
        let mut out = Vec::with_capacity(prepared.len());
        for doc in prepared {
            out.push(self.upsert(doc).await?);
        }
        Ok(out)
    }

    /// The document with this id, or `None`. An id that cannot exist (empty, too long, NUL) is
    /// `InvalidInput`.
    async fn find_by_id(&self, id: &str) -> Result<Option<Document>>;

    /// The documents matching the query, sorted by its sort keys then by `_id` (by `_id` alone
    /// without sort keys), after offset and limit, projected. A collection that is empty or
    /// was never written returns an empty list.
    async fn find(&self, query: &Query) -> Result<Vec<Document>>;

    /// The same documents as [`Collection::find`], in the same order, as a stream.
    async fn find_stream(&self, query: &Query) -> Result<DocumentStream>;

    /// The same documents as [`Collection::find_stream`], in the same order, each as its JSON
    /// text or parsed, whichever the backend has at hand: a text parses into the document
    /// `find_stream` returns. The default streams `find_stream`'s documents, parsed; a backend
    /// storing text may hand it over instead (SQLite does for a whole scan in `_id` order).
    async fn find_stored_stream(&self, query: &Query) -> Result<StoredDocumentStream> {
        use futures::StreamExt;
        Ok(self.find_stream(query).await?.map(|d| d.map(StoredDocument::Parsed)).boxed())
    }

    /// Applies the update to the first matching document in `_id` order and returns how many
    /// documents matched (0 or 1). No match returns 0 and changes nothing. An update that cannot
    /// apply to the document (`$inc` on a string) is `InvalidInput` and changes nothing; one that
    /// would break a unique index is `Conflict` and changes nothing.
    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64>;

    /// Applies the update to every matching document, atomically, and returns how many matched.
    /// When the update cannot apply to one of them, or would break a unique index, the call
    /// fails and no document changes.
    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64>;

    /// Deletes the first matching document in `_id` order and returns how many were deleted
    /// (0 or 1). Deleting a missing id returns 0.
    async fn delete_one(&self, filter: &Filter) -> Result<u64>;

    /// Deletes every matching document and returns how many were deleted.
    async fn delete_many(&self, filter: &Filter) -> Result<u64>;

    /// How many documents match the filter.
    async fn count(&self, filter: &Filter) -> Result<u64>;

    /// Creates an index. Creating an index that exists with the same spec does nothing.
    /// An index of the same name with other fields or uniqueness is `Conflict`. A unique index
    /// over documents that already break it is `Conflict` and is not created.
    async fn create_index(&self, spec: IndexSpec) -> Result<()>;

    /// The collection's indexes (not the implicit `_id` one), sorted by name.
    async fn list_indexes(&self) -> Result<Vec<IndexSpec>>;
}

/// A transaction: collections bound to it, then [`Transaction::commit`] or
/// [`Transaction::rollback`]. Dropping it without committing rolls it back.
#[async_trait]
pub trait Transaction: Send + Sync {
    /// A handle whose operations are part of this transaction. Reads through it see the
    /// transaction's own writes.
    async fn collection(&self, name: &str) -> Result<CollectionRef>;

    /// Makes every write of the transaction visible at once, across collections. When the
    /// backend has isolated transactions and a concurrent write overtook this transaction, it
    /// fails with `Aborted` (retryable) and nothing is applied. Handles from the transaction
    /// refuse further use with `InvalidInput`.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Discards every write of the transaction. Handles from the transaction refuse further use
    /// with `InvalidInput`.
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// A storage backend: named collections, transactions, health, statistics and durability.
#[async_trait]
pub trait PersistenceBackend: Send + Sync + fmt::Debug {
    /// The backend's kind (`"memory"`, `"file"`, ...), for display only: branch on
    /// [`PersistenceBackend::capabilities`], never on this.
    fn kind(&self) -> &'static str;

    /// What this backend (as configured and connected) can do.
    fn capabilities(&self) -> Capabilities;

    /// A handle to the named collection, creating it if needed; it is listed by
    /// [`PersistenceBackend::list_collections`] from then on. An invalid name is `InvalidInput`
    /// before any I/O. A handle kept after its collection was dropped reads an empty collection,
    /// and a write through it creates the collection again.
    async fn collection(&self, name: &str) -> Result<CollectionRef>;

    /// The names of the collections, sorted.
    async fn list_collections(&self) -> Result<Vec<String>>;

    /// Drops a collection with its documents and indexes. Returns true when it existed,
    /// false otherwise.
    async fn drop_collection(&self, name: &str) -> Result<bool>;

    /// Starts a transaction. A backend without transactions returns `Unsupported` saying why.
    async fn begin(&self) -> Result<Box<dyn Transaction>>;

    /// A read-only view of every collection, as consistent as the backend can make it (see
    /// [`Snapshot::consistency`]). A backend without snapshots returns `Unsupported`;
    /// [`read_snapshot`](crate::read_snapshot) then reads collection by collection.
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Err(crate::error::Error::unsupported(format!(
            "the {} backend has no store-wide snapshot",
            self.kind()
        )))
    }

    /// Checks the backend with a real request and reports latency. Never fails: problems are
    /// reported as `healthy: false` with a message.
    async fn health(&self) -> HealthReport;

    /// Counts and sizes per collection.
    async fn stats(&self) -> Result<StorageStats>;

    /// When it returns, every write acknowledged before the call is durable (as far as
    /// [`Capabilities::durable_flush`] says the backend can be).
    async fn flush(&self) -> Result<()>;

    /// Flushes and releases resources. Every later operation on the backend or its handles
    /// fails with `InvalidInput`; closing twice is fine.
    async fn close(&self) -> Result<()>;

    /// Reclaims the space of deleted and overwritten documents, as the engine does it (the file
    /// backend rewrites its snapshots, SQLite runs `VACUUM`, PostgreSQL `VACUUM (ANALYZE)` of the
    /// collection tables, MongoDB `compact` where the server allows). Every document and index
    /// stays as it was. The default: `Unsupported`, naming the backend.
    async fn compact(&self) -> Result<CompactReport> {
        Err(crate::Error::unsupported(format!("the {} backend does not offer compaction", self.kind())))
    }

    /// Finds what the backend left behind that belongs to no collection (file: temporary files,
    /// quarantined copies older than [`QUARANTINE_KEEP`], logs of dropped collections; SQL:
    /// catalog rows and orbstore indexes without their collection), and removes it when
    /// `apply`. Never touches a live collection's documents or indexes. The default:
    /// `Unsupported`, naming the backend.
    async fn cleanup(&self, apply: bool) -> Result<CleanupReport> {
        let _ = apply;
        Err(crate::Error::unsupported(format!("the {} backend does not offer orphan cleanup", self.kind())))
    }
}
