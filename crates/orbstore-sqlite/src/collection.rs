//! [`SqliteCollection`]: the `Collection` implementation, for plain and transactional handles.

use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::stream::{computed_stream, keyset_stream, PAGE_ROWS};
use orbstore_core::{
    prepare_document, validate_id, Collection, Document, DocumentStream, Filter, Id, IndexSpec, Query,
    Result, StoredDocument, StoredDocumentStream, Update, Upserted,
};
use rusqlite::Connection;

use crate::backend::{CollMeta, Shared};
use crate::ops;
use crate::transaction::TxShared;
use crate::worker::Writer;

/// Where a handle's operations run.
#[derive(Debug, Clone)]
pub enum Exec {
    /// Writes on the writer thread, reads on reader connections (or the writer for `:memory:`).
    Direct(Arc<Shared>),
    /// Everything inside a transaction's session on the writer thread.
    Session(Arc<TxShared>),
}

/// A collection handle of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteCollection {
    name: String,
    exec: Exec,
}

impl SqliteCollection {
    pub(crate) fn new(name: &str, exec: Exec) -> Self {
        SqliteCollection { name: name.to_owned(), exec }
    }

    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer, &str) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let name = self.name.clone();
        match &self.exec {
            Exec::Direct(shared) => {
                shared.check_open()?;
                // Every collection write goes through a savepoint: it may share a group commit;
                // except the first write of a collection, which creates its table and publishes
                // it in the catalog cache the readers use: that must not happen before a commit.
                if shared.catalog.read().collections.contains_key(&name) {
                    shared.worker.call_grouped(move |w| f(w, &name)).await
                } else {
                    shared.worker.call(move |w| f(w, &name)).await
                }
            }
            Exec::Session(tx) => tx.call(move |w| f(w, &name)).await,
        }
    }

    /// A write that runs alone, never in a group: one that publishes catalog changes (an
    /// index) the readers must not see before they are committed.
    async fn write_alone<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer, &str) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let name = self.name.clone();
        match &self.exec {
            Exec::Direct(shared) => {
                shared.check_open()?;
                shared.worker.call(move |w| f(w, &name)).await
            }
            Exec::Session(tx) => tx.call(move |w| f(w, &name)).await,
        }
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str, Option<&CollMeta>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let name = self.name.clone();
        match &self.exec {
            Exec::Direct(shared) if shared.has_readers() => {
                shared.read(move |conn, catalog| f(conn, &name, catalog.collections.get(&name))).await
            }
            // Reads on the writer (`:memory:`, a transaction) never join a group: they would see
            // its uncommitted writes.
            _ => {
                self.write_alone(move |w, name| {
                    let catalog = w.catalog.read();
                    f(&w.conn, name, catalog.collections.get(name))
                })
                .await
            }
        }
    }
}

#[async_trait]
impl Collection for SqliteCollection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn insert_one(&self, doc: Document) -> Result<Id> {
        let prepared = orbstore_core::prepare_documents(vec![doc])?;
        let mut ids = self.write(move |w, n| ops::insert_many(w, n, prepared)).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    async fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<Id>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = orbstore_core::prepare_documents(docs)?;
        self.write(move |w, n| ops::insert_many(w, n, prepared)).await
    }

    async fn upsert(&self, mut doc: Document) -> Result<Upserted> {
        let id = prepare_document(&mut doc)?;
        self.write(move |w, n| ops::upsert(w, n, id, doc)).await
    }

    async fn upsert_many(&self, docs: Vec<Document>) -> Result<Vec<Upserted>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = orbstore_core::prepare_documents(docs)?;
        self.write(move |w, n| ops::upsert_many(w, n, prepared)).await
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<Document>> {
        validate_id(id)?;
        let id = id.to_owned();
        self.read(move |c, n, m| ops::find_by_id(c, n, m, &id)).await
    }

    async fn find(&self, query: &Query) -> Result<Vec<Document>> {
        query.validate()?;
        let q = query.clone();
        self.read(move |c, n, m| ops::find(c, n, m, &q)).await
    }

    async fn find_stream(&self, query: &Query) -> Result<DocumentStream> {
        query.validate()?;
        if !query.in_id_order() {
            return Ok(computed_stream(self.find(query).await?));
        }
        // Page by page, each page a statement of its own on whichever connection is free.
        Ok(keyset_stream(self.clone(), query, |handle, filter, after| async move {
            handle.read(move |c, n, m| ops::page(c, n, m, &filter, after.as_deref(), PAGE_ROWS)).await
        }))
    }

    async fn find_stored_stream(&self, query: &Query) -> Result<StoredDocumentStream> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        query.validate()?;
        // Every document, whole, in `_id` order: each row's text is the document as stored, and
        // parsing it is the reader's. Anything narrower goes through `find_stream`.
        if !query.is_whole_scan() {
            return Ok(self.find_stream(query).await?.map(|d| d.map(StoredDocument::Parsed)).boxed());
        }
        let handle = self.clone();
        let pages = stream::try_unfold(Some(Id::new()), move |after| {
            let handle = handle.clone();
            async move {
                let Some(after) = after else { return Ok(None) };
                let page = handle.read(move |c, n, m| ops::page_text(c, n, m, &after, PAGE_ROWS)).await?;
                Ok(Some((page.0, page.1)))
            }
        });
        Ok(pages
            .map_ok(|texts| stream::iter(texts.into_iter().map(|t| Ok(StoredDocument::Json(t)))))
            .try_flatten()
            .boxed())
    }

    async fn update_one(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        let (f, u) = (filter.clone(), update.clone());
        self.write(move |w, n| ops::update(w, n, &f, &u, true)).await
    }

    async fn update_many(&self, filter: &Filter, update: &Update) -> Result<u64> {
        filter.validate()?;
        update.validate()?;
        let (f, u) = (filter.clone(), update.clone());
        self.write(move |w, n| ops::update(w, n, &f, &u, false)).await
    }

    async fn delete_one(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        let f = filter.clone();
        self.write(move |w, n| ops::delete(w, n, &f, true)).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        let f = filter.clone();
        self.write(move |w, n| ops::delete(w, n, &f, false)).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        let f = filter.clone();
        self.read(move |c, n, m| ops::count(c, n, m, &f)).await
    }

    async fn create_index(&self, spec: IndexSpec) -> Result<()> {
        spec.validate()?;
        self.write_alone(move |w, n| ops::create_index(w, n, spec)).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexSpec>> {
        self.read(|_, _, m| Ok(m.map(|m| m.indexes.clone()).unwrap_or_default())).await
    }
}
