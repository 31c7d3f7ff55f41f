//! The append-only log of one collection: checksummed JSON lines, group commit, replay.
//!
//! A record is one line: eight hex digits of the CRC-32 of the JSON that follows, a space, the
//! JSON, a newline. Replay reads the valid records and describes what it could not read, so that
//! opening can tell a torn last write (what a crash leaves: see `tail_problem`) from corruption;
//! `recovery.rs` holds the rules for what is then kept, cut and reported.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orbstore_core::engine::Change;
use orbstore_core::{Document, IndexSpec};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The most a log hands to one `write` and leaves unsynced (in the modes that fsync): a larger
/// buffer is written in pieces of whole records, each fsynced before the next. A crash or a
/// power loss can therefore damage at most the last piece, and replay accepts an unreadable
/// tail as a torn write only up to this length. (A record larger than this is a piece alone.)
pub const MAX_WRITE: usize = 1 << 20;

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
#[derive(Debug)]
pub(crate) struct Replay<T = Record> {
    /// The valid records, in order.
    pub records: Vec<T>,
    /// Unreadable lines followed by a readable record: corruption, whatever their size.
    pub corrupt_lines: usize,
    /// Unreadable lines in all.
    pub bad_lines: usize,
    /// Bytes of those lines.
    pub bad_bytes: u64,
    /// Offset of the first unreadable byte.
    pub first_bad: Option<u64>,
    /// Byte length of the log up to the end of the last valid record: what is after it is the
    /// unreadable tail.
    pub valid_len: u64,
    /// Byte length of the file as found.
    pub file_len: u64,
    /// Why the unreadable tail is not a torn write (`None`: there is none, or it is one).
    pub tail_problem: Option<String>,
}

impl<T> Default for Replay<T> {
    fn default() -> Self {
        Replay {
            records: Vec::new(),
            corrupt_lines: 0,
            bad_lines: 0,
            bad_bytes: 0,
            first_bad: None,
            valid_len: 0,
            file_len: 0,
            tail_problem: None,
        }
    }
}

impl<T> Replay<T> {
    /// Every byte was read.
    pub(crate) fn is_clean(&self) -> bool {
        self.first_bad.is_none()
    }

    /// Where the file is corrupt and why, or `None` when all it lacks is a torn last write.
    pub(crate) fn corruption(&self) -> Option<(u64, String)> {
        if self.corrupt_lines > 0 {
            let at = self.first_bad.unwrap_or(0);
            return Some((
                at,
                format!("{} unreadable lines are followed by readable records", self.corrupt_lines),
            ));
        }
        self.tail_problem.clone().map(|why| (self.valid_len, why))
    }
}

/// Reads and checks a log file; a missing file is an empty log.
pub(crate) fn read_log<T: DeserializeOwned>(path: &Path) -> io::Result<Replay<T>> {
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

fn parse_line<T: DeserializeOwned>(line: &[u8]) -> Option<T> {
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

pub(crate) fn parse_log<T: DeserializeOwned>(bytes: &[u8]) -> Replay<T> {
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
                replay.corrupt_lines += bad_since_last_good;
                bad_since_last_good = 0;
                replay.records.push(record);
                replay.valid_len = next as u64;
            }
            // A stray blank line holds nothing to lose: it counts as read.
            None if line.is_empty() && complete && bad_since_last_good == 0 => replay.valid_len = next as u64,
            None => {
                replay.first_bad.get_or_insert(pos as u64);
                replay.bad_lines += 1;
                replay.bad_bytes += (next - pos) as u64;
                bad_since_last_good += 1;
            }
        }
        pos = next;
    }
    replay.tail_problem = tail_problem(&bytes[replay.valid_len as usize..]);
    replay
}

