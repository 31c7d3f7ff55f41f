//! Opening a replay buffer: the collection read as a stream (page by page in `_id` order), each
//! document read straight into the index's records, with no list of a million documents or
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

/// A page of stored experiences read and parsed on the reading task.
struct Page {
    /// The strings of the page's parsed experiences, one after another.
    text: String,
    items: Vec<Item>,
}

/// One stored experience of a [`Page`].
enum Item {
    /// Parsed from its text: its strings are in the page's `text`.
    Parsed(Parsed),
    /// As the backend parsed it.
    Doc(Document),
}

/// An experience parsed from its text.
struct Parsed {
    /// Where its id, user, state, action and next state are in the page's `text`.
    spans: [(u32, u32); 5],
    reward: f64,
    timestamp: u64,
    completed: bool,
    watch_duration: Option<f64>,
    priority: Option<f64>,
}

/// Parses a page's texts (a page is a thousand documents: its strings stay far below the 4 GiB
/// its 32-bit offsets can address).
fn parse_page(docs: Vec<Result<StoredDocument>>) -> Result<Page> {
    let mut page = Page { text: String::new(), items: Vec::with_capacity(docs.len()) };
    for doc in docs {
        match doc? {
            StoredDocument::Json(t) => {
                let row: Row<'_> = serde_json::from_str(&t).map_err(|e| unreadable_text(&t, &e))?;
                let mut span = |s: &str| {
                    let start = page.text.len() as u32;
                    page.text.push_str(s);
                    (start, s.len() as u32)
                };
                let spans = [
                    span(&row.id),
                    span(&row.user),
                    span(&row.state),
                    span(&row.action),
                    span(&row.next_state),
                ];
                page.items.push(Item::Parsed(Parsed {
                    spans,
                    reward: row.reward,
                    timestamp: row.timestamp,
                    completed: row.completed,
                    watch_duration: row.watch_duration,
                    priority: row.priority.as_ref().and_then(valid_priority),
                }));
            }
            StoredDocument::Parsed(doc) => page.items.push(Item::Doc(doc)),
        }
    }
    Ok(page)
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
    let docs = raw.find_stored_stream(&Query::all()).await?;
    // Reading and parsing run on a task of their own, a page or two ahead of the inserts here:
    // with two threads, the backend's read and the JSON parsing overlap the index's inserts.
    let (tx, mut pages) = tokio::sync::mpsc::channel::<Result<Page>>(2);
    let reader = tokio::spawn(async move {
        // The items ready at once: a backend's page.
        let mut chunks = docs.ready_chunks(1024);
        while let Some(chunk) = chunks.next().await {
            let page = parse_page(chunk);
            let failed = page.is_err();
            // A send fails when the open gave up (an error, or its future dropped): stop reading.
            if tx.send(page).await.is_err() || failed {
                return;
            }
        }
    });
    let mut order: Vec<(u64, u32, f64)> = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(page) = pages.recv().await {
        let page = page?;
        for item in &page.items {
            let (slot, timestamp, priority) = match item {
                Item::Parsed(p) => {
                    let [id, user, state, action, next_state] =
                        p.spans.map(|(start, len)| &page.text[start as usize..start as usize + len as usize]);
                    let f = Fields {
                        id,
                        user,
                        state,
                        action,
                        next_state,
                        reward: p.reward,
                        timestamp: p.timestamp,
                        completed: p.completed,
                        watch_duration: p.watch_duration,
                    };
                    (index.store(&f)?, p.timestamp, p.priority)
                }
                Item::Doc(doc) => {
                    let (f, priority) = read(doc, payload)?;
                    (index.store(&f)?, f.timestamp, priority)
                }
            };
            order.push((timestamp, slot, priority.unwrap_or(f64::NAN)));
        }
    }
    // The channel also closes when the reading task panicked: that is an error, not the end.
    reader.await.map_err(|e| Error::backend("reading the stored experiences failed", e))?;
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
