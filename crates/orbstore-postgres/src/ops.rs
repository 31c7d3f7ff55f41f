//! The collection operations, as plain functions on a connection. The caller decides the
//! transaction scope (see `exec`): writes that touch several rows run atomically.
//!
//! Every query whose SQL relies on the multikey flags ("no array on this path") checks them in
//! the same statement, so under the statement's single snapshot: when another process has since
//! stored an array there, the statement returns a `stale` flag instead of rows, and the query is
//! planned again from the catalog. A cache that is behind can therefore cost a retry, never a
//! wrong answer.

use std::sync::Arc;

use futures::future::try_join_all;
use orbstore_core::shapes::Shapes;
use orbstore_core::stream::Page;
use orbstore_core::{
    id_of, Document, Error, FieldPath, Filter, Id, IndexSpec, Query, Result, StoredDocument, Update, Upserted,
};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::backend::{Client, Shared};
use crate::error::{is_undefined_table, Context};
use crate::json::{JsonDoc, JsonRef, StoredJson};
use crate::layout::Layout;
use crate::sql::{columns, order_by, translate, Param};

/// Batches of at least this many documents are written with binary COPY; smaller ones with
/// pipelined INSERTs (COPY's setup costs more than it saves on a few rows).
pub const COPY_THRESHOLD: usize = 64;

/// How a query runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The statement.
    pub sql: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// The WHERE clause selects exactly the matching documents (no evaluator pass needed).
    pub exact_filter: bool,
    /// Sort, offset and limit run in SQL (otherwise in Rust, after the rows are read).
    pub sort_in_sql: bool,
}

fn params(p: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(Param::as_sql).collect()
}

/// The statement that checks the multikey flags a plan relies on: true when a path it assumed
/// free of arrays now has one (or a sort path it assumed free of objects now has one).
fn stale_check(sh: &Shared, name: &str, single: Vec<String>, plain: Vec<String>) -> crate::sql::Sql {
    let mut s = crate::sql::Sql::lit(format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE collection = ",
        sh.catalog("_shapes")
    ));
    s.param(Param::Text(name.to_owned()), "::text")
        .push(" AND ((kind = 'array' AND path = ANY(")
        .param(Param::TextArray(single), "::text[]")
        .push(")) OR (kind = 'object' AND path = ANY(")
        .param(Param::TextArray(plain), "::text[]")
        .push("))))");
    s
}

/// Plans a query. `force_superset` ignores the flags (the last resort when they keep changing).
/// `lock` takes row locks (`FOR UPDATE`) for a read-modify-write; `ids_only` reads no documents.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan(
    sh: &Shared,
    name: &str,
    shapes: &Shapes,
    layout: &Layout,
    query: &Query,
    lock: bool,
    ids_only: bool,
    force_superset: bool,
) -> Plan {
    plan_page(sh, name, shapes, layout, query, lock, ids_only, force_superset, None)
}

/// One page of a keyset scan: stored rows after an `_id`, in `_id` order, at most so many.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyset<'a> {
    after: Option<&'a str>,
    rows: u64,
}

/// [`plan`], or with `keyset` the plan of one page of a scan in `_id` order (the query's sort,
/// offset and limit are then the caller's business).
#[allow(clippy::too_many_arguments)]
fn plan_page(
    sh: &Shared,
    name: &str,
    shapes: &Shapes,
    layout: &Layout,
    query: &Query,
    lock: bool,
    ids_only: bool,
    force_superset: bool,
    keyset: Option<Keyset<'_>>,
) -> Plan {
    let empty = Shapes::default();
    let w = if force_superset {
        translate(&Filter::All, &empty, layout)
    } else {
        translate(&query.filter, shapes, layout)
    };
    let pushed = if w.exact && !force_superset && keyset.is_none() {
        order_by(&query.sort, shapes, layout, &query.filter)
    } else {
        None
    };
    let mut inner = crate::sql::Sql::lit(format!(
        "SELECT id, {} FROM {} WHERE ",
        if ids_only { "NULL::json AS doc" } else { "doc" },
        sh.table(name)
    ));
    let mut single: Vec<String> = w.assumed_single.iter().cloned().collect();
    let mut plain = Vec::new();
    let check = !single.is_empty() || pushed.as_ref().is_some_and(|(_, a)| !a.is_empty());
    if check {
        inner.push("NOT st.stale AND ");
    }
    inner.push("(").append(w.sql.clone()).push(")");
    if let Some(k) = keyset {
        if let Some(after) = k.after {
            inner.push(" AND id > ").param(Param::Text(after.to_owned()), "::text");
        }
        inner.push(" ORDER BY id LIMIT ").param(Param::Int(i64::try_from(k.rows).unwrap_or(i64::MAX)), "");
    }
    match pushed.as_ref().filter(|_| keyset.is_none()) {
        Some((order, assumed)) => {
            inner.push(&format!(" ORDER BY {order}"));
            if let Some(limit) = query.limit {
                inner.push(" LIMIT ").param(Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)), "");
            }
            if query.offset > 0 {
                inner.push(" OFFSET ").param(Param::Int(i64::try_from(query.offset).unwrap_or(i64::MAX)), "");
            }
            for p in assumed {
                plain.push(p.clone());
                single.extend(prefixes(p));
            }
        }
        None if keyset.is_none() => {
            inner.push(" ORDER BY id");
        }
        None => {}
    }
    if lock {
        inner.push(" FOR UPDATE");
    }
    let full = if check {
        single.sort();
        single.dedup();
        let mut s = crate::sql::Sql::lit("SELECT st.stale, d.id, d.doc FROM (");
        s.append(stale_check(sh, name, single, plain))
            .push(" AS stale) st LEFT JOIN LATERAL (")
            .append(inner)
            .push(") d ON TRUE");
        s
    } else {
        let mut s = crate::sql::Sql::lit("SELECT FALSE AS stale, d.id, d.doc FROM (");
        s.append(inner).push(") d");
        s
    };
    let (sql, params) = full.render();
    Plan { sql, params, exact_filter: w.exact && !force_superset, sort_in_sql: pushed.is_some() }
}

