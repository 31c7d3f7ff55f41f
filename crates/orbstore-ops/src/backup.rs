//! `backup`: every collection of a store, streamed through a snapshot into one archive, the
//! manifest last, the final name given only to a complete and synced file; then rotation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use orbstore_core::{read_snapshot, Document, Error, Filter, IndexSpec, PersistenceBackend, Query, Result};
use tokio::sync::mpsc;

use crate::archive::Compression;
use crate::builder::ArchiveBuilder;
use crate::fsutil;
use crate::manifest::Manifest;
use crate::progress::{NoProgress, Progress, Unit};
use crate::rotation;

/// How and where to back up.
#[derive(Clone)]
pub struct BackupOptions {
    /// Write exactly this file. `None`: a timestamped archive in [`BackupOptions::dir`], after
    /// which older archives there are pruned.
    pub out: Option<PathBuf>,
    /// The rotation directory (`BACKUP_DIR`, default `./backups`), created when missing.
    pub dir: PathBuf,
    /// Archives in `dir` older than this many days are removed after a successful backup
    /// (`BACKUP_RETENTION_DAYS`, default 30; 0 keeps everything).
    pub retention_days: u32,
    /// `BACKUP_COMPRESSION`: gzip (default), zstd or none.
    pub compression: Compression,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
}

