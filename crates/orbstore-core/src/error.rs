//! The one error type of orbstore, with kinds a caller can act on.

use std::fmt;

/// A boxed error from a driver or the operating system, kept for people debugging.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout orbstore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on. Every backend maps its driver's errors to
/// these kinds (SQLSTATE 23505, MongoDB code 11000 and an SQLite constraint error all become
/// [`ErrorKind::Conflict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (where absence is an error, not an `Option`).
    NotFound,
    /// A duplicate `_id` or a unique-index violation.
    Conflict,
    /// Bad input: an invalid name, filter, update or document. Fix the call; retrying won't help.
    InvalidInput,
    /// The backend cannot be reached right now (connection refused, timeout). Retryable.
    Unavailable,
    /// A transaction was aborted because of a concurrent write (serialization failure).
    /// Retrying the whole transaction may succeed.
    Aborted,
    /// The backend cannot do this at all (a capability it lacks, a backend not compiled in).
    Unsupported,
    /// Stored data could not be read back as written.
    Corrupt,
    /// An operating-system I/O error.
    Io,
    /// Any other error from the storage engine or driver.
    Backend,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Aborted => "transaction aborted",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupt => "corrupt data",
            ErrorKind::Io => "I/O error",
            ErrorKind::Backend => "backend error",
        };
        f.write_str(s)
    }
}

/// An orbstore error: a [`ErrorKind`], a message that names what was wrong, and the source error
/// when there is one.
#[derive(thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl Error {
    /// A new error of `kind` with a message naming what was wrong.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// [`ErrorKind::Aborted`].
    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Aborted, message)
    }

    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// [`ErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// [`ErrorKind::Io`] with what was being done and the OS error.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, context).with_source(source)
    }

    /// [`ErrorKind::Backend`] with the driver's error attached.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Backend, message).with_source(source)
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the same call may succeed if tried again later: true for
    /// [`ErrorKind::Unavailable`] and [`ErrorKind::Aborted`], false for everything else.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_message() {
        let e = Error::invalid("bad collection name \"X\"");
        assert_eq!(e.to_string(), "invalid input: bad collection name \"X\"");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn only_unavailable_and_aborted_are_retryable() {
        assert!(Error::unavailable("x").is_retryable());
        assert!(Error::aborted("x").is_retryable());
        for e in [
            Error::not_found("x"),
            Error::conflict("x"),
            Error::invalid("x"),
            Error::unsupported("x"),
            Error::corrupt("x"),
            Error::io("x", std::io::Error::other("y")),
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn source_is_kept() {
        use std::error::Error as _;
        let e = Error::io("reading x", std::io::Error::other("disk gone"));
        assert_eq!(e.source().unwrap().to_string(), "disk gone");
    }
}