/// A path and each of its prefixes (`a`, `a.b`, `a.b.c`).
fn prefixes(path: &str) -> Vec<String> {
    let p = FieldPath::new(path.to_owned());
    let mut out = Vec::new();
    let mut prefix = String::new();
    for seg in p.segments() {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(seg);
        out.push(prefix.clone());
    }
    out
}

/// Runs a statement; `None` when its table does not exist (a collection never written, or
/// dropped meanwhile).
async fn query_if_exists(c: &Client, sql: &str, ps: &[Param]) -> Result<Option<Vec<tokio_postgres::Row>>> {
    let result = match c.prepare_cached(sql).await.ctx("prepare a query") {
        Ok(stmt) => c.query(&stmt, &params(ps)).await.ctx("run a query"),
        Err(e) => Err(e),
    };
    match result {
        Ok(rows) => Ok(Some(rows)),
        Err(e) if is_undefined_table(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many times a query is planned again when the flags changed under it before it gives up
/// on them (and selects everything for the evaluator).
const REPLANS: usize = 2;

/// The rows a query's plan selects (planned again while the multikey flags change under it),
/// with the plan; no rows when the table does not exist.
async fn select(
    c: &Client,
    sh: &Shared,
    name: &str,
    query: &Query,
    lock: bool,
    ids_only: bool,
) -> Result<(Plan, Vec<tokio_postgres::Row>)> {
    let mut shapes = sh.shapes(c, name).await?;
    let layout = sh.layout(c, name).await?;
    for attempt in 0..=REPLANS {
        let plan = plan(sh, name, &shapes, &layout, query, lock, ids_only, attempt == REPLANS);
        let Some(rows) = query_if_exists(c, &plan.sql, &plan.params).await? else {
            return Ok((plan, Vec::new()));
        };
        if rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
            shapes = sh.reload_shapes(c, name).await?;
            continue;
        }
        return Ok((plan, rows));
    }
    unreachable!("the last attempt ignores the flags and always returns")
}

/// The documents a query returns (`lock`: with row locks, for a read-modify-write).
pub(crate) async fn find(
    c: &Client,
    sh: &Shared,
    name: &str,
    query: &Query,
    lock: bool,
    ids_only: bool,
) -> Result<Vec<Document>> {
    let (plan, rows) = select(c, sh, name, query, lock, ids_only).await?;
    documents(&plan, rows, query)
}

/// The documents of a plan's rows, filtered again when the SQL selected a superset and
/// finished (sorted, limited, projected) where SQL did not; a row without its document (an
/// ids-only plan) is the bare `_id`.
fn documents(plan: &Plan, rows: Vec<tokio_postgres::Row>, query: &Query) -> Result<Vec<Document>> {
    let mut docs = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(id) = r.get::<_, Option<String>>(1) else { continue };
        let doc = match r.try_get::<_, Option<JsonDoc>>(2) {
            Ok(Some(JsonDoc(d))) => d,
            Ok(None) => {
                let mut d = Document::new();
                d.insert(orbstore_core::ID_FIELD.to_owned(), serde_json::Value::String(id));
                d
            }
            Err(e) => return Err(Error::corrupt(format!("document {id:?} is not valid JSON: {e}"))),
        };
        if plan.exact_filter || query.filter.matches(&doc) {
            docs.push(doc);
        }
    }
    query.finish_selected(&mut docs, plan.sort_in_sql);
    Ok(docs)
}

/// [`find`], with each document as its stored text when SQL did all the query's work (an exact
/// filter, the sort, offset and limit, no projection); otherwise parsed and finished in Rust.
pub(crate) async fn find_stored(
    c: &Client,
    sh: &Shared,
    name: &str,
    query: &Query,
) -> Result<Vec<StoredDocument>> {
    let (plan, rows) = select(c, sh, name, query, false, false).await?;
    if !(plan.exact_filter && plan.sort_in_sql && query.projection.is_none()) {
        return Ok(documents(&plan, rows, query)?.into_iter().map(StoredDocument::Parsed).collect());
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(id) = r.get::<_, Option<String>>(1) else { continue };
        let StoredJson(doc) =
            r.try_get(2).map_err(|e| Error::corrupt(format!("document {id:?} is not valid JSON: {e}")))?;
        out.push(doc);
    }
    Ok(out)
}

/// One page of every stored document after an `_id`, in `_id` order, as stored texts, and the
/// last `_id` read (`None` at the end).
pub(crate) async fn page_stored(
    c: &Client,
    sh: &Shared,
    name: &str,
    after: Option<&str>,
    rows: u64,
) -> Result<(Vec<StoredDocument>, Option<Id>)> {
    let sql = format!("SELECT id, doc FROM {} WHERE id > $1 ORDER BY id LIMIT $2", sh.table(name));
    let ps = [
        Param::Text(after.unwrap_or_default().to_owned()),
        Param::Int(i64::try_from(rows).unwrap_or(i64::MAX)),
    ];
    let found = match query_if_exists(c, &sql, &ps).await? {
        Some(found) => found,
        None => return Ok((Vec::new(), None)),
    };
    let mut out = Vec::with_capacity(found.len());
    let mut last = None;
    for r in &found {
        let id: String = r.get(0);
        let StoredJson(doc) =
            r.try_get(1).map_err(|e| Error::corrupt(format!("document {id:?} is not valid JSON: {e}")))?;
        out.push(doc);
        last = Some(id);
    }
    Ok((out, if (found.len() as u64) < rows { None } else { last }))
}

/// One page of a keyset scan in `_id` order: at most `rows` stored documents after `after`, with
/// those matching the filter (see `orbstore_core::stream::keyset_stream`).
pub(crate) async fn page(
    c: &Client,
    sh: &Shared,
    name: &str,
    filter: &Filter,
    after: Option<&str>,
    rows: u64,
) -> Result<Page> {
    let query = Query::new(filter.clone());
    let mut shapes = sh.shapes(c, name).await?;
    let layout = sh.layout(c, name).await?;
    for attempt in 0..=REPLANS {
        let keyset = Some(Keyset { after, rows });
        let plan = plan_page(sh, name, &shapes, &layout, &query, false, false, attempt == REPLANS, keyset);
        let Some(found) = query_if_exists(c, &plan.sql, &plan.params).await? else {
            return Ok(Page::default());
        };
        if found.first().is_some_and(|r| r.get::<_, bool>(0)) {
            shapes = sh.reload_shapes(c, name).await?;
            continue;
        }
        let (mut page, mut read) = (Page::default(), 0);
        for r in found {
            let Some(id) = r.get::<_, Option<String>>(1) else { continue };
            let doc = match r.try_get::<_, JsonDoc>(2) {
                Ok(JsonDoc(d)) => d,
                Err(e) => return Err(Error::corrupt(format!("document {id:?} is not valid JSON: {e}"))),
            };
            if plan.exact_filter || filter.matches(&doc) {
                page.docs.push(doc);
            }
            read += 1;
            page.next = Some(id);
        }
        if read < rows {
            page.next = None;
        }
        return Ok(page);
    }
    unreachable!("the last attempt ignores the flags and always returns")
}

/// The plan of a query and PostgreSQL's `EXPLAIN` of it.
pub(crate) async fn explain(
    c: &Client,
    sh: &Shared,
    name: &str,
    query: &Query,
) -> Result<(Plan, Vec<String>)> {
    let shapes = sh.reload_shapes(c, name).await?;
    let layout = sh.reload_layout(c, name).await?;
    let plan = plan(sh, name, &shapes, &layout, query, false, false, false);
    let rows = c.query(&format!("EXPLAIN {}", plan.sql), &params(&plan.params)).await.ctx("explain")?;
    Ok((plan, rows.iter().map(|r| r.get(0)).collect()))
}

/// How many documents match.
pub(crate) async fn count(c: &Client, sh: &Shared, name: &str, filter: &Filter) -> Result<u64> {
    let mut shapes = sh.shapes(c, name).await?;
    let layout = sh.layout(c, name).await?;
    for _ in 0..REPLANS {
        let w = translate(filter, &shapes, &layout);
        if !w.exact {
            break;
        }
        let single: Vec<String> = w.assumed_single.iter().cloned().collect();
        let mut s = crate::sql::Sql::lit("SELECT st.stale, (SELECT count(*) FROM ");
        s.push(&sh.table(name)).push(" WHERE NOT st.stale AND (").append(w.sql).push(")) FROM (");
        s.append(stale_check(sh, name, single, Vec::new())).push(" AS stale) st");
        let (sql, ps) = s.render();
        let Some(rows) = query_if_exists(c, &sql, &ps).await? else { return Ok(0) };
        let row =
            rows.into_iter().next().ok_or_else(|| Error::backend("count returned no row", "empty result"))?;
        if row.get::<_, bool>(0) {
            shapes = sh.reload_shapes(c, name).await?;
            continue;
        }
        return Ok(row.get::<_, i64>(1) as u64);
    }
    Ok(find(c, sh, name, &Query::new(filter.clone()), false, false).await?.len() as u64)
}

/// The document with this id.
pub(crate) async fn find_by_id(c: &Client, sh: &Shared, name: &str, id: &str) -> Result<Option<Document>> {
    let stmt = c.prepare_cached(&format!("SELECT doc FROM {} WHERE id = $1", sh.table(name))).await;
    let stmt = match stmt.ctx("prepare") {
        Ok(s) => s,
        Err(e) if is_undefined_table(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let row = c.query_opt(&stmt, &[&id]).await.ctx("find by id")?;
    row.map(|r| {
        r.try_get::<_, JsonDoc>(0)
            .map(|JsonDoc(d)| d)
            .map_err(|e| Error::corrupt(format!("document {id:?} is not valid JSON: {e}")))
    })
    .transpose()
}

/// Creates the collection's table and catalog entry if needed (inside the caller's transaction),
/// serialized with other processes by an advisory lock on the collection.
pub(crate) async fn ensure_collection(c: &Client, sh: &Shared, name: &str) -> Result<()> {
    lock_collection(c, sh, name).await?;
    let exists: bool = c
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&sh.table(name)])
        .await
        .ctx("look for a collection table")?
        .get(0);
    if exists {
        return Ok(());
    }
    // A table dropped by hand (or by a restore) leaves catalog rows behind: its index columns
    // are not in the new table.
    c.execute(&format!("DELETE FROM {} WHERE collection = $1", sh.catalog("_index_columns")), &[&name])
        .await
        .ctx("update the catalog")?;
    let pk = format!("_pk_{}", uuid::Uuid::now_v7().simple());
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (id text COLLATE \"C\" NOT NULL, doc json NOT NULL, CONSTRAINT \"{pk}\" PRIMARY KEY (id))",
        sh.table(name)
    ))
    .await
    .ctx("create a collection table")?;
    c.execute(
        &format!("INSERT INTO {} (name) VALUES ($1) ON CONFLICT DO NOTHING", sh.catalog("_collections")),
        &[&name],
    )
    .await
    .ctx("register a collection")?;
    Ok(())
}

