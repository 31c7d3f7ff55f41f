//! Where scheduled backups go and how long they are kept: `BACKUP_DIR` and
//! `BACKUP_RETENTION_DAYS`, archive names that carry their creation time, and pruning.
//!
//! Pruning removes only files this crate names (`orbstore-<time><ext>` and their `.partial`
//! leftovers), and reads their age from the name, not from the file's modification time, which
//! a copy or a restore from tape would change.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use orbstore_core::{Error, Result};

use crate::archive::Compression;

/// The variable naming the backup directory.
pub const DIR_VAR: &str = "BACKUP_DIR";
/// The variable giving how many days archives are kept.
pub const RETENTION_VAR: &str = "BACKUP_RETENTION_DAYS";
/// The backup directory when `BACKUP_DIR` is unset.
pub const DEFAULT_DIR: &str = "./backups";
/// The retention when `BACKUP_RETENTION_DAYS` is unset.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

const PREFIX: &str = "orbstore-";
const EXTENSIONS: [&str; 3] = [".tar.gz", ".tar.zst", ".tar"];

/// `BACKUP_RETENTION_DAYS` read from `value`: a whole number of days, `0` keeping every
/// archive. Anything else is `InvalidInput` naming the variable.
pub fn parse_retention(value: &str) -> Result<u32> {
    value.trim().parse::<u32>().map_err(|_| {
        Error::invalid(format!(
            "{RETENTION_VAR}={value:?} is not a number of days: give a whole number such as 30, or 0 to keep \
             every archive"
        ))
    })
}

/// The archive file name for a backup created at `created`: `orbstore-2025-01-31T09-30-00.123Z.tar.gz`
/// (RFC 3339 with `-` for `:`, which some file systems refuse).
pub fn archive_name(created: SystemTime, compression: Compression) -> String {
    let stamp = humantime::format_rfc3339_millis(created).to_string().replace(':', "-");
    format!("{PREFIX}{stamp}{}", compression.extension())
}

/// The creation time in a name [`archive_name`] made (with or without `.partial`), or `None`
/// for any other name.
pub fn parse_archive_name(name: &str) -> Option<SystemTime> {
    let name = name.strip_suffix(".partial").unwrap_or(name);
    let rest = name.strip_prefix(PREFIX)?;
    let stamp = EXTENSIONS.iter().find_map(|ext| rest.strip_suffix(ext))?;
    let (date, time) = stamp.split_once('T')?;
    let rfc = format!("{date}T{}", time.replace('-', ":"));
    humantime::parse_rfc3339(&rfc).ok()
}

/// Removes the archives in `dir` (and their leftover `.partial` files) created more than
/// `retention_days` before `now`, except `keep`; `0` days removes nothing. Returns what was
/// removed, sorted.
pub fn prune(dir: &Path, retention_days: u32, now: SystemTime, keep: &Path) -> Result<Vec<PathBuf>> {
    if retention_days == 0 {
        return Ok(Vec::new());
    }
    let cutoff = now.checked_sub(Duration::from_secs(u64::from(retention_days) * 86_400));
    let Some(cutoff) = cutoff else { return Ok(Vec::new()) };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing backup directory {}", dir.display()), e))?;
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing backup directory {}", dir.display()), e))?;
        let path = entry.path();
        let Some(created) = entry.file_name().to_str().and_then(parse_archive_name) else { continue };
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file || created >= cutoff || same_file(&path, keep) {
            continue;
        }
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("removing old archive {}", path.display()), e))?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time_and_read_back() {
        let t = humantime::parse_rfc3339("2025-01-31T09:30:00.123Z").unwrap();
        let name = archive_name(t, Compression::Gzip);
        assert_eq!(name, "orbstore-2025-01-31T09-30-00.123Z.tar.gz");
        assert_eq!(parse_archive_name(&name), Some(t));
        assert_eq!(parse_archive_name(&format!("{name}.partial")), Some(t));
        assert_eq!(parse_archive_name(&archive_name(t, Compression::Zstd)), Some(t));
        assert_eq!(parse_archive_name(&archive_name(t, Compression::None)), Some(t));
        for other in
            ["orbstore-x.tar.gz", "backup.tar.gz", "orbstore-2025-01-31T09-30-00.123Z.zip", "notes.txt"]
        {
            assert_eq!(parse_archive_name(other), None, "{other}");
        }
    }

    #[test]
    fn retention_is_a_whole_number_of_days() {
        assert_eq!(parse_retention("7").unwrap(), 7);
        assert_eq!(parse_retention(" 0 ").unwrap(), 0);
        for bad in ["-1", "seven", "1.5", ""] {
            let e = parse_retention(bad).unwrap_err();
            assert_eq!(e.kind(), orbstore_core::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(RETENTION_VAR), "{e}");
        }
    }
}
