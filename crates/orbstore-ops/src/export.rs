//! `export`: documents as JSON lines or one JSON array, streamed to any writer or to a file.
//!
//! Documents are written in their canonical form ([`crate::canonical`]), so the same data
//! exports to the same bytes from every backend. Exporting exactly one named collection writes
//! its documents as they are; any other selection (several, or all by default) wraps each one
//! as `{"collection": NAME, "document": DOC}` in JSON lines, or writes one object of
//! `NAME: [DOC, ...]` as JSON, so that the output says where each document came from.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orbstore_core::{
    read_snapshot, validate_collection_name, Error, Filter, PersistenceBackend, Query, Result,
    SnapshotConsistency,
};
use tokio::sync::mpsc;

use crate::canonical;
use crate::fsutil;
use crate::progress::{NoProgress, Progress, Unit};

/// The shape of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// One JSON document per line (the default).
    #[default]
    JsonLines,
    /// One JSON array (or object of arrays, for several collections).
    Json,
}

impl ExportFormat {
    /// `jsonl` (also `ndjson`) or `json`; anything else is `InvalidInput`.
    pub fn parse(value: &str) -> Result<ExportFormat> {
        match value.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "jsonlines" => Ok(ExportFormat::JsonLines),
            "json" => Ok(ExportFormat::Json),
            _ => Err(Error::invalid(format!("export format {value:?} is not known: choose jsonl or json"))),
        }
    }

    /// `jsonl` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::JsonLines => "jsonl",
            ExportFormat::Json => "json",
        }
    }
}

/// What to export.
#[derive(Clone)]
pub struct ExportOptions {
    /// The collections, in this order; empty means every collection (sorted by name).
    pub collections: Vec<String>,
    /// Only documents matching this filter (in each collection).
    pub filter: Filter,
    /// JSON lines or JSON.
    pub format: ExportFormat,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            collections: Vec::new(),
            filter: Filter::all(),
            format: ExportFormat::JsonLines,
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("collections", &self.collections)
            .field("filter", &self.filter)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// Each collection exported with how many documents matched.
    pub collections: Vec<(String, u64)>,
    /// Documents written in all.
    pub documents: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The file written, when [`export_to_file`] wrote one.
    pub path: Option<PathBuf>,
    /// How consistent the collections are with one another.
    pub consistency: SnapshotConsistency,
    /// How long it took.
    pub elapsed: Duration,
}

/// Bytes per message to the writer thread.
const CHUNK_BYTES: usize = 256 << 10;

/// Exports from `store` into `out` (written on a blocking thread), returning `out` with the
/// report. A collection that does not exist is `NotFound`; an invalid name `InvalidInput`.
pub async fn export<W: Write + Send + 'static>(
    store: &Arc<dyn PersistenceBackend>,
    options: &ExportOptions,
    out: W,
) -> Result<(ExportReport, W)> {
    let started = Instant::now();
    options.filter.validate()?;
    for name in &options.collections {
        validate_collection_name(name)?;
    }
    let snapshot = read_snapshot(store).await?;
    let existing = snapshot.list_collections().await?;
    let names = if options.collections.is_empty() {
        existing
    } else {
        if let Some(missing) = options.collections.iter().find(|n| !existing.contains(n)) {
            return Err(Error::not_found(format!(
                "there is no collection {missing:?} to export (collections: {})",
                if existing.is_empty() { "none".to_owned() } else { existing.join(", ") }
            )));
        }
        options.collections.clone()
    };
    let wrapped = options.collections.len() != 1;

    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<W> {
        let mut out = out;
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(out)
    });
    let produced = produce(&*snapshot, &names, options, wrapped, &tx).await;
    drop(tx);
    let out = writer.await.map_err(|e| Error::backend("the export writer thread failed", e))?;
    match (produced, out) {
        (Ok((collections, bytes)), Ok(out)) => {
            let documents = collections.iter().map(|(_, n)| n).sum();
            let report = ExportReport {
                collections,
                documents,
                bytes,
                path: None,
                consistency: snapshot.consistency(),
                elapsed: started.elapsed(),
            };
            Ok((report, out))
        }
        // A write error explains a refused send better than the send does.
        (_, Err(e)) => Err(Error::io("writing the export", e)),
        (Err(e), Ok(_)) => Err(e),
    }
}

