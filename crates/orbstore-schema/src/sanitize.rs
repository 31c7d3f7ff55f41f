//! Sanitization: the documented rules `orb validate --fix` applies to a document that fails its
//! schema, before validating it again.
//!
//! The rules, in the order applied at each place of the document:
//! 1. `numbers`: a string where the schema wants a number (`type` includes `number` or
//!    `integer`, not `string`) is parsed (`" 0.5 "` → `0.5`; for `integer` only whole values).
//! 2. `clamp`: a number below `minimum` becomes the minimum, above `maximum` the maximum
//!    (`exclusiveMinimum`/`exclusiveMaximum` have no nearest valid value and are left to report).
//! 3. `default`: a property the schema declares with a `default` and the object lacks is
//!    filled with it.
//! 4. `drop`: under `additionalProperties: false`, a property the schema does not declare is
//!    removed (never the document's `_id`; not when `patternProperties` could allow it).
//! 5. `unique`: under `uniqueItems: true`, later copies of an item are removed.
//!
//! The rules follow `properties`, `additionalProperties` and `items` given as schemas, every
//! branch of `allOf`, and references inside the schema (`#/$defs/...`); they do not guess
//! between the branches of `anyOf`/`oneOf`. Whatever they cannot fix is reported by the
//! validation that follows.
//!
//! Written by hand: validators (the `jsonschema` crate included) report, they do not repair;
//! coercion and defaults in other ecosystems (ajv's `useDefaults`/`coerceTypes`) have no Rust
//! counterpart.

use serde::Serialize;
use serde_json::{Map, Value};

/// One change made to a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Where, as a JSON pointer.
    pub path: String,
    /// The rule (`numbers`, `clamp`, `default`, `drop`, `unique`).
    pub rule: &'static str,
    /// What changed (`"0.5" → 0.5`).
    pub detail: String,
}

/// How deep references are followed: a schema referring to itself through an object nested
/// deeper than this is left alone there.
const MAX_DEPTH: usize = 64;

/// Applies the rules of this module to `doc` under `schema`; returns what changed.
pub fn sanitize(schema: &Value, doc: &mut Value) -> Vec<Change> {
    let mut changes = Vec::new();
    Walk { root: schema, changes: &mut changes }.value(schema, doc, &mut String::new(), 0);
    changes
}

struct Walk<'s, 'c> {
    root: &'s Value,
    changes: &'c mut Vec<Change>,
}

