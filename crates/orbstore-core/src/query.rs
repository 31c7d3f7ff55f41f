//! Queries: filter, sort, offset, limit and projection, and the reference way to apply them.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::document::{id_of, type_name, Document, ID_FIELD};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::path::{FieldPath, SortKey};

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first (the `_id` tie-break stays ascending).
    Descending,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortField {
    /// The field's dotted path.
    pub path: FieldPath,
    /// The direction.
    pub direction: Direction,
}

/// Which fields a query returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// Only these paths (and `_id`, unless `with_id` is false).
    Include {
        /// The included paths.
        paths: Vec<FieldPath>,
        /// Whether `_id` is included.
        with_id: bool,
    },
    /// Everything except these paths.
    Exclude(Vec<FieldPath>),
}

/// A query: a filter, sort keys, an offset, a limit and a projection.
///
/// Without sort keys, documents come in `_id` order; ties between sort keys are broken by `_id`
/// ascending, so every backend returns the same order (see `docs/query-semantics.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which documents.
    pub filter: Filter,
    /// Sort keys, in order of precedence.
    pub sort: Vec<SortField>,
    /// How many matching documents to skip after sorting.
    pub offset: u64,
    /// At most this many documents (`None`: no limit; `Some(0)`: none).
    pub limit: Option<u64>,
    /// Which fields to return (`None`: whole documents).
    pub projection: Option<Projection>,
}

impl Default for Query {
    fn default() -> Self {
        Query::new(Filter::All)
    }
}

impl From<Filter> for Query {
    fn from(filter: Filter) -> Self {
        Query::new(filter)
    }
}

impl Query {
    /// A query for the documents matching `filter`, in `_id` order.
    pub fn new(filter: Filter) -> Query {
        Query { filter, sort: Vec::new(), offset: 0, limit: None, projection: None }
    }

    /// Every document, in `_id` order.
    pub fn all() -> Query {
        Query::default()
    }

    /// Adds an ascending sort key.
    pub fn sort_asc(mut self, path: impl Into<String>) -> Query {
        self.sort.push(SortField { path: FieldPath::new(path), direction: Direction::Ascending });
        self
    }

    /// Adds a descending sort key.
    pub fn sort_desc(mut self, path: impl Into<String>) -> Query {
        self.sort.push(SortField { path: FieldPath::new(path), direction: Direction::Descending });
        self
    }

    /// Skips the first `offset` matching documents.
    pub fn offset(mut self, offset: u64) -> Query {
        self.offset = offset;
        self
    }

    /// Returns at most `limit` documents.
    pub fn limit(mut self, limit: u64) -> Query {
        self.limit = Some(limit);
        self
    }

    /// Sets the projection.
    pub fn project(mut self, projection: Projection) -> Query {
        self.projection = Some(projection);
        self
    }

    /// Parses `{"filter": {...}, "sort": [{"a": 1}, {"b": -1}], "skip": 5, "limit": 10,
    /// "projection": {"a": 1}}`; every key is optional, and `offset` is accepted for `skip`.
    /// `sort` may be one object with a single key; several keys in one object are refused,
    /// because a JSON object does not keep their order.
    pub fn from_json(value: &Value) -> Result<Query> {
        let Value::Object(m) = value else {
            return Err(Error::invalid(format!("a query must be a JSON object, got {}", type_name(value))));
        };
        let mut q = Query::all();
        for (key, v) in m {
            match key.as_str() {
                "filter" => q.filter = Filter::from_json(v)?,
                "sort" => q.sort = parse_sort(v)?,
                "skip" | "offset" => q.offset = parse_count(key, v)?,
                "limit" => q.limit = Some(parse_count(key, v)?),
                "projection" => q.projection = Some(Projection::from_json(v)?),
                other => {
                    return Err(Error::invalid(format!(
                        "unknown query key {other:?} (expected filter, sort, skip, limit, projection)"
                    )))
                }
            }
        }
        q.validate()?;
        Ok(q)
    }

    /// Checks the filter, the sort paths and the projection.
    pub fn validate(&self) -> Result<()> {
        self.filter.validate()?;
        for s in &self.sort {
            s.path.validate()?;
        }
        if let Some(p) = &self.projection {
            p.validate()?;
        }
        Ok(())
    }

