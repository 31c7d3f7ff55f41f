//! [`MongoCollection`]: the `Collection` implementation. In native mode queries go to the server;
//! in exact mode only `_id` lookups do and orbstore's evaluator decides the rest. Writes that
//! touch several documents check everything they can before writing and undo what they wrote
//! when the server refuses one, so a failed call leaves nothing changed.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use mongodb::options::{FindOptions, IndexOptions};
use mongodb::IndexModel;
use orbstore_core::{
    id_of, prepare_document, validate_id, Collection, Direction, Document, DocumentStream, Error, Filter, Id,
    IndexSpec, Query, Result, Update, UpdateOp, Upserted,
};
use serde_json::Value;

use crate::backend::{Mode, Shared, INDEX_CATALOG};
use crate::bson::{to_bson, to_bson_doc, to_json_doc};
use crate::error::{code, Context};
use crate::transaction::TxShared;
use orbstore_core::engine::finished_transaction;
use orbstore_core::stream::{computed_stream, keyset_stream, Page, PAGE_ROWS};

/// The server's "collection already exists" code.
const NAMESPACE_EXISTS: i32 = 48;

/// A collection handle of the MongoDB backend, plain or bound to a transaction.
#[derive(Debug, Clone)]
pub struct MongoCollection {
    name: String,
    shared: Arc<Shared>,
    coll: mongodb::Collection<BsonDocument>,
    tx: Option<Arc<TxShared>>,
}

/// Runs a driver action, in the handle's transaction when it has one; maps errors with `what`.
macro_rules! exec {
    ($self:ident, $what:expr, $action:expr) => {{
        match &$self.tx {
            None => $action.await.map_err(|e| crate::error::map(&$what, e)),
            Some(tx) => {
                let mut guard = tx.session.lock().await;
                match guard.as_mut() {
                    Some(session) => $action.session(session).await.map_err(|e| crate::error::map(&$what, e)),
                    None => Err(finished_transaction()),
                }
            }
        }
    }};
}

/// A filter as the BSON MongoDB reads (our filter language is MongoDB's). An `$and` of
/// conditions on different paths becomes one document (`{a: {$gte: 1}, b: …}`), and conditions on
/// one path one operator document (`{a: {$gte: 1, $lt: 2}}`): the same query, in the form servers
/// plan best (nx-27017 scans the whole collection for the `$and` form of a range).
pub fn filter_bson(filter: &Filter) -> BsonDocument {
    if let Filter::And(parts) = filter {
        let mut merged = BsonDocument::new();
        let mut flat = true;
        for part in parts {
            let Value::Object(map) = part.to_json() else { return filter_bson_plain(filter) };
            for (path, conditions) in map {
                if path.starts_with('$') {
                    flat = false;
                    break;
                }
                let Value::Object(conds) = conditions else { return filter_bson_plain(filter) };
                let entry = merged.entry(path).or_insert_with(|| Bson::Document(BsonDocument::new()));
                let Bson::Document(existing) = entry else { return filter_bson_plain(filter) };
                for (op, operand) in conds {
                    if existing.contains_key(&op) {
                        // The same operator twice on one path: keep the `$and`.
                        return filter_bson_plain(filter);
                    }
                    existing.insert(op, to_bson(&operand));
                }
            }
            if !flat {
                return filter_bson_plain(filter);
            }
        }
        return merged;
    }
    filter_bson_plain(filter)
}

fn filter_bson_plain(filter: &Filter) -> BsonDocument {
    match filter.to_json() {
        Value::Object(map) => to_bson_doc(&map),
        _ => BsonDocument::new(),
    }
}

/// A sort as BSON, with `_id` last as the tie-breaker.
pub fn sort_bson(query: &Query) -> BsonDocument {
    let mut sort = BsonDocument::new();
    for s in &query.sort {
        sort.insert(s.path.as_str(), if s.direction == Direction::Descending { -1 } else { 1 });
    }
    if !sort.contains_key("_id") {
        sort.insert("_id", 1);
    }
    sort
}

