//! Data subjects (GDPR): which collections hold a person's data and at which fields, kept in the
//! store (`orbstore_subjects`, one document per collection), and the export of everything one
//! user has, live and archived, as one machine-readable document (article 20).
//!
//! [`forget_user`] erases one user: their documents in every mapped collection and in the cold
//! archives, then compaction so their values leave the store's files, and a tombstone in the
//! erasure ledger (`orbstore_erasures`) that holds no personal data: a keyed hash of the id
//! (HMAC-SHA-256 with a random key kept in the ledger), the time, the collections touched. The
//! audit log is never touched. [`Erasures`] re-applies the ledger: restore leaves out every
//! document of an erased user (migrate and import do not yet; see the README).

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

use crate::audit::AUDIT_COLLECTION;
use crate::retention::cold;

/// The erasure ledger.
pub const ERASURES: &str = "orbstore_erasures";

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

/// The filter of `user`'s documents in a collection mapped at `paths`: the id as a string, and
/// as a number too when it is an integer's canonical form (`42`, not `042`), since applications
/// store numeric user ids as numbers.
pub fn user_filter(paths: &[String], user: &str) -> Filter {
    let number = user.parse::<i64>().ok().filter(|n| n.to_string() == user);
    Filter::or(paths.iter().flat_map(|p| {
        let as_number = number.map(|n| Filter::eq(p.clone(), n));
        std::iter::once(Filter::eq(p.clone(), user)).chain(as_number)
    }))
}

/// A stored user id as the string `user_filter` matches it: a string, or a whole number (`42`
/// and `42.0` alike, since the filter's numeric equality matches both).
fn id_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(std::borrow::Cow::Owned(i.to_string())),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                Some(std::borrow::Cow::Owned((f as i64).to_string()))
            }
            _ => None,
        },
        _ => None,
    }
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

/// What [`forget_user`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForgetReport {
    /// The tombstone's id in the ledger: the keyed hash of the user id (no personal data).
    pub tombstone: String,
    /// Documents deleted per collection (only those that held some).
    pub deleted: BTreeMap<String, u64>,
    /// Documents removed from the cold archives per collection.
    pub archived_removed: BTreeMap<String, u64>,
    /// What compaction did (or why it could not), so the values leave the store's files too.
    pub compaction: Vec<String>,
}

/// The ledger's key: 32 random bytes, created by the first erasure.
async fn ledger_key(store: &dyn PersistenceBackend, create: bool) -> Result<Vec<u8>> {
    let ledger = store.collection(ERASURES).await?;
    if let Some(doc) = ledger.find_by_id("key").await? {
        if let Some(k) = doc.get("hmac_sha256_key").and_then(Value::as_str).and_then(|h| hex::decode(h).ok())
        {
            return Ok(k);
        }
        return Err(Error::corrupt(format!("the key of the erasure ledger {ERASURES} is unreadable")));
    }
    if !create {
        // Tombstones without their key can never be matched again: that is damage to report,
        // never something to paper over with a fresh key.
        return Err(Error::corrupt(format!(
            "the erasure ledger {ERASURES} holds tombstones but no key: erased users cannot be recognized"
        )));
    }
    let key: [u8; 32] = rand::random();
    let doc = serde_json::json!({ID_FIELD: "key", "hmac_sha256_key": hex::encode(key)});
    // insert, not upsert: two first erasures at once must agree on one key.
    match ledger.insert_one(doc.as_object().cloned().unwrap_or_default()).await {
        Ok(_) => Ok(key.to_vec()),
        Err(e) if e.kind() == orbstore_core::ErrorKind::Conflict => Box::pin(ledger_key(store, false)).await,
        Err(e) => Err(e),
    }
}

