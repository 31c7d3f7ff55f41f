//! The audit log: an append-only collection (`access_logs`, SML Guardian's name) with one record
//! per data operation: what, who (`ORB_ACTOR`, else the OS user), when, on what, the outcome and
//! its counts. Records are only ever inserted here, never updated or deleted by orbstore (an
//! erasure keeps them; their own retention is 7 years, `retention::presets::sml_guardian`).
//!
//! The `orb` commands record what they do; a program calling the operations as a library records
//! with [`record`].

use std::time::SystemTime;

use futures::TryStreamExt;
use orbstore_core::{generate_id, to_document, Error, PersistenceBackend, Query, Result, ID_FIELD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The audit collection.
pub const AUDIT_COLLECTION: &str = "access_logs";

/// The variable naming the actor recorded (default: the OS user).
pub const ACTOR_VAR: &str = "ORB_ACTOR";

/// One audited operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The operation: `backup`, `restore`, `export`, `migrate`, `import`, `retention`,
    /// `retention-policy`, ...
    pub what: String,
    /// Who ran it ([`actor`]).
    pub who: String,
    /// When it ended (RFC 3339, milliseconds).
    pub at: String,
    /// What it acted on: a file, a store URL without its password, collections.
    pub target: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Its figures (documents written, deleted, archived, ...).
    pub counts: Map<String, Value>,
    /// The error of a failed operation.
    pub error: Option<String>,
}

impl AuditRecord {
    /// A record of `what` on `target` by [`actor`], ending now: `ok` with `counts`, or failed
    /// with `error`.
    pub fn new(
        what: &str,
        target: impl Into<String>,
        outcome: std::result::Result<Map<String, Value>, &Error>,
    ) -> Self {
        let (outcome, counts, error) = match outcome {
            Ok(counts) => ("ok", counts, None),
            Err(e) => ("failed", Map::new(), Some(e.to_string())),
        };
        AuditRecord {
            what: what.to_owned(),
            who: actor(),
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            target: target.into(),
            outcome: outcome.to_owned(),
            counts,
            error,
        }
    }
}

/// `ORB_ACTOR`, else the OS user (`USER`, `LOGNAME`), else `unknown`.
pub fn actor() -> String {
    [ACTOR_VAR, "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Appends a record (its id a time-ordered UUIDv7, so `_id` order is time order).
pub async fn record(store: &dyn PersistenceBackend, record: &AuditRecord) -> Result<()> {
    let mut doc = to_document(
        serde_json::to_value(record).map_err(|e| Error::backend("encoding an audit record", e))?,
    )?;
    doc.insert(ID_FIELD.to_owned(), Value::String(generate_id()));
    store.collection(AUDIT_COLLECTION).await?.insert_one(doc).await?;
    Ok(())
}

/// The records, oldest first; the newest `last` of them when given. Reading creates nothing.
pub async fn records(store: &dyn PersistenceBackend, last: Option<usize>) -> Result<Vec<AuditRecord>> {
    if !store.list_collections().await?.iter().any(|c| c == AUDIT_COLLECTION) {
        return Ok(Vec::new());
    }
    let coll = store.collection(AUDIT_COLLECTION).await?;
    let mut stream = coll.find_stream(&Query::all()).await?;
    let mut out = std::collections::VecDeque::new();
    while let Some(mut doc) = stream.try_next().await? {
        let id = doc.remove(ID_FIELD).unwrap_or(Value::Null);
        let r: AuditRecord = serde_json::from_value(Value::Object(doc))
            .map_err(|e| Error::corrupt(format!("the audit record {id} in {AUDIT_COLLECTION}: {e}")))?;
        out.push_back(r);
        if last.is_some_and(|n| out.len() > n) {
            out.pop_front();
        }
    }
    Ok(out.into())
}
