//! Legacy import: the JSON files that EmotiStream and Orb wrote, into the stores of this crate,
//! so that their users keep what their agents learned.
//!
//! - [`import_emotistream`] reads `qtable.json`, `experiences.json` and `user-profiles.json`,
//!   each a JavaScript `Map` serialized as an array of `[key, value]` pairs or as an object,
//!   into [`QTable`], [`ExperienceStore`] and [`UserProfileStore`].
//! - [`import_orb`] reads `luna/profiles.json` and `te/reflections.json` into
//!   [`LunaPreferenceStore`] and [`TeReflectionStore`].
//!
//! Each file is handled on its own, and the [`ImportReport`] says per file what happened:
//!
//! - a missing file is skipped ([`FileStatus::Missing`]);
//! - a file that is not JSON, or whose JSON does not have the expected shape, fails with a
//!   message naming the file and the line and column, or the entry and field, that is wrong
//!   (`qtable.json: entry "s1:c2": qValue must be a number, got "x"`). Each file is read and
//!   checked whole into typed values before anything of it is written, so nothing of a bad file
//!   is imported; the other files still are;
//! - records are written by their ids in the source (a Q-value by state and content, an
//!   experience, a profile or a reflection by its id), replacing what is stored under the same
//!   id, with the source's times and counts: importing the same files twice leaves the same
//!   data. Records stored under other ids are left alone.
//!
//! Times may be milliseconds since 1970 (`Date.now()`) or RFC 3339 strings (what
//! `JSON.stringify` makes of a `Date`); they are stored as milliseconds.
//!
//! What is not atomic: once a file is checked, its records are written through the stores,
//! which are not transactional. When the backend fails midway (a lost connection, say), part of
//! the file is written and the report says the file failed; running the import again completes
//! it, since every write replaces by id.

mod emotistream;
mod orb;
mod shape;

use std::future::Future;
use std::path::{Path, PathBuf};

use orbstore_core::{Error, PersistenceBackend, Result};
use serde::Serialize;
use serde_json::Value;

use crate::{ExperienceStore, LunaPreferenceStore, QTable, TeReflectionStore, UserProfileStore};

/// The EmotiStream Q-table file.
pub const EMOTISTREAM_QTABLE: &str = "qtable.json";
/// The EmotiStream experience file.
pub const EMOTISTREAM_EXPERIENCES: &str = "experiences.json";
/// The EmotiStream profile file.
pub const EMOTISTREAM_PROFILES: &str = "user-profiles.json";
/// The Orb Luna profile file, under the Orb directory.
pub const ORB_LUNA_PROFILES: &str = "luna/profiles.json";
/// The Orb Te reflection file, under the Orb directory.
pub const ORB_TE_REFLECTIONS: &str = "te/reflections.json";

/// Which application wrote the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// EmotiStream: `qtable.json`, `experiences.json`, `user-profiles.json`.
    EmotiStream,
    /// Orb: `luna/profiles.json`, `te/reflections.json`.
    Orb,
}

impl std::fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImportFormat::EmotiStream => "EmotiStream",
            ImportFormat::Orb => "Orb",
        })
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Checked and written whole.
    Imported,
    /// Not there: skipped.
    Missing,
    /// Unreadable, not JSON, wrongly shaped (nothing of it written), or a write failed.
    Failed,
}

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// The file's path under the import directory (`qtable.json`, `luna/profiles.json`).
    pub file: String,
    /// What happened.
    pub status: FileStatus,
    /// What its records are (`Q-values`, `experiences`, ...).
    pub records: &'static str,
    /// Records written (distinct ids; 0 unless imported).
    pub imported: usize,
    /// Why it failed, naming the file (`None` unless failed).
    pub error: Option<String>,
}

/// The outcome of an import, per file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    /// Which application's files were read.
    pub format: ImportFormat,
    /// The directory they were read from.
    pub dir: PathBuf,
    /// One report per file the format knows, in a fixed order.
    pub files: Vec<FileReport>,
}

impl ImportReport {
    /// Whether no file failed (missing files are not failures).
    pub fn is_success(&self) -> bool {
        self.files.iter().all(|f| f.status != FileStatus::Failed)
    }

    /// The files that failed.
    pub fn failed(&self) -> impl Iterator<Item = &FileReport> {
        self.files.iter().filter(|f| f.status == FileStatus::Failed)
    }

    /// Records written, over every file.
    pub fn imported(&self) -> usize {
        self.files.iter().map(|f| f.imported).sum()
    }
}

/// Imports the files of `format` from `dir`: [`import_emotistream`] or [`import_orb`].
pub async fn import(
    store: &dyn PersistenceBackend,
    format: ImportFormat,
    dir: &Path,
) -> Result<ImportReport> {
    match format {
        ImportFormat::EmotiStream => import_emotistream(store, dir).await,
        ImportFormat::Orb => import_orb(store, dir).await,
    }
}

