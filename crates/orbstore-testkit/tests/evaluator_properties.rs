//! Invariants of the reference evaluator in `orbstore-core`, on random inputs. The suite's
//! property tests compare backends with the evaluator; these check the evaluator itself against
//! the rules of `docs/query-semantics.md` that can be stated as laws.

use std::cmp::Ordering;

use orbstore_core::order::{compare_values, values_equal};
use orbstore_core::{Filter, Query, Update};
use orbstore_testkit::strategies::{document, filter_json, path, query, scalar, update, value};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn field(path: &str, cond: Value) -> Filter {
    let mut m = Map::new();
    m.insert(path.to_owned(), cond);
    Filter::from_json(&Value::Object(m)).expect("valid filter")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The value order is a total order: antisymmetric, and equality agrees with it.
    #[test]
    fn order_is_antisymmetric(a in value(), b in value()) {
        prop_assert_eq!(compare_values(&a, &b), compare_values(&b, &a).reverse());
        prop_assert_eq!(values_equal(&a, &b), compare_values(&a, &b) == Ordering::Equal);
        prop_assert_eq!(compare_values(&a, &a), Ordering::Equal);
    }

    /// The value order is transitive.
    #[test]
    fn order_is_transitive(a in value(), b in value(), c in value()) {
        let mut v = [a, b, c];
        v.sort_by(compare_values);
        prop_assert_ne!(compare_values(&v[0], &v[1]), Ordering::Greater);
        prop_assert_ne!(compare_values(&v[1], &v[2]), Ordering::Greater);
        prop_assert_ne!(compare_values(&v[0], &v[2]), Ordering::Greater);
    }

    /// `$ne` is the complement of `$eq`, `$nin` of `$in`, `$not` of its conditions.
    #[test]
    fn negations_are_complements(doc in document(), p in path(), v in value(), vs in prop::collection::vec(value(), 0..3), s in scalar()) {
        let m = |f: &Filter| f.matches(&doc);
        prop_assert_eq!(m(&field(&p, json!({"$ne": v.clone()}))), !m(&field(&p, json!({"$eq": v}))));
        prop_assert_eq!(m(&field(&p, json!({"$nin": vs.clone()}))), !m(&field(&p, json!({"$in": vs}))));
        prop_assert_eq!(m(&field(&p, json!({"$not": {"$gte": s.clone()}}))), !m(&field(&p, json!({"$gte": s}))));
    }

    /// `$in` is the `$or` of `$eq`s; `$gte` is `$gt` or `$eq` when the operand is not an array.
    #[test]
    fn in_and_gte_decompose(doc in document(), p in path(), vs in prop::collection::vec(scalar(), 1..4), s in scalar()) {
        let m = |f: &Filter| f.matches(&doc);
        let ors = Filter::or(vs.iter().map(|v| field(&p, json!({"$eq": v}))));
        prop_assert_eq!(m(&field(&p, json!({"$in": vs}))), m(&ors));
        let gte = m(&field(&p, json!({"$gte": s.clone()})));
        let gt_or_eq = m(&field(&p, json!({"$gt": s.clone()}))) || m(&field(&p, json!({"$eq": s.clone()})));
        // `{$eq: null}` also matches arrays holding null, which `$gte: null` does too, so the
        // decomposition holds for every scalar.
        prop_assert_eq!(gte, gt_or_eq, "{:?}", s);
    }

    /// Filters survive a JSON round trip and the JSON form parses to the same matches.
    #[test]
    fn filter_json_round_trip(f in filter_json(), doc in document()) {
        let parsed = Filter::from_json(&f).unwrap();
        let again = Filter::from_json(&parsed.to_json()).unwrap();
        prop_assert_eq!(parsed.matches(&doc), again.matches(&doc));
        prop_assert_eq!(again, parsed);
    }

    /// Offset and limit slice the unsliced result; results follow the query's order.
    #[test]
    fn offset_limit_slice_the_sorted_result(q in query(), docs in prop::collection::vec(document(), 0..12)) {
        let docs: Vec<_> = docs.into_iter().enumerate().map(|(i, mut d)| { d.insert("_id".into(), json!(format!("{i:02}"))); d }).collect();
        let mut whole = q.clone();
        whole.offset = 0;
        whole.limit = None;
        whole.projection = None;
        let all = whole.apply(docs.clone());
        for w in all.windows(2) {
            prop_assert_eq!(whole.compare(&w[0], &w[1]), Ordering::Less);
        }
        let mut sliced = q.clone();
        sliced.projection = None;
        let start = (q.offset as usize).min(all.len());
        let end = q.limit.map_or(all.len(), |l| (start + l as usize).min(all.len()));
        prop_assert_eq!(sliced.apply(docs), all[start..end].to_vec());
    }

    /// A failed update leaves the document unchanged; a successful one keeps `_id`.
    #[test]
    fn updates_are_all_or_nothing(u in update(), mut doc in document()) {
        doc.insert("_id".into(), json!("x"));
        let before = doc.clone();
        let result = u.apply(&mut doc);
        match &result {
            Ok(()) => prop_assert_eq!(doc.get("_id"), Some(&json!("x"))),
            Err(_) => prop_assert_eq!(&doc, &before),
        }
        // The JSON form groups operations by operator; on disjoint paths order does not matter.
        let mut again = before.clone();
        let again_result = Update::from_json(&u.to_json()).unwrap().apply(&mut again);
        prop_assert_eq!(again_result.is_ok(), result.is_ok());
        if result.is_ok() {
            prop_assert_eq!(again, doc);
        }
    }

    /// Counting equals the length of the filtered result.
    #[test]
    fn count_equals_find_len(f in filter_json(), docs in prop::collection::vec(document(), 0..10)) {
        let f = Filter::from_json(&f).unwrap();
        let n = docs.iter().filter(|d| f.matches(d)).count();
        prop_assert_eq!(Query::new(f).apply(docs).len(), n);
    }
}
