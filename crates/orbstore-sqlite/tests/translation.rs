//! The SQL translation itself: exactness where it claims it, and index use proven with
//! `EXPLAIN QUERY PLAN`.

use orbstore_core::{
    CollectionExt, Filter, IndexSpec, PersistenceBackend, Query, SqliteConfig, SqliteLocation,
};
use orbstore_sqlite::SqliteBackend;
use serde_json::json;

async fn memory() -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(SqliteLocation::Memory)).await.unwrap()
}

#[tokio::test]
async fn scalar_filters_run_in_sql_and_keep_booleans_apart_from_numbers() {
    let store = memory().await;
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "t", "a": true})).await.unwrap();
    c.insert_value(json!({"_id": "n", "a": 1})).await.unwrap();
    let q = Query::new(Filter::eq("a", 1)).sort_desc("a");
    let (plan, _) = store.explain("t", &q).await.unwrap();
    assert!(plan.exact_filter && plan.sort_in_sql, "{plan:?}");
    let found = c.find(&q).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["_id"], "n");
}

#[tokio::test]
async fn an_array_on_the_path_sends_the_filter_to_the_evaluator() {
    let store = memory().await;
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "a", "tags": ["x", "y"], "n": 1})).await.unwrap();
    let (plan, _) = store.explain("t", &Query::new(Filter::eq("tags", "x"))).await.unwrap();
    assert!(!plan.exact_filter, "{plan:?}");
    let (plan, _) = store.explain("t", &Query::new(Filter::eq("n", 1))).await.unwrap();
    assert!(plan.exact_filter, "{plan:?}");
    assert_eq!(c.count(&Filter::eq("tags", "x")).await.unwrap(), 1);
}

#[tokio::test]
async fn a_range_on_an_indexed_field_without_arrays_uses_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(dir.path().join("db.sqlite3"))))
        .await
        .unwrap();
    let c = store.collection("events").await.unwrap();
    let docs: Vec<_> = (0..2000)
        .map(|i| {
            json!({"score": i as f64 / 2000.0, "user": format!("u{}", i % 7)}).as_object().cloned().unwrap()
        })
        .collect();
    c.insert_many(docs).await.unwrap();
    c.create_index(IndexSpec::new(["score"])).await.unwrap();
    let q =
        Query::new(Filter::and([Filter::gte("score", 0.25), Filter::lt("score", 0.35)])).sort_asc("score");
    let (plan, details) = store.explain("events", &q).await.unwrap();
    assert!(plan.exact_filter, "{plan:?}");
    let text = details.join(" | ");
    assert!(
        text.contains("USING INDEX ix_events__score_1"),
        "the range must use the expression index: {text}"
    );
    assert!(!text.contains("SCAN events") && !text.contains("SCAN c_events "), "no full scan: {text}");
    assert!(plan.sql.contains("?"), "{}", plan.sql);
    assert!(!plan.sql.contains("0.25"), "values are bound, never spliced: {}", plan.sql);
    assert_eq!(c.find(&q).await.unwrap().len(), 200);
}

/// `EventStore::query_events`' shape: a boolean equality pinning an index's leading column, a
/// range on the next, sorted on it, limited. The index answers the filter and the sort (no scan,
/// no temporary B-tree for the sort keys; descending, only the `_id` tie-break is sorted, within
/// equal times), and the answer is the evaluator's.
#[tokio::test]
async fn a_boolean_equality_and_a_range_use_one_index_for_filter_and_sort() {
    let store = memory().await;
    let c = store.collection("events").await.unwrap();
    let docs = orbstore_testkit::mixed_archived_events(5000, 0);
    c.insert_many(docs.clone()).await.unwrap();
    c.create_index(IndexSpec::new(["archived", "timestamp_us"])).await.unwrap();
    for (filter, expected_class) in [
        (Filter::eq("archived", false), "false"),
        (Filter::eq("archived", true), "true"),
        (Filter::eq("archived", serde_json::Value::Null), "null"),
    ] {
        let range = Filter::and([filter, Filter::gte("timestamp_us", 100), Filter::lt("timestamp_us", 2000)]);
        for q in [
            Query::new(range.clone()).sort_asc("timestamp_us").limit(100),
            Query::new(range.clone()).sort_desc("timestamp_us").limit(100),
        ] {
            let (plan, details) = store.explain("events", &q).await.unwrap();
            let text = details.join(" | ");
            assert!(plan.exact_filter && plan.sort_in_sql, "{expected_class}: {plan:?}");
            assert!(
                text.contains("USING INDEX ix_events__archived_1_timestamp_us_1"),
                "{expected_class}: {text}"
            );
            assert!(!text.contains("SCAN c_events"), "{expected_class}: no full scan: {text}");
            assert!(
                !text.contains("USE TEMP B-TREE FOR ORDER BY"),
                "{expected_class}: the index sorts: {text}\n{}",
                plan.sql
            );
            let found = c.find(&q).await.unwrap();
            let docs: Vec<orbstore_core::Document> = docs.clone();
            let expected = q.apply(docs);
            assert_eq!(found, expected, "{expected_class}: {q:?}");
            assert_eq!(found.len(), 100);
        }
    }
}
