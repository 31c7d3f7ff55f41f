//! Driver errors mapped to orbstore's kinds, matched on server codes and error kinds, never on
//! message text.

use mongodb::error::{Error as DriverError, ErrorKind as DriverKind, WriteFailure};
use orbstore_core::{Error, ErrorKind};

/// The server's duplicate-key code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// A write conflict between transactions.
const WRITE_CONFLICT: i32 = 112;
/// A transaction the server no longer knows (already aborted).
pub(crate) const NO_SUCH_TRANSACTION: i32 = 251;

/// The server code of an error, if it has one.
pub(crate) fn code(e: &DriverError) -> Option<i32> {
    match e.kind.as_ref() {
        DriverKind::Command(c) => Some(c.code),
        DriverKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        DriverKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        DriverKind::InsertMany(m) => m.write_errors.as_ref().and_then(|w| w.first()).map(|w| w.code),
        DriverKind::BulkWrite(b) => b.write_errors.values().next().map(|w| w.code),
        _ => None,
    }
}

/// Maps a driver error; `what` says what was being done.
pub(crate) fn map(what: &str, e: DriverError) -> Error {
    if code(&e) == Some(DUPLICATE_KEY) {
        return Error::conflict(format!(
            "{what}: a document with this _id or unique index value already exists"
        ))
        .with_source(e);
    }
    if code(&e) == Some(WRITE_CONFLICT)
        || e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
    {
        return Error::new(
            ErrorKind::Aborted,
            format!("{what}: a concurrent transaction overtook this one; retry"),
        )
        .with_source(e);
    }
    let kind = match e.kind.as_ref() {
        DriverKind::ServerSelection { .. } | DriverKind::Io(_) | DriverKind::ConnectionPoolCleared { .. } => {
            ErrorKind::Unavailable
        }
        _ if e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR) => ErrorKind::Unavailable,
        DriverKind::InvalidArgument { .. } | DriverKind::BsonSerialization(_) => ErrorKind::InvalidInput,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("{what}: {e}")).with_source(e)
}

/// A `Result` extension to map driver errors in one place.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> orbstore_core::Result<T>;
}

impl<T> Context<T> for std::result::Result<T, DriverError> {
    fn ctx(self, what: &str) -> orbstore_core::Result<T> {
        self.map_err(|e| map(what, e))
    }
}
