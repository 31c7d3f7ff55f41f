//! The archive container: one file holding a tar stream, compressed with gzip or zstd or not at
//! all, with entry paths and sizes as [`crate::manifest`] and `docs/operations.md` describe.
//!
//! Writing streams. A tar header states its entry's size, which is known only once a
//! collection has been read, so each `documents.jsonl` is *spooled* first, already compressed,
//! to a temporary file beside the archive (`Spool`), then appended: its header and padding
//! are compressed as members (gzip) or frames (zstd) of their own around the spooled bytes,
//! which are copied verbatim. Concatenated gzip members and zstd frames decode as the
//! concatenation of their contents, so the result is one ordinary compressed tar that `tar xzf`
//! or `tar --zstd -xf` extract, and compression runs while documents are still being read
//! instead of after. Memory stays bounded whatever the size of a collection; disk use is the
//! archive plus the compressed size of the collection being written.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use orbstore_core::{Error, Result};

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// gzip (the default): `.tar.gz`.
    #[default]
    Gzip,
    /// zstd: `.tar.zst`, faster and smaller.
    Zstd,
    /// No compression: `.tar`.
    None,
}

/// The variable [`Compression::from_env`] reads.
pub const COMPRESSION_VAR: &str = "BACKUP_COMPRESSION";

impl Compression {
    /// `gzip`, `zstd` or `none`; anything else is `InvalidInput` naming `source` (a variable or
    /// an option) and the valid choices.
    pub fn parse(value: &str, source: &str) -> Result<Compression> {
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            "none" => Ok(Compression::None),
            _ => Err(Error::invalid(format!(
                "{source}={value:?} is not a compression: choose gzip (the default), zstd or none"
            ))),
        }
    }

    /// From `BACKUP_COMPRESSION` (unset or empty: gzip).
    pub fn from_env() -> Result<Compression> {
        match std::env::var(COMPRESSION_VAR) {
            Ok(v) if !v.trim().is_empty() => Compression::parse(&v, COMPRESSION_VAR),
            _ => Ok(Compression::Gzip),
        }
    }

    /// `gzip`, `zstd` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }

    /// The file name ending: `.tar.gz`, `.tar.zst` or `.tar`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".tar.gz",
            Compression::Zstd => ".tar.zst",
            Compression::None => ".tar",
        }
    }

    /// Recognizes an archive's compression from its first bytes (never from its name, which a
    /// user may have changed).
    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// A compressor of one member/frame writing into `inner`; [`Member::finish`] ends it.
    fn member<W: Write>(self, inner: W) -> io::Result<Member<W>> {
        Ok(match self {
            Compression::Gzip => {
                Member::Gzip(flate2::write::GzEncoder::new(inner, flate2::Compression::new(GZIP_LEVEL)))
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
                // gzip members carry a CRC-32; without this, a damaged zstd frame could decode
                // to other bytes silently (the manifest's hashes would still catch it in the
                // documents, but not in padding or headers).
                e.include_checksum(true)?;
                Member::Zstd(e)
            }
            Compression::None => Member::Plain(inner),
        })
    }
}

/// zstd's own default level.
const ZSTD_LEVEL: i32 = 3;

/// gzip level 2, not zlib's default 6: over 87 MB of typical documents it compresses in 0.47 s
/// instead of 1.03 s to a result 16% larger (5.9 MB instead of 5.1 MB; zstd 3 gives 3.3 MB in
/// 0.26 s), which keeps compression from being what a backup waits for (the
/// `compression_levels` measurement in `tests/measure_backup.rs`).
const GZIP_LEVEL: u32 = 2;

/// One gzip member, one zstd frame, or plain bytes.
enum Member<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write> Write for Member<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Member::Gzip(w) => w.write(buf),
            Member::Zstd(w) => w.write(buf),
            Member::Plain(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Member::Gzip(w) => w.write_all(buf),
            Member::Zstd(w) => w.write_all(buf),
            Member::Plain(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Member::Gzip(w) => w.flush(),
            Member::Zstd(w) => w.flush(),
            Member::Plain(w) => w.flush(),
        }
    }
}

impl<W: Write> Member<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Member::Gzip(w) => w.finish(),
            Member::Zstd(w) => w.finish(),
            Member::Plain(w) => Ok(w),
        }
    }
}

const BLOCK: u64 = 512;