/// Serializes DDL on one collection across processes (until the transaction ends).
pub(crate) async fn lock_collection(c: &Client, sh: &Shared, name: &str) -> Result<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("orbstore:{}.{name}", sh.quoted_schema)],
    )
    .await
    .ctx("lock a collection")?;
    Ok(())
}

/// The array and object paths of documents, as (paths, kinds) columns.
fn shape_rows<'d>(docs: impl Iterator<Item = &'d Document>) -> (Vec<String>, Vec<&'static str>) {
    let mut seen = Shapes::default();
    let mut new = Vec::new();
    for d in docs {
        new.extend(seen.learn(d));
    }
    new.into_iter().unzip()
}

/// Records the array and object paths of documents, in the caller's transaction.
async fn record_shapes<'d>(
    c: &Client,
    sh: &Shared,
    name: &str,
    docs: impl Iterator<Item = &'d Document>,
) -> Result<()> {
    let (paths, kinds) = shape_rows(docs);
    if paths.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {} (collection, path, kind) SELECT $1, p, k FROM unnest($2::text[], $3::text[]) AS u(p, k) \
         ON CONFLICT DO NOTHING",
        sh.catalog("_shapes")
    );
    let stmt = c.prepare_cached(&sql).await.ctx("prepare")?;
    c.execute(&stmt, &[&name, &paths, &kinds]).await.ctx("record the multikey flags")?;
    sh.learn(name, &paths.into_iter().zip(kinds).collect::<Vec<_>>());
    Ok(())
}

