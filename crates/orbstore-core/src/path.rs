//! Dotted field paths and their resolution against a document.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::document::Document;
use crate::error::{Error, Result};
use crate::order::compare_optional;
use crate::query::Direction;

/// A validated dotted path such as `"profile.stats.visits"`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    path: String,
}

impl FieldPath {
    /// A path from a string, not yet checked: [`FieldPath::validate`] checks it, and every
    /// backend operation validates its inputs first. Use [`FieldPath::parse`] to check at once.
    pub fn new(path: impl Into<String>) -> FieldPath {
        FieldPath { path: path.into() }
    }

    /// Parses a path: non-empty segments separated by `.`, none starting with `$` or holding NUL.
    pub fn parse(path: &str) -> Result<FieldPath> {
        let p = FieldPath::new(path);
        p.validate()?;
        Ok(p)
    }

    /// Checks the path: non-empty segments, none starting with `$`, no NUL.
    pub fn validate(&self) -> Result<()> {
        let path = self.path.as_str();
        if path.is_empty() {
            return Err(Error::invalid("empty field path"));
        }
        for seg in path.split('.') {
            if seg.is_empty() {
                return Err(Error::invalid(format!("field path {path:?} has an empty segment")));
            }
            if seg.starts_with('$') {
                return Err(Error::invalid(format!(
                    "field path {path:?}: segment {seg:?} starts with '$' (an operator where a field name belongs)"
                )));
            }
            if seg.contains('\0') {
                return Err(Error::invalid(format!("field path {path:?} contains a NUL character")));
            }
        }
        Ok(())
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The segments of the path.
    pub fn segments(&self) -> impl Iterator<Item = &str> + Clone {
        self.path.split('.')
    }

    /// Resolves the path against a document into branches: `Some(value)` where the path leads to
    /// a value, `None` where it leads nowhere (a missing field). Always at least one branch.
    /// The rules are in `docs/query-semantics.md` ("Paths").
    pub fn resolve<'a>(&self, doc: &'a Document) -> Vec<Option<&'a Value>> {
        let mut segs = self.segments();
        let first = segs.next().unwrap_or_default();
        let mut out = Vec::with_capacity(1);
        resolve_rest(doc.get(first), segs, &mut out);
        out
    }

    /// The path's value as one key, for unique indexes: its single value, or the array of
    /// present values when the path fans out through an array, or `None` when missing.
    pub fn combined_value(&self, doc: &Document) -> Option<Value> {
        let branches = self.resolve(doc);
        if branches.len() == 1 {
            return branches[0].cloned();
        }
        let present: Vec<Value> = branches.into_iter().flatten().cloned().collect();
        if present.is_empty() {
            None
        } else {
            Some(Value::Array(present))
        }
    }

    /// The sort key of the path, MongoDB's way (docs/query-semantics.md, "Sort"): the candidates
    /// are the path's branches with every array value replaced by its elements (one level), a
    /// missing branch counting as null and an empty array as [`SortKey::EmptyArray`]; ascending
    /// takes the smallest candidate, descending the largest.
    pub fn sort_key(&self, doc: &Document, direction: Direction) -> SortKey {
        let mut best: Option<SortKey> = None;
        let mut offer = |candidate: SortKey| {
            let better = match &best {
                None => true,
                Some(b) => match direction {
                    Direction::Ascending => candidate < *b,
                    Direction::Descending => candidate > *b,
                },
            };
            if better {
                best = Some(candidate);
            }
        };
        for branch in self.resolve(doc) {
            match branch {
                Some(Value::Array(items)) if items.is_empty() => offer(SortKey::EmptyArray),
                Some(Value::Array(items)) => {
                    for item in items {
                        offer(SortKey::Value(Some(item.clone())));
                    }
                }
                Some(v) => offer(SortKey::Value(Some(v.clone()))),
                None => offer(SortKey::Value(None)),
            }
        }
        best.unwrap_or(SortKey::Value(None))
    }
}

