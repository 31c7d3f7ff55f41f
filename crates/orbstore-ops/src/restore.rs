//! `restore`: an archive back into a store, verified whole before anything is written, written
//! in batches, and verified again by reading the store back.
//!
//! Indexes are created after a collection's documents: one index build over the data is much
//! cheaper than maintaining the index on every insert (several times cheaper for PostgreSQL's
//! expression indexes), and the data came from a store that enforced them, so a unique index
//! cannot fail on it. What could fail, a unique index the target cannot enforce, is refused
//! before the first write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orbstore_core::{Document, Error, ErrorKind, IndexSpec, PersistenceBackend, Query, Result};
use tokio::sync::mpsc;

use crate::canonical::{ContentDigest, ContentHasher};
use crate::manifest::Manifest;
use crate::progress::{NoProgress, Progress, Unit};
use crate::subjects::{self, Erasures, SubjectMap};
use crate::verify::{self, Visitor};

/// Collections a restore never writes over when the target has them: the erasure ledger, the
/// data-subject map, the audit log.
pub const KEPT: [&str; 3] = [subjects::ERASURES, subjects::SUBJECTS, crate::audit::AUDIT_COLLECTION];

/// How to restore.
#[derive(Clone)]
pub struct RestoreOptions {
    /// Drop the target's collections of the same names first, instead of refusing.
    pub replace: bool,
    /// Documents per `insert_many` (default 1,000); a batch is also cut at 8 MiB.
    pub batch_size: usize,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
    /// The data-subject map through which the target's erasure ledger is re-applied (documents
    /// of erased users are left out); `None`: the target's own stored map.
    pub subjects: Option<SubjectMap>,
}

impl Default for RestoreOptions {
    fn default() -> RestoreOptions {
        RestoreOptions { replace: false, batch_size: 1000, progress: Arc::new(NoProgress), subjects: None }
    }
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("replace", &self.replace)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

const MAX_BATCH_BYTES: usize = 8 << 20;

/// How far one collection got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreState {
    /// Nothing of it was written.
    NotStarted,
    /// Some of its documents were written (see [`CollectionRestore::written`]).
    Partial,
    /// All its documents are written; its indexes are not all created.
    DocumentsWritten,
    /// Documents and indexes are written; reading it back did not match (or did not finish).
    Written,
    /// Written and read back with the archive's count and content hash.
    Verified,
}

impl RestoreState {
    /// A few words for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreState::NotStarted => "not started",
            RestoreState::Partial => "partial",
            RestoreState::DocumentsWritten => "documents written, indexes missing",
            RestoreState::Written => "written, not verified",
            RestoreState::Verified => "verified",
        }
    }
}

/// One collection of a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRestore {
    /// Its name.
    pub name: String,
    /// Documents in the archive.
    pub expected: u64,
    /// Documents written to the target.
    pub written: u64,
    /// Indexes created.
    pub indexes: usize,
    /// Whether the target held it before and it was dropped (`replace`).
    pub replaced: bool,
    /// Documents left out because they name a user the target's erasure ledger has erased.
    pub erased: u64,
    /// The archive's copy was left out because the target has its own, which is kept: the
    /// erasure ledger (the one its key matches), the data-subject map and the audit log
    /// (append-only: the target's is the newer). See [`KEPT`].
    pub kept_target_copy: bool,
    /// How far it got.
    pub state: RestoreState,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The archive.
    pub archive: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// One entry per collection of the archive, in its order.
    pub collections: Vec<CollectionRestore>,
    /// How long it took.
    pub elapsed: Duration,
}

impl RestoreReport {
    /// Whether anything was written to (or dropped from) the target.
    pub fn wrote_anything(&self) -> bool {
        self.collections.iter().any(|c| c.state != RestoreState::NotStarted || c.replaced)
    }