/// HMAC-SHA-256 of the user id under the ledger's key, as hex.
fn keyed_hash(key: &[u8], user: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(user.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Erases `user` from every collection of `map` (the audit log excepted) and from the cold
/// archives in `archive_dir`, records the tombstone, then compacts the store.
pub async fn forget_user(
    store: &dyn PersistenceBackend,
    map: &SubjectMap,
    user: &str,
    archive_dir: Option<&Path>,
) -> Result<ForgetReport> {
    if user.is_empty() {
        return Err(Error::invalid("the user id is empty"));
    }
    let key = ledger_key(store, true).await?;
    let tombstone = keyed_hash(&key, user);
    // The tombstone first: a crash or an error midway leaves it `pending`, so restore, migrate
    // and import already leave the user out, and forgetting again finishes the erasure.
    let ledger = store.collection(ERASURES).await?;
    let earlier = ledger.find_by_id(&tombstone).await?;
    let first_at = earlier.as_ref().and_then(|d| d.get("first_at").cloned());
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let first_at = first_at.unwrap_or_else(|| Value::String(now.clone()));
    let pending =
        serde_json::json!({ID_FIELD: tombstone, "state": "pending", "first_at": first_at, "at": now});
    ledger.upsert(pending.as_object().cloned().unwrap_or_default()).await?;
    store.flush().await?;
    let existing = store.list_collections().await?;
    // The cold archives are this erasure's alone while it rewrites them (see `cold::lock`).
    let _lock = match archive_dir {
        Some(dir) => {
            let dir = dir.to_owned();
            Some(
                tokio::task::spawn_blocking(move || cold::lock(&dir))
                    .await
                    .map_err(|e| Error::backend("the archive lock thread failed", e))??,
            )
        }
        None => None,
    };
    let mut report = ForgetReport {
        tombstone: tombstone.clone(),
        deleted: BTreeMap::new(),
        archived_removed: BTreeMap::new(),
        compaction: Vec::new(),
    };
    for (name, paths) in map.iter().filter(|(n, _)| n.as_str() != AUDIT_COLLECTION) {
        let filter = user_filter(paths, user);
        if existing.contains(name) {
            let n = store.collection(name).await?.delete_many(&filter).await?;
            if n > 0 {
                report.deleted.insert(name.clone(), n);
            }
        }
        if let Some(dir) = archive_dir {
            let (dir, name2, f) = (dir.to_owned(), name.clone(), filter.clone());
            let n =
                tokio::task::spawn_blocking(move || cold::remove_matching(&dir, &name2, &|d| f.matches(d)))
                    .await
                    .map_err(|e| Error::backend("the archive rewriting thread failed", e))??;
            if n > 0 {
                report.archived_removed.insert(name.clone(), n);
            }
        }
    }
    let mut touched: Vec<String> =
        report.deleted.keys().chain(report.archived_removed.keys()).cloned().collect();
    // Forgetting again keeps what the earlier erasures touched.
    if let Some(Value::Array(before)) = earlier.as_ref().and_then(|d| d.get("collections")) {
        touched.extend(before.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    touched.sort();
    touched.dedup();
    let doc = serde_json::json!({
        ID_FIELD: tombstone,
        "state": "complete",
        "first_at": first_at,
        "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "collections": touched,
    });
    ledger.upsert(doc.as_object().cloned().unwrap_or_default()).await?;
    store.flush().await?;
    report.compaction = match store.compact().await {
        Ok(c) => c.actions,
        Err(e) => vec![format!("not compacted: {e}")],
    };
    Ok(report)
}

/// Whether `user` has a tombstone in the store's ledger.
pub async fn is_forgotten(store: &dyn PersistenceBackend, user: &str) -> Result<bool> {
    if !store.list_collections().await?.iter().any(|c| c == ERASURES) {
        return Ok(false);
    }
    let ledger = store.collection(ERASURES).await?;
    if ledger.count(&Filter::All).await? == 0 {
        return Ok(false);
    }
    let key = ledger_key(store, false).await?;
    Ok(ledger.find_by_id(&keyed_hash(&key, user)).await?.is_some())
}

/// The erasure ledger of a store, to leave erased users' documents out of what is written into
/// it (restore re-applies it, so an old backup does not bring an erased user back).
#[derive(Debug, Clone)]
pub struct Erasures {
    key: Vec<u8>,
    tombstones: std::collections::HashSet<String>,
    map: SubjectMap,
}

impl Erasures {
    /// The ledger of `store` with the data-subject `map` to apply it through; `None` when the
    /// store has erased nobody.
    pub async fn load(store: &dyn PersistenceBackend, map: SubjectMap) -> Result<Option<Erasures>> {
        if !store.list_collections().await?.iter().any(|c| c == ERASURES) {
            return Ok(None);
        }
        let docs = store.collection(ERASURES).await?.find_all().await?;
        let tombstones: std::collections::HashSet<String> = docs
            .iter()
            .filter_map(|d| d.get(ID_FIELD).and_then(Value::as_str))
            .filter(|id| *id != "key")
            .map(str::to_owned)
            .collect();
        if tombstones.is_empty() {
            return Ok(None);
        }
        Ok(Some(Erasures { key: ledger_key(store, false).await?, tombstones, map }))
    }

    /// Whether `doc` of `collection` names an erased user at a mapped field.
    pub fn erased(&self, collection: &str, doc: &Document) -> bool {
        let Some(paths) = self.map.get(collection) else { return false };
        paths.iter().any(|p| {
            // As `user_filter`'s equality does: a string or an integer, or one inside an array.
            FieldPath::new(p.clone())
                .resolve(doc)
                .into_iter()
                .flatten()
                .flat_map(|v| match v {
                    Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    other => vec![other],
                })
                .filter_map(id_text)
                .any(|v| self.tombstones.contains(&keyed_hash(&self.key, &v)))
        })
    }

    /// How many users the ledger holds.
    pub fn len(&self) -> usize {
        self.tombstones.len()
    }

    /// Whether it holds none (never, for a loaded ledger).
    pub fn is_empty(&self) -> bool {
        self.tombstones.is_empty()
    }
}

/// Deletes every document of `store` that names a user its erasure ledger has erased, through
/// `map` (what the legacy import runs after writing: an import may carry an erased user back).
/// Returns how many were deleted per collection; nothing without a ledger.
pub async fn reapply_ledger(
    store: &dyn PersistenceBackend,
    map: &SubjectMap,
) -> Result<BTreeMap<String, u64>> {
    let mut deleted = BTreeMap::new();
    let Some(erasures) = Erasures::load(store, map.clone()).await? else { return Ok(deleted) };
    let existing = store.list_collections().await?;
    for name in map.keys().filter(|n| existing.contains(n) && n.as_str() != AUDIT_COLLECTION) {
        let coll = store.collection(name).await?;
        let mut ids = Vec::new();
        let mut stream = coll.find_stream(&Query::all()).await?;
        while let Some(doc) = stream.try_next().await? {
            if erasures.erased(name, &doc) {
                ids.extend(doc.get(ID_FIELD).cloned());
            }
        }
        let mut n = 0;
        for chunk in ids.chunks(1000) {
            n += coll.delete_many(&Filter::is_in(ID_FIELD, chunk.to_vec())).await?;
        }
        if n > 0 {
            deleted.insert(name.clone(), n);
        }
    }
    Ok(deleted)
}

/// The backups in `dir` (the archives `orbstore_ops::backup` names there) holding a document of
/// `user` through `map`, each read whole and verified. Blocking.
pub fn backups_holding(dir: &Path, map: &SubjectMap, user: &str) -> Result<Vec<std::path::PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| crate::rotation::parse_archive_name(n).is_some())
        })
        .collect();
    paths.sort();
    let mut holding = Vec::new();
    for path in paths {
        struct Finds<'a> {
            map: &'a SubjectMap,
            user: &'a str,
            found: bool,
        }
        impl crate::verify::Visitor for Finds<'_> {
            fn document(&mut self, c: &str, doc: Document, _bytes: usize) -> Result<()> {
                if let Some(paths) = self.map.get(c) {
                    self.found |= user_filter(paths, self.user).matches(&doc);
                }
                Ok(())
            }
        }
        let mut finds = Finds { map, user, found: false };
        crate::verify::read_archive(&path, &mut finds, true, &crate::progress::NoProgress)?.check()?;
        if finds.found {
            holding.push(path);
        }
    }
    Ok(holding)
}

