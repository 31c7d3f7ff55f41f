//! Reading an archive entry by entry and checking everything it says about itself: each line a
//! canonical document in `_id` order, each collection's count, bytes and hash equal to the
//! manifest's, the manifest present, of a known format version, and last.
//!
//! Inspect runs this alone; restore runs it once before writing anything and again, as it
//! writes, over the same file (so an archive changed in between is caught too).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use orbstore_core::serde_json;
use orbstore_core::{Document, Error, ErrorKind, IndexSpec, Result, ID_FIELD};

use crate::archive::{self, Compression};
use crate::canonical::{self, ContentDigest, ContentHasher};
use crate::manifest::{EntryKind, Manifest, MANIFEST_PATH};
use crate::progress::{Progress, Unit};

/// The largest line (one document) or metadata entry read; anything longer is damage or a
/// hostile archive, and reading it would exhaust memory.
const MAX_LINE: u64 = 512 << 20;
const MAX_METADATA: u64 = 64 << 20;

/// What a reader sees as the archive goes by; restore writes through it.
pub(crate) trait Visitor {
    /// A collection's index specs (its `indexes.json`, which precedes its documents).
    fn indexes(&mut self, _collection: &str, _specs: &[IndexSpec]) -> Result<()> {
        Ok(())
    }
    /// One document of a collection, in `_id` order, already checked; `bytes` is the size of
    /// its line.
    fn document(&mut self, _collection: &str, _doc: Document, _bytes: usize) -> Result<()> {
        Ok(())
    }
    /// The end of a collection's documents.
    fn end_documents(&mut self, _collection: &str, _digest: &ContentDigest) -> Result<()> {
        Ok(())
    }
}

/// A visitor that only reads.
pub(crate) struct JustRead;
impl Visitor for JustRead {}

/// What was found in one collection's entries.
#[derive(Debug, Default, Clone)]
pub(crate) struct Found {
    pub(crate) digest: Option<ContentDigest>,
    pub(crate) indexes: Option<Vec<IndexSpec>>,
    /// Its documents entry was damaged (that damage is the finding, not its count or hash).
    pub(crate) damaged: bool,
}

/// Everything one reading of an archive found.
pub(crate) struct Examined {
    pub(crate) path: String,
    pub(crate) compression: Compression,
    pub(crate) archive_bytes: u64,
    /// The manifest, or why it could not be read (`None` inside: there was none).
    pub(crate) manifest: Option<Result<Manifest>>,
    pub(crate) found: BTreeMap<String, Found>,
    /// Damage inside entries, each naming the entry (reading went on to the next entry).
    pub(crate) problems: Vec<String>,
    /// Damage that stopped the reading (a broken compressed stream, a bad tar header).
    pub(crate) stopped: Option<String>,
}