    /// What the target holds of the archive, in one sentence.
    pub fn target_summary(&self) -> String {
        if !self.wrote_anything() {
            return "nothing was written to the target".to_owned();
        }
        let parts: Vec<String> = self
            .collections
            .iter()
            .map(|c| match c.state {
                RestoreState::NotStarted if c.replaced => {
                    format!("{} dropped (replaced), not restored", c.name)
                }
                RestoreState::NotStarted => format!("{} not restored", c.name),
                RestoreState::Partial => {
                    format!("{} incomplete ({} of {} documents, no indexes)", c.name, c.written, c.expected)
                }
                s => format!("{} {} ({} of {} documents)", c.name, s.as_str(), c.written, c.expected),
            })
            .collect();
        format!("the target now holds: {}", parts.join("; "))
    }
}

/// A failed restore: the error, and what the target holds at that point.
#[derive(Debug)]
pub struct RestoreError {
    /// What went wrong.
    pub error: Error,
    /// How far each collection got (`None` when the archive could not even be read).
    pub report: Option<RestoreReport>,
}

impl RestoreError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// What the target holds, in one sentence.
    pub fn target_summary(&self) -> String {
        self.report
            .as_ref()
            .map_or_else(|| "nothing was written to the target".to_owned(), |r| r.target_summary())
    }
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.error, self.target_summary())
    }
}

impl std::error::Error for RestoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<RestoreError> for Error {
    fn from(e: RestoreError) -> Error {
        let summary = e.target_summary();
        Error::new(e.error.kind(), format!("{}; {summary}", e.error.message())).with_source(e.error)
    }
}

/// What the archive reader sends to the writing side.
enum Msg {
    Start {
        name: String,
        indexes: Vec<IndexSpec>,
    },
    Batch(Vec<Document>),
    /// `digest`: the archive's, to check it did not change; `kept`: of what was written.
    End {
        name: String,
        digest: ContentDigest,
        kept: ContentDigest,
        erased: u64,
    },
}

/// Feeds batches to the async side; a closed channel (the restore stopped) ends the reading.
struct Sender {
    tx: mpsc::Sender<Msg>,
    batch: Vec<Document>,
    batch_bytes: usize,
    batch_size: usize,
    /// The target's erasure ledger, re-applied.
    erasures: Option<Erasures>,
    kept: ContentHasher,
    erased: u64,
    /// A collection whose documents are not written (the archive's erasure ledger when the
    /// target has one).
    skip: Vec<String>,
}

impl Sender {
    fn send(&self, msg: Msg) -> Result<()> {
        self.tx.blocking_send(msg).map_err(|_| Error::backend("the restore stopped", "closed"))
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        self.send(Msg::Batch(batch))
    }
}

impl Visitor for Sender {
    fn indexes(&mut self, collection: &str, specs: &[IndexSpec]) -> Result<()> {
        self.kept = ContentHasher::new();
        self.erased = 0;
        self.send(Msg::Start { name: collection.to_owned(), indexes: specs.to_vec() })
    }

    fn document(&mut self, collection: &str, doc: Document, bytes: usize) -> Result<()> {
        if self.skip.iter().any(|s| s == collection) {
            return Ok(());
        }
        if self.erasures.as_ref().is_some_and(|e| e.erased(collection, &doc)) {
            self.erased += 1;
            return Ok(());
        }
        self.kept.add_document(&doc);
        self.batch.push(doc);
        self.batch_bytes += bytes;
        if self.batch.len() >= self.batch_size || self.batch_bytes >= MAX_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn end_documents(&mut self, collection: &str, digest: &ContentDigest) -> Result<()> {
        self.flush()?;
        let kept = std::mem::take(&mut self.kept).finish();
        self.send(Msg::End { name: collection.to_owned(), digest: digest.clone(), kept, erased: self.erased })
    }
}

/// Restores the archive at `path` into `store`.
///
/// First the whole archive is read and checked (manifest present and last, known format
/// version, every line canonical and in `_id` order, every count, size and checksum); damage is
/// `Corrupt` (an unknown format version `Unsupported`) and nothing is written. A target that
/// already has any of the archive's collections is `Conflict` unless `replace`, which drops
/// them. Then each collection is written in batches, its indexes created, and read back to check
/// its count and content hash. The first error stops the restore; the [`RestoreError`] says what
/// the target holds at that point. The store is flushed before success is reported.
pub async fn restore(
    store: &Arc<dyn PersistenceBackend>,
    path: &Path,
    options: &RestoreOptions,
) -> std::result::Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let fail = |error: Error, report: Option<&RestoreReport>| RestoreError { error, report: report.cloned() };
    if options.batch_size == 0 {
        return Err(fail(Error::invalid("the restore batch size must be at least 1"), None));
    }
    // 1. Verify everything before writing anything.
    let owned = path.to_owned();
    let progress = options.progress.clone();
    let manifest = tokio::task::spawn_blocking(move || verify::examine(&owned, progress.as_ref())?.check())
        .await
        .map_err(|e| Error::backend("the archive reader thread failed", e))
        .and_then(|r| r)
        .map_err(|e| fail(e, None))?;
    let mut report = RestoreReport {
        archive: path.to_owned(),
        collections: manifest
            .collections
            .iter()
            .map(|c| CollectionRestore {
                name: c.name.clone(),
                expected: c.count,
                written: 0,
                indexes: 0,
                replaced: false,
                erased: 0,
                kept_target_copy: false,
                state: RestoreState::NotStarted,
            })
            .collect(),
        manifest,
        elapsed: Duration::ZERO,
    };

