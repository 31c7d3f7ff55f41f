//! The collection operations, as plain functions on a connection: reads run on reader
//! connections or the writer, writes on the writer (inside the current transaction, if any,
//! through savepoints).

use orbstore_core::stream::Page;
use orbstore_core::{Document, Error, FieldPath, Filter, Id, IndexSpec, Query, Result, Update, Upserted};
use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{table, Catalog, CollMeta};
use crate::error::Context;
use crate::query::{class_expr, exprs, json_path, order_by, translate, Where};
use crate::worker::Writer;
use orbstore_core::shapes::Shapes;
use parking_lot::RwLock;

fn parse(id_hint: &str, text: &str) -> Result<Document> {
    serde_json::from_str(text)
        .map_err(|e| Error::corrupt(format!("document {id_hint:?} is not valid JSON: {e}")))
}

/// How a query runs: the SQL, its parameters, and what is left to do in Rust.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The SELECT statement.
    pub sql: String,
    /// Its parameters, in order.
    pub params: Vec<rusqlite::types::Value>,
    /// The WHERE clause selects exactly the matching documents (no evaluator pass needed).
    pub exact_filter: bool,
    /// Sort, offset and limit run in SQL (otherwise in Rust, after the rows are read).
    pub sort_in_sql: bool,
}

/// Plans a query, or `None` when the offset is past anything SQLite can skip (no results).
pub(crate) fn plan(name: &str, meta: &CollMeta, query: &Query) -> Option<Plan> {
    let w = translate(&query.filter, &meta.shapes);
    let pushed = if w.is_exact() { order_by(&query.sort, &meta.shapes, &query.filter) } else { None };
    let sql = w.sql();
    let mut params = sql.params.clone();
    let text = match &pushed {
        Some(order) => {
            let offset = i64::try_from(query.offset).ok()?;
            let mut text = format!("SELECT id, doc FROM {} WHERE {} ORDER BY {order}", table(name), sql.text);
            // Only when asked: a bound LIMIT, even -1, made SQLite's sort twice as slow on the
            // range benchmark.
            if query.limit.is_some() || offset > 0 {
                let limit = query.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
                text.push_str(" LIMIT ? OFFSET ?");
                params.push(rusqlite::types::Value::Integer(limit));
                params.push(rusqlite::types::Value::Integer(offset));
            }
            text
        }
        None => format!("SELECT id, doc FROM {} WHERE {} ORDER BY id", table(name), sql.text),
    };
    Some(Plan { sql: text, params, exact_filter: w.is_exact(), sort_in_sql: pushed.is_some() })
}

/// The documents a query returns. `meta` is `None` when the collection does not exist.
pub(crate) fn find(
    conn: &Connection,
    name: &str,
    meta: Option<&CollMeta>,
    query: &Query,
) -> Result<Vec<Document>> {
    let Some(meta) = meta else { return Ok(Vec::new()) };
    let Some(plan) = plan(name, meta, query) else { return Ok(Vec::new()) };
    let mut stmt = conn.prepare_cached(&plan.sql).ctx("prepare a query")?;
    let mut rows = stmt.query(rusqlite::params_from_iter(plan.params.iter())).ctx("run a query")?;
    let mut docs = Vec::new();
    while let Some(row) = rows.next().ctx("read a row")? {
        let id: String = row.get(0).ctx("read an id")?;
        let text: String = row.get(1).ctx("read a document")?;
        let doc = parse(&id, &text)?;
        if plan.exact_filter || query.filter.matches(&doc) {
            docs.push(doc);
        }
    }
    query.finish_selected(&mut docs, plan.sort_in_sql);
    Ok(docs)
}

/// The plan of a query and SQLite's `EXPLAIN QUERY PLAN` for it.
pub(crate) fn explain(
    conn: &Connection,
    name: &str,
    meta: Option<&CollMeta>,
    query: &Query,
) -> Result<(Plan, Vec<String>)> {
    let meta = meta.cloned().unwrap_or_default();
    let plan =
        plan(name, &meta, query).ok_or_else(|| Error::invalid("the offset is past the end of any table"))?;
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", plan.sql)).ctx("explain")?;
    let details = stmt
        .query_map(rusqlite::params_from_iter(plan.params.iter()), |r| r.get::<_, String>(3))
        .ctx("explain")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx("explain")?;
    Ok((plan, details))
}