/// Why `tail`, the unreadable bytes after the last valid record, is not what an interrupted
/// append leaves; `None` when it is (or is empty).
///
/// An append that a crash cuts short leaves a prefix of its records, so the tail begins the way
/// every record begins (eight hex digits, a space, `{`, as far as it goes); a power loss can
/// also leave the blocks the write never reached as zeros. Either way it is no longer than one
/// write ([`MAX_WRITE`]), or else a single unterminated line: one large record cut short.
/// Anything else (random bytes, a file another program wrote, a tail longer than a write) is
/// corruption.
fn tail_problem(tail: &[u8]) -> Option<String> {
    if tail.is_empty() {
        return None;
    }
    let like_record = tail.iter().take(10).enumerate().all(|(i, b)| match i {
        0..=7 => b.is_ascii_hexdigit(),
        8 => *b == b' ',
        _ => *b == b'{',
    });
    if !like_record && tail[0] != 0 {
        return Some("the unreadable bytes at the end do not begin like a log record".into());
    }
    if tail.len() <= MAX_WRITE || (like_record && !tail.contains(&b'\n')) {
        return None;
    }
    Some(format!(
        "the unreadable bytes at the end ({}) are more than one write ({MAX_WRITE} bytes) can leave",
        tail.len()
    ))
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
    /// Writers waiting in [`Log::durable`], and whether a syncer runs for them.
    waiting: Mutex<Waiting>,
}