/// An update as BSON (`$set`, `$unset`, `$inc`).
pub fn update_bson(update: &Update) -> BsonDocument {
    match update.to_json() {
        Value::Object(map) => to_bson_doc(&map),
        _ => BsonDocument::new(),
    }
}

fn id_filter(id: &str) -> BsonDocument {
    doc! {"_id": id}
}

impl MongoCollection {
    pub(crate) fn new(name: &str, shared: Arc<Shared>) -> Self {
        let coll = shared.db.collection::<BsonDocument>(name);
        MongoCollection { name: name.to_owned(), shared, coll, tx: None }
    }

    pub(crate) fn in_transaction(name: &str, tx: Arc<TxShared>) -> Self {
        let shared = tx.shared.clone();
        let coll = shared.db.collection::<BsonDocument>(name);
        MongoCollection { name: name.to_owned(), shared, coll, tx: Some(tx) }
    }

    /// Every document a find returns, handed to `each` as it arrives.
    async fn scan(
        &self,
        filter: BsonDocument,
        options: FindOptions,
        mut each: impl FnMut(BsonDocument) -> Result<()>,
    ) -> Result<()> {
        match &self.tx {
            None => {
                let mut cursor = self.coll.find(filter).with_options(options).await.ctx("find")?;
                while let Some(d) = cursor.try_next().await.ctx("read a document")? {
                    each(d)?;
                }
            }
            Some(tx) => {
                let mut guard = tx.session.lock().await;
                let session = guard.as_mut().ok_or_else(finished_transaction)?;
                let mut cursor =
                    self.coll.find(filter).with_options(options).session(&mut *session).await.ctx("find")?;
                while let Some(d) = cursor.next(&mut *session).await.transpose().ctx("read a document")? {
                    each(d)?;
                }
            }
        }
        Ok(())
    }

    /// Creates the collection so that it is listed (an existing one is fine).
    pub(crate) async fn ensure(&self) -> Result<()> {
        match self.shared.db.create_collection(&self.name).await {
            Err(e) if code(&e) == Some(NAMESPACE_EXISTS) => Ok(()),
            other => other.ctx(&format!("create collection {:?}", self.name)),
        }
    }

    /// The documents matching a server-side filter, in the server's order for `options`.
    async fn fetch(&self, filter: BsonDocument, options: FindOptions) -> Result<Vec<Document>> {
        let mut docs = Vec::new();
        self.scan(filter, options, |d| {
            docs.push(to_json_doc(d)?);
            Ok(())
        })
        .await?;
        Ok(docs)
    }

    /// What exact mode asks the server for: one document when the filter pins an `_id`, else all.
    fn pushed(filter: &Filter) -> BsonDocument {
        match filter.pinned_id() {
            Some(id) => id_filter(id),
            None => BsonDocument::new(),
        }
    }

    /// One page of a keyset scan in `_id` order: at most `rows` documents after `after`, with
    /// those matching the filter. Native mode sends the filter with the page; exact mode reads
    /// every stored document of the page and decides here.
    async fn page(&self, filter: &Filter, after: Option<&str>, rows: u64) -> Result<Page> {
        self.shared.check_open()?;
        let native = self.shared.mode == Mode::Native && native_safe(filter);
        let mut server = if native { filter_bson(filter) } else { Self::pushed(filter) };
        if let Some(after) = after {
            let range = doc! {"_id": {"$gt": after}};
            server = if server.is_empty() {
                range
            } else {
                doc! {"$and": [server, range]}
            };
        }
        let options = FindOptions::builder()
            .sort(doc! {"_id": 1})
            .limit(i64::try_from(rows).unwrap_or(i64::MAX))
            .build();
        let (mut page, mut read) = (Page::default(), 0);
        self.scan(server, options, |d| {
            let d = to_json_doc(d)?;
            read += 1;
            page.next = id_of(&d).map(str::to_owned);
            if native || filter.matches(&d) {
                page.docs.push(d);
            }
            Ok(())
        })
        .await?;
        if read < rows {
            page.next = None;
        }
        Ok(page)
    }