/// Imports EmotiStream's `qtable.json`, `experiences.json` and `user-profiles.json` from `dir`
/// into [`QTable`], [`ExperienceStore`] (without a capacity: every experience is kept) and
/// [`UserProfileStore`]. `Err` only when `dir` is not a directory; what happened to each file
/// is in the report (see the [module docs](self)).
pub async fn import_emotistream(store: &dyn PersistenceBackend, dir: &Path) -> Result<ImportReport> {
    check_dir(dir)?;
    let files = vec![
        one_file(dir, EMOTISTREAM_QTABLE, "Q-values", emotistream::qtable, |entries| async move {
            QTable::open(store).await?.put_entries(entries).await
        })
        .await,
        one_file(dir, EMOTISTREAM_EXPERIENCES, "experiences", emotistream::experiences, |batch| async move {
            ExperienceStore::open(store, None).await?.put_batch(batch).await
        })
        .await,
        one_file(dir, EMOTISTREAM_PROFILES, "profiles", emotistream::profiles, |profiles| async move {
            let s = UserProfileStore::open(store).await?;
            for p in &profiles {
                s.put(p).await?;
            }
            Ok(profiles.len())
        })
        .await,
    ];
    Ok(ImportReport { format: ImportFormat::EmotiStream, dir: dir.to_owned(), files })
}

/// Imports Orb's `luna/profiles.json` into [`LunaPreferenceStore`] (profiles and active modes)
/// and `te/reflections.json` into [`TeReflectionStore`] (reflections and the user of each
/// session) from `dir`. `Err` only when `dir` is not a directory; what happened to each file is
/// in the report (see the [module docs](self)).
pub async fn import_orb(store: &dyn PersistenceBackend, dir: &Path) -> Result<ImportReport> {
    check_dir(dir)?;
    let files = vec![
        one_file(dir, ORB_LUNA_PROFILES, "Luna profiles", orb::luna, |luna| async move {
            let s = LunaPreferenceStore::open(store).await?;
            for p in &luna.profiles {
                s.set_profile(p).await?;
            }
            for (user, mode) in &luna.active {
                s.set_active_mode(user, mode).await?;
            }
            Ok(luna.profiles.len())
        })
        .await,
        one_file(dir, ORB_TE_REFLECTIONS, "reflections", orb::te, |te| async move {
            let s = TeReflectionStore::open(store).await?;
            for r in &te.reflections {
                s.add(r).await?;
            }
            for (session, user) in &te.sessions {
                s.set_session_user(session, user).await?;
            }
            Ok(te.reflections.len())
        })
        .await,
    ];
    Ok(ImportReport { format: ImportFormat::Orb, dir: dir.to_owned(), files })
}

/// Reads `dir/file` whole, checks it into typed values with `parse`, and only then hands them
/// to `write` (which returns how many records it stored).
async fn one_file<T, W, F>(
    dir: &Path,
    file: &str,
    records: &'static str,
    parse: fn(&Value) -> std::result::Result<T, String>,
    write: W,
) -> FileReport
where
    W: FnOnce(T) -> F,
    F: Future<Output = Result<usize>>,
{
    let report =
        |status, imported, error| FileReport { file: file.to_owned(), status, records, imported, error };
    match load(dir, file, parse) {
        Ok(None) => report(FileStatus::Missing, 0, None),
        Err(e) => report(FileStatus::Failed, 0, Some(e)),
        Ok(Some(checked)) => match write(checked).await {
            Ok(n) => report(FileStatus::Imported, n, None),
            Err(e) => report(
                FileStatus::Failed,
                0,
                Some(format!(
                    "{file}: writing to the store failed: {e} (part of the file may be stored; \
                     importing again completes it)"
                )),
            ),
        },
    }
}

fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid(format!("{} is not a directory", dir.display()))),
        Err(e) => Err(Error::invalid(format!("cannot read the import directory {}: {e}", dir.display()))),
    }
}

/// Reads `dir/file` whole and checks it into typed values with `parse`: `None` when the file
/// is missing; messages name the file.
fn load<T>(
    dir: &Path,
    file: &str,
    parse: fn(&Value) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, String> {
    let path = dir.join(file);
    // A blocking read: each file is read once, whole, before anything of it is written.
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{file}: cannot be read: {e}")),
    };
    // Some Windows editors start UTF-8 files with a byte-order mark, which JSON does not allow.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("{file}: not valid JSON: {e}"))?;
    parse(&value).map(Some).map_err(|e| format!("{file}: {e}"))
}