/// One problem an archive has, with the collection it concerns, if one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) collection: Option<String>,
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl Examined {
    /// Every problem, the most fundamental first: reading stopped, no manifest, a manifest not
    /// understood, damaged entries, then disagreements with the manifest.
    pub(crate) fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let corrupt = |collection: Option<&str>, message: String| Finding {
            collection: collection.map(str::to_owned),
            kind: ErrorKind::Corrupt,
            message,
        };
        if let Some(why) = &self.stopped {
            out.push(corrupt(None, why.clone()));
        }
        let manifest = match &self.manifest {
            None => {
                out.push(corrupt(
                    None,
                    format!(
                        "there is no {MANIFEST_PATH}: the archive is incomplete (truncated, or a backup that did not \
                         finish) or not an orbstore backup"
                    ),
                ));
                None
            }
            Some(Err(e)) => {
                out.push(Finding { collection: None, kind: e.kind(), message: e.message().to_owned() });
                None
            }
            Some(Ok(m)) => Some(m),
        };
        for p in &self.problems {
            let collection = p.strip_prefix("collections/").and_then(|r| r.split_once('/')).map(|(n, _)| n);
            out.push(corrupt(collection, p.clone()));
        }
        let Some(m) = manifest else { return out };
        for c in &m.collections {
            let found = self.found.get(&c.name).cloned().unwrap_or_default();
            let name = Some(c.name.as_str());
            match &found.digest {
                _ if found.damaged => {}
                None => out
                    .push(corrupt(name, format!("{} is missing", crate::manifest::documents_path(&c.name)))),
                Some(d) => {
                    if d.count != c.count {
                        out.push(corrupt(
                            name,
                            format!(
                                "collection {:?} holds {} documents, the manifest says {}",
                                c.name, d.count, c.count
                            ),
                        ));
                    }
                    if d.bytes != c.bytes {
                        out.push(corrupt(
                            name,
                            format!(
                                "collection {:?} holds {} bytes, the manifest says {}",
                                c.name, d.bytes, c.bytes
                            ),
                        ));
                    }
                    if d.sha256 != c.sha256 {
                        out.push(corrupt(
                            name,
                            format!(
                                "collection {:?}: checksum mismatch (sha256 {} computed, {} in the manifest)",
                                c.name, d.sha256, c.sha256
                            ),
                        ));
                    }
                }
            }
            match &found.indexes {
                None => {
                    out.push(corrupt(name, format!("{} is missing", crate::manifest::indexes_path(&c.name))))
                }
                Some(specs) if *specs != c.indexes => out.push(corrupt(
                    name,
                    format!(
                        "{} differs from the manifest's index list",
                        crate::manifest::indexes_path(&c.name)
                    ),
                )),
                Some(_) => {}
            }
        }
        for name in self.found.keys() {
            if m.collection(name).is_none() {
                out.push(corrupt(
                    Some(name),
                    format!("collection {name:?} is in the archive but not in its manifest"),
                ));
            }
        }
        out
    }

    /// The manifest when every check passed; otherwise the first finding as an error naming
    /// the archive (and how many other problems there are).
    pub(crate) fn check(self) -> Result<Manifest> {
        let findings = self.findings();
        if let Some(first) = findings.first() {
            let more = match findings.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more problem)".to_owned(),
                n => format!(" (and {n} more problems)"),
            };
            return Err(Error::new(first.kind, format!("archive {}: {}{more}", self.path, first.message)));
        }
        match self.manifest {
            Some(Ok(m)) => Ok(m),
            _ => unreachable!("a missing or unreadable manifest is a finding"),
        }
    }
}

