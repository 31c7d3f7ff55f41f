//! Opening a replay buffer: the collection read as a stream (page by page in `_id` order), each
//! document read straight into the index's columns, with no list of a million documents or
//! experiences in between.
//!
//! Where the time went (`experience_open_1m` in the crate's benchmarks, 1M in SQLite): reading
//! the rows is ~0.4 s, parsing them into `Document`s 2-4 s and the backend's stream of
//! `Document`s 7-8 s (an allocation per key and string value, freed on another thread), the
//! in-memory inserts ~1 s. So the buffer asks for the stored text where the backend has it
//! ([`Collection::find_stored_stream`](orbstore_core::Collection::find_stored_stream)) and
//! deserializes it into a borrowed [`Row`]: no map, no string allocated but what the index
//! interns. No projection is asked for: a whole-document scan is what a backend storing text can
//! hand over unparsed, memory mode needs every field anyway, and the backends that apply a
//! projection themselves (memory, file, SQLite) do it by copying each kept value.

use std::borrow::Cow;

use futures::StreamExt;
use orbstore_core::{CollectionRef, Document, Error, Filter, Query, Result, StoredDocument};
use serde::Deserialize;
use serde_json::Value;

use super::index::{Fields, Index};
use super::{EXPERIENCE_COLLECTION, PRIORITY_FIELD};

/// A stored experience as read from its JSON text: strings borrowed from the text unless they
/// hold escapes. Unknown fields are skipped, as the `Experience` type skips them.
#[derive(Deserialize)]
struct Row<'a> {
    #[serde(rename = "_id", borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    user: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    next_state: Cow<'a, str>,
    reward: f64,
    timestamp: u64,
    completed: bool,
    #[serde(default)]
    watch_duration: Option<f64>,
    /// Any JSON value: one that is not a valid priority is ignored, as in a parsed document.
    #[serde(default, rename = "priority")]
    priority: Option<Value>,
}

/// Reads every stored experience into a new index (`payload`: memory mode). Each user's
/// experiences are then attached oldest first (timestamp, then id), so that the eviction order
/// and the highest priority seen are those of the stored order.
pub(super) async fn load(raw: &CollectionRef, payload: bool) -> Result<Index> {
    let mut index = Index::new(payload);
    let expected = raw.count(&Filter::all()).await?;
    index.reserve(usize::try_from(expected).unwrap_or(0));
    // No sort: `_id` order is the one every backend streams page by page; timestamp order is
    // restored below (a stable sort, so equal timestamps stay in `_id` order, as a sort by
    // timestamp then `_id` gives).
    let mut docs = raw.find_stored_stream(&Query::all()).await?;
    let mut order: Vec<(u64, u32, f64)> = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(doc) = docs.next().await {
        let (slot, timestamp, priority) = match doc? {
            StoredDocument::Json(text) => {
                let row: Row<'_> = serde_json::from_str(&text).map_err(|e| unreadable_text(&text, &e))?;
                let f = Fields {
                    id: &row.id,
                    user: &row.user,
                    state: &row.state,
                    action: &row.action,
                    next_state: &row.next_state,
                    reward: row.reward,
                    timestamp: row.timestamp,
                    completed: row.completed,
                    watch_duration: row.watch_duration,
                };
                (index.store(&f)?, row.timestamp, row.priority.as_ref().and_then(valid_priority))
            }
            StoredDocument::Parsed(doc) => {
                let (f, priority) = read(&doc, payload)?;
                (index.store(&f)?, f.timestamp, priority)
            }
        };
        order.push((timestamp, slot, priority.unwrap_or(f64::NAN)));
    }
    order.sort_by_key(|&(t, ..)| t);
    for (_, slot, p) in order {
        index.attach(slot, (!p.is_nan()).then_some(p));
    }
    Ok(index)
}

/// An experience's fields in a stored document, and its stored priority (absent, or not a
/// valid one: none). A document missing a field, or with one of the wrong type, is `Corrupt`.
fn read(doc: &Document, payload: bool) -> Result<(Fields<'_>, Option<f64>)> {
    let id = doc.get("_id").and_then(Value::as_str).ok_or_else(|| unreadable(doc, "_id", "a string"))?;
    let text = |name: &str| text_field(doc, name);
    let (state, action, next_state, watch_duration) = if payload {
        let watch = match doc.get("watch_duration") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| unreadable(doc, "watch_duration", "a number or null"))?),
        };
        (text("state")?, text("action")?, text("next_state")?, watch)
    } else {
        ("", "", "", None)
    };
    let f = Fields {
        id,
        user: text("user")?,
        state,
        action,
        next_state,
        reward: doc
            .get("reward")
            .and_then(Value::as_f64)
            .ok_or_else(|| unreadable(doc, "reward", "a number"))?,
        timestamp: doc
            .get("timestamp")
            .and_then(Value::as_u64)
            .ok_or_else(|| unreadable(doc, "timestamp", "a non-negative integer"))?,
        completed: doc
            .get("completed")
            .and_then(Value::as_bool)
            .ok_or_else(|| unreadable(doc, "completed", "a boolean"))?,
        watch_duration,
    };
    Ok((f, doc.get(PRIORITY_FIELD).and_then(valid_priority)))
}

/// A stored priority, if it is one (a number, finite, at least 0); anything else: none.
fn valid_priority(v: &Value) -> Option<f64> {
    v.as_f64().filter(|p| p.is_finite() && *p >= 0.0)
}

/// The error for a stored text that is not an experience, naming its id when it has one.
fn unreadable_text(text: &str, e: &serde_json::Error) -> Error {
    #[derive(Deserialize)]
    struct IdOnly {
        #[serde(rename = "_id")]
        id: Value,
    }
    let id = serde_json::from_str::<IdOnly>(text).ok().map(|d| d.id);
    Error::corrupt(format!("experience {id:?} in {EXPERIENCE_COLLECTION:?} is unreadable: {e}"))
}

fn text_field<'a>(doc: &'a Document, name: &str) -> Result<&'a str> {
    doc.get(name).and_then(Value::as_str).ok_or_else(|| unreadable(doc, name, "a string"))
}

fn unreadable(doc: &Document, field: &str, expected: &str) -> Error {
    Error::corrupt(format!(
        "experience {:?} in {EXPERIENCE_COLLECTION:?} is unreadable: its field {field:?} is not {expected}",
        doc.get("_id")
    ))
}