/// What a document sorts by on one path ([`FieldPath::sort_key`]).
#[derive(Debug, Clone)]
pub enum SortKey {
    /// An empty array: below null and missing, as in MongoDB.
    EmptyArray,
    /// A value in the total order (`None`: missing, which equals null).
    Value(Option<Value>),
}

impl PartialEq for SortKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for SortKey {}
impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::EmptyArray, SortKey::EmptyArray) => Ordering::Equal,
            (SortKey::EmptyArray, SortKey::Value(_)) => Ordering::Less,
            (SortKey::Value(_), SortKey::EmptyArray) => Ordering::Greater,
            (SortKey::Value(a), SortKey::Value(b)) => compare_optional(a.as_ref(), b.as_ref()),
        }
    }
}

/// Debug prints the path as a quoted string, so error messages read `"a.b"`.
impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path, f)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

fn resolve_rest<'a, 's>(
    current: Option<&'a Value>,
    mut segs: impl Iterator<Item = &'s str> + Clone,
    out: &mut Vec<Option<&'a Value>>,
) {
    let Some(seg) = segs.next() else {
        out.push(current);
        return;
    };
    match current {
        Some(Value::Object(map)) => resolve_rest(map.get(seg), segs, out),
        Some(Value::Array(items)) => {
            if let Some(index) = parse_index(seg) {
                resolve_rest(items.get(index), segs, out);
            } else if items.is_empty() {
                out.push(None);
            } else {
                for item in items {
                    match item {
                        Value::Object(map) => resolve_rest(map.get(seg), segs.clone(), out),
                        _ => out.push(None),
                    }
                }
            }
        }
        _ => out.push(None),
    }
}

/// A decimal array index (`"0"`, `"12"`, no sign, no leading `+`).
pub(crate) fn parse_index(seg: &str) -> Option<usize> {
    if seg.bytes().all(|b| b.is_ascii_digit()) {
        seg.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(path: &str, v: Value) -> Vec<Option<Value>> {
        let doc = v.as_object().unwrap().clone();
        FieldPath::parse(path).unwrap().resolve(&doc).into_iter().map(|o| o.cloned()).collect()
    }

    #[test]
    fn documented_examples() {
        let d = json!({"a": [{"b": 1}, {"b": 2}, {"c": 3}], "n": {"m": 5}});
        assert_eq!(resolve("n.m", d.clone()), vec![Some(json!(5))]);
        assert_eq!(resolve("a.b", d.clone()), vec![Some(json!(1)), Some(json!(2)), None]);
        assert_eq!(resolve("a.1.b", d.clone()), vec![Some(json!(2))]);
        assert_eq!(resolve("n.x", d), vec![None]);
    }

    /// MongoDB's own example (DOCS-2760): `{}`, `{a: 1}`, `{a: []}`, `{a: [1]}`, `{a: [0, 1]}`
    /// sort ascending as `[]`, `{}`, `[0, 1]`, then `1` and `[1]` (equal keys).
    #[test]
    fn array_sort_keys_follow_mongodb() {
        let p = FieldPath::parse("a").unwrap();
        let key = |v: Value, dir| p.sort_key(v.as_object().unwrap(), dir);
        let asc = [json!({"a": []}), json!({}), json!({"a": [0, 1]}), json!({"a": 1}), json!({"a": [1]})];
        let keys: Vec<SortKey> = asc.iter().map(|d| key(d.clone(), Direction::Ascending)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
        assert_eq!(keys[3], keys[4]);
        assert_eq!(key(json!({"a": [0, 1]}), Direction::Descending), SortKey::Value(Some(json!(1))));
        assert_eq!(
            key(json!({"a": [1, "s", {"o": 1}]}), Direction::Descending),
            SortKey::Value(Some(json!({"o": 1})))
        );
        assert_eq!(key(json!({"a": []}), Direction::Descending), SortKey::EmptyArray);
    }

    #[test]
    fn bad_paths_are_refused() {
        for p in ["", "a..b", ".a", "a.", "$a", "a.$b"] {
            assert!(FieldPath::parse(p).is_err(), "{p}");
        }
    }
}