/// Rewrites the backup at `path` without `user`'s documents: the archive is read and verified,
/// the new one (same compression, same manifest but for the changed counts and hashes) written
/// to `<path>.partial`, fsynced and renamed over it. Returns how many documents were removed.
/// Blocking.
pub fn rewrite_backup_without(path: &Path, map: &SubjectMap, user: &str) -> Result<u64> {
    use crate::builder::ArchiveBuilder;
    struct Rewrite<'a> {
        builder: Option<ArchiveBuilder>,
        map: &'a SubjectMap,
        user: &'a str,
        removed: u64,
    }
    impl crate::verify::Visitor for Rewrite<'_> {
        fn indexes(&mut self, c: &str, specs: &[orbstore_core::IndexSpec]) -> Result<()> {
            self.builder.as_mut().expect("open until the end").begin_collection(c.to_owned(), specs.to_vec())
        }
        fn document(&mut self, c: &str, doc: Document, _bytes: usize) -> Result<()> {
            if self.map.get(c).is_some_and(|paths| user_filter(paths, self.user).matches(&doc)) {
                self.removed += 1;
                return Ok(());
            }
            self.builder.as_mut().expect("open until the end").document(&doc)
        }
        fn end_documents(&mut self, _c: &str, _d: &crate::canonical::ContentDigest) -> Result<()> {
            self.builder.as_mut().expect("open until the end").end_collection()
        }
    }
    let partial = crate::fsutil::partial_path(path);
    let result = (|| {
        let compression = crate::archive::open(path)?.compression;
        let file = std::fs::File::create(&partial)
            .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
        let mtime = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let dir = crate::fsutil::parent_dir(path);
        let mut rewrite = Rewrite {
            builder: Some(ArchiveBuilder::new(file, &dir, compression, mtime)),
            map,
            user,
            removed: 0,
        };
        let manifest =
            crate::verify::read_archive(path, &mut rewrite, true, &crate::progress::NoProgress)?.check()?;
        let builder = rewrite.builder.take().expect("open until the end");
        let (file, _) = builder.finish(manifest)?;
        crate::fsutil::commit(file, &partial, path)?;
        Ok(rewrite.removed)
    })();
    if result.is_err() {
        crate::fsutil::discard(&partial);
    }
    result
}
