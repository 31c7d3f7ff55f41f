//! What opening does with bytes it cannot read: it tells a torn last write from corruption,
//! keeps a copy of the file as found before anything is cut or rewritten, and reports both.
//!
//! The rule: bytes this process did not write are never cut, rewritten or removed before the
//! file holding them is copied aside (a snapshot is moved aside instead), because they may be
//! the only copy of someone's data, and a reader that cannot parse them is not the judge of
//! that.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use orbstore_core::{Error, Result};

use crate::log::Replay;
use crate::snapshot::sync_dir;

/// A UTC timestamp for names of files kept aside.
fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A free name beside `path` for a file kept aside: `<file>.<kind>-<time>`, then `-2`, `-3`, ...
/// (two repairs within a second must not overwrite each other's copy).
pub(crate) fn aside_path(path: &Path, kind: &str) -> PathBuf {
    let mut base = OsString::from(path.as_os_str());
    base.push(format!(".{kind}-{}", timestamp()));
    let mut candidate = PathBuf::from(&base);
    for n in 2.. {
        if fs::symlink_metadata(&candidate).is_err() {
            break;
        }
        let mut next = base.clone();
        next.push(format!("-{n}"));
        candidate = PathBuf::from(next);
    }
    candidate
}

/// Copies `path` to a new file aside (mode 0600, fsynced, directory fsynced) and returns its
/// name.
pub(crate) fn keep_copy(path: &Path, kind: &str) -> io::Result<PathBuf> {
    let aside = aside_path(path, kind);
    let mut from = File::open(path)?;
    let mut to = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&aside)?;
    io::copy(&mut from, &mut to)?;
    to.sync_all()?;
    sync_dir(parent(path))?;
    Ok(aside)
}

/// Renames `path` to a free name aside (directory fsynced) and returns that name.
pub(crate) fn move_aside(path: &Path, kind: &str) -> io::Result<PathBuf> {
    let aside = aside_path(path, kind);
    fs::rename(path, &aside)?;
    sync_dir(parent(path))?;
    Ok(aside)
}

/// Replaces `path` with `bytes` atomically (temp file, fsync, rename, fsync the directory).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(parent(path))
}

/// Applies the rules to a log as read (a collection's log or the transaction log), before the
/// caller cuts or rewrites it. Returns whether the file had unreadable bytes; if so, the file
/// as found has been copied aside and the damage reported, naming the copy.
///
/// Corruption (unreadable bytes followed by readable records, or an unreadable tail that is not
/// what an interrupted write leaves: see `log::tail_problem`) is kept as `<file>.corrupt-<time>`;
/// in strict mode it refuses to open instead, leaving the file as it was. A torn last write is kept as
/// `<file>.torn-<time>` and tolerated in strict mode too: it is the normal outcome of a crash,
/// and what the durability promise accounts for (an acknowledged write was fsynced whole).
pub(crate) fn check_log<T>(
    path: &Path,
    replay: &Replay<T>,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    if replay.is_clean() {
        return Ok(false);
    }
    let corruption = replay.corruption();
    if let Some((at, why)) = corruption.as_ref().filter(|_| strict) {
        return Err(Error::corrupt(format!(
            "{} is corrupt from byte {at}: {why}; strict mode refuses to open and leaves the file as it was",
            path.display()
        )));
    }
    let kind = if corruption.is_some() { "corrupt" } else { "torn" };
    let aside =
        keep_copy(path, kind).map_err(|e| Error::io(format!("cannot copy {} aside", path.display()), e))?;
    warnings.push(match corruption {
        Some((at, why)) => format!(
            "{} is corrupt from byte {at}: {why}; {} readable records recovered, {} unreadable lines ({} bytes) dropped; the file as found is kept in {}",
            path.display(),
            replay.records.len(),
            replay.bad_lines,
            replay.bad_bytes,
            aside.display()
        ),
        None => format!(
            "{}: a torn last write was dropped at byte {} ({} bytes); the file as found is kept in {}",
            path.display(),
            replay.valid_len,
            replay.file_len - replay.valid_len,
            aside.display()
        ),
    });
    Ok(true)
}