/// What a write of rows does with an id that is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnTaken {
    /// The statement fails (a `Conflict`).
    Fail,
    /// The row is skipped; `RETURNING id` says which were inserted.
    Skip,
    /// The stored document is replaced; `RETURNING id, inserted`.
    Replace,
}

/// Writes documents with their typed index columns (`crate::layout`) and their multikey flags
/// in one statement. Ids must be distinct within `docs` under [`OnTaken::Replace`] and
/// [`OnTaken::Skip`] (`ON CONFLICT` cannot touch a row twice).
async fn write_rows(
    c: &Client,
    sh: &Shared,
    name: &str,
    layout: &Layout,
    docs: &[(&str, &Document)],
    on_taken: OnTaken,
) -> std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let (paths, kinds) = shape_rows(docs.iter().map(|(_, d)| *d));
    let ids: Vec<&str> = docs.iter().map(|(id, _)| *id).collect();
    let texts: Vec<JsonRef> = docs.iter().map(|(_, d)| JsonRef(d)).collect();
    let values = layout.values(docs.iter().map(|(_, d)| *d));
    let conflict = match on_taken {
        OnTaken::Fail => String::new(),
        OnTaken::Skip => " ON CONFLICT (id) DO NOTHING RETURNING id".to_owned(),
        OnTaken::Replace => format!(
            " ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc{} RETURNING id, (xmax = 0)",
            layout.replace_assignments()
        ),
    };
    let sql = format!(
        "{} INSERT INTO {} AS t (id, doc{}) SELECT u.id, u.doc{} FROM unnest($4::text[], $5::json[]{}) \
         AS u(id, doc{}){conflict}",
        with_shapes(sh),
        sh.table(name),
        layout.target_list(),
        layout.select_list(),
        layout.unnest_args(6),
        layout.alias_list()
    );
    let stmt = c.prepare_cached(&sql).await?;
    let mut ps: Vec<&(dyn ToSql + Sync)> = vec![&name, &paths, &kinds, &ids, &texts];
    ps.extend(values.iter().map(|v| v.as_sql()));
    let rows = c.query(&stmt, &ps).await?;
    sh.learn(name, &paths.into_iter().zip(kinds).collect::<Vec<_>>());
    Ok(rows)
}

