//! Orphans in the database: MongoDB keeps the collections and their indexes itself (an index
//! drops with its collection), so what can be left behind is in orbstore's index catalog,
//! `_orbstore_indexes`, and the indexes it describes:
//!
//! - catalog rows of a collection that does not exist: `drop_collection` drops the collection,
//!   then deletes its rows, and a crash between leaves them; removed;
//! - catalog rows of a live collection whose index is missing: the same crash, then the
//!   collection made again by a write (the stale row makes `create_index` believe the index
//!   exists, so it is never built), or an index dropped by hand; removed;
//! - indexes shaped like orbstore's that no catalog row describes: `create_index` builds the
//!   index, then records it, and a crash between leaves it; dropped (an index holds no data).
//!   Indexes shaped otherwise were made by hand and are left alone;
//! - catalog rows that cannot be read: listed, kept (`list_indexes` fails on them; someone has to
//!   look).
//!
//! A row describes a server index with its name or, for servers that name indexes themselves
//! (nx-27017 calls `a_1` `idx_<collection>_a`), with its fields in order. Shaped like orbstore's
//! means ascending keys and no option but `unique`, a unique one (native mode only) with
//! orbstore's partial filter. A server that forgets directions and options (nx-27017 again)
//! makes a hand-made non-unique index look like orbstore's.
//!
//! MongoDB has no lock orbstore's `create_index` and `drop_collection` take, so each removal
//! looks again just before it, and an index dropped while a concurrent `create_index` recorded
//! it is built again from the recorded spec.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use orbstore_core::{CleanupReport, IndexSpec, Orphan, Result};

use crate::backend::{Mode, Shared, INDEX_CATALOG};
use crate::collection::unique_partial_filter;
use crate::error::{code, Context};

/// The server's "namespace not found" code.
const NAMESPACE_NOT_FOUND: i32 = 26;

/// A row of the index catalog.
#[derive(Debug, Clone)]
struct Row {
    id: Bson,
    collection: Option<String>,
    name: Option<String>,
    spec: Option<IndexSpec>,
}

impl Row {
    fn from_bson(d: &BsonDocument) -> Row {
        Row {
            id: d.get("_id").cloned().unwrap_or(Bson::Null),
            collection: d.get_str("collection").ok().map(str::to_owned),
            name: d.get_str("name").ok().map(str::to_owned),
            spec: d.get_str("spec").ok().and_then(|s| serde_json::from_str(s).ok()),
        }
    }

    /// Whether this row describes the server's index `name` over `fields`.
    fn describes(&self, name: &str, fields: &[String]) -> bool {
        self.name.as_deref() == Some(name) || self.spec.as_ref().is_some_and(|s| s.fields == fields)
    }
}

/// An index as the server describes it.
#[derive(Debug, Clone)]
struct ServerIndex {
    name: String,
    /// The key's fields, in order.
    fields: Vec<String>,
    description: BsonDocument,
}

/// What removing an orphan means.
#[derive(Debug, Clone)]
enum Removal {
    /// Nothing: the orphan is only reported.
    Keep,
    /// Delete a catalog row, if its collection is still missing (`live: false`) or its index
    /// still is (`live: true`).
    Row { row: Box<Row>, collection: String, live: bool },
}

/// The index catalog's rows.
async fn rows(sh: &Shared, filter: BsonDocument) -> Result<Vec<Row>> {
    let catalog = sh.db.collection::<BsonDocument>(INDEX_CATALOG);
    let mut cursor = catalog.find(filter).await.ctx("read the index catalog")?;
    let mut out = Vec::new();
    while let Some(d) = cursor.try_next().await.ctx("read the index catalog")? {
        out.push(Row::from_bson(&d));
    }
    Ok(out)
}

