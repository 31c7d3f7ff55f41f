//! Cold archives: the documents retention archived, one file per collection per month of their
//! time (`<dir>/<collection>/<collection>-<YYYY-MM>.tar.zst`), each an orbstore archive of one
//! collection (the backup format: canonical JSON lines in `_id` order, a manifest with the count
//! and SHA-256, so `orb inspect` reads it too), compressed with zstd.
//!
//! Adding documents to a month rewrites its file: the old file and the new documents are merged
//! in `_id` order (a document archived again, after a crash between archiving and deleting,
//! replaces its earlier copy) into `<name>.partial`, which is fsynced and renamed over the old
//! one. The old file is verified as it is read; a damaged one stops the merge, and nothing is
//! deleted from the store.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use orbstore_core::{id_of, validate_collection_name, Document, Error, Result, SnapshotConsistency};
use serde::Serialize;

use crate::archive::Compression;
use crate::builder::ArchiveBuilder;
use crate::canonical::ContentDigest;
use crate::fsutil;
use crate::manifest::Manifest;
use crate::progress::NoProgress;
use crate::verify::{self, Visitor};

/// An exclusive lock on an archive directory (`<dir>/.lock`), held by whoever changes its
/// files: a retention run for the whole of a collection's archiving, an erasure for the whole of
/// its rewriting. Two writers merging into one month file at once would each rename over the
/// other's result and lose documents already deleted from the store. Released when dropped.
pub(crate) struct ArchiveLock(#[allow(dead_code)] std::fs::File);

/// Takes the lock, waiting for another holder (another process or task). Blocking.
pub(crate) fn lock(dir: &Path) -> Result<ArchiveLock> {
    create_dirs(dir)?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.lock().map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(ArchiveLock(file))
}

/// Creates `dir` and its missing ancestors, fsyncing each new entry's parent, so the directory
/// survives a crash as well as the files later put in it.
fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    std::fs::create_dir(dir)
        .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    fsutil::sync_dir(&fsutil::parent_dir(dir))
        .map_err(|e| Error::io(format!("syncing the parent of {}", dir.display()), e))
}