/// Inserts validated documents, all or none (the caller's transaction).
pub(crate) async fn insert_many(c: &Client, sh: &Shared, name: &str, docs: &[(Id, Document)]) -> Result<()> {
    let layout = sh.layout(c, name).await?;
    if !layout.is_empty() {
        let rows: Vec<(&str, &Document)> = docs.iter().map(|(id, d)| (id.as_str(), d)).collect();
        write_rows(c, sh, name, &layout, &rows, OnTaken::Fail)
            .await
            .map_err(|e| crate::error::map(&format!("insert {} documents", docs.len()), e))?;
        return Ok(());
    }
    record_shapes(c, sh, name, docs.iter().map(|(_, d)| d)).await?;
    if docs.len() >= COPY_THRESHOLD {
        let sink = c
            .copy_in(&format!("COPY {} (id, doc) FROM STDIN (FORMAT binary)", sh.table(name)))
            .await
            .ctx("start COPY")?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::JSON]);
        futures::pin_mut!(writer);
        for (id, doc) in docs {
            writer.as_mut().write(&[id, &JsonRef(doc)]).await.ctx("COPY a document")?;
        }
        writer.finish().await.ctx("insert documents")?;
        return Ok(());
    }
    let stmt = c
        .prepare_cached(&format!("INSERT INTO {} (id, doc) VALUES ($1, $2)", sh.table(name)))
        .await
        .ctx("prepare")?;
    let texts: Vec<JsonRef> = docs.iter().map(|(_, d)| JsonRef(d)).collect();
    // Pipelined: the statements go out together and the answers come back together.
    try_join_all(docs.iter().zip(&texts).map(|((id, _), text)| {
        let stmt = &stmt;
        async move {
            c.execute(stmt, &[id, text]).await.map_err(|e| crate::error::map(&format!("insert {id:?}"), e))
        }
    }))
    .await?;
    Ok(())
}

/// Inserts one document in a single statement (with its multikey flags), so it needs no
/// transaction around it.
pub(crate) async fn insert_one(c: &Client, sh: &Shared, name: &str, id: &str, doc: &Document) -> Result<()> {
    let layout = sh.layout(c, name).await?;
    if !layout.is_empty() {
        write_rows(c, sh, name, &layout, &[(id, doc)], OnTaken::Fail)
            .await
            .map_err(|e| crate::error::map(&format!("insert {id:?}"), e))?;
        return Ok(());
    }
    let (paths, kinds) = shape_rows(std::iter::once(doc));
    let text = JsonRef(doc);
    if paths.is_empty() {
        let stmt = c
            .prepare_cached(&format!("INSERT INTO {} (id, doc) VALUES ($1, $2)", sh.table(name)))
            .await
            .ctx("prepare")?;
        c.execute(&stmt, &[&id, &text]).await.map_err(|e| crate::error::map(&format!("insert {id:?}"), e))?;
        return Ok(());
    }
    let sql = format!("{} INSERT INTO {} (id, doc) VALUES ($4, $5)", with_shapes(sh), sh.table(name));
    let stmt = c.prepare_cached(&sql).await.ctx("prepare")?;
    c.execute(&stmt, &[&name, &paths, &kinds, &id, &text])
        .await
        .map_err(|e| crate::error::map(&format!("insert {id:?}"), e))?;
    sh.learn(name, &paths.into_iter().zip(kinds).collect::<Vec<_>>());
    Ok(())
}

