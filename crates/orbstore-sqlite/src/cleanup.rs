//! Orphans in an SQLite database: what describes or belongs to a collection that is not there.
//!
//! - catalog rows (`orbstore_collections`, `orbstore_indexes`, `orbstore_shapes`) of a
//!   collection whose table `"c_<name>"` is missing: removed;
//! - `orbstore_indexes` rows whose index `"ix_<collection>__<index>"` is missing: removed (the
//!   index enforces nothing, yet `list_indexes` reports it and `create_index` would not build it);
//! - indexes named `"ix_…"` that no `orbstore_indexes` row describes on their own table: dropped
//!   (an index holds no data);
//! - tables `"c_<name>"` without a row in `orbstore_collections`: listed, never dropped, since
//!   they hold documents; their catalogued indexes and multikey flags are kept with them, so one
//!   `INSERT INTO orbstore_collections` makes them a collection again.
//!
//! Every create, index build and drop commits its table, index and catalog rows in one SQLite
//! transaction, so a crash leaves none of these: they come from hand edits, a partial restore or
//! another program. The cleanup runs as one job on the writer thread, as `drop_collection` does:
//! no orbstore write runs while it looks and removes, and the removals commit together.

use std::collections::{BTreeMap, BTreeSet};

use orbstore_core::{validate_collection_name, CleanupReport, Orphan, Result};

use crate::backend::{load_catalog, table};
use crate::error::Context;
use crate::worker::Writer;

/// What removing an orphan means.
enum Removal {
    /// Nothing: the orphan is only reported.
    Keep,
    /// `DELETE FROM orbstore_collections WHERE name = ?`.
    CollectionRow(String),
    /// `DELETE FROM orbstore_indexes WHERE collection = ? AND name = ?`.
    IndexRow(String, String),
    /// `DELETE FROM orbstore_shapes WHERE collection = ?`.
    ShapeRows(String),
    /// `DROP INDEX`.
    Index(String),
}

/// What the database holds, as read by one job.
#[derive(Default)]
struct Contents {
    /// Collections with a table `"c_<name>"`.
    tables: BTreeSet<String>,
    /// Rows of `orbstore_collections`.
    collection_rows: BTreeSet<String>,
    /// `(collection, index)` rows of `orbstore_indexes`.
    index_rows: BTreeSet<(String, String)>,
    /// How many `orbstore_shapes` rows each collection has.
    shape_rows: BTreeMap<String, i64>,
    /// Indexes named `ix_…`, with their table.
    indexes: BTreeMap<String, String>,
    /// Tables and indexes not named the orbstore way (nor SQLite's own `sqlite_…`).
    foreign: usize,
}

/// The SQLite index orbstore builds for an index of a collection.
fn index_name(collection: &str, index: &str) -> String {
    format!("ix_{collection}__{index}")
}

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn read(w: &Writer) -> Result<Contents> {
    let conn = &w.conn;
    let mut c = Contents::default();
    let what = "read the schema";
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')")
        .ctx(what)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .ctx(what)?;
    for row in rows {
        let (kind, name, tbl) = row.ctx(what)?;
        if name.starts_with("sqlite_") || name.starts_with("orbstore_") {
            continue;
        }
        match kind.as_str() {
            "table" => match name.strip_prefix("c_").filter(|n| validate_collection_name(n).is_ok()) {
                Some(coll) => {
                    c.tables.insert(coll.to_owned());
                }
                None => c.foreign += 1,
            },
            _ if name.starts_with("ix_") => {
                c.indexes.insert(name, tbl);
            }
            _ => c.foreign += 1,
        }
    }
    let what = "read the catalog";
    let mut stmt = conn.prepare("SELECT name FROM orbstore_collections").ctx(what)?;
    for name in stmt.query_map([], |r| r.get::<_, String>(0)).ctx(what)? {
        c.collection_rows.insert(name.ctx(what)?);
    }
    let mut stmt = conn.prepare("SELECT collection, name FROM orbstore_indexes").ctx(what)?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).ctx(what)? {
        c.index_rows.insert(row.ctx(what)?);
    }
    let mut stmt =
        conn.prepare("SELECT collection, count(*) FROM orbstore_shapes GROUP BY collection").ctx(what)?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).ctx(what)? {
        let (coll, n) = row.ctx(what)?;
        c.shape_rows.insert(coll, n);
    }
    Ok(c)
}

fn orphan(kind: &str, name: String, bytes: Option<u64>, detail: String) -> Orphan {
    Orphan { kind: kind.to_owned(), name, bytes, detail, removed: false }
}

