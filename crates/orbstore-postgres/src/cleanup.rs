//! Orphans in the backend's schema: what describes or belongs to a collection that is not there.
//!
//! - catalog rows (`_collections`, `_indexes`, `_shapes`, `_index_columns`) of a collection whose
//!   table is missing: removed;
//! - index-column trigger functions (`_fx_…`, see `crate::layout`) that no trigger uses: dropped
//!   (what a table dropped by hand leaves);
//! - `_indexes` rows whose PostgreSQL index (`pg_name`) is missing or on another table: removed
//!   (the index enforces nothing, yet `list_indexes` reports it and `create_index` would not
//!   build it);
//! - indexes named `_ix_…` that no `_indexes` row describes on their own table: dropped (an
//!   index holds no data);
//! - tables named like a collection without a `_collections` row: listed, never dropped, since
//!   they hold documents; their catalogued indexes and multikey flags are kept with them, so one
//!   `INSERT INTO _collections` makes them a collection again.
//!
//! Only the backend's own schema is looked at. Every create, index build and drop runs in one
//! transaction, so a crash leaves none of these: they come from hand edits, partial restores or
//! other programs. The listing reads one snapshot (`REPEATABLE READ`); the removals run one
//! collection at a time, each in a transaction holding that collection's advisory lock (the one
//! `ensure_collection`, `create_index` and `drop_collection` take), and look again under it
//! before removing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use orbstore_core::{validate_collection_name, CleanupReport, Orphan, Result};

use crate::backend::{Client, Shared};
use crate::error::Context;
use crate::exec::Exec;

/// What removing an orphan means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Removal {
    /// Nothing: the orphan is only reported.
    Keep,
    /// `DELETE FROM _collections WHERE name = $1`.
    CollectionRow(String),
    /// `DELETE FROM _indexes WHERE collection = $1 AND name = $2`.
    IndexRow(String, String),
    /// `DELETE FROM <catalog table> WHERE collection = $1` (`_shapes`, `_index_columns`).
    CatalogRows(&'static str, String),
    /// `DROP FUNCTION` of an index-column trigger function.
    Function(String),
    /// `DROP INDEX` of an index in the schema.
    Index(String),
}

/// An orphan, what removing it means, and the collection whose lock the removal takes.
struct Found {
    orphan: Orphan,
    removal: Removal,
    lock: String,
}

/// What the schema holds.
#[derive(Default)]
struct Contents {
    /// Tables named like a collection, with their total size.
    tables: BTreeMap<String, i64>,
    /// Rows of `_collections`.
    collection_rows: BTreeSet<String>,
    /// `(collection, index)` rows of `_indexes`, with their `pg_name`.
    index_rows: BTreeMap<(String, String), String>,
    /// How many `_shapes` rows each collection has.
    shape_rows: BTreeMap<String, i64>,
    /// How many `_index_columns` rows each collection has.
    column_rows: BTreeMap<String, i64>,
    /// Functions named `_fx_…` that no trigger uses, with the collection whose `_collections`
    /// row names them.
    functions: BTreeMap<String, Option<String>>,
    /// Indexes named `_ix_…`, with their table and size.
    indexes: BTreeMap<String, (String, i64)>,
    /// Tables named neither like a collection nor like orbstore's own (`_…`).
    foreign: usize,
}

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn read(c: &Client, sh: &Shared) -> Result<Contents> {
    let mut out = Contents::default();
    let schema = sh.schema_name();
    let rows = c
        .query(
            "SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
            &[&schema],
        )
        .await
        .ctx("list the schema's tables")?;
    for r in rows {
        let (name, bytes): (String, i64) = (r.get(0), r.get(1));
        if name.starts_with('_') {
            continue;
        }
        if validate_collection_name(&name).is_ok() {
            out.tables.insert(name, bytes);
        } else {
            out.foreign += 1;
        }
    }
    let rows = c
        .query(
            "SELECT i.relname::text, t.relname::text, pg_relation_size(i.oid) FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid
             JOIN pg_namespace n ON n.oid = i.relnamespace
             WHERE n.nspname = $1 AND i.relname LIKE '\\_ix\\_%'",
            &[&schema],
        )
        .await
        .ctx("list the schema's indexes")?;
    for r in rows {
        out.indexes.insert(r.get(0), (r.get(1), r.get(2)));
    }
    let what = "read the catalog";
    for r in c.query(&format!("SELECT name FROM {}", sh.catalog("_collections")), &[]).await.ctx(what)? {
        out.collection_rows.insert(r.get(0));
    }
    let sql = format!("SELECT collection, name, pg_name FROM {}", sh.catalog("_indexes"));
    for r in c.query(&sql, &[]).await.ctx(what)? {
        out.index_rows.insert((r.get(0), r.get(1)), r.get(2));
    }
    let sql = format!("SELECT collection, count(*) FROM {} GROUP BY collection", sh.catalog("_shapes"));
    for r in c.query(&sql, &[]).await.ctx(what)? {
        out.shape_rows.insert(r.get(0), r.get(1));
    }
    let sql =
        format!("SELECT collection, count(*) FROM {} GROUP BY collection", sh.catalog("_index_columns"));
    for r in c.query(&sql, &[]).await.ctx(what)? {
        out.column_rows.insert(r.get(0), r.get(1));
    }
    let sql = format!(
        "SELECT p.proname::text, c.name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         LEFT JOIN {} c ON c.index_function = p.proname::text WHERE n.nspname = $1 AND p.proname LIKE '\\_fx\\_%' \
         AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)",
        sh.catalog("_collections")
    );
    for r in c.query(&sql, &[&schema]).await.ctx(what)? {
        out.functions.insert(r.get(0), r.get(1));
    }
    Ok(out)
}

