//! The journal files: append-only segments of framed records, with group commit.
//!
//! Writers append a frame to an in-memory queue (in sequence order, under the replica's write
//! lock) and then wait until their sequence number is durable. A few flusher threads take
//! whatever is queued, write it with one `write(2)`, and `fdatasync` the segment: every writer
//! whose frame was in the buffer shares that fsync. Several flushers may be in `fdatasync` at
//! once (measured on this project's disks: overlapping fsyncs of one file complete several times
//! more often than back-to-back ones), which is what lets 64 writers reach tens of thousands of
//! writes per second while each write still waits for a real fsync.
//!
//! Durability claim: a flusher that wrote the buffer ending at `seq` and then completed an
//! fdatasync makes every frame up to `seq` durable, because the writes are ordered (one writer
//! lock) and an fsync covers everything written to the file before it started. A new segment is
//! started only after the old one is fsynced and the directory entry of the new one is fsynced.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use orbstore_core::{Error, Result};
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::entry::{decode, Record};

const SUFFIX: &str = ".jlog";

/// How far the journal is durable, or why it failed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Durable {
    /// Every record up to this sequence number is on disk.
    pub(crate) seq: u64,
    /// Set when a write or fsync failed: nothing after `seq` is acknowledged, ever.
    pub(crate) failed: Option<Arc<str>>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// The last sequence number written to it (0: none).
    last_seq: u64,
}

#[derive(Debug)]
struct Queue {
    buf: Vec<u8>,
    buf_last: u64,
    file: Arc<File>,
    file_len: u64,
    next_file_no: u64,
    segments: Vec<Segment>,
    shutdown: bool,
}

/// The journal's files and flusher threads.
#[derive(Debug)]
pub(crate) struct JournalLog {
    dir: PathBuf,
    segment_bytes: u64,
    queue: Mutex<Queue>,
    /// Held while writing, so buffers reach the file in the order they were taken.
    writer: Mutex<()>,
    cond: Condvar,
    durable: watch::Sender<Durable>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What opening found on disk.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) log: Arc<JournalLog>,
    pub(crate) records: Vec<Record>,
    /// A torn tail that was cut off (what a crash during a write leaves), for the status.
    pub(crate) warnings: Vec<String>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot fsync the journal directory {}", dir.display())))
}

fn create_segment(dir: &Path, no: u64) -> Result<(PathBuf, File)> {
    let path = dir.join(format!("journal-{no:010}{SUFFIX}"));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(format!("cannot create the journal file {}", path.display())))?;
    // The file's directory entry must be durable before a record in it is acknowledged.
    sync_dir(dir)?;
    Ok((path, file))
}