impl<'s> Walk<'s, '_> {
    fn value(&mut self, schema: &'s Value, value: &mut Value, path: &mut String, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let Some(node) = schema.as_object() else { return };
        if let Some(target) = node.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
            self.value(target, value, path, depth + 1);
        }
        if let Some(all) = node.get("allOf").and_then(Value::as_array) {
            for branch in all {
                self.value(branch, value, path, depth + 1);
            }
        }
        self.numbers(node, value, path);
        self.clamp(node, value, path);
        match value {
            Value::Object(obj) => self.object(node, obj, path, depth),
            Value::Array(items) => self.array(node, items, path, depth),
            _ => {}
        }
    }

    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        // Only references into this schema: `#` or `#/json/pointer`.
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn change(&mut self, path: &str, rule: &'static str, detail: String) {
        self.changes.push(Change { path: path.to_owned(), rule, detail });
    }

    fn numbers(&mut self, node: &Map<String, Value>, value: &mut Value, path: &str) {
        let Value::String(s) = value else { return };
        let types = types_of(node);
        if types.contains(&"string") {
            return;
        }
        let integer = types.contains(&"integer") && !types.contains(&"number");
        if !integer && !types.contains(&"number") {
            return;
        }
        let t = s.trim();
        let parsed = if integer {
            t.parse::<i64>().ok().map(Value::from).or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| Value::from(f as i64))
            })
        } else {
            t.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(|f| {
                // An integral string stays an integer, so "3" becomes 3, not 3.0.
                t.parse::<i64>()
                    .ok()
                    .map(Value::from)
                    .or_else(|| serde_json::Number::from_f64(f).map(Value::Number))
            })
        };
        if let Some(n) = parsed {
            let detail = format!("{value} → {n}");
            *value = n;
            self.change(path, "numbers", detail);
        }
    }

    fn clamp(&mut self, node: &Map<String, Value>, value: &mut Value, path: &str) {
        let Some(x) = value.as_f64() else { return };
        let bound = |key: &str| node.get(key).filter(|b| b.is_number());
        let to = match (bound("minimum"), bound("maximum")) {
            (Some(min), _) if x < min.as_f64().unwrap_or(f64::NEG_INFINITY) => min,
            (_, Some(max)) if x > max.as_f64().unwrap_or(f64::INFINITY) => max,
            _ => return,
        };
        let detail = format!("{value} → {to}");
        *value = to.clone();
        self.change(path, "clamp", detail);
    }

    fn object(
        &mut self,
        node: &'s Map<String, Value>,
        obj: &mut Map<String, Value>,
        path: &mut String,
        depth: usize,
    ) {
        let props = node.get("properties").and_then(Value::as_object);
        for (key, sub) in props.into_iter().flatten() {
            let len = path.len();
            push_token(path, key);
            match obj.get_mut(key) {
                Some(v) => self.value(sub, v, path, depth + 1),
                None => {
                    if let Some(default) = sub.get("default") {
                        obj.insert(key.clone(), default.clone());
                        self.change(path, "default", format!("filled with {default}"));
                    }
                }
            }
            path.truncate(len);
        }
        let declared = |k: &str| props.is_some_and(|p| p.contains_key(k));
        // The document's `_id` is the store's, never the schema's to drop.
        let kept = |k: &str| declared(k) || (path.is_empty() && k == orbstore_core::ID_FIELD);
        match node.get("additionalProperties") {
            Some(Value::Bool(false)) if !node.contains_key("patternProperties") => {
                let extra: Vec<String> = obj.keys().filter(|k| !kept(k)).cloned().collect();
                for key in extra {
                    let removed = obj.remove(&key).unwrap_or(Value::Null);
                    let len = path.len();
                    push_token(path, &key);
                    self.change(path, "drop", format!("removed {removed}"));
                    path.truncate(len);
                }
            }
            Some(sub @ Value::Object(_)) => {
                let at_root = path.is_empty();
                let extra = obj
                    .iter_mut()
                    .filter(|(k, _)| !(declared(k) || (at_root && k.as_str() == orbstore_core::ID_FIELD)));
                for (key, v) in extra {
                    let len = path.len();
                    push_token(path, key);
                    self.value(sub, v, path, depth + 1);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn array(
        &mut self,
        node: &'s Map<String, Value>,
        items: &mut Vec<Value>,
        path: &mut String,
        depth: usize,
    ) {
        if let Some(sub) = node.get("items").filter(|s| s.is_object()) {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                push_token(path, &i.to_string());
                self.value(sub, item, path, depth + 1);
                path.truncate(len);
            }
        }
        if node.get("uniqueItems") == Some(&Value::Bool(true)) {
            let before = items.len();
            let mut kept: Vec<Value> = Vec::with_capacity(before);
            for item in items.drain(..) {
                // JSON Schema equality: 1 and 1.0 are the same item.
                if !kept.iter().any(|k| json_equal(k, &item)) {
                    kept.push(item);
                }
            }
            *items = kept;
            if items.len() < before {
                let detail = format!("removed {} duplicate item(s)", before - items.len());
                self.change(path, "unique", detail);
            }
        }
    }
}

fn types_of(node: &Map<String, Value>) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Appends one JSON-pointer token (`~` and `/` escaped as RFC 6901 says).
fn push_token(path: &mut String, token: &str) {
    path.push('/');
    path.push_str(&token.replace('~', "~0").replace('/', "~1"));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(changes: &[Change]) -> Vec<(&str, &str)> {
        changes.iter().map(|c| (c.path.as_str(), c.rule)).collect()
    }

    #[test]
    fn each_rule_once() {
        let schema = json!({
            "type": "object",
            "properties": {
                "epsilon": {"type": "number", "minimum": 0, "maximum": 1},
                "visits": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "mode": {"type": "string", "default": "explore"},
                "note": {"type": ["string", "null"]}
            },
            "additionalProperties": false
        });
        let mut doc = json!({
            "_id": "u1", "epsilon": "1.5", "visits": "-3", "tags": ["a", "b", "a"], "junk": 1, "note": "7"
        });
        let changes = sanitize(&schema, &mut doc);
        assert_eq!(
            doc,
            json!({"_id": "u1", "epsilon": 1, "visits": 0, "tags": ["a", "b"], "mode": "explore", "note": "7"})
        );
        // Properties are visited in the map's order (sorted without serde_json's preserve_order).
        let mut found = rules(&changes);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("/epsilon", "clamp"),
                ("/epsilon", "numbers"),
                ("/junk", "drop"),
                ("/mode", "default"),
                ("/tags", "unique"),
                ("/visits", "clamp"),
                ("/visits", "numbers"),
            ]
        );
    }

    #[test]
    fn integers_take_only_whole_strings_and_refs_are_followed() {
        let schema = json!({
            "$defs": {"count": {"type": "integer", "maximum": 10}},
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/count"}, "b": {"$ref": "#/$defs/count"}, "c/d": {"$ref": "#/$defs/count"}}
        });
        let mut doc = json!({"a": "2.5", "b": "12", "c/d": 11});
        let changes = sanitize(&schema, &mut doc);
        assert_eq!(doc, json!({"a": "2.5", "b": 10, "c/d": 10}));
        let mut found = rules(&changes);
        found.sort();
        assert_eq!(found, vec![("/b", "clamp"), ("/b", "numbers"), ("/c~1d", "clamp")]);
    }

    #[test]
    fn the_id_is_never_sanitized() {
        let schema =
            json!({"additionalProperties": {"type": "number"}, "properties": {"a": {"type": "number"}}});
        let mut doc = json!({"_id": "42", "a": "1", "b": "2"});
        sanitize(&schema, &mut doc);
        assert_eq!(doc, json!({"_id": "42", "a": 1, "b": 2}));
        let closed = json!({"additionalProperties": false});
        let mut doc = json!({"_id": "x", "b": 1});
        sanitize(&closed, &mut doc);
        assert_eq!(doc, json!({"_id": "x"}));
    }

    #[test]
    fn a_self_referring_schema_ends() {
        let schema = json!({"$ref": "#"});
        let mut doc = json!({"a": 1});
        assert!(sanitize(&schema, &mut doc).is_empty());
    }

    #[test]
    fn numbers_equal_as_json_schema_says_are_duplicates() {
        let schema = json!({"uniqueItems": true});
        let mut doc = json!([1, 1.0, {"x": [2]}, {"x": [2.0]}]);
        sanitize(&schema, &mut doc);
        assert_eq!(doc, json!([1, {"x": [2]}]));
    }
}
