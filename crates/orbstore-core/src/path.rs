//! Dotted field paths and their resolution against a document.

use std::fmt;

use serde_json::Value;

use crate::document::Document;
use crate::error::{Error, Result};

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

    /// The sort key of the path: its single value, or the array of present values when the path
    /// fans out through an array, or `None` when missing.
    pub fn sort_key(&self, doc: &Document) -> Option<Value> {
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

    #[test]
    fn bad_paths_are_refused() {
        for p in ["", "a..b", ".a", "a.", "$a", "a.$b"] {
            assert!(FieldPath::parse(p).is_err(), "{p}");
        }
    }
}