/// The bytes of a tar header for a regular file.
fn header(path: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

/// Writes an archive into a file, entry by entry.
pub(crate) struct ArchiveWriter {
    out: BufWriter<File>,
    compression: Compression,
    /// Where spools go: the archive's own directory, so they share its file system.
    dir: PathBuf,
    mtime: u64,
}

impl ArchiveWriter {
    pub(crate) fn new(file: File, dir: &Path, compression: Compression, mtime: u64) -> ArchiveWriter {
        ArchiveWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            compression,
            dir: dir.to_owned(),
            mtime,
        }
    }

    /// Appends an entry held in memory (index specs, the manifest).
    pub(crate) fn append_bytes(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let h = header(path, data.len() as u64, self.mtime)?;
        let mut m = self.compression.member(&mut self.out)?;
        m.write_all(h.as_bytes())?;
        m.write_all(data)?;
        m.write_all(&[0; BLOCK as usize][..padding(data.len() as u64)])?;
        m.finish()?;
        Ok(())
    }

    /// A spool for an entry too large to hold in memory.
    pub(crate) fn spool(&self) -> io::Result<Spool> {
        let file = tempfile::Builder::new().prefix(".orbstore-spool-").tempfile_in(&self.dir)?;
        let writer = BufWriter::with_capacity(1 << 20, file);
        Ok(Spool { member: self.compression.member(writer)?, len: 0 })
    }

    /// Appends a spooled entry: its header, the spooled (already compressed) bytes, padding.
    pub(crate) fn append_spool(&mut self, path: &str, spool: Spool) -> io::Result<()> {
        let len = spool.len;
        let mut file = spool.member.finish()?.into_inner().map_err(|e| e.into_error())?;
        let h = header(path, len, self.mtime)?;
        let mut m = self.compression.member(&mut self.out)?;
        m.write_all(h.as_bytes())?;
        m.finish()?;
        file.as_file_mut().seek(SeekFrom::Start(0))?;
        io::copy(&mut BufReader::with_capacity(1 << 20, file.as_file_mut()), &mut self.out)?;
        let pad = padding(len);
        if pad > 0 {
            let mut m = self.compression.member(&mut self.out)?;
            m.write_all(&[0; BLOCK as usize][..pad])?;
            m.finish()?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and returns the file, flushed but not yet synced.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        let mut m = self.compression.member(&mut self.out)?;
        m.write_all(&[0; 2 * BLOCK as usize])?;
        m.finish()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// An entry being written to a temporary file, compressed, counting its uncompressed bytes.
pub(crate) struct Spool {
    member: Member<BufWriter<tempfile::NamedTempFile>>,
    len: u64,
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.member.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.member.flush()
    }
}

/// Counts the compressed bytes read from the archive file, for progress.
pub(crate) struct Counted<R> {
    inner: R,
    pub(crate) read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened archive: its compression, its size, and a tar reader over its decompressed bytes.
pub(crate) struct ArchiveReader {
    pub(crate) compression: Compression,
    pub(crate) size: u64,
    pub(crate) read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Decompressed bytes read so far: where the tar stream ended, to check its end marker.
    pub(crate) decoded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub(crate) tar: tar::Archive<Box<dyn Read + Send>>,
}

/// Opens an archive for reading. A path that does not exist or is not a file is `InvalidInput`;
/// an empty file is `Corrupt`.
pub(crate) fn open(path: &Path) -> Result<ArchiveReader> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::invalid(format!("no archive at {}", path.display()))
        } else {
            Error::io(format!("reading archive {}", path.display()), e)
        }
    })?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("{} is not a file, so not an orbstore archive", path.display())));
    }
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("opening archive {}", path.display()), e))?;
    let mut head = [0u8; 4];
    let n =
        read_up_to(&mut file, &mut head).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if n == 0 {
        return Err(Error::corrupt(format!("archive {} is empty", path.display())));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let compression = Compression::sniff(&head[..n]);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Counted { inner: BufReader::with_capacity(1 << 20, file), read: read.clone() };
    let decoded: Box<dyn Read + Send> = match compression {
        // Multi-member: every entry's header, body and padding are members of their own.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(counted)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
        ),
        Compression::None => Box::new(counted),
    };
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let decoded: Box<dyn Read + Send> = Box::new(Counted { inner: decoded, read: count.clone() });
    Ok(ArchiveReader { compression, size: meta.len(), read, decoded: count, tar: tar::Archive::new(decoded) })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
