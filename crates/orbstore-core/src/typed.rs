//! [`TypedCollection`]: a collection of serde types.

use std::fmt;
use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::backend::{CollectionRef, Upserted};
use crate::document::{id_of, type_name, Document};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::id::Id;
use crate::query::Query;

/// A collection whose documents are values of `T`.
///
/// `T` serializes to a JSON object; a field named `_id` (for example
/// `#[serde(rename = "_id")] id: String`) is its id, and without one an id is generated.
/// A stored document that does not deserialize as `T` is `Corrupt`, naming its id.
pub struct TypedCollection<T> {
    inner: CollectionRef,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedCollection<T> {
    fn clone(&self) -> Self {
        TypedCollection { inner: self.inner.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for TypedCollection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCollection")
            .field("collection", &self.inner.name())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync> TypedCollection<T> {
    /// Wraps a collection handle.
    pub fn new(inner: CollectionRef) -> Self {
        TypedCollection { inner, _type: PhantomData }
    }

    /// The untyped collection underneath.
    pub fn inner(&self) -> &CollectionRef {
        &self.inner
    }

    /// Inserts a value and returns its id.
    pub async fn insert(&self, value: &T) -> Result<Id> {
        self.inner.insert_one(to_doc(value)?).await
    }

    /// Inserts values atomically.
    pub async fn insert_many(&self, values: &[T]) -> Result<Vec<Id>> {
        let docs = values.iter().map(to_doc).collect::<Result<Vec<_>>>()?;
        self.inner.insert_many(docs).await
    }

    /// Stores a value under its `_id`, replacing or inserting.
    pub async fn upsert(&self, value: &T) -> Result<Upserted> {
        self.inner.upsert(to_doc(value)?).await
    }

    /// The value with this id, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<T>> {
        self.inner.find_by_id(id).await?.map(from_doc).transpose()
    }

    /// The values matching a query (projections must leave every field `T` needs).
    pub async fn find(&self, query: &Query) -> Result<Vec<T>> {
        self.inner.find(query).await?.into_iter().map(from_doc).collect()
    }

    /// The first value matching a filter in `_id` order.
    pub async fn find_one(&self, filter: Filter) -> Result<Option<T>> {
        Ok(self.find(&Query::new(filter).limit(1)).await?.pop())
    }

    /// How many documents match.
    pub async fn count(&self, filter: &Filter) -> Result<u64> {
        self.inner.count(filter).await
    }

    /// Deletes the value with this id; true when it existed.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.inner.delete_one(&Filter::eq("_id", id)).await? == 1)
    }
}

fn to_doc<T: Serialize>(value: &T) -> Result<Document> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::invalid(format!(
            "{} serializes to {}, not an object, so it cannot be a document",
            std::any::type_name::<T>(),
            type_name(&other)
        ))),
        Err(e) => Err(Error::invalid(format!("{} could not be serialized: {e}", std::any::type_name::<T>()))),
    }
}

fn from_doc<T: DeserializeOwned>(doc: Document) -> Result<T> {
    let id = id_of(&doc).unwrap_or("?").to_owned();
    serde_json::from_value(Value::Object(doc)).map_err(|e| {
        Error::corrupt(format!("document {id:?} does not deserialize as {}: {e}", std::any::type_name::<T>()))
            .with_source(e)
    })
}