impl Default for BackupOptions {
    fn default() -> BackupOptions {
        BackupOptions {
            out: None,
            dir: PathBuf::from(rotation::DEFAULT_DIR),
            retention_days: rotation::DEFAULT_RETENTION_DAYS,
            compression: Compression::Gzip,
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupOptions")
            .field("out", &self.out)
            .field("dir", &self.dir)
            .field("retention_days", &self.retention_days)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl BackupOptions {
    /// The defaults, with `BACKUP_DIR`, `BACKUP_RETENTION_DAYS` and `BACKUP_COMPRESSION` applied
    /// (an empty variable counts as unset). A bad value is `InvalidInput` naming the variable.
    pub fn from_env() -> Result<BackupOptions> {
        BackupOptions::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`BackupOptions::from_env`] over any source of variables (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<BackupOptions> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut o = BackupOptions::default();
        if let Some(dir) = get(rotation::DIR_VAR) {
            o.dir = PathBuf::from(dir);
        }
        if let Some(days) = get(rotation::RETENTION_VAR) {
            o.retention_days = rotation::parse_retention(&days)?;
        }
        if let Some(c) = get(crate::archive::COMPRESSION_VAR) {
            o.compression = Compression::parse(&c, crate::archive::COMPRESSION_VAR)?;
        }
        Ok(o)
    }
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The archive.
    pub path: PathBuf,
    /// Its size on disk.
    pub archive_bytes: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// Older archives removed by rotation.
    pub pruned: Vec<PathBuf>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Documents per message to the writer thread: enough to amortize the channel, few enough to
/// keep memory small.
const CHUNK: usize = 512;

enum ToWriter {
    Collection { name: String, indexes: Vec<IndexSpec> },
    Documents(Vec<Document>),
    EndCollection,
    Finish(Box<Manifest>),
}

/// Backs up every collection of `store` into one archive (see `docs/operations.md`).
///
/// The documents are read through [`read_snapshot`], whose consistency the manifest records,
/// and streamed: memory holds a few hundred documents at a time whatever the store's size. The
/// archive is written to `<path>.partial`, synced, and renamed, so the final name exists only for
/// a complete archive; on any error the partial file is removed and nothing is pruned. An `out`
/// that exists already is `InvalidInput` (a backup never overwrites one).
pub async fn backup(store: &Arc<dyn PersistenceBackend>, options: &BackupOptions) -> Result<BackupReport> {
    let started = Instant::now();
    let now = SystemTime::now();
    let created_at = humantime::format_rfc3339_millis(now).to_string();
    let path = match &options.out {
        Some(p) => p.clone(),
        None => {
            std::fs::create_dir_all(&options.dir)
                .map_err(|e| Error::io(format!("creating backup directory {}", options.dir.display()), e))?;
            options.dir.join(rotation::archive_name(now, options.compression))
        }
    };
    if path.exists() {
        return Err(Error::invalid(format!(
            "{} exists already: a backup never overwrites a file",
            path.display()
        )));
    }
    let dir = fsutil::parent_dir(&path);
    if !dir.is_dir() {
        return Err(Error::invalid(format!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        )));
    }
    let partial = fsutil::partial_path(&path);
    let file = std::fs::File::create(&partial)
        .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;

    let (tx, rx) = mpsc::channel::<ToWriter>(4);
    let mtime = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let compression = options.compression;
    let writer_dir = dir.clone();
    let writer =
        tokio::task::spawn_blocking(move || write_archive(rx, file, &writer_dir, compression, mtime));

    let read = read_store(store, &tx, &created_at, options.progress.as_ref()).await;
    drop(tx);
    let written = writer.await.map_err(|e| Error::backend("the archive writer thread failed", e));
    let (file, manifest) = match (read, written) {
        (Ok(()), Ok(Ok(Some(done)))) => done,
        // The writer's own error explains a refused send better than the send does.
        (_, Ok(Err(e))) | (Err(e), _) | (_, Err(e)) => {
            fsutil::discard(&partial);
            return Err(e);
        }
        (Ok(()), Ok(Ok(None))) => {
            fsutil::discard(&partial);
            return Err(Error::backend("the backup stopped before its manifest was written", "incomplete"));
        }
    };
    let archive_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    if let Err(e) = fsutil::commit(file, &partial, &path) {
        fsutil::discard(&partial);
        return Err(e);
    }
    let pruned = if options.out.is_none() {
        rotation::prune(&options.dir, options.retention_days, now, &path).map_err(|e| {
            Error::new(
                e.kind(),
                format!("the backup {} is complete, but rotation failed: {}", path.display(), e.message()),
            )
        })?
    } else {
        Vec::new()
    };
    Ok(BackupReport { path, archive_bytes, manifest, pruned, elapsed: started.elapsed() })
}

/// The reading side: the snapshot's collections, their indexes and documents, in order.
async fn read_store(
    store: &Arc<dyn PersistenceBackend>,
    tx: &mpsc::Sender<ToWriter>,
    created_at: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let snapshot = read_snapshot(store).await?;
    let manifest = Manifest::new(store.kind(), created_at.to_owned(), snapshot.consistency());
    let send = |msg| async {
        tx.send(msg).await.map_err(|_| Error::backend("the archive writer stopped", "closed"))
    };
    for name in snapshot.list_collections().await? {
        let indexes = snapshot.list_indexes(&name).await?;
        // The total is only for the progress bar: a live count, which may differ a little
        // from what the snapshot streams.
        let total = if progress.wants_totals() {
            match store.collection(&name).await {
                Ok(c) => c.count(&Filter::all()).await.ok(),
                Err(_) => None,
            }
        } else {
            None
        };
        progress.begin(&format!("backup {name}"), total, Unit::Documents);
        send(ToWriter::Collection { name: name.clone(), indexes }).await?;
        let mut stream = snapshot.find_stream(&name, &Query::all()).await?;
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(doc) = stream.next().await {
            chunk.push(doc?);
            if chunk.len() == CHUNK {
                progress.advance(CHUNK as u64);
                send(ToWriter::Documents(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))).await?;
            }
        }
        progress.advance(chunk.len() as u64);
        if !chunk.is_empty() {
            send(ToWriter::Documents(chunk)).await?;
        }
        send(ToWriter::EndCollection).await?;
        progress.end();
    }
    // The writer fills in the collections: it computed their hashes.
    send(ToWriter::Finish(Box::new(manifest))).await
}

/// The writing side (a blocking thread): the messages of the reading side, into an archive.
fn write_archive(
    mut rx: mpsc::Receiver<ToWriter>,
    file: std::fs::File,
    dir: &Path,
    compression: Compression,
    mtime: u64,
) -> Result<Option<(std::fs::File, Manifest)>> {
    let mut builder = ArchiveBuilder::new(file, dir, compression, mtime);
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            ToWriter::Collection { name, indexes } => builder.begin_collection(name, indexes)?,
            ToWriter::Documents(docs) => {
                for doc in &docs {
                    builder.document(doc)?;
                }
            }
            ToWriter::EndCollection => builder.end_collection()?,
            ToWriter::Finish(manifest) => return builder.finish(*manifest).map(Some),
        }
    }
    // The reading side stopped (and reports why).
    Ok(None)
}
