//! Orphans in a data directory: what an interrupted operation left that belongs to no live
//! collection. Found by name, and removed only when asked:
//!
//! - temporary files (`*.tmp`: an atomic replace that did not finish), when not modified in the
//!   last minute (a replace in progress takes milliseconds);
//! - quarantined copies of damaged logs (`*.corrupt-*`, `*.torn-*`, written by recovery) older
//!   than [`QUARANTINE_KEEP`]; younger ones are kept for whoever investigates the damage;
//! - logs (`<name>.log`, `<name>.log.old`) of a collection that is not live. Opening the store
//!   already removes the files of a collection whose log ends in a drop marker (a drop that
//!   crashed after its marker); this finds those it could not remove, and logs that appeared in
//!   the directory while the store was open.
//!
//! Files orbstore does not name this way are never touched.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use orbstore_core::{validate_collection_name, CleanupReport, Error, Orphan, Result, QUARANTINE_KEEP};

/// A temporary file younger than this may still be written.
const TMP_GRACE: Duration = Duration::from_secs(60);

/// Scans `dir` (the caller holds the state lock, so no collection appears or goes meanwhile).
pub(crate) fn scan<T>(
    dir: &Path,
    live: &BTreeMap<String, T>,
    now: SystemTime,
    apply: bool,
) -> Result<CleanupReport> {
    let mut orphans = Vec::new();
    let list_err = |e| Error::io(format!("cannot list {}", dir.display()), e);
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
        let days = age.as_secs() / 86_400;
        let found = if name.ends_with(".tmp") {
            (age >= TMP_GRACE)
                .then(|| ("temporary file", format!("an unfinished atomic write, modified {days} days ago")))
        } else if name.contains(".corrupt-") || name.contains(".torn-") {
            (age >= QUARANTINE_KEEP).then(|| {
                ("quarantined file", format!("a damaged log's copy kept by recovery, {days} days old"))
            })
        } else {
            let stem = name.strip_suffix(".log.old").or_else(|| name.strip_suffix(".log"));
            stem.filter(|s| validate_collection_name(s).is_ok() && !live.contains_key(*s))
                .map(|s| ("log of a dropped collection", format!("no collection {s:?}")))
        };
        let Some((kind, detail)) = found else { continue };
        let path = entry.path();
        let removed = apply && {
            fs::remove_file(&path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
            true
        };
        orphans.push(Orphan {
            kind: kind.to_owned(),
            name: path.display().to_string(),
            bytes: Some(meta.len()),
            detail,
            removed,
        });
    }
    if orphans.iter().any(|o| o.removed) {
        crate::snapshot::sync_dir(dir).map_err(|e| Error::io("cannot sync the data directory", e))?;
    }
    orphans.sort_by(|a, b| a.name.cmp(&b.name));
    let notes = vec![format!(
        "looked in {} for temporary files, quarantined copies older than {} days and logs of dropped collections",
        dir.display(),
        QUARANTINE_KEEP.as_secs() / 86_400
    )];
    Ok(CleanupReport { backend: "file".into(), applied: apply, orphans, notes })
}