/// How many documents match.
pub(crate) fn count(conn: &Connection, name: &str, meta: Option<&CollMeta>, filter: &Filter) -> Result<u64> {
    let Some(m) = meta else { return Ok(0) };
    match translate(filter, &m.shapes) {
        Where::Exact(sql) => {
            let text = format!("SELECT count(*) FROM {} WHERE {}", table(name), sql.text);
            let n: i64 = conn
                .prepare_cached(&text)
                .and_then(|mut s| s.query_row(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(0)))
                .ctx("count")?;
            Ok(n as u64)
        }
        Where::Superset(_) => Ok(find(conn, name, meta, &Query::new(filter.clone()))?.len() as u64),
    }
}

/// One page of a keyset scan in `_id` order: at most `rows` stored documents after `after`, with
/// those matching the filter (see `orbstore_core::stream::keyset_stream`).
pub(crate) fn page(
    conn: &Connection,
    name: &str,
    meta: Option<&CollMeta>,
    filter: &Filter,
    after: Option<&str>,
    rows: u64,
) -> Result<Page> {
    let Some(meta) = meta else { return Ok(Page::default()) };
    let w = translate(filter, &meta.shapes);
    let sql = w.sql();
    let mut params = sql.params.clone();
    params.push(rusqlite::types::Value::Text(after.unwrap_or_default().to_owned()));
    params.push(rusqlite::types::Value::Integer(i64::try_from(rows).unwrap_or(i64::MAX)));
    // `id > ''` holds for every id (ids are never empty), so the first page needs no other text.
    let text =
        format!("SELECT id, doc FROM {} WHERE ({}) AND id > ? ORDER BY id LIMIT ?", table(name), sql.text);
    let mut stmt = conn.prepare_cached(&text).ctx("prepare a page")?;
    let mut cursor = stmt.query(rusqlite::params_from_iter(params.iter())).ctx("read a page")?;
    let (mut page, mut read) = (Page::default(), 0);
    while let Some(row) = cursor.next().ctx("read a row")? {
        let id: String = row.get(0).ctx("read an id")?;
        let text: String = row.get(1).ctx("read a document")?;
        let doc = parse(&id, &text)?;
        if w.is_exact() || filter.matches(&doc) {
            page.docs.push(doc);
        }
        read += 1;
        page.next = Some(id);
    }
    if read < rows {
        page.next = None;
    }
    Ok(page)
}

/// The most rows a page preallocates for.
const PAGE_CAPACITY: usize = 4096;

/// Up to `rows` stored documents' texts with `_id` greater than `after` (`""` for all), in `_id`
/// order, unparsed, and the `_id` the next page starts after (`None` at the end).
pub(crate) fn page_text(
    conn: &Connection,
    name: &str,
    meta: Option<&CollMeta>,
    after: &str,
    rows: u64,
) -> Result<(Vec<String>, Option<Id>)> {
    if meta.is_none() {
        return Ok((Vec::new(), None));
    }
    let text = format!("SELECT id, doc FROM {} WHERE id > ? ORDER BY id LIMIT ?", table(name));
    let mut stmt = conn.prepare_cached(&text).ctx("prepare a page")?;
    let limit = i64::try_from(rows).unwrap_or(i64::MAX);
    let mut cursor = stmt.query(params![after, limit]).ctx("read a page")?;
    let mut texts = Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(PAGE_CAPACITY));
    let mut last = String::new();
    while let Some(row) = cursor.next().ctx("read a row")? {
        // Only the last row's id is kept (where the next page starts): copied into one buffer
        // rather than allocated for every row.
        let id = row.get_ref(0).ctx("read an id")?;
        last.clear();
        last.push_str(
            id.as_str().map_err(|e| Error::corrupt(format!("an id in {name:?} is not text: {e}")))?,
        );
        texts.push(row.get::<_, String>(1).ctx("read a document")?);
    }
    let next = if (texts.len() as u64) < rows { None } else { Some(last) };
    Ok((texts, next))
}

