//! `orb validate [--fix]`: stored documents checked against their collections' schemas
//! (`orbstore_schema`), streamed, each violation reported with the document's id and path; and
//! with `fix`, repaired by [`orbstore_schema::sanitize`](mod@orbstore_schema::sanitize)'s documented rules, writing only what
//! then validates.
//!
//! The scan holds only the ids of failing documents; the repair then reads them again in
//! batches, so it never writes while a read of the same collection is open, and a document
//! changed since the scan is judged as it is now. A document changed by another writer between
//! that second read and the repair's write is overwritten by the repair.

use std::sync::Arc;

use futures::TryStreamExt;
use orbstore_core::{id_of, Error, Filter, PersistenceBackend, Query, Result, ID_FIELD};
use orbstore_schema::{
    get_schema, list_schemas, sanitize, Change, CompiledSchema, Mode, Violation, SCHEMAS_COLLECTION,
};
use serde::Serialize;
use serde_json::Value;

use crate::progress::{NoProgress, Progress, Unit};

/// How many failing documents are read back and repaired at a time.
pub const FIX_BATCH: usize = 1_000;

/// What to check.
pub struct ValidateOptions {
    /// One collection (it must have a schema); none: every collection that has one.
    pub collection: Option<String>,
    /// Repair what the rules can, and write it.
    pub fix: bool,
    /// At most this many failing documents are listed per collection (all are counted).
    pub max_listed: usize,
    /// Progress of each collection's scan.
    pub progress: Arc<dyn Progress>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { collection: None, fix: false, max_listed: 1_000, progress: Arc::new(NoProgress) }
    }
}

/// One failing document.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidDocument {
    /// Its id.
    pub id: String,
    /// How it fails (with `fix`: how it still fails after the repair, empty when repaired).
    pub violations: Vec<Violation>,
    /// With `fix`: what the rules changed (written only when `fixed`).
    pub changes: Vec<Change>,
    /// With `fix`: the repaired document validates and was written.
    pub fixed: bool,
}

/// One collection's result.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionValidation {
    /// The collection.
    pub collection: String,
    /// Its schema's mode on write.
    pub mode: Mode,
    /// Documents read.
    pub scanned: u64,
    /// Documents failing the schema.
    pub invalid: u64,
    /// Of those, repaired and written.
    pub fixed: u64,
    /// Of those, that the rules could not repair (left as they were).
    pub unfixable: u64,
    /// Failing documents, the first `max_listed`.
    pub documents: Vec<InvalidDocument>,
}

/// The result of [`validate`].
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// Per collection with a schema, by name.
    pub collections: Vec<CollectionValidation>,
    /// Whether repairs were written.
    pub fix: bool,
}

impl ValidateReport {
    /// Failing documents left as they were (all of them without `fix`).
    pub fn remaining(&self) -> u64 {
        self.collections.iter().map(|c| c.invalid - c.fixed).sum()
    }
}

/// Checks (and with `fix`, repairs) stored documents against their collections' schemas.
pub async fn validate(store: &dyn PersistenceBackend, options: &ValidateOptions) -> Result<ValidateReport> {
    validate_with_schemas_of(store, store, options).await
}

/// Checks the documents of `store` against the schemas stored in `schemas`: a legacy import
/// staged in memory, checked whole against the target's schemas before anything is written.
pub async fn validate_with_schemas_of(
    schemas: &dyn PersistenceBackend,
    store: &dyn PersistenceBackend,
    options: &ValidateOptions,
) -> Result<ValidateReport> {
    let has_schemas = schemas.list_collections().await?.iter().any(|c| c == SCHEMAS_COLLECTION);
    let entries = match &options.collection {
        Some(name) => {
            let entry = if has_schemas { get_schema(schemas, name).await? } else { None };
            vec![entry.ok_or_else(|| {
                Error::invalid(format!("{name:?} has no schema (`orb schema set {name} FILE` gives it one)"))
            })?]
        }
        None if has_schemas => list_schemas(schemas).await?,
        None => Vec::new(),
    };
    let existing = store.list_collections().await?;
    let mut collections = Vec::new();
    for entry in entries {
        let schema = entry.validate()?;
        let mut out = CollectionValidation {
            collection: entry.collection.clone(),
            mode: entry.mode,
            scanned: 0,
            invalid: 0,
            fixed: 0,
            unfixable: 0,
            documents: Vec::new(),
        };
        if existing.contains(&entry.collection) {
            let failing = scan(store, &schema, options, &mut out).await?;
            if options.fix {
                repair(store, &schema, &entry.schema, failing, options, &mut out).await?;
            }
        }
        collections.push(out);
    }
    Ok(ValidateReport { collections, fix: options.fix })
}

/// Reads every document once; returns the ids of the failing ones.
async fn scan(
    store: &dyn PersistenceBackend,
    schema: &CompiledSchema,
    options: &ValidateOptions,
    out: &mut CollectionValidation,
) -> Result<Vec<String>> {
    let coll = store.collection(&out.collection).await?;
    let progress = &options.progress;
    let total = if progress.wants_totals() { Some(coll.count(&Filter::all()).await?) } else { None };
    progress.begin(&format!("validate {}", out.collection), total, Unit::Documents);
    let mut stream = coll.find_stream(&Query::all()).await?;
    let mut failing = Vec::new();
    while let Some(mut doc) = stream.try_next().await? {
        out.scanned += 1;
        progress.advance(1);
        let violations = schema.document_violations(&mut doc);
        if violations.is_empty() {
            continue;
        }
        out.invalid += 1;
        let id = id_of(&doc).unwrap_or_default().to_owned();
        if options.fix {
            failing.push(id);
        } else if out.documents.len() < options.max_listed {
            out.documents.push(InvalidDocument { id, violations, changes: Vec::new(), fixed: false });
        }
    }
    progress.end();
    Ok(failing)
}

/// Reads the failing documents again, repairs, writes what then validates.
async fn repair(
    store: &dyn PersistenceBackend,
    schema: &CompiledSchema,
    source: &Value,
    failing: Vec<String>,
    options: &ValidateOptions,
    out: &mut CollectionValidation,
) -> Result<()> {
    let coll = store.collection(&out.collection).await?;
    // Recounted from what the second read finds: a document fixed or deleted since the scan
    // is no longer failing.
    out.invalid = 0;
    for batch in failing.chunks(FIX_BATCH) {
        let filter = Filter::is_in(ID_FIELD, batch.iter().map(|id| Value::String(id.clone())));
        for doc in coll.find(&Query::new(filter)).await? {
            let id = id_of(&doc).unwrap_or_default().to_owned();
            let mut value = Value::Object(doc);
            if schema.is_valid(&value) {
                continue;
            }
            out.invalid += 1;
            let changes = sanitize(source, &mut value);
            let violations = schema.violations(&value);
            let fixed = violations.is_empty() && !changes.is_empty();
            if fixed {
                let Value::Object(repaired) = value else { unreachable!("a document stays an object") };
                coll.upsert(repaired).await?;
                out.fixed += 1;
            } else {
                out.unfixable += 1;
            }
            if out.documents.len() < options.max_listed {
                out.documents.push(InvalidDocument { id, violations, changes, fixed });
            }
        }
    }
    Ok(())
}