/// Reads the whole archive at `path`, calling `visitor` for what it holds. In `strict` mode the
/// first damage is returned as an error at once (restore must not write past it); otherwise it
/// is recorded and reading goes on where it can. An error of the visitor ends the reading and is
/// returned as is. Blocking: run it off the async runtime.
pub(crate) fn read_archive(
    path: &Path,
    visitor: &mut dyn Visitor,
    strict: bool,
    progress: &dyn Progress,
) -> Result<Examined> {
    let mut reader = archive::open(path)?;
    let display = path.display().to_string();
    let mut ex = Examined {
        path: display.clone(),
        compression: reader.compression,
        archive_bytes: reader.size,
        manifest: None,
        found: BTreeMap::new(),
        problems: Vec::new(),
        stopped: None,
    };
    progress.begin(&format!("reading {display}"), Some(reader.size), Unit::Bytes);
    let read = reader.read.clone();
    let mut reported = 0;
    let mut report = || {
        let now = read.load(std::sync::atomic::Ordering::Relaxed);
        if now > reported {
            progress.advance(now - reported);
            reported = now;
        }
    };
    let damaged = |ex: &mut Examined, msg: String| -> Result<()> {
        if strict {
            Err(Error::corrupt(format!("archive {display}: {msg}")))
        } else {
            ex.problems.push(msg);
            Ok(())
        }
    };
    let entries = match reader.tar.entries() {
        Ok(e) => e,
        Err(e) => {
            ex.stopped = Some(format!("not a readable tar archive ({e})"));
            return finish(ex, strict, progress);
        }
    };
    let mut last_path = String::from("the start of the archive");
    // Where the last entry's data (with its padding) ends in the decompressed stream.
    let mut last_end: u64 = 0;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                ex.stopped = Some(format!("reading stopped after {last_path}: {e}"));
                break;
            }
        };
        let entry_path = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => {
                ex.stopped = Some(format!("an entry after {last_path} has an unreadable name ({e})"));
                break;
            }
        };
        last_path = entry_path.clone();
        last_end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        if ex.manifest.is_some() {
            damaged(&mut ex, format!("{entry_path} follows {MANIFEST_PATH}, which must be the last entry"))?;
            continue;
        }
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
            damaged(&mut ex, format!("{entry_path} is not a regular file"))?;
            continue;
        }
        let outcome: std::result::Result<(), Trouble> = match EntryKind::of(&entry_path) {
            EntryKind::Manifest => read_small(&mut entry, &entry_path).map(|bytes| {
                ex.manifest = Some(Manifest::parse(&bytes));
            }),
            EntryKind::Indexes(name) => {
                if ex.found.get(&name).is_some_and(|f| f.indexes.is_some() || f.digest.is_some()) {
                    Err(Trouble::Damage(format!(
                        "{entry_path} appears twice, or after the collection's documents"
                    )))
                } else {
                    match read_small(&mut entry, &entry_path).and_then(|b| parse_indexes(&b, &entry_path)) {
                        Ok(specs) => {
                            visitor.indexes(&name, &specs)?;
                            ex.found.entry(name).or_default().indexes = Some(specs);
                            Ok(())
                        }
                        Err(t) => Err(t),
                    }
                }
            }
            EntryKind::Documents(name) => {
                if ex.found.get(&name).is_some_and(|f| f.digest.is_some()) {
                    Err(Trouble::Damage(format!("{entry_path} appears twice")))
                } else {
                    match read_documents(&mut entry, &entry_path, &name, visitor, &mut report)? {
                        Ok(digest) => {
                            visitor.end_documents(&name, &digest)?;
                            ex.found.entry(name).or_default().digest = Some(digest);
                            Ok(())
                        }
                        Err(t) => {
                            // The collection counts as present (damaged), so the finding is the
                            // damage, not "missing".
                            ex.found.entry(name).or_default().damaged = true;
                            Err(t)
                        }
                    }
                }
            }
            EntryKind::Unknown => {
                Err(Trouble::Damage(format!("{entry_path} is not an entry of an orbstore backup")))
            }
        };
        report();
        match outcome {
            Ok(()) => {}
            Err(Trouble::Stream(why)) => {
                ex.stopped = Some(format!("reading stopped in {entry_path}: {why}"));
                break;
            }
            Err(Trouble::Damage(msg)) => damaged(&mut ex, msg)?,
        }
        if strict {
            if let Some(Err(e)) = &ex.manifest {
                return Err(Error::new(e.kind(), format!("archive {display}: {}", e.message())));
            }
        }
    }
    if ex.stopped.is_none() {
        check_end(reader, last_end, &mut ex);
    }
    report();
    finish(ex, strict, progress)
}

/// The tar stream must end with its end-of-archive marker (two zero blocks) and the compressed
/// stream must end cleanly after it: a file cut right after the manifest is reported as cut,
/// not taken as whole because its entries happen to be.
fn check_end(reader: archive::ArchiveReader, last_end: u64, ex: &mut Examined) {
    let decoded = reader.decoded.clone();
    let mut rest = reader.tar.into_inner();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if buf[..n].iter().any(|&b| b != 0) {
                    ex.problems.push("there are data after the end-of-archive marker".to_owned());
                    return;
                }
            }
            Err(e) => {
                ex.stopped = Some(format!("the end of the archive is damaged ({e})"));
                return;
            }
        }
    }
    let total = decoded.load(std::sync::atomic::Ordering::Relaxed);
    if total < last_end + 1024 {
        ex.stopped = Some("the archive ends without its end-of-archive marker: it is truncated".to_owned());
    }
}

