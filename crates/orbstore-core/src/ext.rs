//! Conveniences over [`Collection`], written once for every backend.

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::backend::Collection;
use crate::document::{to_document, Document, ID_FIELD};
use crate::error::Result;
use crate::filter::Filter;
use crate::id::Id;
use crate::query::Query;
use crate::typed::TypedCollection;
use crate::update::Update;

/// Handy methods on every collection, built only on the required [`Collection`] methods.
#[async_trait]
pub trait CollectionExt: Collection {
    /// Inserts a JSON value, which must be an object.
    async fn insert_value(&self, value: Value) -> Result<Id> {
        self.insert_one(to_document(value)?).await
    }

    /// The first matching document in `_id` order, or `None`.
    async fn find_one(&self, filter: Filter) -> Result<Option<Document>> {
        Ok(self.find(&Query::new(filter).limit(1)).await?.pop())
    }

    /// Every document, in `_id` order.
    async fn find_all(&self) -> Result<Vec<Document>> {
        self.find(&Query::all()).await
    }

    /// Whether a document with this id exists.
    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.find_by_id(id).await?.is_some())
    }

    /// Applies an update to the document with this id; true when it exists.
    async fn update_by_id(&self, id: &str, update: &Update) -> Result<bool> {
        Ok(self.update_one(&Filter::eq(ID_FIELD, id), update).await? == 1)
    }

    /// Deletes the document with this id; true when it existed.
    async fn delete_by_id(&self, id: &str) -> Result<bool> {
        Ok(self.delete_one(&Filter::eq(ID_FIELD, id)).await? == 1)
    }

    /// How many documents the collection holds.
    async fn count_all(&self) -> Result<u64> {
        self.count(&Filter::All).await
    }
}

impl<C: Collection + ?Sized> CollectionExt for C {}

/// Typed access, on a shared collection handle.
pub trait TypedExt {
    /// The collection as a collection of `T`.
    fn typed<T: Serialize + DeserializeOwned + Send + Sync>(&self) -> TypedCollection<T>;
}

impl TypedExt for crate::backend::CollectionRef {
    fn typed<T: Serialize + DeserializeOwned + Send + Sync>(&self) -> TypedCollection<T> {
        TypedCollection::new(self.clone())
    }
}