/// The orphans in `c`, with what removing each means.
fn find(w: &Writer, c: &Contents) -> Result<Vec<(Orphan, Removal)>> {
    let mut found = Vec::new();
    for name in c.collection_rows.difference(&c.tables) {
        found.push((
            orphan(
                "catalog row without a table",
                name.clone(),
                None,
                format!("orbstore_collections lists {name:?}, but there is no table {}", table(name)),
            ),
            Removal::CollectionRow(name.clone()),
        ));
    }
    for (coll, index) in &c.index_rows {
        let ix = index_name(coll, index);
        let detail = if !c.tables.contains(coll) {
            ("index catalog row without a table", format!("no table {} for index {index:?}", table(coll)))
        } else if c.indexes.get(&ix).is_none_or(|t| *t != format!("c_{coll}")) {
            (
                "index catalog row without its index",
                format!(
                    "there is no SQLite index {} on {}: the index enforces nothing, though list_indexes \
                     reported it; create_index builds it again",
                    quote(&ix),
                    table(coll)
                ),
            )
        } else {
            continue;
        };
        found.push((
            orphan(detail.0, format!("{coll}/{index}"), None, detail.1),
            Removal::IndexRow(coll.clone(), index.clone()),
        ));
    }
    for (coll, n) in &c.shape_rows {
        if !c.tables.contains(coll) {
            found.push((
                orphan(
                    "multikey catalog rows without a table",
                    coll.clone(),
                    None,
                    format!("{n} rows in orbstore_shapes, but there is no table {}", table(coll)),
                ),
                Removal::ShapeRows(coll.clone()),
            ));
        }
    }
    for (ix, tbl) in &c.indexes {
        let catalogued = c
            .index_rows
            .iter()
            .any(|(coll, index)| index_name(coll, index) == *ix && *tbl == format!("c_{coll}"));
        if catalogued {
            continue;
        }
        let on = tbl.strip_prefix("c_").filter(|n| c.tables.contains(*n));
        let detail = match on {
            Some(coll) if c.collection_rows.contains(coll) => {
                format!("on collection {coll:?}, but orbstore_indexes does not describe it")
            }
            Some(coll) => format!(
                "on table {}, which has no catalog row, and orbstore_indexes does not describe it",
                table(coll)
            ),
            None => format!("on table {}, which is no collection", quote(tbl)),
        };
        // Dropped only on orbstore's own tables: an `ix_…` index on another program's table
        // (SQLAlchemy names its indexes so) is that program's, a unique constraint perhaps.
        let removal = if on.is_some() { Removal::Index(ix.clone()) } else { Removal::Keep };
        let detail =
            if on.is_some() { detail } else { format!("{detail}; kept: it is not on an orbstore table") };
        found.push((orphan("index not in the catalog", ix.clone(), None, detail), removal));
    }
    for coll in c.tables.difference(&c.collection_rows) {
        let (rows, bytes): (i64, i64) = w
            .conn
            .query_row(
                &format!("SELECT count(*), coalesce(sum(length(id) + length(doc)), 0) FROM {}", table(coll)),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ctx("count the rows of a table without a catalog row")?;
        let indexes = c.index_rows.iter().filter(|(cl, _)| cl == coll).count();
        found.push((
            orphan(
                "table without a catalog row",
                format!("c_{coll}"),
                Some(bytes as u64),
                format!(
                    "kept because it holds data ({rows} rows, {indexes} catalogued indexes kept with it); \
                     orbstore_collections has no row {coll:?}: insert one to use it again, or drop the table by hand"
                ),
            ),
            Removal::Keep,
        ));
    }
    found.sort_by(|a, b| (&a.0.kind, &a.0.name).cmp(&(&b.0.kind, &b.0.name)));
    Ok(found)
}

/// Finds the orphans and, with `apply`, removes them in one transaction and reloads the
/// catalog cache. Runs on the writer thread.
pub(crate) fn run(w: &mut Writer, apply: bool) -> Result<CleanupReport> {
    let contents = read(w)?;
    let found = find(w, &contents)?;
    let mut notes: Vec<String> = [
        "looked for rows of orbstore_collections, orbstore_indexes and orbstore_shapes whose table \
         \"c_<name>\" is missing",
        "looked for indexes \"ix_<collection>__<index>\" that orbstore_indexes does not describe, and for \
         orbstore_indexes rows whose index is missing",
        "looked for tables \"c_<name>\" without a row in orbstore_collections: listed, never dropped (they \
         hold data)",
        "a crash leaves none of these: each create, index build and drop commits its table, index and \
         catalog rows in one transaction; they come from hand edits, partial restores or other programs",
        "ran as one job on the writer thread, like drop_collection: no orbstore write ran meanwhile",
    ]
    .map(str::to_owned)
    .into();
    if contents.foreign > 0 {
        notes.push(format!("left alone {} tables and indexes not named the orbstore way", contents.foreign));
    }
    let mut orphans = Vec::with_capacity(found.len());
    if apply && found.iter().any(|(_, r)| !matches!(r, Removal::Keep)) {
        let Writer { conn, catalog, .. } = w;
        let sp = conn.savepoint().ctx("begin the cleanup")?;
        for (mut o, removal) in found {
            let what = format!("remove {} {:?}", o.kind, o.name);
            match &removal {
                Removal::Keep => {}
                Removal::CollectionRow(n) => {
                    sp.execute("DELETE FROM orbstore_collections WHERE name = ?", [n]).ctx(&what)?;
                }
                Removal::IndexRow(n, i) => {
                    sp.execute("DELETE FROM orbstore_indexes WHERE collection = ? AND name = ?", [n, i])
                        .ctx(&what)?;
                }
                Removal::ShapeRows(n) => {
                    sp.execute("DELETE FROM orbstore_shapes WHERE collection = ?", [n]).ctx(&what)?;
                }
                Removal::Index(ix) => {
                    sp.execute_batch(&format!("DROP INDEX IF EXISTS {}", quote(ix))).ctx(&what)?
                }
            }
            o.removed = !matches!(removal, Removal::Keep);
            orphans.push(o);
        }
        let reloaded = load_catalog(&sp)?;
        sp.commit().ctx("commit the cleanup")?;
        *catalog.write() = reloaded;
        notes.push("removed the orphans in one transaction and reloaded the catalog cache".to_owned());
    } else {
        orphans.extend(found.into_iter().map(|(o, _)| o));
    }
    Ok(CleanupReport { backend: "sqlite".into(), applied: apply, orphans, notes })
}