/// The indexes of a collection as the server describes them (the `_id` one left out); none
/// when the collection does not exist (any more). One batch holds them all: a collection has at
/// most 64 indexes, a first batch up to 101 entries.
async fn server_indexes(sh: &Shared, collection: &str) -> Result<Vec<ServerIndex>> {
    let listed = match sh.db.run_command(doc! {"listIndexes": collection}).await {
        Err(e) if code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(Vec::new()),
        other => other.ctx(&format!("list the indexes of {collection:?}"))?,
    };
    let batch =
        listed.get_document("cursor").and_then(|c| c.get_array("firstBatch")).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for d in batch.into_iter().filter_map(|b| b.as_document().cloned()) {
        let Ok(name) = d.get_str("name") else { continue };
        if name == "_id_" {
            continue;
        }
        let fields = d.get_document("key").map(|k| k.keys().cloned().collect()).unwrap_or_default();
        out.push(ServerIndex { name: name.to_owned(), fields, description: d.clone() });
    }
    Ok(out)
}

/// Whether a collection exists, at the time of asking.
async fn exists(sh: &Shared, collection: &str) -> Result<bool> {
    let names = sh.db.list_collection_names().await.ctx("list collections")?;
    Ok(names.iter().any(|n| n == collection))
}

/// Whether the server's description of an index is what `create_index` builds.
fn orbstore_shaped(mode: Mode, i: &ServerIndex) -> bool {
    let d = &i.description;
    let Ok(key) = d.get_document("key") else { return false };
    let ascending =
        key.values().all(|v| matches!(v, Bson::Int32(1) | Bson::Int64(1)) || v.as_f64() == Some(1.0));
    let unique = d.get_bool("unique").unwrap_or(false);
    let partial_ok = match d.get_document("partialFilterExpression") {
        // orbstore builds unique indexes in native mode only, always with its partial filter.
        Ok(p) => unique && mode == Mode::Native && *p == unique_partial_filter(&i.fields),
        Err(_) => !unique,
    };
    let spec = IndexSpec { name: i.name.clone(), fields: i.fields.clone(), unique };
    let known = ["v", "key", "name", "ns", "unique", "partialFilterExpression", "background"];
    ascending && partial_ok && spec.validate().is_ok() && d.keys().all(|k| known.contains(&k.as_str()))
}

fn orphan(kind: &str, name: String, detail: String) -> Orphan {
    Orphan { kind: kind.to_owned(), name, bytes: None, detail, removed: false }
}