fn found(
    kind: &str,
    name: String,
    bytes: Option<i64>,
    detail: String,
    removal: Removal,
    lock: &str,
) -> Found {
    Found {
        orphan: Orphan {
            kind: kind.to_owned(),
            name,
            bytes: bytes.map(|b| b.max(0) as u64),
            detail,
            removed: false,
        },
        removal,
        lock: lock.to_owned(),
    }
}

/// The orphans in `c`, sorted by kind and name. A kept table's detail gets its row count later.
fn find(c: &Contents) -> Vec<Found> {
    let mut out = Vec::new();
    for name in &c.collection_rows {
        if !c.tables.contains_key(name) {
            out.push(found(
                "catalog row without a table",
                name.clone(),
                None,
                format!("_collections lists {name:?}, but the schema has no table {}", quote(name)),
                Removal::CollectionRow(name.clone()),
                name,
            ));
        }
    }
    for ((coll, index), pg_name) in &c.index_rows {
        let (kind, detail) = if !c.tables.contains_key(coll) {
            ("index catalog row without a table", format!("no table {} for index {index:?}", quote(coll)))
        } else if c.indexes.get(pg_name).is_none_or(|(t, _)| t != coll) {
            (
                "index catalog row without its index",
                format!(
                    "there is no index {} on {}: the index enforces nothing, though list_indexes reported \
                     it; create_index builds it again",
                    quote(pg_name),
                    quote(coll)
                ),
            )
        } else {
            continue;
        };
        out.push(found(
            kind,
            format!("{coll}/{index}"),
            None,
            detail,
            Removal::IndexRow(coll.clone(), index.clone()),
            coll,
        ));
    }
    for (coll, n) in &c.shape_rows {
        if !c.tables.contains_key(coll) {
            out.push(found(
                "multikey catalog rows without a table",
                coll.clone(),
                None,
                format!("{n} rows in _shapes, but the schema has no table {}", quote(coll)),
                Removal::CatalogRows("_shapes", coll.clone()),
                coll,
            ));
        }
    }
    for (coll, n) in &c.column_rows {
        if !c.tables.contains_key(coll) {
            out.push(found(
                "index-column catalog rows without a table",
                coll.clone(),
                None,
                format!("{n} rows in _index_columns, but the schema has no table {}", quote(coll)),
                Removal::CatalogRows("_index_columns", coll.clone()),
                coll,
            ));
        }
    }
    for (function, coll) in &c.functions {
        let detail = match coll {
            Some(coll) => format!("the index-column function of collection {coll:?}, which no trigger uses"),
            None => "an index-column function that no trigger uses and no _collections row names".to_owned(),
        };
        out.push(found(
            "index function without a collection",
            function.clone(),
            None,
            detail,
            Removal::Function(function.clone()),
            coll.as_deref().unwrap_or(function),
        ));
    }
    for (ix, (table, bytes)) in &c.indexes {
        let catalogued = c.index_rows.iter().any(|((coll, _), pg)| pg == ix && coll == table);
        if catalogued {
            continue;
        }
        let detail = if c.collection_rows.contains(table) && c.tables.contains_key(table) {
            format!("on collection {table:?}, but _indexes does not describe it")
        } else if c.tables.contains_key(table) {
            format!("on table {}, which has no catalog row, and _indexes does not describe it", quote(table))
        } else {
            format!("on table {}, which is no collection", quote(table))
        };
        out.push(found(
            "index not in the catalog",
            ix.clone(),
            Some(*bytes),
            detail,
            Removal::Index(ix.clone()),
            table,
        ));
    }
    for (table, bytes) in &c.tables {
        if !c.collection_rows.contains(table) {
            let indexes = c.index_rows.keys().filter(|(coll, _)| coll == table).count();
            out.push(found(
                "table without a catalog row",
                table.clone(),
                Some(*bytes),
                format!("{indexes} catalogued indexes"),
                Removal::Keep,
                table,
            ));
        }
    }
    out.sort_by(|a, b| (&a.orphan.kind, &a.orphan.name).cmp(&(&b.orphan.kind, &b.orphan.name)));
    out
}