    // 2. The target: no collection of the archive unless replacing; indexes it can build.
    let existing = store.list_collections().await.map_err(|e| fail(e, Some(&report)))?;
    // The target's ledger, map and audit log are never replaced (nor a clash): the archive's
    // copies are skipped.
    let kept: Vec<String> =
        KEPT.iter().filter(|k| existing.iter().any(|e| e == *k)).map(|k| (*k).to_owned()).collect();
    for c in report.collections.iter_mut().filter(|c| kept.contains(&c.name)) {
        c.kept_target_copy = true;
    }
    let clashes: Vec<&str> = report
        .manifest
        .collections
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| existing.iter().any(|e| e == n) && !KEPT.contains(n))
        .collect();
    if !clashes.is_empty() && !options.replace {
        let e = Error::conflict(format!(
            "the target already has collection{} {}: restore into a store without them, or replace them (--replace)",
            if clashes.len() == 1 { "" } else { "s" },
            clashes.join(", ")
        ));
        return Err(fail(e, Some(&report)));
    }
    if !store.capabilities().unique_indexes {
        for c in &report.manifest.collections {
            if let Some(spec) = c.indexes.iter().find(|s| s.unique) {
                let e = Error::unsupported(format!(
                    "collection {:?} has the unique index {:?}, which the {} backend cannot enforce",
                    c.name,
                    spec.name,
                    store.kind()
                ));
                return Err(fail(e, Some(&report)));
            }
        }
    }
    // The target's ledger and map, read before anything of it is replaced.
    let map = match &options.subjects {
        Some(m) => m.clone(),
        None => subjects::stored_map(&**store).await.map_err(|e| fail(e, Some(&report)))?,
    };
    let erasures = Erasures::load(&**store, map).await.map_err(|e| fail(e, Some(&report)))?;
    let clashes: Vec<String> = clashes.into_iter().map(str::to_owned).collect();
    for name in clashes {
        store.drop_collection(&name).await.map_err(|e| fail(e, Some(&report)))?;
        if let Some(c) = report.collections.iter_mut().find(|c| c.name == name) {
            c.replaced = true;
        }
    }

    // 3. Write: a second reading of the archive (checked as strictly as the first) feeds
    //    batches through a small channel, so memory holds two batches at most.
    let (tx, mut rx) = mpsc::channel::<Msg>(2);
    let owned = path.to_owned();
    let batch_size = options.batch_size;
    let reader = tokio::task::spawn_blocking(move || {
        let mut sender = Sender {
            tx,
            batch: Vec::with_capacity(batch_size),
            batch_bytes: 0,
            batch_size,
            erasures,
            kept: ContentHasher::new(),
            erased: 0,
            skip: kept,
        };
        verify::read_archive(&owned, &mut sender, true, &NoProgress).map(|_| ())
    });
    let written = write_all(store, &mut rx, &mut report, options.progress.as_ref()).await;
    drop(rx);
    let read =
        reader.await.map_err(|e| Error::backend("the archive reader thread failed", e)).and_then(|r| r);
    match (written, read) {
        (Ok(()), Ok(())) => {}
        (Err(e), _) => return Err(fail(e, Some(&report))),
        (Ok(()), Err(e)) => return Err(fail(e, Some(&report))),
    }
    if let Some(c) = report.collections.iter().find(|c| c.state != RestoreState::Verified) {
        let e = Error::corrupt(format!(
            "collection {:?} was not restored in full ({})",
            c.name,
            c.state.as_str()
        ));
        return Err(fail(e, Some(&report)));
    }
    store.flush().await.map_err(|e| fail(e, Some(&report)))?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn write_all(
    store: &Arc<dyn PersistenceBackend>,
    rx: &mut mpsc::Receiver<Msg>,
    report: &mut RestoreReport,
    progress: &dyn Progress,
) -> Result<()> {
    let mut current: Option<(usize, orbstore_core::CollectionRef, Vec<IndexSpec>)> = None;
    let mut skipping: Option<String> = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Start { name, .. }
                if report.collections.iter().any(|c| c.name == name && c.kept_target_copy) =>
            {
                current = None;
                skipping = Some(name);
            }
            Msg::End { name, .. } if skipping.as_deref() == Some(name.as_str()) => {
                skipping = None;
                if let Some(c) = report.collections.iter_mut().find(|c| c.name == name) {
                    c.state = RestoreState::Verified;
                }
            }
            Msg::Start { name, indexes } => {
                let i =
                    report.collections.iter().position(|c| c.name == name).ok_or_else(|| {
                        Error::corrupt(format!("collection {name:?} is not in the manifest"))
                    })?;
                progress.begin(
                    &format!("restore {name}"),
                    Some(report.collections[i].expected),
                    Unit::Documents,
                );
                let coll = store.collection(&name).await?;
                report.collections[i].state = RestoreState::Partial;
                current = Some((i, coll, indexes));
            }
            Msg::Batch(docs) => {
                let Some((i, coll, _)) = current.as_ref() else {
                    return Err(Error::corrupt("documents before their collection's index list"));
                };
                let n = docs.len() as u64;
                coll.insert_many(docs).await.map_err(|e| {
                    let what = format!("writing collection {:?}: {}", coll.name(), e.message());
                    Error::new(e.kind(), what).with_source(e)
                })?;
                report.collections[*i].written += n;
                progress.advance(n);
            }
            Msg::End { name, digest, kept, erased } => {
                let Some((i, coll, indexes)) = current.take() else {
                    return Err(Error::corrupt(format!("the end of {name:?} before its start")));
                };
                progress.end();
                let expected = report.manifest.collections[i].clone();
                if digest.sha256 != expected.sha256 || digest.count != expected.count {
                    return Err(Error::corrupt(format!(
                        "collection {name:?} changed in the archive since it was verified (the file was modified \
                         during the restore)"
                    )));
                }
                report.collections[i].state = RestoreState::DocumentsWritten;
                for spec in indexes {
                    let spec_name = spec.name.clone();
                    coll.create_index(spec).await.map_err(|e| {
                        let what = format!("creating index {spec_name:?} on {name:?}: {}", e.message());
                        Error::new(e.kind(), what).with_source(e)
                    })?;
                    report.collections[i].indexes += 1;
                }
                report.collections[i].state = RestoreState::Written;
                report.collections[i].erased = erased;
                // What was written (the archive less the erased users' documents) must read back.
                let back = read_back(&coll).await?;
                if back.count != kept.count || back.sha256 != kept.sha256 {
                    return Err(Error::corrupt(format!(
                        "collection {name:?} reads back from the target as {} documents with sha256 {}, the archive \
                         has {} with {} ({erased} left out as erased)",
                        back.count, back.sha256, kept.count, kept.sha256
                    )));
                }
                report.collections[i].state = RestoreState::Verified;
            }
        }
    }
    Ok(())
}

/// Count and content hash of a collection as the store returns it, in `_id` order.
pub(crate) async fn read_back(coll: &orbstore_core::CollectionRef) -> Result<ContentDigest> {
    let mut stream = coll.find_stream(&Query::all()).await?;
    let mut hasher = ContentHasher::new();
    while let Some(doc) = stream.next().await {
        hasher.add_document(&doc?);
    }
    Ok(hasher.finish())
}