/// A month, `YYYY-MM`, of a time in microseconds since the epoch (UTC).
pub(crate) fn period_of(micros: i128) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(micros.saturating_mul(1_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// Where a collection's archive of one month lives.
pub fn archive_path(dir: &Path, collection: &str, period: &str) -> PathBuf {
    dir.join(collection).join(format!("{collection}-{period}.tar.zst"))
}

/// One cold archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdArchive {
    /// The collection it holds documents of.
    pub collection: String,
    /// Its month, `YYYY-MM`.
    pub period: String,
    /// The file.
    pub path: PathBuf,
    /// Documents in it (from its verified manifest).
    pub documents: u64,
    /// The file's size.
    pub bytes: u64,
}

/// Every cold archive under `dir`, by collection then period, each read whole and verified (a
/// damaged one is `Corrupt` naming it). A missing `dir` holds none.
pub fn list(dir: &Path) -> Result<Vec<ColdArchive>> {
    let mut out = Vec::new();
    let Ok(collections) = std::fs::read_dir(dir) else { return Ok(out) };
    for c in collections.filter_map(|e| e.ok()) {
        let name = c.file_name().to_string_lossy().into_owned();
        if validate_collection_name(&name).is_err() || !c.path().is_dir() {
            continue;
        }
        for (period, path) in periods(dir, &name)? {
            let manifest = verify::read_archive(&path, &mut verify::JustRead, true, &NoProgress)?.check()?;
            let documents = manifest.collection(&name).map_or(0, |m| m.count);
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            out.push(ColdArchive { collection: name.clone(), period, path, documents, bytes });
        }
    }
    out.sort_by(|a, b| (&a.collection, &a.period).cmp(&(&b.collection, &b.period)));
    Ok(out)
}

/// The months archived for `collection`, with their files, in order.
pub(crate) fn periods(dir: &Path, collection: &str) -> Result<Vec<(String, PathBuf)>> {
    let sub = dir.join(collection);
    let Ok(entries) = std::fs::read_dir(&sub) else { return Ok(Vec::new()) };
    let prefix = format!("{collection}-");
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let period = file.strip_prefix(&prefix)?.strip_suffix(".tar.zst")?.to_owned();
            let ok = period.len() == 7 && period.as_bytes()[4] == b'-';
            ok.then(|| (period, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reads every document of `collection` archived in the months from `from` to `to` (`YYYY-MM`,
/// both included; none: no bound), in month then `_id` order, each archive verified.
pub fn read(
    dir: &Path,
    collection: &str,
    from: Option<&str>,
    to: Option<&str>,
    mut each: impl FnMut(Document) -> Result<()>,
) -> Result<u64> {
    validate_collection_name(collection)?;
    struct Each<'a> {
        each: &'a mut dyn FnMut(Document) -> Result<()>,
        n: u64,
    }
    impl Visitor for Each<'_> {
        fn document(&mut self, _c: &str, doc: Document, _bytes: usize) -> Result<()> {
            self.n += 1;
            (self.each)(doc)
        }
    }
    let mut visitor = Each { each: &mut each, n: 0 };
    for (period, path) in periods(dir, collection)? {
        if from.is_some_and(|f| period.as_str() < f) || to.is_some_and(|t| period.as_str() > t) {
            continue;
        }
        verify::read_archive(&path, &mut visitor, true, &NoProgress)?.check()?;
    }
    Ok(visitor.n)
}

/// Merges `docs` (sorted by `_id`, unique) into the archive of `collection` for `period`, and
/// makes the result durable before returning. Blocking.
pub(crate) fn add(
    dir: &Path,
    collection: &str,
    period: &str,
    docs: &[Document],
    source_backend: &str,
) -> Result<PathBuf> {
    write_month(dir, collection, period, docs, source_backend, true)
}

/// Writes the month file of `docs` (sorted by `_id`, unique), merged with the file there when
/// `merge`, else replacing it; durable, atomically, before returning. Blocking.
fn write_month(
    dir: &Path,
    collection: &str,
    period: &str,
    docs: &[Document],
    source_backend: &str,
    merge: bool,
) -> Result<PathBuf> {
    let path = archive_path(dir, collection, period);
    let sub = fsutil::parent_dir(&path);
    create_dirs(&sub)?;
    let partial = fsutil::partial_path(&path);
    let result = (|| {
        let file = std::fs::File::create(&partial)
            .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
        let mtime = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut builder = ArchiveBuilder::new(file, &sub, Compression::Zstd, mtime);
        builder.begin_collection(collection.to_owned(), Vec::new())?;
        let mut next = 0;
        if merge && path.exists() {
            struct Merge<'a> {
                builder: &'a mut ArchiveBuilder,
                docs: &'a [Document],
                next: &'a mut usize,
            }
            impl Visitor for Merge<'_> {
                fn document(&mut self, _c: &str, doc: Document, _bytes: usize) -> Result<()> {
                    let id = id_of(&doc).unwrap_or_default().to_owned();
                    while let Some(new) = self.docs.get(*self.next) {
                        let new_id = id_of(new).unwrap_or_default();
                        if new_id > id.as_str() {
                            break;
                        }
                        self.builder.document(new)?;
                        *self.next += 1;
                        if new_id == id {
                            // Archived again: the newer copy replaces this one.
                            return Ok(());
                        }
                    }
                    self.builder.document(&doc)
                }
                fn end_documents(&mut self, _c: &str, _d: &ContentDigest) -> Result<()> {
                    Ok(())
                }
            }
            let mut merge = Merge { builder: &mut builder, docs, next: &mut next };
            verify::read_archive(&path, &mut merge, true, &NoProgress)?.check()?;
        }
        for doc in &docs[next..] {
            builder.document(doc)?;
        }
        builder.end_collection()?;
        let created_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let manifest = Manifest::new(source_backend, created_at, SnapshotConsistency::PerCollection);
        let (file, _) = builder.finish(manifest)?;
        file.sync_all().map_err(|e| Error::io(format!("syncing {}", partial.display()), e))?;
        // Read back before it replaces the old file (and before the store deletes anything).
        verify::read_archive(&partial, &mut verify::JustRead, true, &NoProgress)?.check()?;
        fsutil::commit(file, &partial, &path)
    })();
    if result.is_err() {
        fsutil::discard(&partial);
    }
    result.map(|()| path)
}

/// Rewrites every month file of `collection` without the documents `drop` selects (each file
/// verified as it is read, the new one fsynced and renamed over it; a month left empty is
/// removed). Returns how many documents were dropped. Blocking.
pub(crate) fn remove_matching(dir: &Path, collection: &str, drop: &dyn Fn(&Document) -> bool) -> Result<u64> {
    let mut dropped = 0;
    for (period, path) in periods(dir, collection)? {
        let mut kept = Vec::new();
        let mut here = 0;
        read(dir, collection, Some(&period), Some(&period), |doc| {
            if drop(&doc) {
                here += 1;
            } else {
                kept.push(doc);
            }
            Ok(())
        })?;
        if here == 0 {
            continue;
        }
        dropped += here;
        if kept.is_empty() {
            std::fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            fsutil::sync_dir(&fsutil::parent_dir(&path))
                .map_err(|e| Error::io(format!("syncing the directory of {}", path.display()), e))?;
        } else {
            write_month(dir, collection, &period, &kept, "orbstore", false)?;
        }
    }
    Ok(dropped)
}
