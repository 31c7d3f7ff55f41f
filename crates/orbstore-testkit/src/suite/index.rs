//! Indexes: creation, idempotence, unique constraints on every write path.

use orbstore_core::{CollectionExt, ErrorKind, Filter, IndexSpec, Query, Update};
use serde_json::json;

use crate::support::*;

/// Opens a fixture and returns `None` (after printing why) when unique indexes are not enforced.
async fn unique_fixture(f: &dyn BackendFactory) -> Option<Fixture> {
    let fx = open(f).await?;
    if fx.backend().capabilities().unique_indexes {
        Some(fx)
    } else {
        eprintln!("not applicable: the backend does not enforce unique indexes");
        fx.teardown().await;
        None
    }
}

/// "creating an index that exists with the same spec does nothing"; `list_indexes` shows it.
pub async fn create_index_is_idempotent_and_listed(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "score": 1}])).await;
    c.create_index(IndexSpec::new(["score"])).await.unwrap();
    c.create_index(IndexSpec::new(["score"])).await.unwrap();
    c.create_index(IndexSpec::new(["user", "at"]).named("by_user_time")).await.unwrap();
    let listed = c.list_indexes().await.unwrap();
    assert_eq!(listed, [IndexSpec::new(["user", "at"]).named("by_user_time"), IndexSpec::new(["score"])]);
    assert_eq!(c.count(&Filter::eq("score", 1)).await.unwrap(), 1);
    fx.teardown().await;
}

/// "an index of the same name with other fields or uniqueness is `Conflict`".
pub async fn index_name_reuse_with_other_spec_is_conflict(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["a"]).named("ix")).await.unwrap();
    assert_kind(c.create_index(IndexSpec::new(["b"]).named("ix")).await, ErrorKind::Conflict);
    assert_kind(c.create_index(IndexSpec::new(["a"]).named("ix").unique()).await, ErrorKind::Conflict);
    fx.teardown().await;
}

/// Invalid index specs are `InvalidInput`.
pub async fn invalid_index_specs_are_refused(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    for spec in [
        IndexSpec::new(Vec::<String>::new()),
        IndexSpec::new(["a..b"]),
        IndexSpec::new(["a", "a"]),
        IndexSpec::new(["a"]).named("bad name; drop"),
        IndexSpec::new(["a"]).named(""),
    ] {
        assert_kind(c.create_index(spec).await, ErrorKind::InvalidInput);
    }
    assert!(c.list_indexes().await.unwrap().is_empty());
    fx.teardown().await;
}

/// "a document that would break a unique index is `Conflict` and is not written".
pub async fn unique_index_refuses_duplicate_insert(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
    c.insert_value(json!({"_id": "a", "email": "x@y"})).await.unwrap();
    let m = assert_kind(c.insert_value(json!({"_id": "b", "email": "x@y"})).await, ErrorKind::Conflict);
    assert!(!m.is_empty());
    assert!(c.find_by_id("b").await.unwrap().is_none());
    c.insert_value(json!({"_id": "c", "email": "other"})).await.unwrap();
    fx.teardown().await;
}

/// An update or upsert that would break a unique index is `Conflict` and changes nothing.
pub async fn unique_index_refuses_duplicate_update_and_upsert(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 2}])).await;
    c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap();
    assert_kind(c.update_by_id("b", &Update::new().set("k", 1)).await, ErrorKind::Conflict);
    assert_kind(c.upsert(d(json!({"_id": "b", "k": 1}))).await, ErrorKind::Conflict);
    assert_kind(c.upsert(d(json!({"_id": "new", "k": 2}))).await, ErrorKind::Conflict);
    assert_kind(c.update_many(&Filter::All, &Update::new().set("k", 7)).await, ErrorKind::Conflict);
    assert_eq!(c.find_all().await.unwrap(), docs(json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 2}])));
    // Replacing a document with its own key is fine, and a freed key can be taken.
    c.upsert(d(json!({"_id": "a", "k": 1, "x": true}))).await.unwrap();
    c.update_by_id("a", &Update::new().set("k", 3)).await.unwrap();
    c.update_by_id("b", &Update::new().set("k", 1)).await.unwrap();
    fx.teardown().await;
}

/// "a unique index over documents that already break it is `Conflict` and is not created".
pub async fn unique_index_over_existing_duplicates_is_refused(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 1.0}])).await;
    assert_kind(c.create_index(IndexSpec::new(["k"]).unique()).await, ErrorKind::Conflict);
    assert!(c.list_indexes().await.unwrap().is_empty());
    c.insert_value(json!({"_id": "c", "k": 1})).await.unwrap();
    fx.teardown().await;
}

/// "a unique index constrains only documents where every indexed field is present and not null".
pub async fn unique_index_ignores_missing_and_null(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap();
    c.insert_many(docs(
        json!([{"_id": "a"}, {"_id": "b"}, {"_id": "c", "k": null}, {"_id": "d", "k": null}]),
    ))
    .await
    .unwrap();
    assert_eq!(c.count_all().await.unwrap(), 4);
    fx.teardown().await;
}