fn id_text(id: &Bson) -> String {
    match id {
        Bson::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The orphans, sorted by kind and name, with what removing each means, and how many indexes
/// were left alone.
async fn find(sh: &Shared, live: &[String]) -> Result<(Vec<(Orphan, Removal)>, usize)> {
    let rows = rows(sh, doc! {}).await?;
    let mut indexes = BTreeMap::new();
    for name in live {
        indexes.insert(name.clone(), server_indexes(sh, name).await?);
    }
    let mut out = Vec::new();
    for r in &rows {
        let (Some(coll), Some(index)) = (&r.collection, &r.name) else {
            out.push((
                orphan(
                    "unreadable index catalog row",
                    id_text(&r.id),
                    format!(
                        "kept: {INDEX_CATALOG} row {} has no collection or index name; fix or delete it by hand",
                        r.id
                    ),
                ),
                Removal::Keep,
            ));
            continue;
        };
        let name = format!("{coll}/{index}");
        let on_server = indexes.get(coll);
        if on_server.is_none() {
            let detail = format!("no collection {coll:?} for index {index:?}");
            let removal = Removal::Row { row: Box::new(r.clone()), collection: coll.clone(), live: false };
            out.push((orphan("index catalog row without a collection", name, detail), removal));
        } else if !on_server.into_iter().flatten().any(|i| r.describes(&i.name, &i.fields)) {
            let detail = format!(
                "collection {coll:?} has no index {index:?}: it enforces nothing, though list_indexes reported \
                 it, and create_index would not build it; create_index builds it again"
            );
            let removal = Removal::Row { row: Box::new(r.clone()), collection: coll.clone(), live: true };
            out.push((orphan("index catalog row without its index", name, detail), removal));
        } else if r.spec.is_none() {
            let detail = format!(
                "kept: the spec of index {index:?} cannot be read (list_indexes of {coll:?} fails on it); fix it by hand"
            );
            out.push((orphan("unreadable index catalog row", name, detail), Removal::Keep));
        }
    }
    let mut foreign = 0;
    for (coll, on_server) in &indexes {
        for i in on_server {
            if rows.iter().any(|r| r.collection.as_ref() == Some(coll) && r.describes(&i.name, &i.fields)) {
                continue;
            }
            if !orbstore_shaped(sh.mode, i) {
                foreign += 1;
                continue;
            }
            // Listed, never dropped: a plain ascending index someone made by hand
            // (`createIndex({user: 1})`) looks exactly like one an interrupted create_index
            // left, and dropping it would take away what its owner relies on.
            let detail = format!(
                "on collection {coll:?}, over {:?}, shaped like orbstore's, but {INDEX_CATALOG} does not describe it; \
                 kept (it may be hand-made): drop it by hand, or call create_index to adopt it",
                i.fields
            );
            out.push((
                orphan("index not in the catalog", format!("{coll}/{}", i.name), detail),
                Removal::Keep,
            ));
        }
    }
    out.sort_by(|a, b| (&a.0.kind, &a.0.name).cmp(&(&b.0.kind, &b.0.name)));
    Ok((out, foreign))
}

/// Removes one orphan after looking again: `None` when it is one no more, `Some(more)` when
/// removed (with what else happened).
async fn remove(sh: &Shared, removal: &Removal) -> Result<Option<String>> {
    match removal {
        Removal::Keep => Ok(None),
        Removal::Row { row, collection, live } => {
            if exists(sh, collection).await? != *live {
                return Ok(None);
            }
            if *live
                && server_indexes(sh, collection).await?.iter().any(|i| row.describes(&i.name, &i.fields))
            {
                return Ok(None);
            }
            let mut filter = doc! {"_id": row.id.clone(), "collection": collection};
            if let Some(name) = &row.name {
                filter.insert("name", name);
            }
            let catalog = sh.db.collection::<BsonDocument>(INDEX_CATALOG);
            let deleted = catalog.delete_one(filter).await.ctx("delete an index catalog row")?;
            Ok((deleted.deleted_count > 0).then(String::new))
        }
    }
}

/// Lists the orphans and, with `apply`, removes them one by one, each after looking again.
pub(crate) async fn run(sh: &Shared, live: Vec<String>, apply: bool) -> Result<CleanupReport> {
    let (mut found, foreign) = find(sh, &live).await?;
    let mut notes = vec![
        "MongoDB keeps the collections and their indexes itself: an index drops with its collection, and there is no \
         table or collection row to go stale"
            .to_owned(),
        format!(
            "looked in {INDEX_CATALOG}, orbstore's index catalog, for rows whose collection or index is missing, and on \
             each of the {} collections for indexes shaped like orbstore's (ascending keys, no other option) that no row \
             describes by name or fields",
            live.len()
        ),
        "create_index builds the index then records it, drop_collection drops the collection then deletes its rows: \
         a crash between the two steps leaves these orphans"
            .to_owned(),
    ];
    if sh.mode == Mode::Exact {
        notes.push(format!(
            "{} may not keep index names, directions or options: a hand-made non-unique index can look like orbstore's",
            sh.server
        ));
    }
    if foreign > 0 {
        notes.push(format!("left alone {foreign} indexes not shaped like orbstore's (made by hand)"));
    }
    if apply {
        for (o, removal) in &mut found {
            match remove(sh, removal).await? {
                Some(more) => {
                    o.removed = true;
                    o.detail.push_str(&more);
                }
                None if !matches!(removal, Removal::Keep) => {
                    o.detail.push_str("; no longer an orphan when the removal looked again, left alone");
                }
                None => {}
            }
        }
        notes.push(
            "MongoDB offers no lock that create_index and drop_collection take: each removal looked again just before \
             it, and an index dropped while a concurrent create_index recorded it is built again"
                .to_owned(),
        );
    }
    Ok(CleanupReport {
        backend: "mongodb".into(),
        applied: apply,
        orphans: found.into_iter().map(|(o, _)| o).collect(),
        notes,
    })
}
