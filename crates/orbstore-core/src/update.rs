//! Updates: `$set`, `$unset`, `$inc`, parsed from JSON or built in Rust, and their reference
//! application. The rules are in `docs/query-semantics.md` ("Updates").

use serde_json::{Map, Number, Value};

use crate::document::{type_name, validate_value, Document, ID_FIELD};
use crate::error::{Error, Result};
use crate::path::{parse_index, FieldPath};

/// One update operation.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// `$set`: write the value at the path, creating missing objects on the way.
    Set(FieldPath, Value),
    /// `$unset`: remove the field (a missing field is left alone).
    Unset(FieldPath),
    /// `$inc`: add a number (a missing field becomes the increment).
    Inc(FieldPath, Value),
}

impl UpdateOp {
    /// The path the operation writes.
    pub fn path(&self) -> &FieldPath {
        match self {
            UpdateOp::Set(p, _) | UpdateOp::Unset(p) | UpdateOp::Inc(p, _) => p,
        }
    }
}

/// An update: a list of operations applied in order to each matched document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    /// The operations.
    pub ops: Vec<UpdateOp>,
}

impl Update {
    /// An empty update (invalid until an operation is added).
    pub fn new() -> Update {
        Update::default()
    }

    /// Adds `$set: {path: value}`.
    pub fn set(mut self, path: impl Into<String>, value: impl Into<Value>) -> Update {
        self.ops.push(UpdateOp::Set(FieldPath::new(path), value.into()));
        self
    }

    /// Adds `$unset: {path: ""}`.
    pub fn unset(mut self, path: impl Into<String>) -> Update {
        self.ops.push(UpdateOp::Unset(FieldPath::new(path)));
        self
    }

    /// Adds `$inc: {path: by}`.
    pub fn inc(mut self, path: impl Into<String>, by: impl Into<Value>) -> Update {
        self.ops.push(UpdateOp::Inc(FieldPath::new(path), by.into()));
        self
    }

    /// Parses `{"$set": {...}, "$unset": {...}, "$inc": {...}}`.
    pub fn from_json(value: &Value) -> Result<Update> {
        let Value::Object(m) = value else {
            return Err(Error::invalid(format!("an update must be a JSON object, got {}", type_name(value))));
        };
        let mut u = Update::new();
        for (op, fields) in m {
            if !matches!(op.as_str(), "$set" | "$unset" | "$inc") {
                return Err(if op.starts_with('$') {
                    Error::invalid(format!("unknown update operator {op:?} (supported: $set, $unset, $inc)"))
                } else {
                    Error::invalid(format!(
                        "update key {op:?} is not an operator; to replace a whole document use upsert"
                    ))
                });
            }
            let Value::Object(fields) = fields else {
                return Err(Error::invalid(format!(
                    "{op} needs an object of fields, got {}",
                    type_name(fields)
                )));
            };
            for (path, v) in fields {
                let path = FieldPath::parse(path)?;
                u.ops.push(match op.as_str() {
                    "$set" => UpdateOp::Set(path, v.clone()),
                    "$unset" => UpdateOp::Unset(path),
                    _ => UpdateOp::Inc(path, v.clone()),
                });
            }
        }
        u.validate()?;
        Ok(u)
    }

