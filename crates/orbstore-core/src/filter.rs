//! The filter language: a MongoDB subset, parsed from JSON or built in Rust, and its reference
//! evaluator. The rules are in `docs/query-semantics.md`.

use serde_json::{Map, Value};

use crate::document::{type_name, Document};
use crate::error::{Error, Result};
use crate::order::{compare_optional, values_equal, TypeClass};
use crate::path::FieldPath;

/// A filter over documents.
///
/// Build one from the MongoDB JSON shape with [`Filter::from_json`] (validated at once), or with
/// the builder functions ([`Filter::eq`], [`Filter::and`], ...), which are validated when used:
/// every backend operation calls [`Filter::validate`] first and returns `InvalidInput` for a
/// filter built from bad parts (an invalid path, an empty `and`/`or`/`not`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches every document (`{}`).
    All,
    /// Matches when every filter matches (`$and`).
    And(Vec<Filter>),
    /// Matches when some filter matches (`$or`).
    Or(Vec<Filter>),
    /// Conditions on one field, all of which must hold.
    Field {
        /// The field's dotted path.
        path: FieldPath,
        /// The conditions, ANDed.
        conditions: Vec<Condition>,
    },
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `$eq`: the value, or an element of an array value, equals the operand.
    Eq(Value),
    /// `$ne`: the complement of `$eq`.
    Ne(Value),
    /// `$gt`, same type class only.
    Gt(Value),
    /// `$gte`, same type class only.
    Gte(Value),
    /// `$lt`, same type class only.
    Lt(Value),
    /// `$lte`, same type class only.
    Lte(Value),
    /// `$in`: `$eq` for one of the operands.
    In(Vec<Value>),
    /// `$nin`: the complement of `$in`.
    Nin(Vec<Value>),
    /// `$exists`: the field is present (`true`) or absent (`false`).
    Exists(bool),
    /// `$not`: the complement of the conditions ANDed.
    Not(Vec<Condition>),
}