/// The writers waiting for their appends to become durable.
#[derive(Debug, Default)]
struct Waiting {
    writers: Vec<(u64, tokio::sync::oneshot::Sender<io::Result<()>>)>,
    /// A syncer task runs (it stops when no writer waits).
    syncing: bool,
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
            waiting: Mutex::new(Waiting::default()),
        })
    }

    /// Waits until every append up to `seq` is written and fsynced: the group commit of
    /// concurrent writers. One syncer at a time (a blocking task) writes and fsyncs everything
    /// appended so far and answers every writer it covered, then goes on while writers wait.
    /// Writers wait without holding a thread: with a blocking task per writer taking turns on
    /// the file lock (as before), 64 writers shared an fsync in threes or fours, the woken
    /// threads' hand-offs costing more than the fsync.
    pub(crate) async fn durable(self: &std::sync::Arc<Log>, seq: u64) -> io::Result<()> {
        if self.durable_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut w = self.waiting.lock();
            w.writers.push((seq, done));
            !std::mem::replace(&mut w.syncing, true)
        };
        if start {
            let log = self.clone();
            tokio::task::spawn_blocking(move || log.sync_waiting());
        }
        answer.await.unwrap_or_else(|_| Err(io::Error::other("the log's syncer stopped without an answer")))
    }

    /// The syncer of [`Log::durable`]: syncs and answers until no writer waits.
    fn sync_waiting(&self) {
        loop {
            let target = self.last_seq();
            let result = self.sync_to(target, true);
            let (answered, more) = {
                let mut w = self.waiting.lock();
                let answered: Vec<_> = if result.is_ok() {
                    let (covered, rest) =
                        std::mem::take(&mut w.writers).into_iter().partition(|(s, _)| *s <= target);
                    w.writers = rest;
                    covered
                } else {
                    // A failed write or fsync fails everyone waiting (the backend then refuses
                    // writes: see `Inner::fail`).
                    std::mem::take(&mut w.writers)
                };
                // Writers that appended after `target` was read: another round. Otherwise this
                // syncer stops, under the lock, so the next writer starts one.
                let more = !w.writers.is_empty();
                w.syncing = more;
                (answered, more)
            };
            for (_, done) in answered {
                let _ = done.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
            if !more {
                return;
            }
        }
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
        // Pieces of at most MAX_WRITE bytes, each fsynced before the next is written, so that a
        // crash or power loss leaves at most one piece unfinished: see `tail_problem`.
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let n = piece_len(rest);
            disk.file.write_all(&rest[..n])?;
            disk.bytes += n as u64;
            rest = &rest[n..];
            if fsync && !rest.is_empty() {
                disk.file.sync_data()?;
                self.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
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

/// The length of the next piece of `buf` to write: whole records, at most [`MAX_WRITE`] bytes
/// (or one record, when that alone is larger).
fn piece_len(buf: &[u8]) -> usize {
    if buf.len() <= MAX_WRITE {
        return buf.len();
    }
    match buf[..MAX_WRITE].iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => buf[MAX_WRITE..].iter().position(|b| *b == b'\n').map_or(buf.len(), |i| MAX_WRITE + i + 1),
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

    fn numbered(n: usize, pad: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let d = doc(json!({"_id": format!("{i:06}"), "pad": "x".repeat(pad)}));
            encode_changes(&[Change::Put(Arc::new(d))], None, &mut out);
        }
        out
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
        let full: Replay = parse_log(&out);
        assert_eq!(full.records.len(), 4);
        assert!(full.is_clean());
        assert_eq!(full.valid_len, out.len() as u64);
        assert_eq!(full.records[0], Record::Put { doc: doc(json!({"_id": "a", "n": 1})), tx: Some(7) });
        for cut in 1..out.len() {
            let r: Replay = parse_log(&out[..cut]);
            assert!(r.records.len() <= 4);
            assert_eq!(r.corruption(), None, "a cut at byte {cut} is a torn write, never corruption");
            assert!(r.valid_len <= cut as u64);
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption() {
        let mut out = numbered(5, 0);
        let second_line = out.iter().position(|b| *b == b'\n').unwrap() + 1;
        out[second_line + 14] ^= 0x01;
        let r: Replay = parse_log(&out);
        assert_eq!((r.records.len(), r.corrupt_lines, r.bad_lines), (4, 1, 1));
        let (at, why) = r.corruption().unwrap();
        assert_eq!(at, second_line as u64);
        assert!(why.contains("followed by readable records"), "{why}");
    }

    #[test]
    fn what_a_torn_tail_may_look_like() {
        let good = numbered(3, 10);
        let with_tail = |tail: &[u8]| -> Option<String> {
            let mut b = good.clone();
            b.extend_from_slice(tail);
            let r: Replay = parse_log(&b);
            assert_eq!(r.records.len(), 3);
            r.corruption().map(|(at, why)| {
                assert_eq!(at, good.len() as u64);
                why
            })
        };
        // What a crash leaves: a record's beginning, or zeros where a write never landed.
        assert_eq!(with_tail(b"0123abcd {\"op\":\"pu"), None);
        assert_eq!(with_tail(b"0123a"), None);
        assert_eq!(with_tail(&[0; 4096]), None);
        assert_eq!(with_tail(&numbered(1, MAX_WRITE * 2)[..MAX_WRITE + 100]), None, "one large record, cut");
        assert_eq!(with_tail(b"\n\n"), None, "blank lines hold nothing");
        // What it may not.
        for tail in [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], b"hello\n", b"0123abcd\n", b"xyz"] {
            assert!(with_tail(tail).unwrap().contains("do not begin like a log record"), "{tail:?}");
        }
        assert!(with_tail(&vec![0; MAX_WRITE + 1]).unwrap().contains("more than one write"));
        let mut bad_lines = Vec::new();
        while bad_lines.len() <= MAX_WRITE {
            bad_lines.extend_from_slice(b"00000000 {\"op\":\"drop\"}\n");
        }
        assert!(with_tail(&bad_lines).unwrap().contains("more than one write"));
    }

    #[test]
    fn large_buffers_are_written_in_pieces_of_whole_records() {
        let buf = numbered(3000, 1000); // about 3 MiB
        let mut rest = &buf[..];
        let mut pieces = 0;
        while !rest.is_empty() {
            let n = piece_len(rest);
            assert!(n <= MAX_WRITE && rest[n - 1] == b'\n', "piece {pieces}: {n} bytes");
            rest = &rest[n..];
            pieces += 1;
        }
        assert_eq!(pieces, buf.len().div_ceil(MAX_WRITE));
        let huge = numbered(1, MAX_WRITE + 10);
        assert_eq!(piece_len(&huge), huge.len(), "a record larger than a write is one piece");

        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t.log"), 0).unwrap();
        let seq = log.append(&buf, 3000);
        log.sync_to(seq, true).unwrap();
        assert_eq!(log.fsyncs(), pieces as u64, "each piece is fsynced before the next is written");
        assert_eq!(std::fs::read(dir.path().join("t.log")).unwrap(), buf);
    }
}
