//! [`PgCollection`]: the `Collection` implementation, for plain and transactional handles.

use async_trait::async_trait;
use orbstore_core::stream::{computed_stream, keyset_stream, PAGE_ROWS};
use orbstore_core::{
    prepare_document, validate_id, Collection, Document, DocumentStream, Filter, Id, IndexSpec, Query,
    Result, StoredDocumentStream, Update, Upserted,
};

use crate::error::{is_stale_catalog, is_stale_layout};
pub use crate::exec::Exec;
use crate::ops;

/// A collection handle of the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgCollection {
    name: String,
    exec: Exec,
}

/// Runs `$body` (an `ops` call using `$c`, the connection, `$sh`, the shared state, and `$n`,
/// the name) in a scope of its own: atomic or not, ended by commit or rollback, within the
/// client-side deadline (`Shared::bounded`; a scope cut short closes its connection).
macro_rules! run {
    ($self:ident, $atomic:expr, |$c:ident, $sh:ident, $n:ident| $body:expr) => {{
        let $sh = $self.exec.shared().clone();
        let $n = $self.name.as_str();
        $sh.bounded(crate::backend::Subject("collection", $n), async {
            let scope = $self.exec.scope($atomic).await?;
            let $c = scope.client();
            let result = $body.await;
            $self.exec.end(scope, result).await
        })
        .await
    }};
}

/// [`run!`] for writes: the table is created first if this process does not know it, and when
/// it turns out to be gone (dropped by another handle or process) it is created again and the
/// write retried once.
macro_rules! write {
    ($self:ident, $atomic:expr, |$c:ident, $sh:ident, $n:ident| $body:expr) => {{
        $self.ensure().await?;
        match run!($self, $atomic, |$c, $sh, $n| $body) {
            Err(e) if is_stale_catalog(&e) => {
                $self.exec.shared().forget(&$self.name);
                $self.ensure().await?;
                run!($self, $atomic, |$c, $sh, $n| $body)
            }
            other => other,
        }
    }};
}

/// [`run!`] for reads and updates, once more when a column it named is gone: the cached index
/// columns (`crate::layout`) were of a collection another process dropped and re-created. A
/// transaction's handle does not retry (PostgreSQL aborted its transaction): it answers
/// `Aborted`, and the caller retries the transaction.
macro_rules! fresh {
    ($self:ident, $atomic:expr, |$c:ident, $sh:ident, $n:ident| $body:expr) => {{
        match run!($self, $atomic, |$c, $sh, $n| $body) {
            Err(e) if is_stale_layout(&e) => {
                $self.exec.shared().forget_layout(&$self.name);
                match &$self.exec {
                    Exec::Direct(_) => run!($self, $atomic, |$c, $sh, $n| $body),
                    Exec::Session(_) => Err(orbstore_core::Error::aborted(format!(
                        "collection {:?} was re-created with other index columns during the transaction; retry",
                        $self.name
                    ))),
                }
            }
            other => other,
        }
    }};
}

impl PgCollection {
    pub(crate) fn new(name: &str, exec: Exec) -> Self {
        PgCollection { name: name.to_owned(), exec }
    }

    /// Creates the table if this process does not know it exists.
    pub(crate) async fn ensure(&self) -> Result<()> {
        if self.exec.shared().known.read().contains(&self.name) {
            return Ok(());
        }
        run!(self, true, |c, sh, n| ops::ensure_collection(c, &sh, n))?;
        self.exec.shared().known.write().insert(self.name.clone());
        Ok(())
    }
}

#[async_trait]
impl Collection for PgCollection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn insert_one(&self, mut doc: Document) -> Result<Id> {
        let id = prepare_document(&mut doc)?;
        match &self.exec {
            // Outside a transaction, concurrent inserts share statements (crate::batch).
            Exec::Direct(shared) => {
                self.ensure().await?;
                shared.inserts(&self.name).insert(shared, &self.name, id.clone(), doc).await?;
            }
            Exec::Session(_) => write!(self, false, |c, sh, n| ops::insert_one(c, &sh, n, &id, &doc))?,
        }
        Ok(id)
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = orbstore_core::prepare_documents(docs)?;
        write!(self, true, |c, sh, n| ops::insert_many(c, &sh, n, &prepared))?;
        Ok(prepared.into_iter().map(|(id, _)| id).collect())
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        let id = prepare_document(&mut doc)?;
        write!(self, false, |c, sh, n| ops::upsert(c, &sh, n, id.clone(), &doc))
    }

    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = orbstore_core::prepare_documents(docs)?;
        // One statement: atomic without a transaction around it.
        write!(self, false, |c, sh, n| ops::upsert_many(c, &sh, n, &prepared))
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        validate_id(id)?;
        run!(self, false, |c, sh, n| ops::find_by_id(c, &sh, n, id))
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        query.validate()?;
        fresh!(self, false, |c, sh, n| ops::find(c, &sh, n, query, false, false))
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        query.validate()?;
        if !query.in_id_order() {
            return Ok(computed_stream(self.find(query).await?));
        }
        // Page by page, each page a statement of its own (inside the transaction, for a
        // transaction's handle).
        Ok(keyset_stream(self.clone(), query, |handle, filter, after| async move {
            let after = after.as_deref();
            fresh!(handle, false, |c, sh, n| ops::page(c, &sh, n, &filter, after, PAGE_ROWS))
        }))
    }

    async fn find_stored_stream(&self, query: &Query) -> Result<StoredDocumentStream> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        query.validate()?;
        // Every document in `_id` order: page by page (bounded memory), each row's text as stored.
        if !query.is_whole_scan() {
            let docs = fresh!(self, false, |c, sh, n| ops::find_stored(c, &sh, n, query))?;
            return Ok(stream::iter(docs.into_iter().map(Ok)).boxed());
        }
        let handle = self.clone();
        let pages = stream::try_unfold(Some(None::<Id>), move |after| {
            let handle = handle.clone();
            async move {
                let Some(after) = after else { return Ok(None) };
                let after = after.as_deref();
                let (docs, next) =
                    run!(handle, false, |c, sh, n| ops::page_stored(c, &sh, n, after, PAGE_ROWS))?;
                Ok(Some((docs, next.map(Some))))
            }
        });
        Ok(pages.map_ok(|docs| stream::iter(docs.into_iter().map(Ok))).try_flatten().boxed())
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        fresh!(self, true, |c, sh, n| ops::update(c, &sh, n, filter, update, true))
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        fresh!(self, true, |c, sh, n| ops::update(c, &sh, n, filter, update, false))
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        fresh!(self, true, |c, sh, n| ops::delete(c, &sh, n, filter, true))
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        fresh!(self, true, |c, sh, n| ops::delete(c, &sh, n, filter, false))
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        fresh!(self, false, |c, sh, n| ops::count(c, &sh, n, filter))
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        spec.validate()?;
        let result = write!(self, true, |c, sh, n| ops::create_index(c, &sh, n, &spec));
        // Read again on next use: the transaction may have added index columns, or rolled back
        // the ones it read while adding them.
        self.exec.shared().forget_layout(&self.name);
        result
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        run!(self, false, |c, sh, n| ops::list_indexes(c, &sh, n))
    }
}