impl Filter {
    /// Parses the MongoDB JSON shape, e.g. `{"score": {"$gte": 0.5}, "user": "u1"}`.
    /// Malformed filters are `InvalidInput` naming the offending part.
    pub fn from_json(value: &Value) -> Result<Filter> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(format!("a filter must be a JSON object, got {}", type_name(value))));
        };
        let filter = parse_object(map)?;
        filter.validate()?;
        Ok(filter)
    }

    /// The filter in the MongoDB JSON shape (what [`Filter::from_json`] reads).
    pub fn to_json(&self) -> Value {
        match self {
            Filter::All => Value::Object(Map::new()),
            Filter::And(fs) => json_op("$and", Value::Array(fs.iter().map(Filter::to_json).collect())),
            Filter::Or(fs) => json_op("$or", Value::Array(fs.iter().map(Filter::to_json).collect())),
            Filter::Field { path, conditions } => {
                json_op(path.as_str(), Value::Object(conditions_to_json(conditions)))
            }
        }
    }

    /// Matches every document.
    pub fn all() -> Filter {
        Filter::All
    }

    /// `path` satisfies every one of `conditions`.
    pub fn field(path: impl Into<String>, conditions: Vec<Condition>) -> Filter {
        Filter::Field { path: FieldPath::new(path), conditions }
    }

    /// `{path: {$eq: value}}`.
    pub fn eq(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::field(path, vec![Condition::Eq(value.into())])
    }

    /// `{path: {$ne: value}}`.
    pub fn ne(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::field(path, vec![Condition::Ne(value.into())])
    }

    /// `{path: {$gt: value}}`.
    pub fn gt(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::field(path, vec![Condition::Gt(value.into())])
    }

    /// `{path: {$gte: value}}`.
    pub fn gte(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::field(path, vec![Condition::Gte(value.into())])
    }

    /// `{path: {$lt: value}}`.
    pub fn lt(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::field(path, vec![Condition::Lt(value.into())])
    }

    /// `{path: {$lte: value}}`.
    pub fn lte(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::field(path, vec![Condition::Lte(value.into())])
    }

    /// `{path: {$in: values}}`.
    pub fn is_in(path: impl Into<String>, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::field(path, vec![Condition::In(values.into_iter().collect())])
    }

    /// `{path: {$nin: values}}`.
    pub fn not_in(path: impl Into<String>, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::field(path, vec![Condition::Nin(values.into_iter().collect())])
    }

    /// `{path: {$exists: exists}}`.
    pub fn exists(path: impl Into<String>, exists: bool) -> Filter {
        Filter::field(path, vec![Condition::Exists(exists)])
    }

    /// `{path: {$not: {conditions...}}}`.
    pub fn not(path: impl Into<String>, conditions: Vec<Condition>) -> Filter {
        Filter::field(path, vec![Condition::Not(conditions)])
    }

    /// `{$and: [filters...]}` (must not be empty).
    pub fn and(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(filters.into_iter().collect())
    }

    /// `{$or: [filters...]}` (must not be empty).
    pub fn or(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(filters.into_iter().collect())
    }

    /// Checks what the builder cannot: valid paths and non-empty `and`/`or`/`not`.
    pub fn validate(&self) -> Result<()> {
        match self {
            Filter::All => Ok(()),
            Filter::And(fs) | Filter::Or(fs) => {
                if fs.is_empty() {
                    let op = if matches!(self, Filter::And(_)) { "$and" } else { "$or" };
                    return Err(Error::invalid(format!("{op} must be a non-empty array of filters")));
                }
                fs.iter().try_for_each(Filter::validate)
            }
            Filter::Field { path, conditions } => {
                path.validate()?;
                if conditions.is_empty() {
                    return Err(Error::invalid(format!("no condition given for field {path:?}")));
                }
                validate_conditions(path, conditions)
            }
        }
    }

    /// Whether the document matches. Assumes a validated filter; an unvalidated one never panics.
    pub fn matches(&self, doc: &Document) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(doc)),
            Filter::Field { path, conditions } => {
                let branches = path.resolve(doc);
                conditions.iter().all(|c| c.matches(&branches))
            }
        }
    }

    /// When the filter pins `_id` to one value (`{_id: "x"}`, possibly ANDed with more), that id.
    /// Backends use it to look up by key instead of scanning.
    pub fn pinned_id(&self) -> Option<&str> {
        match self {
            Filter::Field { path, conditions } if path.as_str() == "_id" => {
                conditions.iter().find_map(|c| match c {
                    Condition::Eq(Value::String(s)) => Some(s.as_str()),
                    _ => None,
                })
            }
            Filter::And(fs) => fs.iter().find_map(Filter::pinned_id),
            _ => None,
        }
    }

    /// When the filter limits `_id` to a list (`{_id: "x"}` or `{_id: {$in: [...]}}`, possibly
    /// ANDed with more), the ids it can match, sorted and without repeats (operands that are
    /// not strings match no `_id`). Backends look them up by key instead of scanning.
    pub fn pinned_ids(&self) -> Option<Vec<&str>> {
        match self {
            Filter::Field { path, conditions } if path.as_str() == "_id" => conditions.iter().find_map(|c| {
                let mut ids: Vec<&str> = match c {
                    Condition::Eq(Value::String(s)) => vec![s.as_str()],
                    Condition::Eq(_) => Vec::new(),
                    Condition::In(values) => values.iter().filter_map(Value::as_str).collect(),
                    _ => return None,
                };
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }),
            Filter::And(fs) => fs.iter().find_map(Filter::pinned_ids),
            _ => None,
        }
    }
}

impl TryFrom<Value> for Filter {
    type Error = Error;
    fn try_from(value: Value) -> Result<Filter> {
        Filter::from_json(&value)
    }
}

impl From<&Filter> for Value {
    fn from(f: &Filter) -> Value {
        f.to_json()
    }
}

