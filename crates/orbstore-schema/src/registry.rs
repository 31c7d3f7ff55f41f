//! Schemas kept in the store itself (the `orbstore_schemas` collection, one document per
//! collection), so every process, every backup and every restore sees the same rules.

use std::time::SystemTime;

use orbstore_core::{
    validate_collection_name, CollectionExt, Document, Error, PersistenceBackend, Query, Result, ID_FIELD,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compiled::CompiledSchema;

/// The collection holding the schemas.
pub const SCHEMAS_COLLECTION: &str = "orbstore_schemas";

/// What a write that fails its collection's schema does (MongoDB's validation levels in spirit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Not checked on write (`orb validate` still reports).
    Off,
    /// Written; the violation is logged and counted.
    Warn,
    /// Refused: `InvalidInput` naming the path and the rule; nothing is written.
    #[default]
    Strict,
}

impl Mode {
    /// `off`, `warn` or `strict`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Strict => "strict",
        }
    }

    /// Parses a mode name; anything else is `InvalidInput` naming the valid ones.
    pub fn parse(s: &str) -> Result<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Mode::Off),
            "warn" => Ok(Mode::Warn),
            "strict" => Ok(Mode::Strict),
            _ => Err(Error::invalid(format!(
                "invalid validation mode {s:?}: valid modes are off, warn, strict"
            ))),
        }
    }
}

/// One collection's schema as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaEntry {
    /// The collection it governs.
    pub collection: String,
    /// The JSON Schema.
    pub schema: Value,
    /// What a failing write does.
    pub mode: Mode,
    /// When it was last set (RFC 3339).
    pub updated_at: String,
}

// Stored with the schema as JSON text, not as a nested document: a schema's keys (`$ref`,
// `$defs`, property names with dots) are not all valid document field names on every backend.
#[derive(Serialize, Deserialize)]
struct Stored {
    schema_json: String,
    mode: Mode,
    updated_at: String,
}

impl SchemaEntry {
    /// The entry for `collection`, updated now.
    pub fn new(collection: impl Into<String>, schema: Value, mode: Mode) -> SchemaEntry {
        SchemaEntry {
            collection: collection.into(),
            schema,
            mode,
            updated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }

    /// Checks the entry: a valid collection name that is not one of orbstore's own, and a schema
    /// that compiles. Returns the compiled schema.
    pub fn validate(&self) -> Result<CompiledSchema> {
        validate_collection_name(&self.collection)?;
        if self.collection.starts_with("orbstore_") {
            return Err(Error::invalid(format!(
                "{:?} is one of orbstore's own collections, whose shape orbstore keeps: it cannot have a schema",
                self.collection
            )));
        }
        CompiledSchema::compile(&self.schema)
            .map_err(|e| Error::invalid(format!("the schema of {:?}: {}", self.collection, e.message())))
    }

    fn to_document(&self) -> Result<Document> {
        let stored = Stored {
            schema_json: self.schema.to_string(),
            mode: self.mode,
            updated_at: self.updated_at.clone(),
        };
        let Value::Object(mut doc) =
            serde_json::to_value(stored).map_err(|e| Error::backend("encoding a schema", e))?
        else {
            unreachable!("a struct serializes to an object")
        };
        doc.insert(ID_FIELD.to_owned(), Value::String(self.collection.clone()));
        Ok(doc)
    }

    /// Reads a stored schema document; one that does not read is `Corrupt` naming it.
    pub fn from_document(doc: Document) -> Result<SchemaEntry> {
        let collection = orbstore_core::id_of(&doc).unwrap_or_default().to_owned();
        let corrupt =
            |why: String| Error::corrupt(format!("the stored schema of {collection:?} does not read: {why}"));
        let stored: Stored =
            serde_json::from_value(Value::Object(doc)).map_err(|e| corrupt(e.to_string()))?;
        let schema = serde_json::from_str(&stored.schema_json).map_err(|e| corrupt(e.to_string()))?;
        Ok(SchemaEntry { collection, schema, mode: stored.mode, updated_at: stored.updated_at })
    }
}

/// Stores (or replaces) a collection's schema, after checking that it compiles. Documents
/// already stored are not checked: `orb validate` reports them.
pub async fn set_schema(store: &dyn PersistenceBackend, entry: &SchemaEntry) -> Result<()> {
    entry.validate()?;
    store.collection(SCHEMAS_COLLECTION).await?.upsert(entry.to_document()?).await?;
    Ok(())
}

/// A collection's schema, if it has one.
pub async fn get_schema(store: &dyn PersistenceBackend, collection: &str) -> Result<Option<SchemaEntry>> {
    match store.collection(SCHEMAS_COLLECTION).await?.find_by_id(collection).await? {
        Some(doc) => SchemaEntry::from_document(doc).map(Some),
        None => Ok(None),
    }
}

/// Every stored schema, by collection name.
pub async fn list_schemas(store: &dyn PersistenceBackend) -> Result<Vec<SchemaEntry>> {
    let docs = store.collection(SCHEMAS_COLLECTION).await?.find(&Query::all().sort_asc(ID_FIELD)).await?;
    docs.into_iter().map(SchemaEntry::from_document).collect()
}

/// Removes a collection's schema; whether it had one.
pub async fn remove_schema(store: &dyn PersistenceBackend, collection: &str) -> Result<bool> {
    store.collection(SCHEMAS_COLLECTION).await?.delete_by_id(collection).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn modes_parse_and_name_the_valid_ones() {
        assert_eq!(Mode::parse(" Warn ").unwrap(), Mode::Warn);
        let e = Mode::parse("loud").unwrap_err();
        assert!(e.message().contains("off, warn, strict"), "{e}");
    }

    #[test]
    fn an_entry_survives_the_store_with_keys_documents_could_not_hold() {
        let schema =
            json!({"$defs": {"p": {"type": "number"}}, "properties": {"a.b": {"$ref": "#/$defs/p"}}});
        let e = SchemaEntry::new("c", schema.clone(), Mode::Warn);
        let back = SchemaEntry::from_document(e.to_document().unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn own_collections_and_bad_schemas_are_refused() {
        assert!(SchemaEntry::new("orbstore_erasures", json!({}), Mode::Strict).validate().is_err());
        let e = SchemaEntry::new("c", json!({"minimum": "x"}), Mode::Strict).validate().unwrap_err();
        assert!(e.message().contains("the schema of \"c\""), "{e}");
    }
}
