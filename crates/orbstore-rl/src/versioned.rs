//! Versioned records with lineage, shared by the policy and configuration stores: version `n+1`
//! of a key is inserted under the id `<key>:v<n+1>` with version `n` as its parent. Two writers
//! racing for the same version collide on the id (`Conflict`), and the loser reads again and
//! takes the next one, so versions of a key are created one at a time on every backend, without
//! transactions.

use orbstore_core::{CollectionRef, Document, Error, ErrorKind, Filter, Query, Result};
use serde_json::Value;

/// How many times a writer retries after losing a race for a version.
const RETRIES: usize = 1000;

/// The id of version `v` of `key`.
pub(crate) fn version_id(key: &str, v: u64) -> String {
    format!("{key}:v{v}")
}

/// The newest record of a key (by `version`), if any.
pub(crate) async fn latest(coll: &CollectionRef, key_field: &str, key: &str) -> Result<Option<Document>> {
    let q = Query::new(Filter::eq(key_field, key)).sort_desc("version").limit(1);
    Ok(coll.find(&q).await?.pop())
}

/// Inserts the next version of `key`: `build(version, parent_id)` makes the document (without
/// `_id`, `version` and `parent`, which are set here). Returns the new document.
pub(crate) async fn insert_next(
    coll: &CollectionRef,
    key_field: &str,
    key: &str,
    build: impl Fn(u64, Option<&str>) -> Document,
) -> Result<Document> {
    for _ in 0..RETRIES {
        let prev = latest(coll, key_field, key).await?;
        let prev_version = prev.as_ref().and_then(|d| d.get("version")).and_then(Value::as_u64).unwrap_or(0);
        let parent = prev.as_ref().and_then(|d| d.get("_id")).and_then(Value::as_str).map(str::to_owned);
        let version = prev_version + 1;
        let mut doc = build(version, parent.as_deref());
        doc.insert("_id".into(), Value::String(version_id(key, version)));
        doc.insert(key_field.into(), Value::String(key.to_owned()));
        doc.insert("version".into(), Value::from(version));
        doc.insert("parent".into(), parent.map_or(Value::Null, Value::String));
        match coll.insert_one(doc.clone()).await {
            Ok(_) => return Ok(doc),
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::aborted(format!(
        "could not create a new version of {key:?}: {RETRIES} concurrent writers won the race"
    )))
}
