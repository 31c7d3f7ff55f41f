//! Driver and pool errors mapped to orbstore's kinds, with the source kept.
//!
//! Matched on SQLSTATE codes only, never on message text.

use orbstore_core::{Error, ErrorKind};
use tokio_postgres::error::SqlState;

/// Maps a driver error; `what` says what was being done.
pub(crate) fn map(what: &str, e: tokio_postgres::Error) -> Error {
    let kind = match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            let detail = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("");
            let msg = if detail.starts_with("_pk_") {
                format!("{what}: a document with this _id already exists")
            } else {
                format!("{what}: a unique index refuses the write")
            };
            return Error::conflict(msg).with_source(e);
        }
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            return Error::new(
                ErrorKind::Aborted,
                format!("{what}: a concurrent transaction overtook this one; retry"),
            )
            .with_source(e)
        }
        // A statement failed earlier in this transaction: the whole transaction can be retried.
        Some(c) if *c == SqlState::IN_FAILED_SQL_TRANSACTION => ErrorKind::Aborted,
        Some(c) if is_unavailable(c) => ErrorKind::Unavailable,
        Some(c) if c.code().starts_with("22") => ErrorKind::InvalidInput,
        Some(_) => ErrorKind::Backend,
        // No SQLSTATE: the connection failed or closed, or the server did not answer.
        None => ErrorKind::Unavailable,
    };
    let detail = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    Error::new(kind, format!("{what}: {detail}")).with_source(e)
}

/// Connection trouble, server shutdown, too many connections, timeouts: worth retrying.
fn is_unavailable(c: &SqlState) -> bool {
    let code = c.code();
    code.starts_with("08") // connection exceptions
        || code.starts_with("53") // insufficient resources (too many connections, disk full)
        || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
        || *c == SqlState::QUERY_CANCELED // statement timeout
        || *c == SqlState::LOCK_NOT_AVAILABLE
}

/// Whether the error says a table (a collection dropped by someone else) does not exist.
pub(crate) fn is_undefined_table(e: &Error) -> bool {
    source_code(e).is_some_and(|c| *c == SqlState::UNDEFINED_TABLE)
}

/// Whether the error says a table or a column is missing: what this process cached about a
/// collection (its table, its index columns) is behind another process's drop and re-create.
pub(crate) fn is_stale_catalog(e: &Error) -> bool {
    source_code(e).is_some_and(|c| *c == SqlState::UNDEFINED_TABLE || *c == SqlState::UNDEFINED_COLUMN)
}

/// Whether the error says a column is missing: the cached index columns are behind (see
/// [`is_stale_catalog`]).
pub(crate) fn is_stale_layout(e: &Error) -> bool {
    source_code(e).is_some_and(|c| *c == SqlState::UNDEFINED_COLUMN)
}

fn source_code(e: &Error) -> Option<&SqlState> {
    std::error::Error::source(e)?.downcast_ref::<tokio_postgres::Error>()?.code()
}

/// Maps a pool error.
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> Error {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => map("connect", e),
        PoolError::Closed => Error::invalid("the PostgreSQL backend is closed"),
        other => Error::unavailable(format!("no PostgreSQL connection: {other}")),
    }
}

/// A `Result` extension to map driver errors in one place.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> orbstore_core::Result<T>;
}

impl<T> Context<T> for std::result::Result<T, tokio_postgres::Error> {
    fn ctx(self, what: &str) -> orbstore_core::Result<T> {
        self.map_err(|e| map(what, e))
    }
}