/// Inserts documents of different writers in one statement (`crate::batch`): each document is
/// inserted unless its id is taken, and the answer says which were. Another unique index's
/// violation fails the whole statement (nothing of it written); the caller then inserts them one
/// by one. Ids must be distinct within `docs`.
pub(crate) async fn insert_batch(
    c: &Client,
    sh: &Shared,
    name: &str,
    layout: &Layout,
    docs: &[(&str, &Document)],
) -> std::result::Result<std::collections::HashSet<String>, tokio_postgres::Error> {
    let rows = write_rows(c, sh, name, layout, docs, OnTaken::Skip).await?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// A CTE recording multikey flags ($1 collection, $2 paths, $3 kinds) in the same statement.
fn with_shapes(sh: &Shared) -> String {
    format!(
        "WITH s AS (INSERT INTO {} (collection, path, kind) SELECT $1, p, k FROM unnest($2::text[], $3::text[]) AS u(p, k) \
         ON CONFLICT DO NOTHING)",
        sh.catalog("_shapes")
    )
}

/// Stores a validated document under its id, in one statement.
pub(crate) async fn upsert(c: &Client, sh: &Shared, name: &str, id: Id, doc: &Document) -> Result<Upserted> {
    let layout = sh.layout(c, name).await?;
    let rows = write_rows(c, sh, name, &layout, &[(id.as_str(), doc)], OnTaken::Replace)
        .await
        .map_err(|e| crate::error::map(&format!("upsert {id:?}"), e))?;
    let inserted = rows.first().is_some_and(|r| r.get::<_, bool>(1));
    Ok(Upserted { id, inserted })
}

/// Stores validated documents under their ids in one statement (with their multikey flags), so
/// all or none; the last of a repeated id is written (`ON CONFLICT` cannot touch a row twice in
/// one statement, and the last is what upserting them in order leaves).
pub(crate) async fn upsert_many(
    c: &Client,
    sh: &Shared,
    name: &str,
    docs: &[(Id, Document)],
) -> Result<Vec<Upserted>> {
    let mut last = std::collections::HashMap::with_capacity(docs.len());
    for (n, (id, _)) in docs.iter().enumerate() {
        last.insert(id.as_str(), n);
    }
    let kept: Vec<&(Id, Document)> =
        docs.iter().enumerate().filter(|(n, (id, _))| last[id.as_str()] == *n).map(|(_, d)| d).collect();
    let layout = sh.layout(c, name).await?;
    let rows: Vec<(&str, &Document)> = kept.iter().map(|(id, d)| (id.as_str(), d)).collect();
    let rows = write_rows(c, sh, name, &layout, &rows, OnTaken::Replace)
        .await
        .map_err(|e| crate::error::map(&format!("upsert {} documents", docs.len()), e))?;
    let mut inserted = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        inserted.insert(row.get::<_, String>(0), row.get::<_, bool>(1));
    }
    let mut seen = std::collections::HashSet::with_capacity(docs.len());
    Ok(docs
        .iter()
        .map(|(id, _)| {
            let new = inserted.get(id).copied().unwrap_or(false) && seen.insert(id.as_str());
            Upserted { id: id.clone(), inserted: new }
        })
        .collect())
}

/// Applies an update to the first match (in `_id` order) or to every match: the targets are
/// read with row locks, changed in Rust, and written back in one statement (the caller's
/// transaction), so concurrent updates of one document serialize instead of losing each other.
pub(crate) async fn update(
    c: &Client,
    sh: &Shared,
    name: &str,
    filter: &Filter,
    update: &Update,
    only_first: bool,
) -> Result<u64> {
    let mut q = Query::new(filter.clone());
    if only_first {
        q = q.limit(1);
    }
    let targets = find(c, sh, name, &q, true, false).await?;
    if targets.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(targets.len());
    let mut changed = Vec::with_capacity(targets.len());
    for mut doc in targets {
        let id = id_of(&doc).unwrap_or_default().to_owned();
        update
            .apply(&mut doc)
            .map_err(|e| Error::new(e.kind(), format!("document {id:?}: {}", e.message())))?;
        ids.push(id);
        changed.push(doc);
    }
    record_shapes(c, sh, name, changed.iter()).await?;
    let texts: Vec<JsonRef> = changed.iter().map(JsonRef).collect();
    let layout = sh.layout(c, name).await?;
    let sql = format!(
        "UPDATE {} AS t SET doc = u.doc{} FROM unnest($1::text[], $2::json[]{}) AS u(id, doc{}) \
         WHERE t.id = u.id",
        sh.table(name),
        layout.update_assignments(),
        layout.unnest_args(3),
        layout.alias_list()
    );
    let values = layout.values(changed.iter());
    let mut ps: Vec<&(dyn ToSql + Sync)> = vec![&ids, &texts];
    ps.extend(values.iter().map(|v| v.as_sql()));
    let stmt = c.prepare_cached(&sql).await.ctx("prepare")?;
    c.execute(&stmt, &ps).await.ctx("update documents")?;
    Ok(ids.len() as u64)
}