    /// Orders documents by the sort keys, then by `_id`.
    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        self.compare_keyed(&self.sort_keys(a), a, &self.sort_keys(b), b)
    }

    fn sort_keys(&self, doc: &Document) -> Vec<SortKey> {
        self.sort.iter().map(|s| s.path.sort_key(doc, s.direction)).collect()
    }

    fn compare_keyed(&self, ka: &[SortKey], a: &Document, kb: &[SortKey], b: &Document) -> Ordering {
        for (s, (x, y)) in self.sort.iter().zip(ka.iter().zip(kb)) {
            let o = x.cmp(y);
            let o = if s.direction == Direction::Descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        id_of(a).cmp(&id_of(b))
    }

    /// The reference evaluation of the whole query over a set of documents: filter, sort,
    /// offset, limit, projection. Backends without a query engine use it; the others must
    /// return exactly what it returns.
    pub fn apply(&self, docs: impl IntoIterator<Item = Document>) -> Vec<Document> {
        let mut matched: Vec<Document> = docs.into_iter().filter(|d| self.filter.matches(d)).collect();
        self.finish(&mut matched);
        matched
    }

    /// Finishes documents a backend's own engine selected: when it already sorted, skipped and
    /// limited them (`ordered`), only the projection is left; otherwise [`Query::finish`].
    pub fn finish_selected(&self, matched: &mut Vec<Document>, ordered: bool) {
        if !ordered {
            return self.finish(matched);
        }
        if let Some(p) = &self.projection {
            for d in matched.iter_mut() {
                *d = p.apply(d);
            }
        }
    }

    /// Sorts, skips, limits and projects documents that already match the filter.
    pub fn finish(&self, matched: &mut Vec<Document>) {
        if self.sort.is_empty() {
            matched.sort_by(|a, b| id_of(a).cmp(&id_of(b)));
        } else {
            // Sort keys are computed once per document, not once per comparison.
            let mut keyed: Vec<(Vec<SortKey>, Document)> =
                matched.drain(..).map(|d| (self.sort_keys(&d), d)).collect();
            keyed.sort_by(|(ka, a), (kb, b)| self.compare_keyed(ka, a, kb, b));
            matched.extend(keyed.into_iter().map(|(_, d)| d));
        }
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX).min(matched.len());
        matched.drain(..offset);
        if let Some(limit) = self.limit {
            matched.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if let Some(p) = &self.projection {
            for d in matched.iter_mut() {
                *d = p.apply(d);
            }
        }
    }
}

fn parse_count(key: &str, v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| Error::invalid(format!("query {key:?} must be a non-negative integer, got {v}")))
}

fn parse_direction(path: &str, v: &Value) -> Result<Direction> {
    match v {
        Value::Number(n) if n.as_i64() == Some(1) => Ok(Direction::Ascending),
        Value::Number(n) if n.as_i64() == Some(-1) => Ok(Direction::Descending),
        Value::String(s) if s == "asc" => Ok(Direction::Ascending),
        Value::String(s) if s == "desc" => Ok(Direction::Descending),
        other => Err(Error::invalid(format!(
            "sort direction for {path:?} must be 1, -1, \"asc\" or \"desc\", got {other}"
        ))),
    }
}

fn parse_sort(v: &Value) -> Result<Vec<SortField>> {
    let one = |m: &Map<String, Value>| -> Result<SortField> {
        let (path, dir) = m.iter().next().ok_or_else(|| Error::invalid("empty sort object"))?;
        Ok(SortField { path: FieldPath::parse(path)?, direction: parse_direction(path, dir)? })
    };
    match v {
        Value::Object(m) if m.len() <= 1 => Ok(if m.is_empty() { vec![] } else { vec![one(m)?] }),
        Value::Object(_) => Err(Error::invalid(
            "a sort object with several keys is ambiguous (JSON objects do not keep key order); \
             give an array such as [{\"a\": 1}, {\"b\": -1}]",
        )),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(m) if m.len() == 1 => one(m),
                other => Err(Error::invalid(format!(
                    "each sort element must be an object with one key, got {other}"
                ))),
            })
            .collect(),
        other => Err(Error::invalid(format!("sort must be an array or an object, got {}", type_name(other)))),
    }
}