/// Gives each kept table's orphan its row count and what to do about it.
async fn describe_kept(c: &Client, sh: &Shared, found: &mut [Found]) -> Result<()> {
    for f in found.iter_mut().filter(|f| f.removal == Removal::Keep) {
        let rows: i64 = c
            .query_one(&format!("SELECT count(*) FROM {}", sh.table(&f.orphan.name)), &[])
            .await
            .ctx("count the rows of a table without a catalog row")?
            .get(0);
        f.orphan.detail = format!(
            "kept because it holds data ({rows} rows, {} kept with it); _collections has no row {:?}: insert \
             one to use it again, or drop the table by hand",
            f.orphan.detail, f.orphan.name
        );
    }
    Ok(())
}

async fn remove(c: &Client, sh: &Shared, removal: &Removal) -> Result<()> {
    let what = "remove an orphan";
    match removal {
        Removal::Keep => {}
        Removal::CollectionRow(n) => {
            let sql = format!("DELETE FROM {} WHERE name = $1", sh.catalog("_collections"));
            c.execute(&sql, &[n]).await.ctx(what)?;
        }
        Removal::IndexRow(n, i) => {
            let sql = format!("DELETE FROM {} WHERE collection = $1 AND name = $2", sh.catalog("_indexes"));
            c.execute(&sql, &[n, i]).await.ctx(what)?;
        }
        Removal::CatalogRows(table, n) => {
            let sql = format!("DELETE FROM {} WHERE collection = $1", sh.catalog(table));
            c.execute(&sql, &[n]).await.ctx(what)?;
        }
        Removal::Function(f) => {
            c.batch_execute(&format!("DROP FUNCTION IF EXISTS {}.{}()", sh.quoted_schema, quote(f)))
                .await
                .ctx(what)?;
        }
        Removal::Index(ix) => {
            c.batch_execute(&format!("DROP INDEX IF EXISTS {}.{}", sh.quoted_schema, quote(ix)))
                .await
                .ctx(what)?;
        }
    }
    Ok(())
}

/// Lists the orphans and, with `apply`, removes them collection by collection.
pub(crate) async fn run(sh: &Arc<Shared>, apply: bool) -> Result<CleanupReport> {
    let exec = Exec::Direct(sh.clone());
    let scope = exec.scope(true).await?;
    let listed = async {
        let c = scope.client();
        c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .ctx("begin the listing")?;
        let contents = read(c, sh).await?;
        let mut found = find(&contents);
        describe_kept(c, sh, &mut found).await?;
        Ok((contents.foreign, found))
    }
    .await;
    let (foreign, mut found) = scope.end(listed).await?;
    let mut notes = vec![
        format!(
            "looked in schema {} only: for rows of _collections, _indexes, _shapes and _index_columns whose \
             table is missing, and for index-column functions (\"_fx_…\") that no trigger uses",
            sh.quoted_schema
        ),
        "looked for indexes \"_ix_…\" that _indexes does not describe on their table, and for _indexes \
         rows whose index is missing"
            .to_owned(),
        "looked for tables named like a collection without a _collections row: listed, never dropped \
         (they hold data)"
            .to_owned(),
        "a crash leaves none of these: each create, index build and drop commits its table, index and \
         catalog rows in one transaction; they come from hand edits, partial restores or other programs"
            .to_owned(),
    ];
    if foreign > 0 {
        notes.push(format!("left alone {foreign} tables not named the orbstore way"));
    }
    if apply {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, f) in found.iter().enumerate().filter(|(_, f)| f.removal != Removal::Keep) {
            groups.entry(f.lock.clone()).or_default().push(i);
        }
        for (lock, members) in groups {
            let scope = exec.scope(true).await?;
            let result = async {
                let c = scope.client();
                crate::ops::lock_collection(c, sh, &lock).await?;
                let now = find(&read(c, sh).await?);
                let mut removed = Vec::new();
                for i in members {
                    let o = &found[i].orphan;
                    match now.iter().find(|n| n.orphan.kind == o.kind && n.orphan.name == o.name) {
                        Some(still) => {
                            remove(c, sh, &still.removal).await?;
                            removed.push((i, true));
                        }
                        None => removed.push((i, false)),
                    }
                }
                Ok(removed)
            }
            .await;
            for (i, removed) in scope.end(result).await? {
                let f = &mut found[i];
                if removed {
                    f.orphan.removed = true;
                } else {
                    f.orphan
                        .detail
                        .push_str("; no longer an orphan when the removal looked again, left alone");
                }
                if removed && matches!(f.removal, Removal::CollectionRow(_) | Removal::CatalogRows(..)) {
                    sh.forget(&lock);
                }
            }
        }
        notes.push(
            "removed collection by collection, each in a transaction holding the collection's advisory lock \
             (as drop_collection does), after looking again under it"
                .to_owned(),
        );
    }
    Ok(CleanupReport {
        backend: "postgres".into(),
        applied: apply,
        orphans: found.into_iter().map(|f| f.orphan).collect(),
        notes,
    })
}
