//! The append-only log of one collection: checksummed JSON lines, group commit, replay.
//!
//! A record is one line: eight hex digits of the CRC-32 of the JSON that follows, a space, the
//! JSON, a newline. A torn write leaves a last line without its newline or with a bad checksum;
//! replay drops such a tail (and truncates it away), and skips a bad record in the middle of the
//! file (a flipped byte), reporting both.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orbstore_core::engine::Change;
use orbstore_core::{Document, IndexSpec};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One logged change. `tx` marks records of a transaction, applied on replay only when the
/// transaction's commit marker is in the transaction log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Record {
    Put {
        doc: Document,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tx: Option<u64>,
    },
    Del {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tx: Option<u64>,
    },
    Index {
        spec: IndexSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tx: Option<u64>,
    },
    /// The collection was dropped: everything before this record is gone.
    Drop,
}

impl Record {
    pub(crate) fn tx(&self) -> Option<u64> {
        match self {
            Record::Put { tx, .. } | Record::Del { tx, .. } | Record::Index { tx, .. } => *tx,
            Record::Drop => None,
        }
    }
}

/// The borrowed form of [`Record`], to encode shared documents without copying them.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum RecordRef<'a> {
    Put {
        doc: &'a Document,
        #[serde(skip_serializing_if = "Option::is_none")]
        tx: Option<u64>,
    },
    Del {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        tx: Option<u64>,
    },
    Index {
        spec: &'a IndexSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        tx: Option<u64>,
    },
    Drop,
}

/// Appends one checksummed line to `out`.
fn push_line(out: &mut Vec<u8>, record: &RecordRef<'_>) {
    let start = out.len();
    out.extend_from_slice(b"00000000 ");
    // Serializing a `serde_json::Value` tree into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, record);
    let crc = crc32fast::hash(&out[start + 9..]);
    out[start..start + 8].copy_from_slice(format!("{crc:08x}").as_bytes());
    out.push(b'\n');
}

/// Encodes engine changes as log lines.
pub(crate) fn encode_changes(changes: &[Change], tx: Option<u64>, out: &mut Vec<u8>) {
    for c in changes {
        let r = match c {
            Change::Put(doc) => RecordRef::Put { doc, tx },
            Change::Delete(id) => RecordRef::Del { id, tx },
            Change::Index(spec) => RecordRef::Index { spec, tx },
        };
        push_line(out, &r);
    }
}

/// Encodes a drop marker.
pub(crate) fn encode_drop(out: &mut Vec<u8>) {
    push_line(out, &RecordRef::Drop);
}

/// What reading a log found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The valid records, in order.
    pub records: Vec<Record>,
    /// Bad records after the last valid one (a torn write); cut off.
    pub torn: usize,
    /// Bad records between valid ones (corruption); skipped.
    pub corrupt: usize,
    /// Byte length of the log up to the end of the last valid record.
    pub valid_len: u64,
    /// Byte length of the file as found.
    pub file_len: u64,
}

/// Reads and checks a log file; a missing file is an empty log.
pub(crate) fn read_log(path: &Path) -> io::Result<Replay> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(e),
    }
    Ok(parse_log(&bytes))
}

fn parse_line(line: &[u8]) -> Option<Record> {
    if line.len() < 10 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

pub(crate) fn parse_log(bytes: &[u8]) -> Replay {
    let mut replay = Replay { file_len: bytes.len() as u64, ..Replay::default() };
    let mut bad_since_last_good = 0usize;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let (line, next, complete) = match bytes[pos..].iter().position(|b| *b == b'\n') {
            Some(n) => (&bytes[pos..pos + n], pos + n + 1, true),
            None => (&bytes[pos..], bytes.len(), false),
        };
        match parse_line(line).filter(|_| complete) {
            Some(record) => {
                replay.corrupt += bad_since_last_good;
                bad_since_last_good = 0;
                replay.records.push(record);
                replay.valid_len = next as u64;
            }
            None if line.is_empty() && complete => {} // a stray blank line
            None => bad_since_last_good += 1,
        }
        pos = next;
    }
    replay.torn = bad_since_last_good;
    replay
}

/// Reads a file of checksummed lines holding arbitrary JSON (the transaction log): the valid
/// values and how many bad lines follow the last valid one.
pub(crate) fn read_log_lines(path: &Path) -> io::Result<(Vec<serde_json::Value>, usize)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut values = Vec::new();
    let mut bad = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let complete = line.ends_with(b"\n");
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let value = (complete && line.len() > 9 && line[8] == b' ')
            .then(|| {
                let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
                (crc32fast::hash(&line[9..]) == crc).then(|| serde_json::from_slice(&line[9..]).ok())?
            })
            .flatten();
        match value {
            Some(v) => {
                values.push(v);
                bad = 0;
            }
            None => bad += 1,
        }
    }
    Ok((values, bad))
}

/// Opens a log for appending, creating it with mode 0600.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Writes not yet handed to the operating system.
#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last append.
    seq: u64,
    /// Records in `buf`.
    count: usize,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

#[derive(Debug)]
struct OnDisk {
    file: File,
    bytes: u64,
}

