//! Snapshots: a collection's documents and indexes as one JSON file, written atomically (temp
//! file, fsync, rename, fsync the directory), and the import of JSON files other tools wrote.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use orbstore_core::engine::CollectionEngine;
use orbstore_core::{prepare_document, Document, IndexSpec};
use serde_json::{Map, Value};

/// The `format` field that marks orbstore's own snapshots.
pub(crate) const FORMAT: &str = "orbstore.snapshot";

/// A snapshot as read.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub docs: Vec<Document>,
    pub indexes: Vec<IndexSpec>,
    /// Written by another tool (an object keyed by id, or an array of objects).
    pub foreign: bool,
    /// Foreign entries that are not valid documents and were left out (the file keeps them).
    pub skipped: Vec<String>,
    /// The file's size.
    pub bytes: u64,
}

/// Why a snapshot could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The bytes are not a snapshot: not JSON, or JSON of an unusable shape.
    Unreadable(String),
}

/// Reads `<name>.json`. `Ok(None)` when there is no file. An empty (or blank) file is an empty
/// collection.
pub(crate) fn read(path: &Path) -> Result<Option<Loaded>, ReadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let size = bytes.len() as u64;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Loaded { bytes: size, ..Loaded::default() }));
    }
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Unreadable(format!("not valid JSON: {e}")))?;
    drop(bytes);
    let mut loaded = match value {
        Value::Object(mut m) if m.get("format").and_then(Value::as_str) == Some(FORMAT) => {
            let indexes = match m.remove("indexes") {
                Some(v) => serde_json::from_value(v)
                    .map_err(|e| ReadError::Unreadable(format!("bad \"indexes\": {e}")))?,
                None => Vec::new(),
            };
            let Some(Value::Array(items)) = m.remove("documents") else {
                return Err(ReadError::Unreadable(
                    "an orbstore snapshot without a \"documents\" array".into(),
                ));
            };
            let mut docs = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Object(d) if d.get("_id").is_some_and(Value::is_string) => docs.push(d),
                    _ => {
                        return Err(ReadError::Unreadable("a snapshot document without a string _id".into()))
                    }
                }
            }
            Loaded { docs, indexes, ..Loaded::default() }
        }
        Value::Object(m) => import_keyed(m),
        Value::Array(items) => import_list(items),
        other => {
            return Err(ReadError::Unreadable(format!(
                "a JSON {} is neither an orbstore snapshot nor a collection",
                orbstore_core::type_name(&other)
            )))
        }
    };
    loaded.bytes = size;
    Ok(Some(loaded))
}

/// `{"id1": {...}, "id2": 0.5}`: each value is the document with that id; a value that is not
/// an object is kept as `{"_id": key, "value": v}`.
fn import_keyed(m: Map<String, Value>) -> Loaded {
    let mut loaded = Loaded { foreign: true, ..Loaded::default() };
    for (key, value) in m {
        let mut doc = match value {
            Value::Object(d) => d,
            other => {
                let mut d = Map::new();
                d.insert("value".into(), other);
                d
            }
        };
        doc.entry("_id").or_insert_with(|| Value::String(key.clone()));
        push_valid(&mut loaded, doc, &key);
    }
    loaded
}

/// `[{...}, {...}]`: each object is a document (an id is generated where `_id` is missing).
fn import_list(items: Vec<Value>) -> Loaded {
    let mut loaded = Loaded { foreign: true, ..Loaded::default() };
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(d) => push_valid(&mut loaded, d, &format!("element {i}")),
            other => loaded
                .skipped
                .push(format!("element {i} is {}, not an object", orbstore_core::type_name(&other))),
        }
    }
    loaded
}

fn push_valid(loaded: &mut Loaded, mut doc: Document, what: &str) {
    match prepare_document(&mut doc) {
        Ok(_) => loaded.docs.push(doc),
        Err(e) => loaded.skipped.push(format!("{what}: {}", e.message())),
    }
}

/// Writes the engine's documents and indexes to `path` atomically and returns the size.
/// Blocking.
pub(crate) fn write(dir: &Path, path: &Path, name: &str, engine: &CollectionEngine) -> io::Result<u64> {
    let tmp = path.with_extension("json.tmp");
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let header = serde_json::json!({"format": FORMAT, "version": 1, "collection": name, "indexes": engine.list_indexes()});
    // The header is written without its closing brace, then the documents array is streamed, so
    // a large collection is never held twice in memory.
    let header = serde_json::to_string(&header)?;
    w.write_all(&header.as_bytes()[..header.len() - 1])?;
    w.write_all(b",\"documents\":[\n")?;
    for (i, doc) in engine.documents().enumerate() {
        if i > 0 {
            w.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut w, &**doc)?;
    }
    w.write_all(b"\n]}\n")?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    drop(file);
    fs::rename(&tmp, path)?;
    sync_dir(dir)?;
    Ok(size)
}

/// Makes renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = CollectionEngine::default();
        e.insert_many(vec![("a".into(), json!({"_id": "a", "x": 1}).as_object().cloned().unwrap())]).unwrap();
        e.create_index(IndexSpec::new(["x"]).unique()).unwrap();
        let path = dir.path().join("t.json");
        let size = write(dir.path(), &path, "t", &e).unwrap();
        let loaded = read(&path).ok().flatten().unwrap();
        assert_eq!(loaded.bytes, size);
        assert_eq!(loaded.docs, vec![json!({"_id": "a", "x": 1}).as_object().cloned().unwrap()]);
        assert_eq!(loaded.indexes, vec![IndexSpec::new(["x"]).unique()]);
        assert!(!loaded.foreign);
    }

    #[test]
    fn imports_foreign_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.json");
        fs::write(&p, r#"{"s1:left": {"q": 0.5}, "s1:right": 0.25, "bad": {"a.b": 1}}"#).unwrap();
        let l = read(&p).ok().flatten().unwrap();
        assert!(l.foreign);
        assert_eq!(l.docs.len(), 2);
        assert_eq!(l.skipped.len(), 1);
        fs::write(&p, r#"[{"_id": "x", "r": 1}, {"r": 2}, 5]"#).unwrap();
        let l = read(&p).ok().flatten().unwrap();
        assert_eq!((l.docs.len(), l.skipped.len()), (2, 1));
        fs::write(&p, "not json").unwrap();
        assert!(matches!(read(&p), Err(ReadError::Unreadable(_))));
        fs::write(&p, "").unwrap();
        assert!(read(&p).ok().flatten().unwrap().docs.is_empty());
    }
}
