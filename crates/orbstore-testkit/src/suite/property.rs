//! Property tests: random documents, filters, sorts and updates, checked against the reference
//! evaluator in `orbstore-core`. Every backend runs them; a backend that translates queries
//! (SQL, MongoDB) must agree with the evaluator on every case.

use orbstore_core::{Filter, Projection, Query, Update};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

use crate::support::*;

/// Field names the generators use, so filters hit fields that exist.
const FIELDS: &[&str] = &["a", "b", "c"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|n| json!(n)),
        (-3i64..4).prop_map(|n| json!(n as f64 + 0.5)),
        (-2i64..3).prop_map(|n| json!(n as f64)),
        prop::sample::select(vec!["", "a", "b", "B", "ab", "é"]).prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => (prop::sample::select(FIELDS.to_vec()), prop::sample::select(FIELDS.to_vec()))
            .prop_map(|(x, y)| format!("{x}.{y}")),
        1 => prop::sample::select(FIELDS.to_vec()).prop_map(|x| format!("{x}.0")),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
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

fn filter() -> impl Strategy<Value = Value> {
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

fn query() -> impl Strategy<Value = Query> {
    (
        filter(),
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

fn update() -> impl Strategy<Value = Update> {
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

/// Draws `n` values from a strategy with a fresh random seed (printed on failure via the case).
fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new(Config::default());
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("generate").current()).collect()
}

/// Random documents and random queries: the backend returns exactly what the reference
/// evaluator returns, in the same order, and counts agree.
pub async fn property_queries_match_reference_evaluator(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    for round in 0..8 {
        c.delete_many(&Filter::All).await.unwrap();
        let docs: Vec<_> = draw(document(), 40)
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| {
                d.insert("_id".into(), json!(format!("{round}-{i:02}")));
                d
            })
            .collect();
        c.insert_many(docs.clone()).await.unwrap();
        for q in draw(query(), 40) {
            let want = q.apply(docs.iter().cloned());
            let got = c.find(&q).await.unwrap_or_else(|e| panic!("{q:?} failed: {e}"));
            assert_eq!(
                got,
                want,
                "backend and reference disagree\nquery: {q:?}\nfilter: {}\ndocuments: {}",
                q.filter.to_json(),
                Value::Array(docs.iter().cloned().map(Value::Object).collect())
            );
            let count = c.count(&q.filter).await.unwrap();
            assert_eq!(
                count as usize,
                Query::new(q.filter.clone()).apply(docs.iter().cloned()).len(),
                "count of {}",
                q.filter.to_json()
            );
        }
    }
    fx.teardown().await;
}

/// Random updates over random documents: the backend's result equals the reference
/// application, including which updates fail (`$inc` on a non-number) and leave all unchanged.
pub async fn property_updates_match_reference(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    for (round, (u, filter_json)) in draw((update(), filter()), 60).into_iter().enumerate() {
        c.delete_many(&Filter::All).await.unwrap();
        let docs: Vec<_> = draw(document(), 8)
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| {
                d.insert("_id".into(), json!(format!("{round}-{i}")));
                d
            })
            .collect();
        c.insert_many(docs.clone()).await.unwrap();
        let filter = Filter::from_json(&filter_json).unwrap();
        // Reference: apply to every match; any failure means nothing changes.
        let mut expected = docs.clone();
        let mut failed = false;
        let mut matched = 0;
        for d in expected.iter_mut() {
            if filter.matches(d) {
                matched += 1;
                if u.apply(d).is_err() {
                    failed = true;
                }
            }
        }
        if failed {
            expected = docs.clone();
        }
        let got = c.update_many(&filter, &u).await;
        assert_eq!(got.is_err(), failed, "update {} on {}: {got:?}", u.to_json(), filter_json);
        if let Ok(n) = got {
            assert_eq!(n, matched);
        }
        assert_eq!(
            c.find(&Query::all()).await.unwrap(),
            expected,
            "update {} filter {}",
            u.to_json(),
            filter_json
        );
    }
    fx.teardown().await;
}