    /// The update in the MongoDB JSON shape.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for op in &self.ops {
            let (name, path, v) = match op {
                UpdateOp::Set(p, v) => ("$set", p, v.clone()),
                UpdateOp::Unset(p) => ("$unset", p, Value::String(String::new())),
                UpdateOp::Inc(p, v) => ("$inc", p, v.clone()),
            };
            if let Value::Object(m) = out.entry(name).or_insert_with(|| Value::Object(Map::new())) {
                m.insert(path.as_str().to_owned(), v);
            }
        }
        Value::Object(out)
    }

    /// Checks: at least one operation, valid paths, `_id` untouched, no two operations on one
    /// path or on a path and its prefix, `$inc` operands are numbers, `$set` values follow the
    /// document rules.
    pub fn validate(&self) -> Result<()> {
        if self.ops.is_empty() {
            return Err(Error::invalid("an update needs at least one of $set, $unset, $inc"));
        }
        for op in &self.ops {
            let path = op.path();
            path.validate()?;
            if path.segments().next() == Some(ID_FIELD) {
                return Err(Error::invalid(format!("an update cannot change _id (path {path:?})")));
            }
            match op {
                UpdateOp::Set(p, v) => validate_value(v, p.as_str())?,
                UpdateOp::Inc(p, v) if !v.is_number() => {
                    return Err(Error::invalid(format!("$inc on {p:?} needs a number, got {}", type_name(v))))
                }
                UpdateOp::Inc(p, v) => validate_value(v, p.as_str())?,
                UpdateOp::Unset(_) => {}
            }
        }
        for (i, a) in self.ops.iter().enumerate() {
            for b in &self.ops[i + 1..] {
                let (a, b) = (a.path().as_str(), b.path().as_str());
                if a == b || is_prefix(a, b) || is_prefix(b, a) {
                    return Err(Error::invalid(format!(
                        "update paths {a:?} and {b:?} conflict: one operation per field"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies the update to a document. On error the document is left unchanged.
    pub fn apply(&self, doc: &mut Document) -> Result<()> {
        let mut work = doc.clone();
        for op in &self.ops {
            let segs: Vec<&str> = op.path().segments().collect();
            match op {
                UpdateOp::Set(p, v) => set_in_map(&mut work, &segs, v.clone(), p)?,
                UpdateOp::Unset(_) => unset_in_map(&mut work, &segs),
                UpdateOp::Inc(p, by) => {
                    let by = by.as_number().ok_or_else(|| {
                        Error::invalid(format!("$inc on {p:?} needs a number, got {}", type_name(by)))
                    })?;
                    let new = match get_in_map(&work, &segs) {
                        None => Value::Number(by.clone()),
                        Some(Value::Number(cur)) => Value::Number(add_numbers(cur, by, p)?),
                        Some(other) => {
                            return Err(Error::invalid(format!(
                                "$inc on {p:?}: the field holds {}, not a number",
                                type_name(other)
                            )))
                        }
                    };
                    set_in_map(&mut work, &segs, new, p)?;
                }
            }
        }
        *doc = work;
        Ok(())
    }
}

impl TryFrom<Value> for Update {
    type Error = Error;
    fn try_from(value: Value) -> Result<Update> {
        Update::from_json(&value)
    }
}

fn is_prefix(prefix: &str, path: &str) -> bool {
    path.len() > prefix.len() && path.starts_with(prefix) && path.as_bytes()[prefix.len()] == b'.'
}

fn add_numbers(a: &Number, b: &Number, path: &FieldPath) -> Result<Number> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.checked_add(y).map(Number::from).ok_or_else(|| {
            Error::invalid(format!("$inc on {path:?} overflows a 64-bit integer ({x} + {y})"))
        });
    }
    let sum = a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0);
    Number::from_f64(sum).ok_or_else(|| Error::invalid(format!("$inc on {path:?} gives a non-finite number")))
}

fn get_in_map<'a>(map: &'a Map<String, Value>, segs: &[&str]) -> Option<&'a Value> {
    let (first, rest) = segs.split_first()?;
    let mut cur = map.get(*first)?;
    for seg in rest {
        cur = match cur {
            Value::Object(m) => m.get(*seg)?,
            Value::Array(items) => items.get(parse_index(seg)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn set_in_map(map: &mut Map<String, Value>, segs: &[&str], value: Value, path: &FieldPath) -> Result<()> {
    let Some((first, rest)) = segs.split_first() else { return Ok(()) };
    if rest.is_empty() {
        map.insert((*first).to_owned(), value);
        return Ok(());
    }
    let child = map.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
    set_in_value(child, rest, value, path)
}

fn set_in_value(target: &mut Value, segs: &[&str], value: Value, path: &FieldPath) -> Result<()> {
    match target {
        Value::Object(m) => set_in_map(m, segs, value, path),
        Value::Array(items) => {
            let Some((seg, rest)) = segs.split_first() else { return Ok(()) };
            let Some(index) = parse_index(seg) else {
                return Err(Error::invalid(format!(
                    "cannot set {path:?}: {seg:?} is not an index into the array on the way"
                )));
            };
            if index > 1_000_000 {
                return Err(Error::invalid(format!("cannot set {path:?}: index {index} is too large")));
            }
            if items.len() <= index {
                items.resize(index + 1, Value::Null);
            }
            if rest.is_empty() {
                items[index] = value;
                Ok(())
            } else {
                if items[index].is_null() {
                    items[index] = Value::Object(Map::new());
                }
                set_in_value(&mut items[index], rest, value, path)
            }
        }
        other => {
            Err(Error::invalid(format!("cannot set {path:?}: the path passes through {}", type_name(other))))
        }
    }
}

fn unset_in_map(map: &mut Map<String, Value>, segs: &[&str]) {
    let Some((first, rest)) = segs.split_first() else { return };
    if rest.is_empty() {
        map.remove(*first);
        return;
    }
    let mut cur = match map.get_mut(*first) {
        Some(v) => v,
        None => return,
    };
    for (i, seg) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        cur = match cur {
            Value::Object(m) if last => {
                m.remove(*seg);
                return;
            }
            Value::Object(m) => match m.get_mut(*seg) {
                Some(v) => v,
                None => return,
            },
            Value::Array(items) => match parse_index(seg) {
                // As MongoDB: unsetting an array element leaves a null in its place.
                Some(idx) if last => {
                    if let Some(slot) = items.get_mut(idx) {
                        *slot = Value::Null;
                    }
                    return;
                }
                Some(idx) => match items.get_mut(idx) {
                    Some(v) => v,
                    None => return,
                },
                None => return,
            },
            _ => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(u: Value, d: Value) -> Result<Value> {
        let mut doc = d.as_object().unwrap().clone();
        Update::from_json(&u)?.apply(&mut doc)?;
        Ok(Value::Object(doc))
    }

    #[test]
    fn set_unset_inc() {
        assert_eq!(apply(json!({"$set": {"a.b": 1}}), json!({})).unwrap(), json!({"a": {"b": 1}}));
        assert_eq!(apply(json!({"$unset": {"a": ""}}), json!({"a": 1, "b": 2})).unwrap(), json!({"b": 2}));
        assert_eq!(apply(json!({"$unset": {"x.y": ""}}), json!({"a": 1})).unwrap(), json!({"a": 1}));
        assert_eq!(apply(json!({"$inc": {"n": 2}}), json!({"n": 1})).unwrap(), json!({"n": 3}));
        assert_eq!(apply(json!({"$inc": {"n": 0.5}}), json!({"n": 1})).unwrap(), json!({"n": 1.5}));
        assert_eq!(apply(json!({"$inc": {"n": 2}}), json!({})).unwrap(), json!({"n": 2}));
        assert_eq!(
            apply(json!({"$set": {"a.2": "x"}}), json!({"a": [1]})).unwrap(),
            json!({"a": [1, null, "x"]})
        );
    }

    #[test]
    fn errors_name_the_field() {
        for (u, d, needle) in [
            (json!({"$inc": {"s": 1}}), json!({"s": "x"}), "\"s\""),
            (json!({"$inc": {"n": "1"}}), json!({}), "$inc on \"n\" needs a number"),
            (json!({"$inc": {"n": 1}}), json!({"n": i64::MAX}), "overflows"),
            (json!({"$set": {"a.b": 1}}), json!({"a": 5}), "passes through a number"),
            (json!({"$set": {"_id": "y"}}), json!({}), "_id"),
            (json!({"$set": {"a": 1}, "$inc": {"a.b": 1}}), json!({}), "conflict"),
            (json!({}), json!({}), "at least one"),
            (json!({"$push": {"a": 1}}), json!({}), "\"$push\""),
            (json!({"a": 1}), json!({}), "upsert"),
            (json!({"$set": {"a": {"b.c": 1}}}), json!({}), "\"b.c\""),
        ] {
            let e = apply(u.clone(), d).unwrap_err();
            assert!(e.to_string().contains(needle), "{u}: {e}");
        }
    }

    #[test]
    fn failed_update_leaves_document_unchanged() {
        let mut doc = json!({"a": 1, "s": "x"}).as_object().unwrap().clone();
        let before = doc.clone();
        let u = Update::new().set("a", 2).inc("s", 1);
        assert!(u.apply(&mut doc).is_err());
        assert_eq!(doc, before);
    }
}
