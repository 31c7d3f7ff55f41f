//! Putting a finished file in place so that its final name exists only when it is complete:
//! write `<name>.partial`, fsync it, rename it, fsync the directory.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use orbstore_core::{Error, Result};

/// `<path>.partial`, where a file is written before it is complete.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// The directory a path is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Syncs `file` (the complete `partial`), renames it to `path`, and syncs the directory so the
/// rename itself survives a crash.
pub(crate) fn commit(file: File, partial: &Path, path: &Path) -> Result<()> {
    file.sync_all().map_err(|e| Error::io(format!("syncing {}", partial.display()), e))?;
    drop(file);
    std::fs::rename(partial, path)
        .map_err(|e| Error::io(format!("renaming {} to {}", partial.display(), path.display()), e))?;
    sync_dir(&parent_dir(path)).map_err(|e| Error::io(format!("syncing directory of {}", path.display()), e))
}

/// fsync of a directory (a no-op where directories cannot be opened as files).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Removes a partial file after a failure, ignoring a file already gone.
pub(crate) fn discard(partial: &Path) {
    let _ = std::fs::remove_file(partial);
}
