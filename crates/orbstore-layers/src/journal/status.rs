//! What [`JournalLayer::sync_status`](super::JournalLayer::sync_status) reports.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize, Serializer};

fn time<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        None => s.serialize_none(),
    }
}

fn millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

/// A write the server refused for good (a unique-index `Conflict` with data it holds,
/// `InvalidInput`, `Unsupported`): kept here with its error instead of being retried forever.
/// The local replica keeps the write; the server does not have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The journal sequence number of the write.
    pub seq: u64,
    /// The collection.
    pub collection: String,
    /// The document's id, for document writes.
    pub id: Option<String>,
    /// `put`, `delete`, `create_index`, `create_collection` or `drop_collection`.
    pub op: String,
    /// The document state or index spec that was refused.
    pub value: Option<serde_json::Value>,
    /// The server's error.
    pub error: String,
    /// When it was refused (RFC 3339).
    pub at: String,
}

/// The state of the journal's sync to the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    /// Every acknowledged write has reached the server (or the dead-letter list).
    pub synced: bool,
    /// Acknowledged writes not yet on the server.
    pub pending_writes: u64,
    /// Their size in the journal.
    pub pending_bytes: u64,
    /// The journal's limit: past it, writes fail with `Unavailable`.
    pub max_pending_bytes: u64,
    /// The journal files' size on disk.
    pub journal_disk_bytes: u64,
    /// When a batch last reached the server.
    #[serde(serialize_with = "time")]
    pub last_sync: Option<SystemTime>,
    /// When the syncer tries again after a failure (none while it is not backing off).
    #[serde(serialize_with = "time")]
    pub next_attempt: Option<SystemTime>,
    /// How long the last successful batch took, in milliseconds in JSON.
    #[serde(serialize_with = "millis", rename = "last_sync_latency_ms")]
    pub last_sync_latency: Option<Duration>,
    /// The last error from the server (cleared by a successful batch).
    pub last_error: Option<String>,
    /// Consecutive failed attempts.
    pub failed_attempts: u64,
    /// Server collections not yet copied into the local replica (the server was unreachable
    /// at open): empty once seeded.
    pub seeding_pending: bool,
    /// Writes the server refused for good.
    pub dead_letters: Vec<DeadLetter>,
    /// Anything an operator should know (a torn journal tail cut at open, a local replica error).
    pub warnings: Vec<String>,
    /// The circuit breaker in front of the server, when there is one: `closed`, `open` or
    /// `half-open`.
    pub circuit: Option<&'static str>,
    /// The breaker's state in words ("circuit open for 2.1s after 5 consecutive failures,
    /// retrying in 0.9s").
    pub circuit_detail: Option<String>,
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |t: Option<SystemTime>| {
            t.map_or("never".to_owned(), |t| humantime::format_rfc3339_millis(t).to_string())
        };
        if self.synced {
            writeln!(f, "journal: synced")?;
        } else {
            writeln!(
                f,
                "journal: {} writes pending ({} bytes of {} allowed)",
                self.pending_writes, self.pending_bytes, self.max_pending_bytes
            )?;
        }
        writeln!(f, "last sync: {}", show(self.last_sync))?;
        if let Some(l) = self.last_sync_latency {
            writeln!(f, "last sync latency: {:.1} ms", l.as_secs_f64() * 1000.0)?;
        }
        if let Some(t) = self.next_attempt {
            writeln!(f, "next attempt: {} (after {} failed attempts)", show(Some(t)), self.failed_attempts)?;
        }
        if let Some(e) = &self.last_error {
            writeln!(f, "last error: {e}")?;
        }
        if self.seeding_pending {
            writeln!(f, "seeding: the server's collections are not yet copied into the local replica")?;
        }
        if let Some(c) = &self.circuit_detail {
            writeln!(f, "server: {c}")?;
        }
        writeln!(f, "journal on disk: {} bytes", self.journal_disk_bytes)?;
        writeln!(f, "dead letters: {}", self.dead_letters.len())?;
        for d in &self.dead_letters {
            writeln!(
                f,
                "  #{} {} {}{}: {}",
                d.seq,
                d.op,
                d.collection,
                d.id.as_ref().map_or(String::new(), |i| format!("/{i}")),
                d.error
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