/// The document with this id.
pub(crate) fn find_by_id(
    conn: &Connection,
    name: &str,
    meta: Option<&CollMeta>,
    id: &str,
) -> Result<Option<Document>> {
    if meta.is_none() {
        return Ok(None);
    }
    let text: Option<String> = conn
        .prepare_cached(&format!("SELECT doc FROM {} WHERE id = ?", table(name)))
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .ctx("find by id")?;
    text.map(|t| parse(id, &t)).transpose()
}

/// Creates the collection's table and catalog entry if needed.
pub(crate) fn ensure_collection(w: &mut Writer, name: &str) -> Result<()> {
    if w.catalog.read().collections.contains_key(name) {
        return Ok(());
    }
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    sp.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID",
        table(name)
    ))
    .ctx("create a collection table")?;
    sp.execute("INSERT OR IGNORE INTO orbstore_collections (name) VALUES (?)", [name])
        .ctx("register a collection")?;
    sp.commit().ctx("commit")?;
    catalog.write().collections.entry(name.to_owned()).or_default();
    Ok(())
}

/// Records the array and object paths of documents (before the write commits, so a reader never
/// sees a document whose shape the catalog does not know).
fn learn_shapes<'d>(
    conn: &Connection,
    catalog: &RwLock<Catalog>,
    name: &str,
    docs: impl Iterator<Item = &'d Document>,
) -> Result<()> {
    let mut new = Vec::new();
    {
        let mut cat = catalog.write();
        let shapes: &mut Shapes = &mut cat.collections.entry(name.to_owned()).or_default().shapes;
        for d in docs {
            new.extend(shapes.learn(d));
        }
    }
    if !new.is_empty() {
        let mut stmt = conn
            .prepare_cached("INSERT OR IGNORE INTO orbstore_shapes (collection, path, kind) VALUES (?, ?, ?)")
            .ctx("prepare")?;
        for (path, kind) in new {
            stmt.execute(params![name, path, kind]).ctx("record a shape")?;
        }
    }
    Ok(())
}

fn doc_text(doc: &Document) -> Result<String> {
    serde_json::to_string(doc).map_err(|e| Error::invalid(format!("document cannot be serialized: {e}")))
}

/// Inserts validated documents, all or none.
pub(crate) fn insert_many(w: &mut Writer, name: &str, docs: Vec<(Id, Document)>) -> Result<Vec<Id>> {
    ensure_collection(w, name)?;
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    {
        let mut stmt = sp
            .prepare_cached(&format!("INSERT INTO {} (id, doc) VALUES (?, ?)", table(name)))
            .ctx("prepare")?;
        for (id, doc) in &docs {
            stmt.execute(params![id, doc_text(doc)?])
                .map_err(|e| crate::error::map(&format!("insert {id:?}"), e))?;
        }
    }
    learn_shapes(&sp, catalog, name, docs.iter().map(|(_, d)| d))?;
    sp.commit().ctx("commit")?;
    Ok(docs.into_iter().map(|(id, _)| id).collect())
}

/// Stores a validated document under its id.
pub(crate) fn upsert(w: &mut Writer, name: &str, id: Id, doc: Document) -> Result<Upserted> {
    ensure_collection(w, name)?;
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    let text = doc_text(&doc)?;
    let updated = sp
        .prepare_cached(&format!("UPDATE {} SET doc = ? WHERE id = ?", table(name)))
        .and_then(|mut s| s.execute(params![text, id]))
        .map_err(|e| crate::error::map(&format!("replace {id:?}"), e))?;
    if updated == 0 {
        sp.prepare_cached(&format!("INSERT INTO {} (id, doc) VALUES (?, ?)", table(name)))
            .and_then(|mut s| s.execute(params![id, text]))
            .map_err(|e| crate::error::map(&format!("insert {id:?}"), e))?;
    }
    learn_shapes(&sp, catalog, name, std::iter::once(&doc))?;
    sp.commit().ctx("commit")?;
    Ok(Upserted { id, inserted: updated == 0 })
}

