//! Documents: JSON objects with a string `_id`.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::id::{generate_id, validate_id, Id};

/// A document: a JSON object. Its `_id` field, a string, is its identity.
pub type Document = Map<String, Value>;

/// The name of the identity field.
pub const ID_FIELD: &str = "_id";

/// Turns a JSON value into a [`Document`]; anything but an object is `InvalidInput`.
pub fn to_document(value: Value) -> Result<Document> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::invalid(format!("a document must be a JSON object, got {}", type_name(&other)))),
    }
}

/// The `_id` of a document, when it has a string one.
pub fn id_of(doc: &Document) -> Option<&str> {
    doc.get(ID_FIELD).and_then(Value::as_str)
}

/// [`prepare_document`] for a batch: every document validated and given its id, in order; the
/// first invalid one fails the whole batch.
pub fn prepare_documents(docs: Vec<Document>) -> Result<Vec<(Id, Document)>> {
    docs.into_iter().map(|mut d| prepare_document(&mut d).map(|id| (id, d))).collect()
}

/// Validates a document for writing and returns its id, generating one when `_id` is absent.
///
/// Refuses (with `InvalidInput` naming the place): an `_id` that is not a valid string id, keys
/// that are empty, contain `.`, start with `$` or contain NUL (at any depth), and integers
/// outside the signed 64-bit range. See `docs/query-semantics.md`.
pub fn prepare_document(doc: &mut Document) -> Result<Id> {
    let id = match doc.get(ID_FIELD) {
        None => {
            let id = generate_id();
            doc.insert(ID_FIELD.to_owned(), Value::String(id.clone()));
            id
        }
        Some(Value::String(s)) => {
            validate_id(s)?;
            s.clone()
        }
        Some(other) => return Err(Error::invalid(format!("_id must be a string, got {}", type_name(other)))),
    };
    validate_fields(doc, "")?;
    Ok(id)
}

/// Validates the keys and numbers of an object at `prefix` (used for documents and for values
/// written by updates).
pub(crate) fn validate_fields(map: &Map<String, Value>, prefix: &str) -> Result<()> {
    check_map(map).map_err(|bad| bad.into_error(prefix))
}

/// Validates a value stored at `path`: nested keys and integer range.
pub(crate) fn validate_value(value: &Value, path: &str) -> Result<()> {
    check_value(value).map_err(|bad| bad.into_error(path))
}

/// A validation failure, with the path to it collected on the way out (innermost segment
/// first), so that the common case of a valid document allocates nothing.
struct Bad {
    rev_path: Vec<String>,
    problem: String,
}

impl Bad {
    fn into_error(self, prefix: &str) -> Error {
        let mut segs: Vec<&str> = Vec::with_capacity(self.rev_path.len() + 1);
        if !prefix.is_empty() {
            segs.push(prefix);
        }
        segs.extend(self.rev_path.iter().rev().map(String::as_str));
        Error::invalid(self.problem.replace('\u{0}', &format!("{:?}", segs.join("."))))
    }
}

fn check_map(map: &Map<String, Value>) -> std::result::Result<(), Bad> {
    for (key, value) in map {
        if let Some(problem) = key_problem(key) {
            return Err(Bad {
                rev_path: vec![key.clone()],
                problem: format!("document key {key:?} at \u{0} {problem}"),
            });
        }
        check_value(value).map_err(|mut bad| {
            bad.rev_path.push(key.clone());
            bad
        })?;
    }
    Ok(())
}

fn check_value(value: &Value) -> std::result::Result<(), Bad> {
    match value {
        Value::Object(map) => check_map(map),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value(item).map_err(|mut bad| {
                    bad.rev_path.push(i.to_string());
                    bad
                })?;
            }
            Ok(())
        }
        Value::Number(n) if n.is_u64() && !n.is_i64() => Err(Bad {
            rev_path: Vec::new(),
            problem: format!(
                "integer {n} at \u{0} does not fit in a signed 64-bit integer; store it as a float or a string"
            ),
        }),
        _ => Ok(()),
    }
}

fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is empty")
    } else if key.contains('.') {
        Some("contains '.', the path separator")
    } else if key.starts_with('$') {
        Some("starts with '$', which marks operators")
    } else if key.contains('\0') {
        Some("contains a NUL character")
    } else {
        None
    }
}

/// A short name for a JSON value's type, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        to_document(v).unwrap()
    }

    #[test]
    fn generates_missing_id() {
        let mut d = doc(json!({"a": 1}));
        let id = prepare_document(&mut d).unwrap();
        assert_eq!(id_of(&d), Some(id.as_str()));
    }

    #[test]
    fn keeps_given_id_and_refuses_non_string() {
        let mut d = doc(json!({"_id": "x"}));
        assert_eq!(prepare_document(&mut d).unwrap(), "x");
        let mut d = doc(json!({"_id": 5}));
        assert!(prepare_document(&mut d).unwrap_err().to_string().contains("_id must be a string"));
    }

    #[test]
    fn refuses_bad_keys_at_any_depth() {
        for (v, needle) in [
            (json!({"a.b": 1}), "\"a.b\""),
            (json!({"$a": 1}), "\"$a\""),
            (json!({"": 1}), "is empty"),
            (json!({"o": {"x.y": 1}}), "\"o.x.y\""),
            (json!({"arr": [{"$x": 1}]}), "\"arr.0.$x\""),
            (json!({"a\u{0}": 1}), "NUL"),
        ] {
            let e = prepare_document(&mut doc(v)).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn refuses_integers_beyond_i64() {
        let mut d = doc(json!({"n": u64::MAX}));
        assert!(prepare_document(&mut d).is_err());
        let mut d = doc(json!({"n": i64::MIN, "m": i64::MAX, "f": 1e300}));
        prepare_document(&mut d).unwrap();
    }

    #[test]
    fn non_objects_are_not_documents() {
        assert!(to_document(json!([1])).unwrap_err().to_string().contains("an array"));
    }
}