impl Condition {
    /// Whether the condition holds for the branches a path resolved to.
    pub fn matches(&self, branches: &[Option<&Value>]) -> bool {
        match self {
            Condition::Eq(v) => branches.iter().any(|b| eq_branch(*b, v)),
            Condition::Ne(v) => !branches.iter().any(|b| eq_branch(*b, v)),
            Condition::Gt(v) => range(branches, v, |o| o.is_gt()),
            Condition::Gte(v) => range(branches, v, |o| o.is_ge()),
            Condition::Lt(v) => range(branches, v, |o| o.is_lt()),
            Condition::Lte(v) => range(branches, v, |o| o.is_le()),
            Condition::In(vs) => vs.iter().any(|v| branches.iter().any(|b| eq_branch(*b, v))),
            Condition::Nin(vs) => !vs.iter().any(|v| branches.iter().any(|b| eq_branch(*b, v))),
            Condition::Exists(true) => branches.iter().any(Option::is_some),
            Condition::Exists(false) => branches.iter().all(Option::is_none),
            Condition::Not(cs) => !cs.iter().all(|c| c.matches(branches)),
        }
    }

    /// The operator's name as written in JSON (`"$gt"`).
    pub fn operator(&self) -> &'static str {
        match self {
            Condition::Eq(_) => "$eq",
            Condition::Ne(_) => "$ne",
            Condition::Gt(_) => "$gt",
            Condition::Gte(_) => "$gte",
            Condition::Lt(_) => "$lt",
            Condition::Lte(_) => "$lte",
            Condition::In(_) => "$in",
            Condition::Nin(_) => "$nin",
            Condition::Exists(_) => "$exists",
            Condition::Not(_) => "$not",
        }
    }
}

/// A branch equals `v`: the value itself, or one element of an array value; missing equals null.
fn eq_branch(branch: Option<&Value>, v: &Value) -> bool {
    match branch {
        None => v.is_null(),
        Some(x) => {
            values_equal(x, v) || matches!(x, Value::Array(items) if items.iter().any(|i| values_equal(i, v)))
        }
    }
}

/// Some branch (or element of an array branch) of the operand's type class compares as `ok`.
fn range(branches: &[Option<&Value>], v: &Value, ok: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    let class = TypeClass::of(Some(v));
    let test = |c: Option<&Value>| TypeClass::of(c) == class && ok(compare_optional(c, Some(v)));
    branches
        .iter()
        .any(|b| test(*b) || matches!(b, Some(Value::Array(items)) if items.iter().any(|i| test(Some(i)))))
}

fn json_op(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_owned(), value);
    Value::Object(m)
}

fn conditions_to_json(conditions: &[Condition]) -> Map<String, Value> {
    let mut m = Map::new();
    for c in conditions {
        let v = match c {
            Condition::Eq(v)
            | Condition::Ne(v)
            | Condition::Gt(v)
            | Condition::Gte(v)
            | Condition::Lt(v)
            | Condition::Lte(v) => v.clone(),
            Condition::In(vs) | Condition::Nin(vs) => Value::Array(vs.clone()),
            Condition::Exists(b) => Value::Bool(*b),
            Condition::Not(cs) => Value::Object(conditions_to_json(cs)),
        };
        m.insert(c.operator().to_owned(), v);
    }
    m
}

fn validate_conditions(path: &FieldPath, conditions: &[Condition]) -> Result<()> {
    for c in conditions {
        if let Condition::Not(inner) = c {
            if inner.is_empty() {
                return Err(Error::invalid(format!("$not on {path:?} must not be empty")));
            }
            validate_conditions(path, inner)?;
        }
    }
    Ok(())
}

fn parse_object(map: &Map<String, Value>) -> Result<Filter> {
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        parts.push(parse_entry(key, value)?);
    }
    Ok(match parts.len() {
        0 => Filter::All,
        1 => parts.pop().unwrap_or(Filter::All),
        _ => Filter::And(parts),
    })
}

fn parse_entry(key: &str, value: &Value) -> Result<Filter> {
    match key {
        "$and" | "$or" => {
            let Value::Array(items) = value else {
                return Err(Error::invalid(format!(
                    "{key} must be a non-empty array of filters, got {}",
                    type_name(value)
                )));
            };
            let mut fs = Vec::with_capacity(items.len());
            for item in items {
                let Value::Object(m) = item else {
                    return Err(Error::invalid(format!(
                        "each element of {key} must be a filter object, got {}",
                        type_name(item)
                    )));
                };
                fs.push(parse_object(m)?);
            }
            Ok(if key == "$and" { Filter::And(fs) } else { Filter::Or(fs) })
        }
        k if k.starts_with('$') => Err(Error::invalid(format!(
            "unknown top-level operator {k:?} (supported: $and, $or; $not applies to a field)"
        ))),
        _ => {
            let path = FieldPath::parse(key)?;
            let conditions = parse_field_value(key, value)?;
            Ok(Filter::Field { path, conditions })
        }
    }
}

