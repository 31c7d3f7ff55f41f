//! Progress of long operations, reported to whoever shows it (the `orb` commands draw bars).

/// What a [`Progress`] step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Documents.
    Documents,
    /// Bytes (of an archive file).
    Bytes,
}

/// Receives the progress of an operation, one step at a time. Called from any thread; every
/// method has a default that does nothing.
pub trait Progress: Send + Sync {
    /// A step begins: `what` says what it is ("backup users"), `total` how many units it will
    /// count when known.
    fn begin(&self, what: &str, total: Option<u64>, unit: Unit) {
        let _ = (what, total, unit);
    }

    /// `n` more units are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }

    /// The step ended.
    fn end(&self) {}

    /// Whether totals are worth computing (a count per collection): false for a progress that
    /// shows nothing.
    fn wants_totals(&self) -> bool {
        true
    }
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn wants_totals(&self) -> bool {
        false
    }
}
