//! Property tests: random documents, filters, sorts and updates, checked against the reference
//! evaluator in `orbstore-core`. Every backend runs them; a backend that translates queries
//! (SQL, MongoDB) must agree with the evaluator on every case.

use orbstore_core::{Filter, Query};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::strategies::{document, document_without_arrays, filter_json, flat_document, query, update};
use crate::support::*;

/// Draws `n` values from a strategy with a fresh random seed (printed on failure via the case).
fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new(Config::default());
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("generate").current()).collect()
}

/// Random documents and random queries: the backend returns exactly what the reference
/// evaluator returns, in the same order, and counts agree.
pub async fn property_queries_match_reference_evaluator(f: &dyn BackendFactory) {
    queries_match_reference(f, false).await;
}

/// The same, on documents without arrays (nested, and flat): backends that translate filters
/// and sorts to their own query language where no array is on a path are then checked on their
/// translation, case by case.
pub async fn property_array_free_queries_match_reference_evaluator(f: &dyn BackendFactory) {
    queries_match_reference(f, true).await;
}

async fn queries_match_reference(f: &dyn BackendFactory, array_free: bool) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    for round in 0..12 {
        c.delete_many(&Filter::All).await.unwrap();
        // Array-free runs start with flat documents, whose sorts can run in SQL (a backend may
        // remember that a field once held an object or array), then go on with nested ones.
        let generated = match (array_free, round < 6) {
            (false, _) => draw(document(), 40),
            (true, true) => draw(flat_document(), 40),
            (true, false) => draw(document_without_arrays(), 40),
        };
        let docs: Vec<_> = generated
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| {
                d.insert("_id".into(), json!(format!("{round}-{i:02}")));
                d
            })
            .collect();
        c.insert_many(docs.clone()).await.unwrap();
        for q in draw(query(), 60) {
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
    for (round, (u, filter_json)) in draw((update(), filter_json()), 60).into_iter().enumerate() {
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
