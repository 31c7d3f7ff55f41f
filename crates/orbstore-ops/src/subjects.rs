//! Data subjects (GDPR): which collections hold a person's data and at which fields, kept in the
//! store (`orbstore_subjects`, one document per collection), and the export of everything one
//! user has, live and archived, as one machine-readable document (article 20).
//!
//! Erasure (`forget`, with its ledger re-applied by restore, migrate and import) is not built
//! yet; see the README.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use futures::TryStreamExt;
use orbstore_core::{
    validate_collection_name, CollectionExt, Document, Error, FieldPath, Filter, PersistenceBackend, Query,
    Result, ID_FIELD,
};
use serde::Serialize;
use serde_json::Value;

use crate::retention::cold;

/// The collection holding the map.
pub const SUBJECTS: &str = "orbstore_subjects";

/// Which fields of which collections name a user: collection -> field paths.
pub type SubjectMap = BTreeMap<String, Vec<String>>;

/// Records that `collection`'s documents belong to the user named at any of `paths` (dotted
/// paths; `_id` when the document's id is the user's), replacing what was recorded for it.
pub async fn register(store: &dyn PersistenceBackend, collection: &str, paths: &[&str]) -> Result<()> {
    validate_collection_name(collection)?;
    if paths.is_empty() {
        return Err(Error::invalid(format!(
            "no field names a user in {collection:?}: give at least one path"
        )));
    }
    for p in paths {
        FieldPath::parse(p)
            .map_err(|e| Error::invalid(format!("the user field of {collection:?}: {}", e.message())))?;
    }
    let doc = serde_json::json!({ID_FIELD: collection, "paths": paths});
    store.collection(SUBJECTS).await?.upsert(doc.as_object().cloned().unwrap_or_default()).await?;
    Ok(())
}

/// The map stored in the store (reading creates nothing). A damaged entry is `Corrupt`.
pub async fn stored_map(store: &dyn PersistenceBackend) -> Result<SubjectMap> {
    let mut map = SubjectMap::new();
    if !store.list_collections().await?.iter().any(|c| c == SUBJECTS) {
        return Ok(map);
    }
    for doc in store.collection(SUBJECTS).await?.find_all().await? {
        let name = doc.get(ID_FIELD).and_then(Value::as_str).unwrap_or_default().to_owned();
        let paths: Option<Vec<String>> = doc
            .get("paths")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect());
        match paths {
            Some(p) if !p.is_empty() && validate_collection_name(&name).is_ok() => {
                map.insert(name, p);
            }
            _ => {
                return Err(Error::corrupt(format!(
                    "the data-subject entry {name:?} in {SUBJECTS} has no paths"
                )))
            }
        }
    }
    Ok(map)
}

/// Everything one user has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserExport {
    /// The user.
    pub user: String,
    /// When the export was made (RFC 3339).
    pub exported_at: String,
    /// The user's documents per collection, in `_id` order.
    pub collections: BTreeMap<String, Vec<Document>>,
    /// The user's documents in the cold archives, per collection.
    pub archived: BTreeMap<String, Vec<Document>>,
}

impl UserExport {
    /// Documents in all, live and archived.
    pub fn total(&self) -> usize {
        self.collections.values().chain(self.archived.values()).map(Vec::len).sum()
    }
}

/// The filter of `user`'s documents in a collection mapped at `paths`.
pub fn user_filter(paths: &[String], user: &str) -> Filter {
    Filter::or(paths.iter().map(|p| Filter::eq(p.clone(), user)))
}

/// Collects `user`'s documents from every collection of `map` that exists, and from the cold
/// archives in `archive_dir` (when given), each archive verified as it is read.
pub async fn export_user(
    store: &dyn PersistenceBackend,
    map: &SubjectMap,
    user: &str,
    archive_dir: Option<&Path>,
) -> Result<UserExport> {
    if user.is_empty() {
        return Err(Error::invalid("the user id is empty"));
    }
    let existing = store.list_collections().await?;
    let mut out = UserExport {
        user: user.to_owned(),
        exported_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        collections: BTreeMap::new(),
        archived: BTreeMap::new(),
    };
    for (name, paths) in map {
        let filter = user_filter(paths, user);
        if existing.contains(name) {
            let coll = store.collection(name).await?;
            let docs: Vec<Document> =
                coll.find_stream(&Query::new(filter.clone())).await?.try_collect().await?;
            if !docs.is_empty() {
                out.collections.insert(name.clone(), docs);
            }
        }
        if let Some(dir) = archive_dir {
            let mut found = Vec::new();
            cold::read(dir, name, None, None, |doc| {
                if filter.matches(&doc) {
                    found.push(doc);
                }
                Ok(())
            })?;
            if !found.is_empty() {
                out.archived.insert(name.clone(), found);
            }
        }
    }
    Ok(out)
}
