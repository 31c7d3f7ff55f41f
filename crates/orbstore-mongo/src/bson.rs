//! JSON documents to BSON and back, without loss: integers stay integers (`i32` when they fit,
//! else `i64`), floats stay doubles (`1.0` comes back as a float), strings, nested objects and
//! arrays round-trip, and `_id` is the string id. BSON values JSON cannot hold (ObjectId, dates,
//! binary, decimals, NaN and infinities) are refused with `InvalidInput` naming the path.
//!
//! Keys with `.` or a leading `$` never reach this mapping: orbstore refuses them in every
//! document before any I/O (`prepare_document`), on every backend alike, instead of escaping them.

use mongodb::bson::{Bson, Document as BsonDocument};
use orbstore_core::{Document, Error, Result};
use serde_json::{Map, Number, Value};

/// A JSON value as BSON.
pub(crate) fn to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => number_to_bson(n),
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(to_bson).collect()),
        Value::Object(map) => Bson::Document(to_bson_doc(map)),
    }
}

fn number_to_bson(n: &Number) -> Bson {
    if let Some(i) = n.as_i64() {
        return match i32::try_from(i) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(i),
        };
    }
    // Integers beyond i64 are refused by `prepare_document`; what is left is a float.
    Bson::Double(n.as_f64().unwrap_or(f64::NAN))
}

/// A JSON object as a BSON document (key order kept).
pub(crate) fn to_bson_doc(map: &Map<String, Value>) -> BsonDocument {
    map.iter().map(|(k, v)| (k.clone(), to_bson(v))).collect()
}

/// A BSON document as a JSON document; `InvalidInput` naming the path of a value JSON cannot hold.
pub(crate) fn to_json_doc(doc: BsonDocument) -> Result<Document> {
    let mut out = Map::with_capacity(doc.len());
    for (k, v) in doc {
        let value = to_json(v, &k)?;
        out.insert(k, value);
    }
    Ok(out)
}

fn to_json(v: Bson, path: &str) -> Result<Value> {
    Ok(match v {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(i) => Value::from(i),
        Bson::Int64(i) => Value::from(i),
        Bson::Double(f) => Value::Number(Number::from_f64(f).ok_or_else(|| {
            Error::invalid(format!("the stored value at {path:?} is {f}, which JSON cannot hold"))
        })?),
        Bson::String(s) => Value::String(s),
        Bson::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}.{i}")))
                .collect::<Result<_>>()?,
        ),
        Bson::Document(d) => {
            let mut out = Map::with_capacity(d.len());
            for (k, v) in d {
                let value = to_json(v, &format!("{path}.{k}"))?;
                out.insert(k, value);
            }
            Value::Object(out)
        }
        other => {
            return Err(Error::invalid(format!(
                "the stored value at {path:?} is a BSON {:?}, which JSON cannot hold",
                other.element_type()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_with_their_types() {
        let doc = json!({
            "_id": "a", "small": 7, "neg": -2147483649_i64, "max": i64::MAX, "min": i64::MIN,
            "one_float": 1.0, "pi": 3.25, "s": "ü€😀", "nested": {"deep": {"deeper": [1, [2, {"x": null}]]}},
            "ключ": true, "empty": {}, "list": []
        });
        let bson = to_bson_doc(doc.as_object().unwrap());
        assert_eq!(bson.get("small"), Some(&Bson::Int32(7)));
        assert_eq!(bson.get("neg"), Some(&Bson::Int64(-2147483649)));
        assert_eq!(bson.get("one_float"), Some(&Bson::Double(1.0)));
        let back = Value::Object(to_json_doc(bson).unwrap());
        assert_eq!(back, doc);
        assert!(back["one_float"].is_f64() && back["max"].is_i64());
    }

    #[test]
    fn values_json_cannot_hold_are_invalid_input_naming_the_path() {
        let mut d = BsonDocument::new();
        d.insert("a", BsonDocument::from_iter([("b".to_owned(), Bson::Double(f64::NAN))]));
        let e = to_json_doc(d).unwrap_err();
        assert_eq!(e.kind(), orbstore_core::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a.b"), "{e}");
        let mut d = BsonDocument::new();
        d.insert("when", Bson::DateTime(mongodb::bson::DateTime::now()));
        assert!(to_json_doc(d).unwrap_err().to_string().contains("DateTime"));
    }
}