fn finish(ex: Examined, strict: bool, progress: &dyn Progress) -> Result<Examined> {
    progress.end();
    if strict {
        if let Some(first) = ex.findings().first() {
            return Err(Error::new(first.kind, format!("archive {}: {}", ex.path, first.message)));
        }
    }
    Ok(ex)
}

/// Damage found while reading an entry.
enum Trouble {
    /// Inside the entry: reading goes on with the next one.
    Damage(String),
    /// In the decompressed stream itself (a bad compressed block, a cut-off file): nothing
    /// after it can be read.
    Stream(String),
}

fn stream_error(e: std::io::Error) -> Trouble {
    Trouble::Stream(e.to_string())
}

fn read_small(entry: &mut impl Read, path: &str) -> std::result::Result<Vec<u8>, Trouble> {
    let mut bytes = Vec::new();
    entry.take(MAX_METADATA + 1).read_to_end(&mut bytes).map_err(stream_error)?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(Trouble::Damage(format!("{path} is larger than {MAX_METADATA} bytes")));
    }
    Ok(bytes)
}

fn parse_indexes(bytes: &[u8], path: &str) -> std::result::Result<Vec<IndexSpec>, Trouble> {
    let specs: Vec<IndexSpec> = serde_json::from_slice(bytes)
        .map_err(|e| Trouble::Damage(format!("{path} is not a list of index specs ({e})")))?;
    for s in &specs {
        s.validate().map_err(|e| Trouble::Damage(format!("{path}: {}", e.message())))?;
    }
    Ok(specs)
}

/// Reads a `documents.jsonl`: the outer `Err` is an error of the visitor (it ends the reading),
/// the inner one damage in the entry or the stream.
fn read_documents(
    entry: &mut impl Read,
    path: &str,
    collection: &str,
    visitor: &mut dyn Visitor,
    report: &mut dyn FnMut(),
) -> Result<std::result::Result<ContentDigest, Trouble>> {
    let mut reader = BufReader::with_capacity(1 << 20, entry);
    let mut hasher = ContentHasher::new();
    let mut line = Vec::with_capacity(1024);
    let mut canon = Vec::with_capacity(1024);
    let mut previous_id: Option<String> = None;
    let mut n: u64 = 0;
    loop {
        line.clear();
        let got = match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(got) => got,
            Err(e) => return Ok(Err(stream_error(e))),
        };
        if got == 0 {
            break;
        }
        n += 1;
        let damage = |what: String| Ok(Err(Trouble::Damage(format!("{path}: line {n}: {what}"))));
        if line.last() != Some(&b'\n') {
            return if got as u64 >= MAX_LINE {
                damage(format!("longer than {MAX_LINE} bytes"))
            } else {
                damage("ends without a newline (the entry is cut short)".into())
            };
        }
        let body = &line[..line.len() - 1];
        let doc: Document = match serde_json::from_slice(body) {
            Ok(d) => d,
            Err(e) => return damage(format!("not a JSON object ({e})")),
        };
        let Some(id) = doc.get(ID_FIELD).and_then(|v| v.as_str()) else {
            return damage("the document has no string _id".into());
        };
        if previous_id.as_deref().is_some_and(|p| p >= id) {
            return damage(format!(
                "_id {id:?} is not after the previous one: documents must be in _id order"
            ));
        }
        canon.clear();
        canonical::write_document(&doc, &mut canon);
        if canon != body {
            return damage("the document is not in canonical form".into());
        }
        previous_id = Some(id.to_owned());
        hasher.add_line(&line);
        visitor.document(collection, doc, line.len())?;
        if n.is_multiple_of(4096) {
            report();
        }
    }
    Ok(Ok(hasher.finish()))
}

/// Reads and checks the whole archive (blocking), returning what it found.
pub(crate) fn examine(path: &Path, progress: &dyn Progress) -> Result<Examined> {
    read_archive(path, &mut JustRead, false, progress)
}
