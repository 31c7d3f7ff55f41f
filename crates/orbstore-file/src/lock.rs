//! The directory lock: one process writes a data directory at a time.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use orbstore_core::{Error, Result};

/// The lock file's name; it holds the PID of the process that holds the lock.
pub(crate) const LOCK_FILE: &str = "_orbstore.lock";

/// An exclusive OS lock (`flock`) on `<dir>/_orbstore.lock`, released when dropped or when the
/// process dies, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open the lock file {}", path.display()), e))?;
        // A lock held by a process that is only passing by (a child forked by another thread of
        // this process holds the parent's descriptors until it execs) goes away within
        // milliseconds; a real holder does not. Retry briefly before reporting.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let mut attempt = file.try_lock();
        while matches!(attempt, Err(TryLockError::WouldBlock)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            attempt = file.try_lock();
        }
        match attempt {
            Ok(()) => {
                let pid = std::process::id().to_string();
                let written = file
                    .set_len(0)
                    .and_then(|()| file.rewind())
                    .and_then(|()| file.write_all(pid.as_bytes()));
                written
                    .map_err(|e| Error::io(format!("cannot write the lock file {}", path.display()), e))?;
                Ok(DirLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "unknown" } else { holder };
                Err(Error::unavailable(format!(
                    "data directory {} is in use by another orbstore process (pid {holder}); \
                     only one process may write a directory at a time",
                    dir.display()
                )))
            }
            Err(TryLockError::Error(e)) => {
                Err(Error::io(format!("cannot lock the data directory {}", dir.display()), e))
            }
        }
    }
}