impl JournalLog {
    /// Opens the journal in `dir`: reads every segment, cuts a torn tail off the last one, and
    /// starts a new segment for appending. A damaged record before the end is `Corrupt`.
    pub(crate) fn open(dir: &Path, segment_bytes: u64, flushers: usize) -> Result<Opened> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("cannot create the journal directory {}", dir.display())))?;
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io(format!("cannot read the journal directory {}", dir.display())))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let no = name.strip_prefix("journal-")?.strip_suffix(SUFFIX)?.parse::<u64>().ok()?;
                Some((no, e.path()))
            })
            .collect();
        names.sort();
        let mut records: Vec<Record> = Vec::new();
        let mut segments = Vec::new();
        let mut warnings = Vec::new();
        for (i, (_, path)) in names.iter().enumerate() {
            let bytes = std::fs::read(path)
                .map_err(io(format!("cannot read the journal file {}", path.display())))?;
            let shown = path.display().to_string();
            let decoded = decode(&bytes, &shown)?;
            if decoded.valid < bytes.len() {
                let last = i + 1 == names.len();
                if !last {
                    return Err(Error::corrupt(format!(
                        "journal file {shown} is damaged at offset {} (of {} bytes) and later files follow it; \
                         refusing to open rather than lose acknowledged writes",
                        decoded.valid,
                        bytes.len()
                    )));
                }
                // A torn last write: never acknowledged (its fsync did not complete). Keep a copy.
                let copy = format!(
                    "{shown}.torn-{}",
                    humantime::format_rfc3339_millis(std::time::SystemTime::now())
                );
                std::fs::write(&copy, &bytes)
                    .map_err(io(format!("cannot copy the torn journal file to {copy}")))?;
                let f =
                    OpenOptions::new().write(true).open(path).map_err(io(format!("cannot open {shown}")))?;
                f.set_len(decoded.valid as u64)
                    .and_then(|()| f.sync_all())
                    .map_err(io(format!("cannot cut the torn tail of {shown}")))?;
                warnings.push(format!(
                    "journal file {shown}: cut a torn last write of {} bytes (copy in {copy})",
                    bytes.len() - decoded.valid
                ));
            } else {
                // What a killed process wrote may still be only in the page cache: make it durable
                // before it is shipped or counted.
                File::open(path).and_then(|f| f.sync_all()).map_err(io(format!("cannot fsync {shown}")))?;
            }
            let last_seq = decoded.records.last().map_or(0, |r| r.seq);
            for r in decoded.records {
                if records.last().is_some_and(|prev| prev.seq >= r.seq) {
                    return Err(Error::corrupt(format!(
                        "journal file {shown}: record {} is out of order",
                        r.seq
                    )));
                }
                records.push(r);
            }
            segments.push(Segment { path: path.clone(), last_seq });
        }
        let next_file_no = names.last().map_or(1, |(no, _)| no + 1);
        let (path, file) = create_segment(dir, next_file_no)?;
        segments.push(Segment { path, last_seq: 0 });
        let durable_seq = records.last().map_or(0, |r| r.seq);
        let log = Arc::new(JournalLog {
            dir: dir.to_owned(),
            segment_bytes,
            queue: Mutex::new(Queue {
                buf: Vec::new(),
                buf_last: 0,
                file: Arc::new(file),
                file_len: 0,
                next_file_no: next_file_no + 1,
                segments,
                shutdown: false,
            }),
            writer: Mutex::new(()),
            cond: Condvar::new(),
            durable: watch::Sender::new(Durable { seq: durable_seq, failed: None }),
            threads: Mutex::new(Vec::new()),
        });
        let mut threads = log.threads.lock();
        for i in 0..flushers.max(1) {
            let l = log.clone();
            let t = std::thread::Builder::new()
                .name(format!("orbstore-journal-{i}"))
                .spawn(move || l.flusher())
                .map_err(io("cannot start a journal flusher thread".to_owned()))?;
            threads.push(t);
        }
        drop(threads);
        Ok(Opened { log, records, warnings })
    }

    /// Marks everything up to `seq` durable (records found on disk at open, or a sequence number
    /// known from the replica's cursor when the files were already released).
    pub(crate) fn set_durable(&self, seq: u64) {
        self.durable.send_if_modified(|d| {
            let changed = seq > d.seq;
            d.seq = d.seq.max(seq);
            changed
        });
    }

    /// Queues a frame (call in sequence order).
    pub(crate) fn append(&self, seq: u64, frame: &[u8]) {
        let mut q = self.queue.lock();
        q.buf.extend_from_slice(frame);
        q.buf_last = seq;
        drop(q);
        self.cond.notify_one();
    }

    /// Watches the durable point.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Durable> {
        self.durable.subscribe()
    }

    /// The durable point now.
    pub(crate) fn durable(&self) -> Durable {
        self.durable.borrow().clone()
    }

    /// Waits until `seq` is durable; `Io` when the journal failed before that.
    pub(crate) async fn wait(&self, seq: u64) -> Result<()> {
        let mut rx = self.durable.subscribe();
        let d = rx
            .wait_for(|d| d.seq >= seq || d.failed.is_some())
            .await
            .map_err(|_| Error::invalid("the journal was closed"))?
            .clone();
        match d.failed {
            Some(why) if d.seq < seq => Err(Error::new(
                orbstore_core::ErrorKind::Io,
                format!("the journal could not be written, so the write is not acknowledged: {why}"),
            )),
            _ => Ok(()),
        }
    }

    /// Deletes the segments (not the current one) whose every record is at most `seq`: shipped
    /// to the server and checkpointed into the local replica.
    pub(crate) fn release(&self, seq: u64) {
        let mut q = self.queue.lock();
        let current = q.segments.len() - 1;
        let mut keep = Vec::with_capacity(q.segments.len());
        for (i, s) in std::mem::take(&mut q.segments).into_iter().enumerate() {
            if i < current && s.last_seq <= seq && std::fs::remove_file(&s.path).is_ok() {
                continue;
            }
            keep.push(s);
        }
        q.segments = keep;
    }

    /// The journal files' size on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        let q = self.queue.lock();
        q.segments.iter().filter_map(|s| std::fs::metadata(&s.path).ok()).map(|m| m.len()).sum()
    }

    /// Stops the flushers after they wrote what is queued.
    pub(crate) fn shutdown(&self) {
        self.queue.lock().shutdown = true;
        self.cond.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }

    fn fail(&self, why: String) {
        tracing::error!(target: "orbstore::journal", "{why}");
        self.durable.send_modify(|d| d.failed = Some(why.into()));
    }

    fn flusher(&self) {
        loop {
            let mut q = self.queue.lock();
            while q.buf.is_empty() && !q.shutdown {
                self.cond.wait(&mut q);
            }
            if q.buf.is_empty() {
                return;
            }
            if self.durable.borrow().failed.is_some() {
                // Nothing after a failure is acknowledged; drop what was queued.
                q.buf.clear();
                continue;
            }
            let data = std::mem::take(&mut q.buf);
            let upto = q.buf_last;
            // Taken while the queue is held, so the buffers are written in the order taken.
            let writer = self.writer.lock();
            if q.file_len > 0 && q.file_len + data.len() as u64 > self.segment_bytes {
                if let Err(e) = self.rotate(&mut q) {
                    drop(writer);
                    drop(q);
                    self.fail(e.to_string());
                    continue;
                }
            }
            let file = q.file.clone();
            q.file_len += data.len() as u64;
            if let Some(s) = q.segments.last_mut() {
                s.last_seq = upto;
            }
            drop(q);
            let written = (&*file).write_all(&data);
            drop(writer);
            match written.and_then(|()| file.sync_data()) {
                Ok(()) => self.set_durable(upto),
                Err(e) => self.fail(format!("writing the journal in {} failed: {e}", self.dir.display())),
            }
        }
    }

    /// Starts a new segment: the old one is fsynced first (see the module doc).
    fn rotate(&self, q: &mut Queue) -> Result<()> {
        q.file.sync_data().map_err(io(format!("cannot fsync the journal in {}", self.dir.display())))?;
        let (path, file) = create_segment(&self.dir, q.next_file_no)?;
        q.next_file_no += 1;
        q.file = Arc::new(file);
        q.file_len = 0;
        q.segments.push(Segment { path, last_seq: 0 });
        Ok(())
    }
}