impl Projection {
    /// Only these paths, plus `_id`.
    pub fn include<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Projection {
        Projection::Include { paths: paths.into_iter().map(FieldPath::new).collect(), with_id: true }
    }

    /// Everything but these paths.
    pub fn exclude<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Projection {
        Projection::Exclude(paths.into_iter().map(FieldPath::new).collect())
    }

    /// Leaves `_id` out of an inclusion projection (no effect on an exclusion, where `_id` can be
    /// listed like any path).
    pub fn without_id(self) -> Projection {
        match self {
            Projection::Include { paths, .. } => Projection::Include { paths, with_id: false },
            Projection::Exclude(mut paths) => {
                if !paths.iter().any(|p| p.as_str() == ID_FIELD) {
                    paths.push(FieldPath::new(ID_FIELD));
                }
                Projection::Exclude(paths)
            }
        }
    }

    /// Parses `{"a": 1, "b.c": 1}` or `{"secret": 0}` (values 1/0 or true/false).
    pub fn from_json(value: &Value) -> Result<Projection> {
        let Value::Object(m) = value else {
            return Err(Error::invalid(format!(
                "a projection must be a JSON object, got {}",
                type_name(value)
            )));
        };
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        let mut with_id = true;
        for (key, v) in m {
            let on = match v {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_i64() == Some(1) => true,
                Value::Number(n) if n.as_i64() == Some(0) => false,
                other => {
                    return Err(Error::invalid(format!(
                        "projection value for {key:?} must be 1, 0, true or false, got {other}"
                    )))
                }
            };
            let path = FieldPath::parse(key)?;
            if key == ID_FIELD {
                with_id = on;
            } else if on {
                include.push(path);
            } else {
                exclude.push(path);
            }
        }
        let p = match (include.is_empty(), exclude.is_empty()) {
            (false, false) => {
                return Err(Error::invalid(
                    "a projection cannot mix inclusion (1) and exclusion (0), except for _id",
                ))
            }
            (false, true) => Projection::Include { paths: include, with_id },
            (true, _) => {
                if !with_id {
                    exclude.push(FieldPath::new(ID_FIELD));
                }
                if exclude.is_empty() && with_id && m.contains_key(ID_FIELD) {
                    // {"_id": 1} alone: only the id
                    Projection::Include { paths: vec![], with_id: true }
                } else {
                    Projection::Exclude(exclude)
                }
            }
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the paths and that no path is a prefix of another.
    pub fn validate(&self) -> Result<()> {
        let paths = match self {
            Projection::Include { paths, .. } | Projection::Exclude(paths) => paths,
        };
        for p in paths {
            p.validate()?;
        }
        for a in paths {
            for b in paths {
                if a != b
                    && b.as_str().starts_with(a.as_str())
                    && b.as_str()[a.as_str().len()..].starts_with('.')
                {
                    return Err(Error::invalid(format!("projection paths {a:?} and {b:?} collide")));
                }
            }
        }
        Ok(())
    }

    /// Projects one document.
    pub fn apply(&self, doc: &Document) -> Document {
        match self {
            Projection::Include { paths, with_id } => {
                let mut out = Map::new();
                if *with_id {
                    if let Some(id) = doc.get(ID_FIELD) {
                        out.insert(ID_FIELD.to_owned(), id.clone());
                    }
                }
                for p in paths {
                    let segs: Vec<&str> = p.segments().collect();
                    include_path(doc, &mut out, &segs);
                }
                out
            }
            Projection::Exclude(paths) => {
                let mut out = doc.clone();
                for p in paths {
                    let segs: Vec<&str> = p.segments().collect();
                    exclude_path(&mut out, &segs);
                }
                out
            }
        }
    }
}

fn include_path(src: &Map<String, Value>, dst: &mut Map<String, Value>, segs: &[&str]) {
    let Some((key, rest)) = segs.split_first() else { return };
    let Some(value) = src.get(*key) else { return };
    if rest.is_empty() {
        dst.insert((*key).to_owned(), value.clone());
        return;
    }
    match value {
        Value::Object(inner) => {
            let slot = dst.entry((*key).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(slot) = slot {
                include_path(inner, slot, rest);
            }
        }
        Value::Array(items) => {
            // One output element per object element, in order; scalars are dropped.
            let objects: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
            let slot = dst
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Array(objects.iter().map(|_| Value::Object(Map::new())).collect()));
            if let Value::Array(out_items) = slot {
                for (obj, out) in objects.iter().zip(out_items.iter_mut()) {
                    if let Value::Object(out) = out {
                        include_path(obj, out, rest);
                    }
                }
            }
        }
        _ => {}
    }
}

fn exclude_path(map: &mut Map<String, Value>, segs: &[&str]) {
    let Some((key, rest)) = segs.split_first() else { return };
    if rest.is_empty() {
        map.remove(*key);
        return;
    }
    match map.get_mut(*key) {
        Some(Value::Object(inner)) => exclude_path(inner, rest),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(inner) = item {
                    exclude_path(inner, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(v: Value) -> Vec<Document> {
        v.as_array().unwrap().iter().map(|d| d.as_object().unwrap().clone()).collect()
    }
    fn ids(ds: &[Document]) -> Vec<&str> {
        ds.iter().map(|d| id_of(d).unwrap()).collect()
    }

    #[test]
    fn documented_sort_examples() {
        let d = docs(
            json!([{"_id":"1","a":2},{"_id":"2"},{"_id":"3","a":"x"},{"_id":"4","a":null},{"_id":"5","a":true}]),
        );
        assert_eq!(ids(&Query::all().sort_asc("a").apply(d)), ["2", "4", "1", "3", "5"]);
        let d = docs(json!([{"_id":"b","a":1},{"_id":"a","a":1.0}]));
        assert_eq!(ids(&Query::all().sort_desc("a").apply(d)), ["a", "b"]);
    }

    #[test]
    fn offset_limit_edges() {
        let d = docs(json!([{"_id":"1"},{"_id":"2"},{"_id":"3"}]));
        assert_eq!(ids(&Query::all().offset(2).apply(d.clone())), ["3"]);
        assert!(Query::all().offset(5).apply(d.clone()).is_empty());
        assert!(Query::all().limit(0).apply(d.clone()).is_empty());
        assert_eq!(ids(&Query::all().offset(u64::MAX).limit(u64::MAX).apply(d)), Vec::<&str>::new());
    }

    #[test]
    fn projection_keeps_structure() {
        let d = json!({"_id":"1","b":{"c":1,"d":2},"a":[{"x":1,"y":2},5,{"y":3}],"s":"t"});
        let d = d.as_object().unwrap();
        let p = Projection::from_json(&json!({"b.c": 1, "a.x": 1})).unwrap();
        assert_eq!(Value::Object(p.apply(d)), json!({"_id":"1","b":{"c":1},"a":[{"x":1},{}]}));
        let p = Projection::from_json(&json!({"b.c": 0, "a.y": 0, "_id": 0})).unwrap();
        assert_eq!(Value::Object(p.apply(d)), json!({"b":{"d":2},"a":[{"x":1},5,{}],"s":"t"}));
        assert!(Projection::from_json(&json!({"a": 1, "b": 0})).is_err());
        assert!(Projection::from_json(&json!({"a": 1, "a.b": 1})).is_err());
    }

    #[test]
    fn query_from_json() {
        let q = Query::from_json(
            &json!({"filter": {"a": 1}, "sort": [{"b": -1}, {"c": "asc"}], "skip": 1, "limit": 2}),
        )
        .unwrap();
        assert_eq!(q.sort.len(), 2);
        assert_eq!(q.sort[0].direction, Direction::Descending);
        assert_eq!((q.offset, q.limit), (1, Some(2)));
        assert!(Query::from_json(&json!({"sort": {"a": 1, "b": 1}})).is_err());
        assert!(Query::from_json(&json!({"limit": -1})).is_err());
        assert!(Query::from_json(&json!({"bogus": 1})).is_err());
    }
}