/// One collection's log with group commit: appends go to a buffer under a short lock; one
/// syncer at a time writes the whole buffer and fsyncs it, and every writer whose append it
/// covered returns without an fsync of its own.
#[derive(Debug)]
pub(crate) struct Log {
    path: PathBuf,
    pending: Mutex<Pending>,
    disk: Mutex<OnDisk>,
    durable_seq: AtomicU64,
    written_seq: AtomicU64,
    /// How many fsyncs this log has done.
    fsyncs: AtomicU64,
}

impl Log {
    /// Opens (creating) the log at `path`, which holds `len` valid bytes.
    pub(crate) fn open(path: PathBuf, len: u64) -> io::Result<Log> {
        let file = open_append(&path)?;
        Ok(Log {
            path,
            pending: Mutex::new(Pending::default()),
            disk: Mutex::new(OnDisk { file, bytes: len }),
            durable_seq: AtomicU64::new(0),
            written_seq: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
        })
    }

    /// Buffers encoded records and returns the sequence number to wait for.
    pub(crate) fn append(&self, bytes: &[u8], records: usize) -> u64 {
        let mut p = self.pending.lock();
        let now = Instant::now();
        p.buf.extend_from_slice(bytes);
        p.count += records;
        p.seq += 1;
        p.first_at.get_or_insert(now);
        p.last_at = Some(now);
        p.seq
    }

    /// How many records wait in the buffer.
    pub(crate) fn pending_records(&self) -> usize {
        self.pending.lock().count
    }

    /// The sequence number of the latest append.
    pub(crate) fn last_seq(&self) -> u64 {
        self.pending.lock().seq
    }

    /// Whether buffered records are due under a debounce policy: `quiet` since the last append,
    /// or `max_delay` since the first, or `max_pending` records.
    pub(crate) fn due(&self, now: Instant, quiet: Duration, max_delay: Duration, max_pending: usize) -> bool {
        let p = self.pending.lock();
        p.count > 0
            && (p.count >= max_pending
                || p.last_at.is_some_and(|t| now.duration_since(t) >= quiet)
                || p.first_at.is_some_and(|t| now.duration_since(t) >= max_delay))
    }

    /// Makes every append up to `seq` written (and fsynced when `fsync`). Blocking.
    pub(crate) fn sync_to(&self, seq: u64, fsync: bool) -> io::Result<()> {
        let done = if fsync { &self.durable_seq } else { &self.written_seq };
        if done.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let mut disk = self.disk.lock();
        if done.load(Ordering::Acquire) >= seq {
            return Ok(()); // another writer's sync covered us: group commit
        }
        let (buf, target) = {
            let mut p = self.pending.lock();
            p.count = 0;
            p.first_at = None;
            p.last_at = None;
            (std::mem::take(&mut p.buf), p.seq)
        };
        if !buf.is_empty() {
            disk.file.write_all(&buf)?;
            disk.bytes += buf.len() as u64;
        }
        self.written_seq.fetch_max(target, Ordering::AcqRel);
        if fsync {
            disk.file.sync_data()?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.durable_seq.fetch_max(target, Ordering::AcqRel);
        }
        Ok(())
    }

    /// How many fsyncs this log has done.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Bytes in the file (written, not necessarily fsynced).
    pub(crate) fn bytes_on_disk(&self) -> u64 {
        self.disk.lock().bytes
    }

    /// Writes and fsyncs everything, then moves the file to `old` and starts an empty log in
    /// its place. Blocking; the caller keeps appends out while it runs.
    pub(crate) fn rotate(&self, old: &Path) -> io::Result<()> {
        let seq = self.last_seq();
        self.sync_to(seq, true)?;
        let mut disk = self.disk.lock();
        std::fs::rename(&self.path, old)?;
        disk.file = open_append(&self.path)?;
        disk.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn doc(v: serde_json::Value) -> Document {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let mut out = Vec::new();
        let changes = vec![
            Change::Put(Arc::new(doc(json!({"_id": "a", "n": 1})))),
            Change::Delete("b".into()),
            Change::Index(IndexSpec::new(["n"]).unique()),
        ];
        encode_changes(&changes, Some(7), &mut out);
        encode_drop(&mut out);
        let full = parse_log(&out);
        assert_eq!(full.records.len(), 4);
        assert_eq!((full.torn, full.corrupt, full.valid_len), (0, 0, out.len() as u64));
        assert_eq!(full.records[0], Record::Put { doc: doc(json!({"_id": "a", "n": 1})), tx: Some(7) });
        for cut in 1..out.len() {
            let r = parse_log(&out[..cut]);
            assert!(r.records.len() <= 4);
            assert_eq!(r.corrupt, 0, "a cut never looks like corruption in the middle");
            assert!(r.valid_len <= cut as u64);
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_skipped() {
        let mut out = Vec::new();
        for i in 0..5 {
            encode_changes(&[Change::Put(Arc::new(doc(json!({"_id": format!("{i}")}))))], None, &mut out);
        }
        let second_line = out.iter().position(|b| *b == b'\n').unwrap() + 15;
        out[second_line] ^= 0x01;
        let r = parse_log(&out);
        assert_eq!((r.records.len(), r.corrupt, r.torn), (4, 1, 0));
    }
}
