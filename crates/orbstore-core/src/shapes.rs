//! Multikey flags: which paths of a collection's documents have ever held an array or an object.
//!
//! SQL backends translate a condition on a path exactly only when no document holds an array on
//! that path or any prefix of it (then the path has one value per document, and a plain
//! expression index serves it); otherwise the core evaluator decides. This is MongoDB's multikey
//! flag, kept per path instead of per index.

use std::collections::HashSet;

use serde_json::Value;

use crate::path::FieldPath;

/// What the catalog knows about a collection's shapes.
#[derive(Debug, Clone, Default)]
pub struct Shapes {
    /// Paths where some document held an array.
    pub arrays: HashSet<String>,
    /// Paths where some document held an object.
    pub objects: HashSet<String>,
}

impl Shapes {
    /// No array at the path or at any prefix of it.
    pub fn single_valued(&self, path: &FieldPath) -> bool {
        let mut prefix = String::new();
        for seg in path.segments() {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(seg);
            if self.arrays.contains(&prefix) {
                return false;
            }
        }
        true
    }

    /// Records the array and object paths of a document; returns the ones that are new, with
    /// their kind (`"array"` or `"object"`).
    pub fn learn(&mut self, doc: &serde_json::Map<String, Value>) -> Vec<(String, &'static str)> {
        let mut new = Vec::new();
        self.walk(doc, "", &mut new);
        new
    }

    fn walk(
        &mut self,
        map: &serde_json::Map<String, Value>,
        prefix: &str,
        new: &mut Vec<(String, &'static str)>,
    ) {
        let join = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
        for (k, v) in map {
            match v {
                Value::Array(_) => {
                    let path = join(k);
                    if !self.arrays.contains(&path) {
                        self.arrays.insert(path.clone());
                        new.push((path, "array"));
                    }
                }
                Value::Object(inner) => {
                    let path = join(k);
                    if !self.objects.contains(&path) {
                        self.objects.insert(path.clone());
                        new.push((path.clone(), "object"));
                    }
                    self.walk(inner, &path, new);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_on_any_prefix_make_a_path_multi_valued() {
        let mut s = Shapes::default();
        let new = s.learn(json!({"tags": ["x"], "p": {"q": [1], "r": 2}}).as_object().unwrap());
        assert_eq!(new.len(), 3, "{new:?}");
        assert!(!s.single_valued(&FieldPath::new("tags")));
        assert!(!s.single_valued(&FieldPath::new("p.q.z")));
        assert!(s.single_valued(&FieldPath::new("p.r")));
        assert!(s.learn(json!({"tags": []}).as_object().unwrap()).is_empty(), "nothing new");
    }
}
