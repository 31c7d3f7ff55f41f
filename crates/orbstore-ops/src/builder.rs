//! Building an archive collection by collection: canonical lines in `_id` order, their content
//! hash, the tar entries, the manifest last. Backup feeds it from a snapshot, retention from the
//! documents it archives.

use std::fs::File;
use std::path::Path;

use orbstore_core::{id_of, Document, Error, IndexSpec, Result, ID_FIELD};

use crate::archive::{ArchiveWriter, Compression, Spool};
use crate::canonical::{self, ContentHasher};
use crate::manifest::{documents_path, indexes_path, CollectionManifest, Manifest, MANIFEST_PATH};

/// One collection being written.
struct Open {
    name: String,
    indexes: Vec<IndexSpec>,
    spool: Spool,
    hasher: ContentHasher,
    last_id: Option<String>,
}

/// An archive being written (blocking I/O: run it off the async runtime).
pub(crate) struct ArchiveBuilder {
    writer: ArchiveWriter,
    done: Vec<CollectionManifest>,
    open: Option<Open>,
    line: Vec<u8>,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.to_owned();
    move |e| Error::io(format!("writing the archive ({what})"), e)
}

impl ArchiveBuilder {
    /// Writes into `file`; spools go to `dir` (the archive's directory, same file system).
    pub(crate) fn new(file: File, dir: &Path, compression: Compression, mtime: u64) -> ArchiveBuilder {
        ArchiveBuilder {
            writer: ArchiveWriter::new(file, dir, compression, mtime),
            done: Vec::new(),
            open: None,
            line: Vec::with_capacity(4096),
        }
    }

    /// Starts a collection: its index specs entry now, its documents spooled until it ends.
    pub(crate) fn begin_collection(&mut self, name: String, indexes: Vec<IndexSpec>) -> Result<()> {
        let specs = orbstore_core::serde_json::to_vec_pretty(&indexes)
            .map_err(|e| Error::backend("encoding index specs", e))?;
        self.writer.append_bytes(&indexes_path(&name), &specs).map_err(io(&indexes_path(&name)))?;
        let spool = self.writer.spool().map_err(io("spool file"))?;
        self.open = Some(Open { name, indexes, spool, hasher: ContentHasher::new(), last_id: None });
        Ok(())
    }

    /// One document of the open collection; documents come in ascending `_id` order.
    pub(crate) fn document(&mut self, doc: &Document) -> Result<()> {
        let Some(c) = self.open.as_mut() else {
            return Err(Error::backend("documents outside a collection", ""));
        };
        let Some(id) = id_of(doc) else {
            return Err(Error::corrupt(format!(
                "collection {:?} returned a document without a string {ID_FIELD}",
                c.name
            )));
        };
        // The archive promises `_id` order (restore and migrate rely on it); a source that
        // breaks it is a bug to report, not to paper over.
        if c.last_id.as_deref().is_some_and(|last| last >= id) {
            return Err(Error::backend(
                format!(
                    "collection {:?} streamed {id:?} after {:?}: not in _id order",
                    c.name,
                    c.last_id.as_deref().unwrap_or_default()
                ),
                "order",
            ));
        }
        c.last_id = Some(id.to_owned());
        self.line.clear();
        canonical::write_document(doc, &mut self.line);
        self.line.push(b'\n');
        c.hasher.add_line(&self.line);
        std::io::Write::write_all(&mut c.spool, &self.line).map_err(io("spool file"))
    }

    /// Ends the open collection: its documents entry, its manifest record.
    pub(crate) fn end_collection(&mut self) -> Result<()> {
        let Some(c) = self.open.take() else { return Err(Error::backend("end outside a collection", "")) };
        let path = documents_path(&c.name);
        self.writer.append_spool(&path, c.spool).map_err(io(&path))?;
        let d = c.hasher.finish();
        self.done.push(CollectionManifest {
            name: c.name,
            count: d.count,
            bytes: d.bytes,
            sha256: d.sha256,
            indexes: c.indexes,
        });
        Ok(())
    }

    /// Writes `manifest` with the collections written, and the end of the archive; returns the
    /// file, flushed but not synced (see `fsutil::commit`).
    pub(crate) fn finish(mut self, mut manifest: Manifest) -> Result<(File, Manifest)> {
        self.done.sort_by(|a, b| a.name.cmp(&b.name));
        manifest.collections = self.done;
        let bytes = orbstore_core::serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::backend("encoding the manifest", e))?;
        self.writer.append_bytes(MANIFEST_PATH, &bytes).map_err(io(MANIFEST_PATH))?;
        let file = self.writer.finish().map_err(io("end of archive"))?;
        Ok((file, manifest))
    }
}
