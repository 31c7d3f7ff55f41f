//! rusqlite errors mapped to orbstore's kinds, with the source kept.

use orbstore_core::Error;
use rusqlite::ErrorCode;

/// Maps a driver error; `what` says what was being done.
pub(crate) fn map(what: &str, e: rusqlite::Error) -> Error {
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation => {
                return Error::conflict(format!("{what}: {}", describe_constraint(&e))).with_source(e)
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => orbstore_core::ErrorKind::Unavailable,
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => orbstore_core::ErrorKind::Corrupt,
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure => orbstore_core::ErrorKind::Io,
            _ => orbstore_core::ErrorKind::Backend,
        },
        _ => orbstore_core::ErrorKind::Backend,
    };
    Error::new(kind, format!("{what}: {e}")).with_source(e)
}

fn describe_constraint(e: &rusqlite::Error) -> String {
    let msg = e.to_string();
    if msg.contains("PRIMARY KEY") || msg.contains(".id") {
        "a document with this _id already exists".to_owned()
    } else if msg.contains("UNIQUE") {
        format!("a unique index refuses the write ({msg})")
    } else {
        msg
    }
}

/// A `Result` extension to map driver errors in one place.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> orbstore_core::Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> orbstore_core::Result<T> {
        self.map_err(|e| map(what, e))
    }
}