/// Deletes the first match (in `_id` order) or every match.
pub(crate) async fn delete(
    c: &Client,
    sh: &Shared,
    name: &str,
    filter: &Filter,
    only_first: bool,
) -> Result<u64> {
    if !only_first && matches!(filter, Filter::All) {
        return match c.execute(&format!("DELETE FROM {}", sh.table(name)), &[]).await.ctx("delete") {
            Err(e) if is_undefined_table(&e) => Ok(0),
            other => other,
        };
    }
    let mut q = Query::new(filter.clone());
    if only_first {
        q = q.limit(1);
    }
    let targets = find(c, sh, name, &q, true, !needs_documents(filter)).await?;
    if targets.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = targets.iter().map(|d| id_of(d).unwrap_or_default()).collect();
    let stmt = c
        .prepare_cached(&format!("DELETE FROM {} WHERE id = ANY($1::text[])", sh.table(name)))
        .await
        .ctx("prepare")?;
    c.execute(&stmt, &[&ids]).await.ctx("delete")
}

/// Whether the evaluator may need whole documents to decide the filter (anything but `_id`).
fn needs_documents(filter: &Filter) -> bool {
    match filter {
        Filter::All => false,
        Filter::Field { path, .. } => path.as_str() != "_id",
        Filter::And(fs) | Filter::Or(fs) => fs.iter().any(needs_documents),
    }
}

/// Creates a btree index over each field's typed (class, number, string) columns
/// (`crate::layout`), which translated conditions read; in unique indexes `1` and `1.0` collide,
/// `1` and `true` do not, and null or missing values (a NULL class) are not constrained.
pub(crate) async fn create_index(c: &Client, sh: &Shared, name: &str, spec: &IndexSpec) -> Result<()> {
    ensure_collection(c, sh, name).await?;
    let existing = c
        .query_opt(
            &format!("SELECT spec::text FROM {} WHERE collection = $1 AND name = $2", sh.catalog("_indexes")),
            &[&name, &spec.name],
        )
        .await
        .ctx("read the index catalog")?;
    if let Some(row) = existing {
        let text: String = row.get(0);
        let existing: IndexSpec = serde_json::from_str(&text)
            .map_err(|e| Error::corrupt(format!("index {:?} has an unreadable spec: {e}", spec.name)))?;
        return spec.check_same_as(&existing);
    }
    let layout = add_index_columns(c, sh, name, spec).await?;
    let mut cols = Vec::new();
    for f in &spec.fields {
        let [class, num, string] = if f == "_id" {
            ["1".to_owned(), "0".to_owned(), "id".to_owned()]
        } else {
            layout.columns(&FieldPath::new(f.clone())).expect("add_index_columns gave every field columns")
        };
        cols.push(format!("{class} NULLS FIRST"));
        cols.push(num);
        cols.push(string);
    }
    let pg_name = format!("_ix_{}", uuid::Uuid::now_v7().simple());
    let sql = format!(
        "CREATE {}INDEX \"{pg_name}\" ON {} ({})",
        if spec.unique { "UNIQUE " } else { "" },
        sh.table(name),
        cols.join(", ")
    );
    c.batch_execute(&sql)
        .await
        .map_err(|e| spec.build_error(crate::error::map(&format!("create index {:?}", spec.name), e)))?;
    let spec_json = serde_json::to_string(spec).map_err(|e| Error::invalid(e.to_string()))?;
    c.execute(
        &format!(
            "INSERT INTO {} (collection, name, spec, pg_name) VALUES ($1, $2, $3::text::json, $4)",
            sh.catalog("_indexes")
        ),
        &[&name, &spec.name, &spec_json, &pg_name],
    )
    .await
    .ctx("record an index")?;
    // Statistics of the new columns, so the planner can tell when the index pays.
    c.batch_execute(&format!("ANALYZE {}", sh.table(name))).await.ctx("analyze")?;
    Ok(())
}

