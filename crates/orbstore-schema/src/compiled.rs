//! A schema compiled for validation, and the violations it reports.

use jsonschema::Validator;
use orbstore_core::{Document, Error, Result, ID_FIELD};
use serde::Serialize;
use serde_json::Value;

/// One way a document fails its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where in the document, as a JSON pointer (`/profile/epsilon`; empty for the document).
    pub path: String,
    /// The schema keyword that failed (`type`, `required`, `maximum`, ...).
    pub rule: String,
    /// What was wrong, in words.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() { "/" } else { &self.path };
        write!(f, "at {path}: {} ({})", self.message, self.rule)
    }
}

/// A collection's schema, compiled once and used for every document.
pub struct CompiledSchema {
    source: Value,
    validator: Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema").field("source", &self.source).finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles `schema`; a schema that is not valid JSON Schema (for the draft its `$schema`
    /// names, 2020-12 when none) is `InvalidInput` saying why. Only references inside the
    /// schema resolve: nothing is fetched.
    ///
    /// The store's `_id` field is allowed by `properties`, `additionalProperties` and
    /// `unevaluatedProperties` at the top level: when the schema does not declare `_id`, it is
    /// added as "anything" to the compiled copy's `properties`, so that `additionalProperties:
    /// false` does not reject every stored document. (Keywords that limit property names or
    /// counts, `propertyNames` and `maxProperties`, still count it.)
    pub fn compile(schema: &Value) -> Result<CompiledSchema> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(Error::invalid(format!(
                "a schema must be a JSON object or a boolean, not {}",
                orbstore_core::type_name(schema)
            )));
        }
        let mut compiled = schema.clone();
        if let Some(top) = compiled.as_object_mut() {
            let closes =
                ["additionalProperties", "unevaluatedProperties"].iter().any(|k| top.contains_key(*k));
            if closes || top.contains_key("properties") {
                if let Some(props) = top
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Default::default()))
                    .as_object_mut()
                {
                    props.entry(ID_FIELD).or_insert(Value::Bool(true));
                }
            }
        }
        let mut options = jsonschema::options();
        if schema.get("$schema").is_none() {
            // Said, not left to the crate's default: a stored schema keeps its meaning across
            // upgrades of the validator. A declared `$schema` picks its own draft.
            options = options.with_draft(jsonschema::Draft::Draft202012);
        }
        let validator =
            options.build(&compiled).map_err(|e| Error::invalid(format!("not a valid JSON Schema: {e}")))?;
        Ok(CompiledSchema { source: schema.clone(), validator })
    }

    /// The schema as it was given.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether `doc` matches.
    pub fn is_valid(&self, doc: &Value) -> bool {
        self.validator.is_valid(doc)
    }

    /// Every way `doc` fails the schema (empty when it matches).
    pub fn violations(&self, doc: &Value) -> Vec<Violation> {
        self.validator
            .iter_errors(doc)
            .map(|e| Violation {
                path: e.instance_path().as_str().to_owned(),
                rule: e.kind().keyword().to_owned(),
                message: e.to_string(),
            })
            .collect()
    }

    /// Every way a document fails the schema. Validating needs the document as a `Value`: the
    /// map is moved into one and back (hence `&mut`), never cloned, since this runs on every
    /// write to a collection with a schema.
    pub fn document_violations(&self, doc: &mut Document) -> Vec<Violation> {
        let value = Value::Object(std::mem::take(doc));
        let found = if self.validator.is_valid(&value) { Vec::new() } else { self.violations(&value) };
        if let Value::Object(map) = value {
            *doc = map;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_violation_names_its_path_and_rule() {
        let s = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"epsilon": {"type": "number", "maximum": 1}},
            "required": ["user"]
        }))
        .unwrap();
        let v = s.violations(&json!({"epsilon": 2}));
        let mut rules: Vec<_> = v.iter().map(|v| (v.path.as_str(), v.rule.as_str())).collect();
        rules.sort();
        assert_eq!(rules, vec![("", "required"), ("/epsilon", "maximum")]);
        assert!(s.is_valid(&json!({"user": "u", "epsilon": 0.5})));
    }

    #[test]
    fn the_id_is_always_allowed() {
        let s = CompiledSchema::compile(&json!({
            "type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false
        }))
        .unwrap();
        assert!(s.is_valid(&json!({"_id": "x", "a": 1})));
        assert!(!s.is_valid(&json!({"_id": "x", "a": 1, "b": 2})));
        let closed =
            CompiledSchema::compile(&json!({"type": "object", "additionalProperties": false})).unwrap();
        assert!(closed.is_valid(&json!({"_id": "x"})) && !closed.is_valid(&json!({"_id": "x", "b": 2})));
        assert_eq!(s.source()["properties"].as_object().unwrap().len(), 1, "the source is unchanged");
    }

    #[test]
    fn a_bad_schema_is_refused_with_the_reason() {
        let e = CompiledSchema::compile(&json!({"type": "bogus"})).unwrap_err();
        assert_eq!(e.kind(), orbstore_core::ErrorKind::InvalidInput);
        assert!(e.message().contains("not a valid JSON Schema"), "{e}");
        assert!(CompiledSchema::compile(&json!([1])).is_err());
    }
}