/// `{f: v}` is equality unless `v` is an object whose keys are operators.
fn parse_field_value(field: &str, value: &Value) -> Result<Vec<Condition>> {
    match value {
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => parse_operators(field, m),
        other => Ok(vec![Condition::Eq(other.clone())]),
    }
}

fn parse_operators(field: &str, m: &Map<String, Value>) -> Result<Vec<Condition>> {
    let mut out = Vec::with_capacity(m.len());
    for (op, operand) in m {
        let c = match op.as_str() {
            "$eq" => Condition::Eq(operand.clone()),
            "$ne" => Condition::Ne(operand.clone()),
            "$gt" => Condition::Gt(operand.clone()),
            "$gte" => Condition::Gte(operand.clone()),
            "$lt" => Condition::Lt(operand.clone()),
            "$lte" => Condition::Lte(operand.clone()),
            "$in" | "$nin" => {
                let Value::Array(items) = operand else {
                    return Err(Error::invalid(format!(
                        "{op} on {field:?} needs an array, got {}",
                        type_name(operand)
                    )));
                };
                if op == "$in" {
                    Condition::In(items.clone())
                } else {
                    Condition::Nin(items.clone())
                }
            }
            "$exists" => match operand {
                Value::Bool(b) => Condition::Exists(*b),
                other => {
                    return Err(Error::invalid(format!(
                        "$exists on {field:?} needs true or false, got {}",
                        type_name(other)
                    )))
                }
            },
            "$not" => match operand {
                Value::Object(inner) if !inner.is_empty() && inner.keys().all(|k| k.starts_with('$')) => {
                    Condition::Not(parse_operators(field, inner)?)
                }
                other => {
                    return Err(Error::invalid(format!(
                        "$not on {field:?} needs a non-empty object of operators, got {}",
                        if other.is_object() { "an object without operators" } else { type_name(other) }
                    )))
                }
            },
            k if k.starts_with('$') => {
                return Err(Error::invalid(format!(
                    "unknown operator {k:?} on field {field:?} (supported: $eq $ne $gt $gte $lt $lte $in $nin $exists $not)"
                )))
            }
            k => {
                return Err(Error::invalid(format!(
                    "field {field:?} mixes operators with the plain key {k:?}; use either an operator object or a value"
                )))
            }
        };
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: Value, doc: Value) -> bool {
        let f = Filter::from_json(&filter).unwrap();
        f.matches(doc.as_object().unwrap())
    }

    /// Every table row of docs/query-semantics.md.
    #[test]
    fn documented_examples() {
        let rows = [
            (json!({"n": 1}), json!({"n": 1.0}), true),
            (json!({"n": 1}), json!({"n": true}), false),
            (json!({"tags": "x"}), json!({"tags": ["x", "y"]}), true),
            (json!({"tags": ["x", "y"]}), json!({"tags": ["x", "y"]}), true),
            (json!({"tags": ["y", "x"]}), json!({"tags": ["x", "y"]}), false),
            (json!({"o": {"a": 1, "b": 2}}), json!({"o": {"b": 2, "a": 1}}), true),
            (json!({"a": null}), json!({}), true),
            (json!({"a": null}), json!({"a": null}), true),
            (json!({"a": null}), json!({"a": 0}), false),
            (json!({"a": null}), json!({"a": [1, null]}), true),
            (json!({"a": {"$ne": 1}}), json!({}), true),
            (json!({"a": {"$ne": 1}}), json!({"a": [1, 2]}), false),
            (json!({"a": {"$nin": [1, 2]}}), json!({"a": 3}), true),
            (json!({"a": {"$not": {"$gt": 5}}}), json!({"a": "text"}), true),
            (json!({"a": {"$not": {"$gt": 5}}}), json!({}), true),
            (json!({"a": {"$gt": 1}}), json!({"a": 1.5}), true),
            (json!({"a": {"$gt": 1}}), json!({"a": "2"}), false),
            (json!({"a": {"$gt": 1}}), json!({"a": true}), false),
            (json!({"a": {"$lt": "b"}}), json!({"a": "a"}), true),
            (json!({"a": {"$gt": 5}}), json!({"a": [1, 10]}), true),
            (json!({"a": {"$gt": 5, "$lt": 8}}), json!({"a": [1, 10]}), true),
            (json!({"a": {"$gte": null}}), json!({}), true),
            (json!({"a": {"$gt": null}}), json!({"a": null}), false),
            (json!({"a": {"$gt": false}}), json!({"a": true}), true),
            (json!({"a": {"$in": [1, "x", null]}}), json!({"a": "x"}), true),
            (json!({"a": {"$in": [1, "x", null]}}), json!({}), true),
            (json!({"a": {"$in": [2]}}), json!({"a": [1, 2]}), true),
            (json!({"a": {"$exists": true}}), json!({"a": null}), true),
            (json!({"a": {"$exists": false}}), json!({"a": null}), false),
        ];
        for (f, d, want) in rows {
            assert_eq!(m(f.clone(), d.clone()), want, "filter {f} on {d}");
        }
    }

    #[test]
    fn errors_name_the_offending_part() {
        for (f, needle) in [
            (json!([1]), "must be a JSON object"),
            (json!({"a": {"$regex": "x"}}), "\"$regex\""),
            (json!({"$not": {"a": 1}}), "\"$not\""),
            (json!({"a": {"$gt": 1, "b": 2}}), "\"b\""),
            (json!({"a": {"$in": 1}}), "$in on \"a\" needs an array"),
            (json!({"a": {"$exists": 1}}), "$exists on \"a\""),
            (json!({"$and": []}), "$and must be a non-empty"),
            (json!({"$or": [1]}), "each element of $or"),
            (json!({"a..b": 1}), "empty segment"),
            (json!({"a": {"$not": 5}}), "$not on \"a\""),
            (json!({"a": {"$not": {}}}), "$not on \"a\""),
        ] {
            let e = Filter::from_json(&f).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(needle), "{f}: {e}");
        }
    }

    #[test]
    fn json_round_trip() {
        let f = json!({"$or": [{"a": {"$gt": 1, "$lt": 5}}, {"b.c": {"$not": {"$in": [1, 2]}}}], "d": {"$eq": "x"}});
        let parsed = Filter::from_json(&f).unwrap();
        assert_eq!(Filter::from_json(&parsed.to_json()).unwrap(), parsed);
    }

    #[test]
    fn builder_is_validated_on_use() {
        assert!(Filter::eq("a..b", 1).validate().is_err());
        assert!(Filter::or([]).validate().is_err());
        assert!(Filter::not("a", vec![]).validate().is_err());
        Filter::and([Filter::eq("a", 1), Filter::gt("b.c", 2)]).validate().unwrap();
    }

    #[test]
    fn pinned_ids_find_lists_of_keys() {
        let f = Filter::and([
            Filter::is_in("_id", [json!("b"), json!("a"), json!(3), json!("b")]),
            Filter::eq("n", 1),
        ]);
        assert_eq!(f.pinned_ids(), Some(vec!["a", "b"]));
        assert_eq!(Filter::eq("_id", "x").pinned_ids(), Some(vec!["x"]));
        assert_eq!(Filter::eq("_id", 5).pinned_ids(), Some(vec![]));
        assert_eq!(Filter::is_in("a", [json!("x")]).pinned_ids(), None);
        assert_eq!(Filter::gt("_id", "x").pinned_ids(), None);
    }

    #[test]
    fn pinned_id_finds_key_lookups() {
        let f = Filter::from_json(&json!({"_id": "x", "a": 1})).unwrap();
        assert_eq!(f.pinned_id(), Some("x"));
        assert_eq!(Filter::eq("a", "x").pinned_id(), None);
    }
}