/// Gives each field of an index its typed columns, when it has none yet (under the collection's
/// lock, in the caller's transaction): adds the columns, a new layout version with the trigger
/// function and triggers that fill them for writers with an older layout (`crate::layout`), the
/// stored rows' values, and the catalog rows. Returns the layout with them.
async fn add_index_columns(c: &Client, sh: &Shared, name: &str, spec: &IndexSpec) -> Result<Arc<Layout>> {
    let current = sh.reload_layout(c, name).await?;
    let mut new: Vec<FieldPath> = Vec::new();
    for f in spec.fields.iter().filter(|f| f.as_str() != "_id") {
        let path = FieldPath::new(f.clone());
        if crate::sql::expr(&path).is_none() {
            return Err(Error::unsupported(format!(
                "PostgreSQL strings cannot hold the NUL in field {f:?}, so it cannot be indexed"
            )));
        }
        if current.columns(&path).is_none() && !new.contains(&path) {
            new.push(path);
        }
    }
    if new.is_empty() {
        return Ok(current);
    }
    let table = sh.table(name);
    let mut layout = (*current).clone();
    layout.version += 1;
    let mut add = vec!["ADD COLUMN IF NOT EXISTS _v int".to_owned()];
    let mut fill = Vec::new();
    let mut bases = Vec::new();
    for path in &new {
        let base = crate::layout::new_base();
        let [cc, nc, sc] = crate::layout::names(&base);
        add.push(format!(
            "ADD COLUMN {cc} smallint, ADD COLUMN {nc} numeric, ADD COLUMN {sc} text COLLATE \"C\""
        ));
        let [class, num, string] = columns(path).expect("checked above");
        fill.push(format!("{cc} = {class}, {nc} = {num}, {sc} = {string}"));
        layout.paths.push((path.clone(), base.clone()));
        bases.push(base);
    }
    // The catalog's order, so this layout and a reloaded one list the same columns.
    layout.paths.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    c.batch_execute(&format!("ALTER TABLE {table} {}", add.join(", "))).await.ctx("add index columns")?;
    let function: Option<String> = c
        .query_one(
            &format!("SELECT index_function FROM {} WHERE name = $1", sh.catalog("_collections")),
            &[&name],
        )
        .await
        .ctx("read the index function")?
        .get(0);
    let function = function.unwrap_or_else(|| format!("_fx_{}", uuid::Uuid::now_v7().simple()));
    let qualified = format!("{}.\"{function}\"", sh.quoted_schema);
    // A delimiter no path can contain (paths are spliced as quoted literals inside the body).
    let quote = format!("$fx{}$", uuid::Uuid::now_v7().simple());
    let body = crate::layout::trigger_body(&layout);
    let v = layout.version;
    // The triggers first: the stored rows' update below carries the new mark, which the new
    // triggers let through (an old trigger would recompute them with the old paths).
    c.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION {qualified}() RETURNS trigger LANGUAGE plpgsql AS {quote}{body}{quote};
         DROP TRIGGER IF EXISTS \"_ti\" ON {table};
         CREATE TRIGGER \"_ti\" BEFORE INSERT ON {table} FOR EACH ROW
             WHEN ((NEW._v >> 1) IS DISTINCT FROM {v}) EXECUTE PROCEDURE {qualified}();
         DROP TRIGGER IF EXISTS \"_tu\" ON {table};
         CREATE TRIGGER \"_tu\" BEFORE UPDATE ON {table} FOR EACH ROW
             WHEN ((NEW._v >> 1) IS DISTINCT FROM {v} OR NEW._v IS NOT DISTINCT FROM OLD._v)
             EXECUTE PROCEDURE {qualified}();
         UPDATE {table} SET {}, _v = {};",
        fill.join(", "),
        layout.mark()
    ))
    .await
    .ctx("fill the index columns")?;
    let paths: Vec<&str> = new.iter().map(FieldPath::as_str).collect();
    c.execute(
        &format!(
            "INSERT INTO {} (collection, path, base) SELECT $1, p, b FROM unnest($2::text[], $3::text[]) AS u(p, b)",
            sh.catalog("_index_columns")
        ),
        &[&name, &paths, &bases],
    )
    .await
    .ctx("record the index columns")?;
    c.execute(
        &format!(
            "UPDATE {} SET index_version = $2, index_function = $3 WHERE name = $1",
            sh.catalog("_collections")
        ),
        &[&name, &v, &function],
    )
    .await
    .ctx("record the index columns")?;
    Ok(Arc::new(layout))
}

/// The collection's indexes, sorted by name.
pub(crate) async fn list_indexes(c: &Client, sh: &Shared, name: &str) -> Result<Vec<IndexSpec>> {
    let rows = c
        .query(
            &format!("SELECT spec::text FROM {} WHERE collection = $1 ORDER BY name", sh.catalog("_indexes")),
            &[&name],
        )
        .await
        .ctx("list indexes")?;
    rows.iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0))
                .map_err(|e| Error::corrupt(format!("unreadable index spec: {e}")))
        })
        .collect()
}

/// Drops a collection's table and catalog entries (the caller's transaction); true when it
/// existed.
pub(crate) async fn drop_collection(c: &Client, sh: &Shared, name: &str) -> Result<bool> {
    lock_collection(c, sh, name).await?;
    c.batch_execute(&format!("DROP TABLE IF EXISTS {}", sh.table(name)))
        .await
        .ctx("drop a collection table")?;
    let function = c
        .query_opt(
            &format!("SELECT index_function FROM {} WHERE name = $1", sh.catalog("_collections")),
            &[&name],
        )
        .await
        .ctx("read the index function")?
        .and_then(|r| r.get::<_, Option<String>>(0));
    if let Some(f) = function {
        c.batch_execute(&format!("DROP FUNCTION IF EXISTS {}.\"{f}\"()", sh.quoted_schema))
            .await
            .ctx("drop the index function")?;
    }
    for t in ["_indexes", "_shapes", "_index_columns"] {
        c.execute(&format!("DELETE FROM {} WHERE collection = $1", sh.catalog(t)), &[&name])
            .await
            .ctx("update the catalog")?;
    }
    let n = c
        .execute(&format!("DELETE FROM {} WHERE name = $1", sh.catalog("_collections")), &[&name])
        .await
        .ctx("update the catalog")?;
    Ok(n > 0)
}
