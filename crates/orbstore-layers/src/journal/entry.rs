//! Journal records: what one acknowledged write did, written as the resulting document states
//! (never as operations such as `$inc`), so that applying a record twice changes nothing.
//!
//! On disk a record is one frame: `[payload length: u32 LE][CRC-32 of the payload: u32 LE]
//! [payload: the record as JSON]`.

use std::sync::Arc;

use orbstore_core::{Document, Error, Id, IndexSpec, Result};
use serde::{Deserialize, Serialize};

/// One effect of a write on one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// The collection was created (empty).
    Create { c: String },
    /// The collection was dropped with its documents and indexes.
    Drop { c: String },
    /// The document now has exactly this content (an insert, upsert or update).
    Put { c: String, doc: Arc<Document> },
    /// The document was deleted.
    Delete { c: String, id: Id },
    /// An index was created.
    Index { c: String, spec: IndexSpec },
}

impl Op {
    /// The collection the op acts on.
    pub(crate) fn collection(&self) -> &str {
        match self {
            Op::Create { c }
            | Op::Drop { c }
            | Op::Put { c, .. }
            | Op::Delete { c, .. }
            | Op::Index { c, .. } => c,
        }
    }

    /// The document's id, for document ops.
    pub(crate) fn doc_id(&self) -> Option<&str> {
        match self {
            Op::Put { doc, .. } => orbstore_core::id_of(doc),
            Op::Delete { id, .. } => Some(id),
            _ => None,
        }
    }

    /// A short name for status and dead letters.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create_collection",
            Op::Drop { .. } => "drop_collection",
            Op::Put { .. } => "put",
            Op::Delete { .. } => "delete",
            Op::Index { .. } => "create_index",
        }
    }
}

/// Everything one acknowledged write did, under one sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Assigned in the order the writes were applied to the replica; never reused.
    pub(crate) seq: u64,
    /// The write's effects, in the order they were made.
    pub(crate) ops: Vec<Op>,
}

const HEADER: usize = 8;

/// Appends the record's frame to `out`.
pub(crate) fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    serde_json::to_writer(&mut *out, record).expect("a record always serializes");
    let payload = &out[start + HEADER..];
    let len = u32::try_from(payload.len()).expect("a record under 4 GiB");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// The records of one journal file, and how many bytes of it are whole records.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) records: Vec<Record>,
    /// The length of the valid prefix; anything after it is a torn or damaged tail.
    pub(crate) valid: usize,
}

/// Reads frames until the end or the first frame that is incomplete or fails its checksum.
///
/// A frame whose checksum holds but whose JSON does not parse is `Corrupt`: a crash cannot
/// produce it, so it is not silently cut off.
pub(crate) fn decode(bytes: &[u8], file: &str) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + HEADER].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else { break };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        let record: Record = serde_json::from_slice(payload).map_err(|e| {
            Error::corrupt(format!(
                "journal file {file}: the record at offset {at} has a valid checksum but does not parse: {e}"
            ))
        })?;
        out.records.push(record);
        at += HEADER + len;
    }
    out.valid = at;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: u64) -> Record {
        let doc = orbstore_core::to_document(json!({"_id": "a", "n": seq})).unwrap();
        Record {
            seq,
            ops: vec![
                Op::Put { c: "t".into(), doc: Arc::new(doc) },
                Op::Delete { c: "t".into(), id: "b".into() },
            ],
        }
    }

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut() {
        let mut bytes = Vec::new();
        encode(&record(1), &mut bytes);
        encode(&record(2), &mut bytes);
        let whole = bytes.len();
        encode(&record(3), &mut bytes);
        bytes.truncate(bytes.len() - 3);
        let d = decode(&bytes, "x").unwrap();
        assert_eq!(d.records, vec![record(1), record(2)]);
        assert_eq!(d.valid, whole);
    }

    #[test]
    fn a_flipped_byte_ends_the_valid_prefix() {
        let mut bytes = Vec::new();
        encode(&record(1), &mut bytes);
        let first = bytes.len();
        encode(&record(2), &mut bytes);
        bytes[first + 12] ^= 0xff;
        let d = decode(&bytes, "x").unwrap();
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.valid, first);
    }
}