/// Unique keys compare as values: `1` and `1.0` collide, `1` and `"1"` do not.
pub async fn unique_index_compares_numbers_by_value(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap();
    c.insert_value(json!({"_id": "a", "k": 1})).await.unwrap();
    c.insert_value(json!({"_id": "b", "k": "1"})).await.unwrap();
    c.insert_value(json!({"_id": "c", "k": true})).await.unwrap();
    assert_kind(c.insert_value(json!({"_id": "d", "k": 1.0})).await, ErrorKind::Conflict);
    fx.teardown().await;
}

/// A compound unique index constrains the combination, not each field.
pub async fn unique_compound_index_constrains_combination(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["s", "a"]).unique()).await.unwrap();
    c.insert_value(json!({"_id": "1", "s": "x", "a": 1})).await.unwrap();
    c.insert_value(json!({"_id": "2", "s": "x", "a": 2})).await.unwrap();
    c.insert_value(json!({"_id": "3", "s": "y", "a": 1})).await.unwrap();
    assert_kind(c.insert_value(json!({"_id": "4", "s": "x", "a": 2})).await, ErrorKind::Conflict);
    fx.teardown().await;
}

/// `upsert_many`: "when ... the batch would break a unique index, the call fails and no
/// document of it is stored", with the offender after documents that alone would be fine.
pub async fn upsert_many_unique_violation_stores_nothing(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap();
    c.insert_value(json!({"_id": "z", "k": 100})).await.unwrap();
    c.insert_value(json!({"_id": "y", "k": 50, "v": "old"})).await.unwrap();
    let batch =
        docs(json!([{"_id": "a", "k": 1}, {"_id": "y", "k": 51, "v": "new"}, {"_id": "b", "k": 100}]));
    assert_kind(c.upsert_many(batch).await, ErrorKind::Conflict);
    let batch = docs(json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 2}, {"_id": "c", "k": 1}]));
    assert_kind(c.upsert_many(batch).await, ErrorKind::Conflict);
    assert_eq!(ids(&c.find_all().await.unwrap()), ["y", "z"]);
    assert_eq!(c.find_by_id("y").await.unwrap().unwrap()["v"], "old");
    // Replacing a document with its own key is no conflict.
    c.upsert_many(docs(json!([{"_id": "z", "k": 100, "v": 1}, {"_id": "d", "k": 4}]))).await.unwrap();
    // Only the last of a repeated id counts: an earlier copy's key clashing with another
    // document is no conflict.
    c.upsert_many(docs(json!([{"_id": "e", "k": 100}, {"_id": "e", "k": 5}]))).await.unwrap();
    assert_eq!(c.find_by_id("e").await.unwrap().unwrap()["k"], 5);
    fx.teardown().await;
}

/// A unique violation anywhere in `insert_many` stores nothing, within the batch too.
pub async fn insert_many_unique_violation_stores_nothing(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap();
    c.insert_value(json!({"_id": "z", "k": 100})).await.unwrap();
    assert_kind(
        c.insert_many(docs(json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 100}]))).await,
        ErrorKind::Conflict,
    );
    assert_kind(
        c.insert_many(docs(json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 2}, {"_id": "c", "k": 1}]))).await,
        ErrorKind::Conflict,
    );
    assert_eq!(ids(&c.find_all().await.unwrap()), ["z"]);
    fx.teardown().await;
}

/// A deleted document frees its unique key.
pub async fn delete_frees_unique_key(f: &dyn BackendFactory) {
    let Some(fx) = unique_fixture(f).await else { return };
    let c = fx.coll("t").await;
    c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap();
    c.insert_value(json!({"_id": "a", "k": 1})).await.unwrap();
    c.delete_by_id("a").await.unwrap();
    c.insert_value(json!({"_id": "b", "k": 1})).await.unwrap();
    assert_eq!(ids(&c.find(&Query::new(Filter::eq("k", 1))).await.unwrap()), ["b"]);
    fx.teardown().await;
}

/// Indexes do not change query results: the same queries give the same answers with and
/// without an index on the field.
pub async fn indexes_do_not_change_results(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let batch: Vec<_> = (0..300)
        .map(|i| match i % 5 {
            0 => d(json!({"_id": format!("{i:03}"), "v": i})),
            1 => d(json!({"_id": format!("{i:03}"), "v": format!("s{i}")})),
            2 => d(json!({"_id": format!("{i:03}"), "v": [i, i + 1]})),
            3 => d(json!({"_id": format!("{i:03}"), "v": null})),
            _ => d(json!({"_id": format!("{i:03}")})),
        })
        .collect();
    c.insert_many(batch).await.unwrap();
    let queries = [
        Query::new(Filter::gt("v", 100)).sort_asc("v"),
        Query::new(Filter::lte("v", "s50")).sort_desc("v"),
        Query::new(Filter::eq("v", serde_json::Value::Null)),
        Query::new(Filter::is_in("v", [json!(12), json!("s16")])),
        Query::new(Filter::gte("v", 50)).sort_asc("v").offset(5).limit(10),
    ];
    let before: Vec<_> = futures::future::join_all(queries.iter().map(|q| c.find(q))).await;
    c.create_index(IndexSpec::new(["v"])).await.unwrap();
    let after: Vec<_> = futures::future::join_all(queries.iter().map(|q| c.find(q))).await;
    for ((q, b), a) in queries.iter().zip(before).zip(after) {
        assert_eq!(ids(&b.unwrap()), ids(&a.unwrap()), "{q:?}");
    }
    fx.teardown().await;
}
