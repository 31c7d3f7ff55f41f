//! proptest strategies for documents, filters, queries and updates over a small set of field
//! names, so that generated filters hit generated fields. Shared by the suite's property tests
//! and the evaluator's own invariant tests.

use orbstore_core::{Filter, Projection, Query, Update};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Field names the generators use, so filters hit fields that exist.
pub const FIELDS: &[&str] = &["a", "b", "c"];

/// Scalars from every type class, with integer/float collisions (1 and 1.0).
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|n| json!(n)),
        (-3i64..4).prop_map(|n| json!(n as f64 + 0.5)),
        (-2i64..3).prop_map(|n| json!(n as f64)),
        prop::sample::select(vec!["", "a", "b", "B", "ab", "é"]).prop_map(|s| json!(s)),
    ]
}

/// Scalars, and arrays and objects of them nested up to two levels.
pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A document of up to three fields (no `_id`).
pub fn document() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A field, a nested path, or an array index path.
pub fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => (prop::sample::select(FIELDS.to_vec()), prop::sample::select(FIELDS.to_vec()))
            .prop_map(|(x, y)| format!("{x}.{y}")),
        1 => prop::sample::select(FIELDS.to_vec()).prop_map(|x| format!("{x}.0")),
    ]
}

/// The value side of a field filter: a literal or an operator object.
pub fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        value(),
        value().prop_map(|v| json!({"$eq": v})),
        value().prop_map(|v| json!({"$ne": v})),
        scalar().prop_map(|v| json!({"$gt": v})),
        scalar().prop_map(|v| json!({"$gte": v})),
        scalar().prop_map(|v| json!({"$lt": v})),
        scalar().prop_map(|v| json!({"$lte": v})),
        (scalar(), scalar()).prop_map(|(x, y)| json!({"$gte": x, "$lt": y})),
        prop::collection::vec(value(), 0..3).prop_map(|v| json!({"$in": v})),
        prop::collection::vec(value(), 0..3).prop_map(|v| json!({"$nin": v})),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        scalar().prop_map(|v| json!({"$not": {"$gt": v}})),
        prop::collection::vec(scalar(), 0..3).prop_map(|v| json!({"$not": {"$in": v}})),
    ]
}

/// A filter in JSON, with `$and`/`$or` nested up to two levels.
pub fn filter_json() -> impl Strategy<Value = Value> {
    let leaf = (path(), condition()).prop_map(|(p, c)| {
        let mut m = Map::new();
        m.insert(p, c);
        Value::Object(m)
    });
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$and": v})),
            prop::collection::vec(inner, 1..3).prop_map(|v| json!({"$or": v})),
        ]
    })
}

/// A query: filter, up to two sort keys, offset, limit, maybe a projection.
pub fn query() -> impl Strategy<Value = Query> {
    (
        filter_json(),
        prop::collection::vec((path(), any::<bool>()), 0..3),
        0u64..4,
        prop::option::of(0u64..6),
        prop::option::of(prop::sample::select(FIELDS.to_vec())),
    )
        .prop_map(|(f, sort, offset, limit, project)| {
            let mut q =
                Query::new(Filter::from_json(&f).expect("generated filters are valid")).offset(offset);
            for (p, asc) in sort {
                q = if asc { q.sort_asc(p) } else { q.sort_desc(p) };
            }
            if let Some(l) = limit {
                q = q.limit(l);
            }
            if let Some(p) = project {
                q = q.project(Projection::include([p]));
            }
            q
        })
}

/// A valid update of one or two disjoint paths.
pub fn update() -> impl Strategy<Value = Update> {
    prop::collection::vec(
        (
            prop::sample::select(FIELDS.to_vec()),
            prop::option::of(prop::sample::select(FIELDS.to_vec())),
            0u8..3,
            value(),
        ),
        1..3,
    )
    .prop_map(|ops| {
        let mut u = Update::new();
        let mut used: Vec<String> = Vec::new();
        for (top, sub, kind, v) in ops {
            if used.iter().any(|p| p.starts_with(top) || top.starts_with(p.as_str())) {
                continue; // keep paths disjoint so the update is valid
            }
            let p = match sub {
                Some(s) => format!("{top}.{s}"),
                None => top.to_owned(),
            };
            used.push(top.to_owned());
            u = match kind {
                0 => u.set(p, v),
                1 => u.unset(p),
                _ => u.inc(p, 1),
            };
        }
        u
    })
}

/// Scalars and objects of them nested up to two levels, never an array: on backends that
/// translate queries only where no array is on the path (SQLite, PostgreSQL), such documents
/// send every condition through the translation.
pub fn value_without_arrays() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), inner, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    })
}

/// A document of up to three fields without arrays anywhere.
pub fn document_without_arrays() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value_without_arrays(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A flat document: up to three scalar fields (so sorts on them can run in SQL).
pub fn flat_document() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), scalar(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}