/// Stores validated documents under their ids, in order, in one savepoint: all or none.
pub(crate) fn upsert_many(w: &mut Writer, name: &str, docs: Vec<(Id, Document)>) -> Result<Vec<Upserted>> {
    ensure_collection(w, name)?;
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    // Only the last of a repeated id is written (what upserting them in order leaves), so that
    // unique indexes judge the batch's final documents, as on the other backends.
    let mut last = std::collections::HashMap::with_capacity(docs.len());
    for (n, (id, _)) in docs.iter().enumerate() {
        last.insert(id.as_str(), n);
    }
    let mut seen = std::collections::HashSet::with_capacity(docs.len());
    let mut out = Vec::with_capacity(docs.len());
    {
        let mut update =
            sp.prepare_cached(&format!("UPDATE {} SET doc = ? WHERE id = ?", table(name))).ctx("prepare")?;
        let mut insert = sp
            .prepare_cached(&format!("INSERT INTO {} (id, doc) VALUES (?, ?)", table(name)))
            .ctx("prepare")?;
        let exists = |id: &str| -> Result<bool> {
            sp.query_row(&format!("SELECT 1 FROM {} WHERE id = ?", table(name)), [id], |_| Ok(()))
                .map(|()| true)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(false) } else { Err(e) })
                .ctx("look up an id")
        };
        for (n, (id, doc)) in docs.iter().enumerate() {
            if last[id.as_str()] != n {
                // A later copy is written; this one reports what upserting it would have done.
                let first = seen.insert(id.as_str());
                out.push(Upserted { id: id.clone(), inserted: first && !exists(id)? });
                continue;
            }
            let text = doc_text(doc)?;
            let updated = update
                .execute(params![text, id])
                .map_err(|e| crate::error::map(&format!("replace {id:?}"), e))?;
            if updated == 0 {
                insert
                    .execute(params![id, text])
                    .map_err(|e| crate::error::map(&format!("insert {id:?}"), e))?;
            }
            out.push(Upserted { id: id.clone(), inserted: updated == 0 && seen.insert(id.as_str()) });
        }
    }
    learn_shapes(&sp, catalog, name, docs.iter().map(|(_, d)| d))?;
    sp.commit().ctx("commit")?;
    Ok(out)
}

/// Applies an update to the first match (in `_id` order) or to every match, all or none.
pub(crate) fn update(
    w: &mut Writer,
    name: &str,
    filter: &Filter,
    update: &Update,
    only_first: bool,
) -> Result<u64> {
    let meta = w.catalog.read().collections.get(name).cloned();
    let Some(meta) = meta else { return Ok(0) };
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    let mut q = Query::new(filter.clone());
    if only_first {
        q = q.limit(1);
    }
    let targets = find(&sp, name, Some(&meta), &q)?;
    let mut changed = Vec::with_capacity(targets.len());
    {
        let mut stmt =
            sp.prepare_cached(&format!("UPDATE {} SET doc = ? WHERE id = ?", table(name))).ctx("prepare")?;
        for mut doc in targets {
            let id = orbstore_core::id_of(&doc).unwrap_or_default().to_owned();
            update
                .apply(&mut doc)
                .map_err(|e| Error::new(e.kind(), format!("document {id:?}: {}", e.message())))?;
            stmt.execute(params![doc_text(&doc)?, id])
                .map_err(|e| crate::error::map(&format!("update {id:?}"), e))?;
            changed.push(doc);
        }
    }
    learn_shapes(&sp, catalog, name, changed.iter())?;
    sp.commit().ctx("commit")?;
    Ok(changed.len() as u64)
}