type Produced = (Vec<(String, u64)>, u64);

async fn produce(
    snapshot: &dyn orbstore_core::Snapshot,
    names: &[String],
    options: &ExportOptions,
    wrapped: bool,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<Produced> {
    let query = Query::new(options.filter.clone());
    let json = options.format == ExportFormat::Json;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut bytes = 0u64;
    let mut counts = Vec::with_capacity(names.len());
    let send = |buf: Vec<u8>| async move {
        tx.send(buf)
            .await
            .map_err(|_| Error::io("writing the export", std::io::Error::other("the writer stopped")))
    };
    if json {
        buf.extend_from_slice(if wrapped { b"{" } else { b"[" });
    }
    for (ci, name) in names.iter().enumerate() {
        options.progress.begin(&format!("export {name}"), None, Unit::Documents);
        if json && wrapped {
            buf.extend_from_slice(if ci == 0 { b"\n" } else { b",\n" });
            canonical::write_value(&orbstore_core::serde_json::Value::String(name.clone()), &mut buf);
            buf.extend_from_slice(b":[");
        }
        let mut stream = snapshot.find_stream(name, &query).await?;
        let mut n = 0u64;
        let mut reported = 0u64;
        while let Some(doc) = stream.next().await {
            let doc = doc?;
            if json {
                buf.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
                canonical::write_document(&doc, &mut buf);
            } else if wrapped {
                // Keys in canonical order: "collection" < "document".
                buf.extend_from_slice(b"{\"collection\":");
                canonical::write_value(&orbstore_core::serde_json::Value::String(name.clone()), &mut buf);
                buf.extend_from_slice(b",\"document\":");
                canonical::write_document(&doc, &mut buf);
                buf.extend_from_slice(b"}\n");
            } else {
                canonical::write_document(&doc, &mut buf);
                buf.push(b'\n');
            }
            n += 1;
            if buf.len() >= CHUNK_BYTES {
                bytes += buf.len() as u64;
                send(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES + 4096))).await?;
                options.progress.advance(n - reported);
                reported = n;
            }
        }
        options.progress.advance(n - reported);
        if json {
            buf.extend_from_slice(if n == 0 { b"]" } else { b"\n]" });
        }
        options.progress.end();
        counts.push((name.clone(), n));
    }
    if json {
        if wrapped {
            buf.extend_from_slice(if names.is_empty() { b"}" } else { b"\n}" });
        }
        buf.push(b'\n');
    }
    bytes += buf.len() as u64;
    send(buf).await?;
    Ok((counts, bytes))
}

/// Exports into a file: written as `<path>.partial`, synced and renamed, so `path` appears only
/// complete. An existing `path` is replaced.
pub async fn export_to_file(
    store: &Arc<dyn PersistenceBackend>,
    options: &ExportOptions,
    path: &Path,
) -> Result<ExportReport> {
    let dir = fsutil::parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::invalid(format!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        )));
    }
    let partial = fsutil::partial_path(path);
    let file = std::fs::File::create(&partial)
        .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
    let result = export(store, options, std::io::BufWriter::with_capacity(1 << 20, file)).await;
    let (mut report, out) = match result {
        Ok(r) => r,
        Err(e) => {
            fsutil::discard(&partial);
            return Err(e);
        }
    };
    let committed = out
        .into_inner()
        .map_err(|e| Error::io(format!("writing {}", partial.display()), e.into_error()))
        .and_then(|file| fsutil::commit(file, &partial, path));
    if let Err(e) = committed {
        fsutil::discard(&partial);
        return Err(e);
    }
    report.path = Some(path.to_owned());
    Ok(report)
}