    /// The matching documents, unprojected, sorted, after offset and limit.
    async fn matching(&self, query: &Query) -> Result<Vec<Document>> {
        self.shared.check_open()?;
        match self.shared.mode {
            Mode::Native if query.limit == Some(0) => Ok(Vec::new()),
            Mode::Native if i64::try_from(query.offset).is_err() => Ok(Vec::new()),
            Mode::Native if native_safe(&query.filter) => {
                let options = FindOptions::builder()
                    .sort(sort_bson(query))
                    .skip(query.offset)
                    .limit(query.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
                    .build();
                self.fetch(filter_bson(&query.filter), options).await
            }
            _ => {
                // Exact: streamed, only matches are kept.
                let mut docs = Vec::new();
                self.scan(Self::pushed(&query.filter), FindOptions::default(), |d| {
                    let d = to_json_doc(d)?;
                    if query.filter.matches(&d) {
                        docs.push(d);
                    }
                    Ok(())
                })
                .await?;
                let unprojected = Query { projection: None, ..query.clone() };
                unprojected.finish(&mut docs);
                Ok(docs)
            }
        }
    }

    /// The first match (in `_id` order) or every match, for an update or delete.
    async fn targets(&self, filter: &Filter, only_first: bool) -> Result<Vec<Document>> {
        let mut q = Query::new(filter.clone());
        if only_first {
            q = q.limit(1);
        }
        self.matching(&q).await
    }

    /// In native mode, a write to a target also re-checks the filter on the server, so a document
    /// changed meanwhile so that it no longer matches is left alone.
    fn target_filter(&self, id: &str, filter: &Filter) -> BsonDocument {
        match (self.shared.mode, filter) {
            (Mode::Native, f) if native_safe(f) && !matches!(f, Filter::All) => {
                doc! {"$and": [id_filter(id), filter_bson(f)]}
            }
            _ => id_filter(id),
        }
    }

    async fn update(&self, filter: &Filter, update: &Update, only_first: bool) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        let targets = self.targets(filter, only_first).await?;
        // Every change is tried here first: one that cannot apply fails the call before any write.
        for t in &targets {
            let mut copy = t.clone();
            update.apply(&mut copy).map_err(|e| {
                Error::new(e.kind(), format!("document {:?}: {}", id_of(t).unwrap_or_default(), e.message()))
            })?;
        }
        let ub = update_bson(update);
        let replace = self.shared.mode == Mode::Exact && sets_a_boolean(update);
        let mut changed = 0;
        for (i, t) in targets.iter().enumerate() {
            let id = id_of(t).unwrap_or_default();
            let written = if replace {
                self.replace_if_unchanged(t, update).await
            } else {
                exec!(
                    self,
                    format!("update {id:?}"),
                    self.coll.update_one(self.target_filter(id, filter), ub.clone())
                )
                .map(|r| r.matched_count)
            };
            match written {
                Ok(n) => changed += n,
                Err(e) => {
                    // Undo the documents already changed by this call (a transaction's own
                    // rollback does that inside one).
                    if self.tx.is_none() {
                        for done in &targets[..i] {
                            let did = id_of(done).unwrap_or_default();
                            let _ = self.coll.replace_one(id_filter(did), to_bson_doc(done)).await;
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(changed)
    }

    /// Exact mode's way to set a boolean: servers such as nx-27017 store `$set: {x: true}` as
    /// `1`, but keep booleans in a whole document. The updated document replaces the stored one
    /// only if the fields the update writes still hold the scalar values that were read (a
    /// compare-and-swap); if not, nothing is written (`matched_count` 0). A concurrent change to
    /// other fields of the document is overwritten: exact mode's documented limit.
    async fn replace_if_unchanged(&self, old: &Document, update: &Update) -> Result<u64> {
        let mut new = old.clone();
        // Checked to apply in `update` before any write.
        let _ = update.apply(&mut new);
        // The guard: `_id`, and the old scalar values of the fields the update writes (a
        // concurrent change to those is not overwritten). Only scalars: nx-27017 errs on array
        // equality and compares objects its own way.
        let touched: HashSet<&str> = update
            .ops
            .iter()
            .map(|op| match op {
                UpdateOp::Set(p, _) | UpdateOp::Inc(p, _) => p,
                UpdateOp::Unset(p) => p,
            })
            .filter_map(|p| p.segments().next())
            .collect();
        let unchanged: BsonDocument = old
            .iter()
            .filter(|(k, v)| {
                (k.as_str() == "_id" || touched.contains(k.as_str()))
                    && matches!(v, Value::String(_) | Value::Number(_))
            })
            .map(|(k, v)| (k.clone(), to_bson(v)))
            .collect();
        let id = id_of(old).unwrap_or_default();
        Ok(exec!(
            self,
            format!("update {id:?}"),
            self.coll.replace_one(unchanged.clone(), to_bson_doc(&new))
        )?
        .matched_count)
    }

    async fn delete(&self, filter: &Filter, only_first: bool) -> Result<u64> {
        filter.validate()?;
        self.shared.check_open()?;
        if !only_first && matches!(filter, Filter::All) {
            return Ok(exec!(self, "delete", self.coll.delete_many(doc! {}))?.deleted_count);
        }
        let targets = self.targets(filter, only_first).await?;
        if targets.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Bson> =
            targets.iter().map(|d| Bson::String(id_of(d).unwrap_or_default().to_owned())).collect();
        let by_id = doc! {"_id": {"$in": ids}};
        let server_filter = match (self.shared.mode, filter) {
            (Mode::Native, f) if native_safe(f) && !matches!(f, Filter::All) => {
                doc! {"$and": [by_id, filter_bson(f)]}
            }
            _ => by_id,
        };
        Ok(exec!(self, "delete", self.coll.delete_many(server_filter.clone()))?.deleted_count)
    }
}

/// Whether MongoDB answers a filter with orbstore's semantics. Not when an operand is an
/// object: MongoDB compares embedded documents with their key order, orbstore regardless of it,
/// so such queries run exactly (in Rust) in native mode too.
pub fn native_safe(filter: &Filter) -> bool {
    use orbstore_core::Condition;
    fn cond_ok(c: &Condition) -> bool {
        match c {
            Condition::Eq(v)
            | Condition::Ne(v)
            | Condition::Gt(v)
            | Condition::Gte(v)
            | Condition::Lt(v)
            | Condition::Lte(v) => !has_object(v),
            Condition::In(vs) | Condition::Nin(vs) => !vs.iter().any(has_object),
            Condition::Exists(_) => true,
            Condition::Not(cs) => cs.iter().all(cond_ok),
        }
    }
    fn has_object(v: &Value) -> bool {
        match v {
            Value::Object(_) => true,
            Value::Array(items) => items.iter().any(has_object),
            _ => false,
        }
    }
    match filter {
        Filter::All => true,
        Filter::Field { conditions, .. } => conditions.iter().all(cond_ok),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().all(native_safe),
    }
}

/// Whether an update sets a boolean as a whole value (`$set: {x: true}`).
fn sets_a_boolean(update: &Update) -> bool {
    update.ops.iter().any(|op| matches!(op, UpdateOp::Set(_, Value::Bool(_))))
}

/// The index `create_index` builds for a spec: ascending keys, named after the spec; a unique
/// one with [`unique_partial_filter`].
fn index_model(spec: &IndexSpec) -> IndexModel {
    let keys: BsonDocument = spec.fields.iter().map(|f| (f.clone(), Bson::Int32(1))).collect();
    let mut options = IndexOptions::builder().name(spec.name.clone()).unique(spec.unique).build();
    if spec.unique {
        options.partial_filter_expression = Some(unique_partial_filter(&spec.fields));
    }
    IndexModel::builder().keys(keys).options(options).build()
}

/// A unique index constrains only documents where each field is present and not null: the
/// partial filter keeps every other type.
pub(crate) fn unique_partial_filter(fields: &[String]) -> BsonDocument {
    let types: Vec<Bson> = ["double", "string", "object", "array", "bool", "int", "long", "decimal"]
        .iter()
        .map(|t| Bson::from(*t))
        .collect();
    fields.iter().map(|f| (f.clone(), Bson::Document(doc! {"$type": types.clone()}))).collect()
}

#[async_trait]
impl Collection for MongoCollection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn insert_one(&self, mut doc: Document) -> Result<Id> {
        let id = prepare_document(&mut doc)?;
        self.shared.check_open()?;
        let bson = to_bson_doc(&doc);
        exec!(self, format!("insert {id:?}"), self.coll.insert_one(&bson))?;
        Ok(id)
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(docs.len());
        let mut bson = Vec::with_capacity(docs.len());
        let mut seen = HashSet::with_capacity(docs.len());
        for mut d in docs {
            let id = prepare_document(&mut d)?;
            if !seen.insert(id.clone()) {
                return Err(Error::conflict(format!("insert_many: the batch holds _id {id:?} twice")));
            }
            bson.push(to_bson_doc(&d));
            ids.push(id);
        }
        self.shared.check_open()?;
        if let Some(tx) = &self.tx {
            // Inside a transaction its rollback undoes a refused batch.
            let mut guard = tx.session.lock().await;
            let session = guard.as_mut().ok_or_else(finished_transaction)?;
            self.coll.insert_many(bson).session(session).await.ctx("insert_many")?;
            return Ok(ids);
        }
        if let Err(e) = self.coll.insert_many(bson).await {
            // Inserts are ordered and stop at the first refusal: the documents before it were
            // stored by this call and are removed again. Without a refusal index (a lost
            // connection) nothing is removed: the error says the outcome is unknown.
            let first_refused = match e.kind.as_ref() {
                mongodb::error::ErrorKind::InsertMany(m) => {
                    m.write_errors.as_ref().and_then(|w| w.iter().map(|w| w.index).min())
                }
                _ => None,
            };
            if let Some(k) = first_refused {
                let undo: Vec<Bson> =
                    ids[..k.min(ids.len())].iter().map(|i| Bson::String(i.clone())).collect();
                if !undo.is_empty() {
                    self.coll
                        .delete_many(doc! {"_id": {"$in": undo}})
                        .await
                        .ctx("undo a failed insert_many")?;
                }
            }
            return Err(crate::error::map("insert_many", e));
        }
        Ok(ids)
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        let id = prepare_document(&mut doc)?;
        self.shared.check_open()?;
        let bson = to_bson_doc(&doc);
        let r = exec!(
            self,
            format!("upsert {id:?}"),
            self.coll.replace_one(id_filter(&id), bson.clone()).upsert(true)
        )?;
        Ok(Upserted { id, inserted: r.upserted_id.is_some() })
    }

    /// One replacement per document (MongoDB's bulk write needs 8.0 servers). Outside a
    /// transaction a refused document puts back what the batch replaced and removes what it
    /// inserted, as `insert_many` undoes its stored prefix; inside one, its rollback does.
    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = orbstore_core::prepare_documents(docs)?;
        self.shared.check_open()?;
        let mut out = Vec::with_capacity(prepared.len());
        if self.tx.is_some() {
            for (_, doc) in prepared {
                out.push(self.upsert(doc).await?);
            }
            return Ok(out);
        }
        let mut ids: Vec<&str> = prepared.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let wanted: Vec<Bson> = ids.iter().map(|i| Bson::String((*i).to_owned())).collect();
        let before: std::collections::HashMap<String, BsonDocument> = self
            .coll
            .find(doc! {"_id": {"$in": wanted}})
            .await
            .ctx("upsert_many: read the stored versions")?
            .try_collect::<Vec<BsonDocument>>()
            .await
            .ctx("upsert_many: read the stored versions")?
            .into_iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned).map(|id| (id, d)))
            .collect();
        for (n, (_, doc)) in prepared.iter().enumerate() {
            match self.upsert(doc.clone()).await {
                Ok(u) => out.push(u),
                Err(e) => {
                    let mut written: Vec<&str> = prepared[..n].iter().map(|(id, _)| id.as_str()).collect();
                    written.sort_unstable();
                    written.dedup();
                    for id in written {
                        let undone = match before.get(id) {
                            Some(old) => self.coll.replace_one(id_filter(id), old.clone()).await.map(|_| ()),
                            None => self.coll.delete_one(id_filter(id)).await.map(|_| ()),
                        };
                        undone.ctx("undo a failed upsert_many (the batch's outcome is unknown)")?;
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        validate_id(id)?;
        self.shared.check_open()?;
        exec!(self, "find by id", self.coll.find_one(id_filter(id)))?.map(to_json_doc).transpose()
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        query.validate()?;
        let mut docs = self.matching(query).await?;
        // `matching` sorted, skipped and limited: only the projection is left.
        query.finish_selected(&mut docs, true);
        Ok(docs)
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        query.validate()?;
        if !query.in_id_order() {
            return Ok(computed_stream(self.find(query).await?));
        }
        // Page by page (a cursor held across the caller's reads would hold a transaction's
        // session for as long; a page is one short find).
        Ok(keyset_stream(self.clone(), query, |handle, filter, after| async move {
            handle.page(&filter, after.as_deref(), PAGE_ROWS).await
        }))
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        self.update(filter, update, true).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        self.update(filter, update, false).await
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        self.delete(filter, true).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.delete(filter, false).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        self.shared.check_open()?;
        match self.shared.mode {
            Mode::Native if native_safe(filter) => {
                exec!(self, "count", self.coll.count_documents(filter_bson(filter)))
            }
            _ => Ok(self.matching(&Query::new(filter.clone())).await?.len() as u64),
        }
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        spec.validate()?;
        self.shared.check_open()?;
        let catalog = self.shared.db.collection::<BsonDocument>(INDEX_CATALOG);
        let key = format!("{}/{}", self.name, spec.name);
        if let Some(existing) = catalog.find_one(doc! {"_id": &key}).await.ctx("read the index catalog")? {
            let existing: IndexSpec =
                existing.get_str("spec").ok().and_then(|s| serde_json::from_str(s).ok()).ok_or_else(
                    || Error::corrupt(format!("index {:?} has an unreadable catalog entry", spec.name)),
                )?;
            return spec.check_same_as(&existing);
        }
        if spec.unique && self.shared.mode == Mode::Exact {
            return Err(Error::unsupported(format!(
                "unique index {:?}: {} runs in exact mode, and its unique indexes do not follow orbstore's \
                 semantics (nx-27017 counts true and 1 as the same key), so they are not offered",
                spec.name, self.shared.server
            )));
        }
        self.coll
            .create_index(index_model(&spec))
            .await
            .map_err(|e| spec.build_error(crate::error::map(&format!("create index {:?}", spec.name), e)))?;
        let spec_json = serde_json::to_string(&spec).map_err(|e| Error::invalid(e.to_string()))?;
        catalog
            .insert_one(doc! {"_id": key, "collection": &self.name, "name": &spec.name, "spec": spec_json})
            .await
            .ctx("record an index")?;
        Ok(())
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.shared.check_open()?;
        let catalog = self.shared.db.collection::<BsonDocument>(INDEX_CATALOG);
        let mut cursor =
            catalog.find(doc! {"collection": &self.name}).sort(doc! {"name": 1}).await.ctx("list indexes")?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await.ctx("list indexes")? {
            let spec = d
                .get_str("spec")
                .ok()
                .and_then(|s| serde_json::from_str(s).ok())
                .ok_or_else(|| Error::corrupt("an index catalog entry is unreadable"))?;
            out.push(spec);
        }
        Ok(out)
    }
}

/// The BSON of a JSON value (for tests of native queries).
pub fn value_bson(v: &Value) -> Bson {
    to_bson(v)
}