/// Deletes the first match (in `_id` order) or every match.
pub(crate) fn delete(w: &mut Writer, name: &str, filter: &Filter, only_first: bool) -> Result<u64> {
    let meta = w.catalog.read().collections.get(name).cloned();
    let Some(meta) = meta else { return Ok(0) };
    if !only_first && matches!(filter, Filter::All) {
        return w.conn.execute(&format!("DELETE FROM {}", table(name)), []).map(|n| n as u64).ctx("delete");
    }
    let sp = w.conn.savepoint().ctx("begin")?;
    let mut q = Query::new(filter.clone()).project(orbstore_core::Projection::include(Vec::<String>::new()));
    if only_first {
        q = q.limit(1);
    }
    let targets = find(&sp, name, Some(&meta), &q)?;
    {
        let mut stmt =
            sp.prepare_cached(&format!("DELETE FROM {} WHERE id = ?", table(name))).ctx("prepare")?;
        for d in &targets {
            stmt.execute([orbstore_core::id_of(d).unwrap_or_default()]).ctx("delete")?;
        }
    }
    sp.commit().ctx("commit")?;
    Ok(targets.len() as u64)
}

/// Creates an expression index over `json_extract` of each field (the expression translated
/// conditions use). Unique indexes index each field's type class too, so that `true` and `1` do
/// not collide while `1` and `1.0` do, and null or missing values (a NULL class) are free.
pub(crate) fn create_index(w: &mut Writer, name: &str, spec: IndexSpec) -> Result<()> {
    ensure_collection(w, name)?;
    if let Some(existing) =
        w.catalog.read().collections.get(name).and_then(|m| m.indexes.iter().find(|i| i.name == spec.name))
    {
        return spec.check_same_as(existing);
    }
    let mut cols = Vec::new();
    for f in &spec.fields {
        let path = FieldPath::new(f.clone());
        if json_path(&path).is_none() {
            return Err(Error::unsupported(format!(
                "SQLite JSON paths cannot address the key in {f:?} (a quote, backslash or control character)"
            )));
        }
        let (t, v) = exprs(&path).ok_or_else(|| Error::unsupported(format!("cannot index {f:?}")))?;
        // (type class, value): the class column answers the type guard of translated conditions,
        // and keeps `true` and `1` apart in unique indexes.
        cols.push(class_expr(&t));
        cols.push(v);
    }
    let sql = format!(
        "CREATE {}INDEX \"ix_{name}__{}\" ON {} ({})",
        if spec.unique { "UNIQUE " } else { "" },
        spec.name,
        table(name),
        cols.join(", ")
    );
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    sp.execute_batch(&sql)
        .map_err(|e| spec.build_error(crate::error::map(&format!("create index {:?}", spec.name), e)))?;
    let spec_json = serde_json::to_string(&spec).map_err(|e| Error::invalid(e.to_string()))?;
    sp.execute(
        "INSERT INTO orbstore_indexes (collection, name, spec) VALUES (?, ?, ?)",
        params![name, spec.name, spec_json],
    )
    .ctx("record an index")?;
    sp.commit().ctx("commit")?;
    let mut cat = catalog.write();
    let meta = cat.collections.entry(name.to_owned()).or_default();
    meta.indexes.push(spec);
    meta.indexes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(())
}

/// Drops a collection's table and catalog entries; true when it existed.
pub(crate) fn drop_collection(w: &mut Writer, name: &str) -> Result<bool> {
    if !w.catalog.read().collections.contains_key(name) {
        return Ok(false);
    }
    let Writer { conn, catalog, .. } = w;
    let sp = conn.savepoint().ctx("begin")?;
    sp.execute_batch(&format!("DROP TABLE IF EXISTS {}", table(name))).ctx("drop a collection table")?;
    for t in [
        "orbstore_collections WHERE name",
        "orbstore_indexes WHERE collection",
        "orbstore_shapes WHERE collection",
    ] {
        sp.execute(&format!("DELETE FROM {t} = ?"), [name]).ctx("update the catalog")?;
    }
    sp.commit().ctx("commit")?;
    catalog.write().collections.remove(name);
    Ok(true)
}
