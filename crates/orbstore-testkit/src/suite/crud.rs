//! `Collection` writes and reads by id: insert, upsert, find_by_id, update, delete, count.

use futures::TryStreamExt;
use orbstore_core::{CollectionExt, ErrorKind, Filter, Query, Update};
use serde_json::{json, Value};

use crate::support::*;

/// "returns its id": a given `_id` is kept.
pub async fn insert_one_keeps_given_id(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert_eq!(c.insert_one(d(json!({"_id": "u1", "n": 1}))).await.unwrap(), "u1");
    assert_eq!(c.find_by_id("u1").await.unwrap().unwrap(), d(json!({"_id": "u1", "n": 1})));
    fx.teardown().await;
}

/// "a document without `_id` gets a generated time-ordered id".
pub async fn insert_one_generates_time_ordered_ids(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let mut ids_in_order = Vec::new();
    for i in 0..20 {
        ids_in_order.push(c.insert_value(json!({"i": i})).await.unwrap());
    }
    let mut sorted = ids_in_order.clone();
    sorted.sort();
    assert_eq!(ids_in_order, sorted, "generated ids must increase");
    let stored = c.find(&Query::all()).await.unwrap();
    assert_eq!(ids(&stored), ids_in_order);
    assert_eq!(stored[0]["i"], 0);
    fx.teardown().await;
}

/// "inserting an `_id` that exists is `Conflict` and leaves the stored document unchanged".
pub async fn insert_one_duplicate_id_is_conflict_and_keeps_original(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "a", "v": 1})).await.unwrap();
    assert_kind(c.insert_value(json!({"_id": "a", "v": 2})).await, ErrorKind::Conflict);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["v"], 1);
    assert_eq!(c.count_all().await.unwrap(), 1);
    fx.teardown().await;
}

/// "an invalid document is `InvalidInput`": a non-string or empty `_id`.
pub async fn insert_refuses_bad_ids(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    for bad in [
        json!({"_id": 5}),
        json!({"_id": null}),
        json!({"_id": {"a": 1}}),
        json!({"_id": ""}),
        json!({"_id": "a\u{0}b"}),
    ] {
        assert_kind(c.insert_value(bad).await, ErrorKind::InvalidInput);
    }
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// Keys with `.`, a leading `$`, empty keys and NUL are refused at any depth.
pub async fn insert_refuses_dotted_dollar_and_empty_keys(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    for bad in [
        json!({"a.b": 1}),
        json!({"$set": 1}),
        json!({"": 1}),
        json!({"o": {"x.y": 1}}),
        json!({"arr": [{"$gt": 1}]}),
    ] {
        let m = assert_kind(c.insert_value(bad.clone()).await, ErrorKind::InvalidInput);
        assert!(m.contains("key"), "{bad}: {m}");
    }
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// Integers beyond the signed 64-bit range are refused.
pub async fn insert_refuses_integers_beyond_i64(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert_kind(c.insert_value(json!({"n": u64::MAX})).await, ErrorKind::InvalidInput);
    fx.teardown().await;
}

/// "returns their ids in input order".
pub async fn insert_many_returns_ids_in_input_order(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let got = c.insert_many(docs(json!([{"_id": "c"}, {"_id": "a"}, {"x": 1}, {"_id": "b"}]))).await.unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!((&got[0][..], &got[1][..], &got[3][..]), ("c", "a", "b"));
    assert_eq!(c.count_all().await.unwrap(), 4);
    fx.teardown().await;
}

/// "an empty batch returns an empty list".
pub async fn insert_many_empty_batch_returns_empty(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert!(c.insert_many(vec![]).await.unwrap().is_empty());
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// "when any document has an `_id` that exists, no document of the batch is stored": the
/// duplicate sits in the middle of the batch.
pub async fn insert_many_existing_duplicate_in_middle_stores_nothing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "m", "v": "old"})).await.unwrap();
    let batch =
        docs(json!([{"_id": "a"}, {"_id": "b"}, {"_id": "m", "v": "new"}, {"_id": "y"}, {"_id": "z"}]));
    assert_kind(c.insert_many(batch).await, ErrorKind::Conflict);
    assert_eq!(ids(&c.find_all().await.unwrap()), ["m"]);
    assert_eq!(c.find_by_id("m").await.unwrap().unwrap()["v"], "old");
    fx.teardown().await;
}

/// "... or repeats within the batch".
pub async fn insert_many_repeated_id_within_batch_stores_nothing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert_kind(
        c.insert_many(docs(json!([{"_id": "a"}, {"_id": "b"}, {"_id": "a"}]))).await,
        ErrorKind::Conflict,
    );
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// "when any document is invalid, no document of the batch is stored".
pub async fn insert_many_invalid_document_stores_nothing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert_kind(
        c.insert_many(docs(json!([{"_id": "a"}, {"bad.key": 1}, {"_id": "c"}]))).await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// A batch of 10,000 documents lands whole.
pub async fn insert_many_large_batch(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let batch: Vec<_> =
        (0..10_000).map(|i| d(json!({"_id": format!("{i:06}"), "i": i, "pad": "x".repeat(100)}))).collect();
    assert_eq!(c.insert_many(batch).await.unwrap().len(), 10_000);
    assert_eq!(c.count_all().await.unwrap(), 10_000);
    assert_eq!(c.find_by_id("009999").await.unwrap().unwrap()["i"], 9999);
    fx.teardown().await;
}

/// `upsert_many`: "in input order ... what happened to each"; "a repeated `_id`: the last one
/// is stored (the first occurrence reports `inserted` when the id was new)"; replacing keeps no
/// field of the old document.
pub async fn upsert_many_inserts_and_replaces_in_order(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "b", "old": true, "v": 0})).await.unwrap();
    let got = c
        .upsert_many(docs(json!([
            {"_id": "c", "v": 1}, {"_id": "b", "v": 2}, {"v": 3}, {"_id": "c", "v": 4}, {"_id": "a", "v": 5}
        ])))
        .await
        .unwrap();
    let flags: Vec<(&str, bool)> = got.iter().map(|u| (u.id.as_str(), u.inserted)).collect();
    assert_eq!(
        (flags[0], flags[1], flags[3], flags[4]),
        (("c", true), ("b", false), ("c", false), ("a", true))
    );
    assert!(flags[2].1 && !flags[2].0.is_empty(), "a document without _id is inserted with a new id");
    assert_eq!(c.count_all().await.unwrap(), 4);
    assert_eq!(c.find_by_id("c").await.unwrap().unwrap()["v"], 4, "the last of a repeated id wins");
    let b = c.find_by_id("b").await.unwrap().unwrap();
    assert_eq!((b.get("old"), &b["v"]), (None, &json!(2)), "replaced whole");
    let generated = c.find_by_id(&got[2].id).await.unwrap().unwrap();
    assert_eq!(generated["v"], 3);
    assert!(c.upsert_many(vec![]).await.unwrap().is_empty(), "an empty batch returns an empty list");
    fx.teardown().await;
}

/// `upsert_many`: "when any is invalid ... no document of it is stored".
pub async fn upsert_many_invalid_document_stores_nothing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "a", "v": "old"})).await.unwrap();
    for bad in [json!({"bad.key": 1}), json!({"_id": 7}), json!({"n": u64::MAX})] {
        let batch = vec![d(json!({"_id": "a", "v": "new"})), d(bad), d(json!({"_id": "c"}))];
        assert_kind(c.upsert_many(batch).await, ErrorKind::InvalidInput);
    }
    assert_eq!(ids(&c.find_all().await.unwrap()), ["a"]);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["v"], "old");
    fx.teardown().await;
}

/// A batch of 10,000 upserts, half replacing, lands whole.
pub async fn upsert_many_large_batch(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let first: Vec<_> = (0..5_000).map(|i| d(json!({"_id": format!("{i:06}"), "i": i, "gen": 1}))).collect();
    c.insert_many(first).await.unwrap();
    let batch: Vec<_> = (0..10_000)
        .map(|i| d(json!({"_id": format!("{i:06}"), "i": i, "gen": 2, "pad": "x".repeat(100)})))
        .collect();
    let got = c.upsert_many(batch).await.unwrap();
    assert_eq!(got.iter().filter(|u| u.inserted).count(), 5_000);
    assert_eq!(c.count_all().await.unwrap(), 10_000);
    assert_eq!(c.count(&Filter::eq("gen", 2)).await.unwrap(), 10_000);
    assert_eq!(c.find_by_id("004999").await.unwrap().unwrap()["pad"], "x".repeat(100));
    fx.teardown().await;
}

/// "`upsert` inserts when no document has the id" (`inserted: true`).
pub async fn upsert_inserts_when_missing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let r = c.upsert(d(json!({"_id": "a", "v": 1}))).await.unwrap();
    assert_eq!((r.id.as_str(), r.inserted), ("a", true));
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["v"], 1);
    fx.teardown().await;
}

/// "replacing keeps no field of the old document" (`inserted: false`).
pub async fn upsert_replaces_whole_document(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    c.insert_value(json!({"_id": "a", "old": 1, "keep": 2})).await.unwrap();
    let r = c.upsert(d(json!({"_id": "a", "keep": 3}))).await.unwrap();
    assert!(!r.inserted);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap(), d(json!({"_id": "a", "keep": 3})));
    assert_eq!(c.count_all().await.unwrap(), 1);
    fx.teardown().await;
}

/// "a document without `_id` is inserted with a generated id".
pub async fn upsert_without_id_generates_one(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let r = c.upsert(d(json!({"v": 1}))).await.unwrap();
    assert!(r.inserted);
    assert_eq!(c.find_by_id(&r.id).await.unwrap().unwrap()["v"], 1);
    fx.teardown().await;
}

/// "`find_by_id` of a missing id returns `None`".
pub async fn find_by_id_missing_returns_none(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert!(c.find_by_id("nope").await.unwrap().is_none());
    c.insert_value(json!({"_id": "yes"})).await.unwrap();
    assert!(c.find_by_id("nope").await.unwrap().is_none());
    fx.teardown().await;
}

/// "an id that cannot exist is `InvalidInput`".
pub async fn find_by_id_impossible_id_is_invalid(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert_kind(c.find_by_id("").await, ErrorKind::InvalidInput);
    assert_kind(c.find_by_id("a\0").await, ErrorKind::InvalidInput);
    assert_kind(c.find_by_id(&"x".repeat(513)).await, ErrorKind::InvalidInput);
    fx.teardown().await;
}

/// Every JSON type round-trips exactly: integers stay integers, floats stay floats (1.0 too),
/// the 64-bit extremes, nesting, nulls.
pub async fn values_round_trip_exactly(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let doc = json!({
        "_id": "r", "i": 42, "neg": -7, "max": i64::MAX, "min": i64::MIN, "f": 1.5, "whole": 1.0,
        "tiny": 5e-324, "big": 1.7976931348623157e308, "t": true, "fa": false, "n": null, "s": "str",
        "arr": [1, "two", [3.0], {"four": 4}, null], "obj": {"deep": {"deeper": {"deepest": [true]}}},
        "empty_obj": {}, "empty_arr": []
    });
    c.insert_value(doc.clone()).await.unwrap();
    let back = Value::Object(c.find_by_id("r").await.unwrap().unwrap());
    assert_eq!(back, doc);
    assert!(back["whole"].is_f64(), "1.0 must stay a float: {}", back["whole"]);
    assert!(back["i"].is_i64());
    assert!(back["arr"][2][0].is_f64());
    // The same through the stored-text read, with strings PostgreSQL stores mapped.
    c.insert_value(json!({"_id": "z", "nul": "a\u{0}b\u{1}c", "k\u{1}": 2.0_f64.powi(60)})).await.unwrap();
    for q in
        [Query::all(), Query::all().sort_desc("_id").limit(2), Query::new(Filter::eq("nul", "a\u{0}b\u{1}c"))]
    {
        let stored: Vec<Value> = c
            .find_stored_stream(&q)
            .await
            .unwrap()
            .map_ok(|s| s.deserialize::<Value>().unwrap())
            .try_collect()
            .await
            .unwrap();
        let found: Vec<Value> = c.find(&q).await.unwrap().into_iter().map(Value::Object).collect();
        assert_eq!(stored, found, "{q:?}");
    }
    fx.teardown().await;
}

/// "`update_one` ... returns how many documents matched (0 or 1)".
pub async fn update_one_sets_and_returns_one(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "v": 1}, {"_id": "b", "v": 2}])).await;
    assert_eq!(c.update_one(&Filter::eq("_id", "b"), &Update::new().set("v", 20)).await.unwrap(), 1);
    assert_eq!(c.find_by_id("b").await.unwrap().unwrap()["v"], 20);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["v"], 1);
    fx.teardown().await;
}

/// "no match returns 0 and changes nothing".
pub async fn update_one_no_match_returns_zero(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "v": 1}])).await;
    assert_eq!(c.update_one(&Filter::eq("v", 99), &Update::new().set("v", 0)).await.unwrap(), 0);
    assert_eq!(c.update_many(&Filter::eq("v", 99), &Update::new().set("v", 0)).await.unwrap(), 0);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap(), d(json!({"_id": "a", "v": 1})));
    fx.teardown().await;
}

/// "applies the update to the first matching document in `_id` order".
pub async fn update_one_takes_first_in_id_order(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "c", "k": 1}, {"_id": "a", "k": 1}, {"_id": "b", "k": 1}])).await;
    c.update_one(&Filter::eq("k", 1), &Update::new().set("hit", true)).await.unwrap();
    let hit = c.find(&Query::new(Filter::eq("hit", true))).await.unwrap();
    assert_eq!(ids(&hit), ["a"]);
    fx.teardown().await;
}

/// "`update_many` applies the update to every matching document and returns how many matched".
pub async fn update_many_updates_all_matching(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "g": 1}, {"_id": "b", "g": 2}, {"_id": "c", "g": 1}])).await;
    assert_eq!(c.update_many(&Filter::eq("g", 1), &Update::new().set("seen", 1)).await.unwrap(), 2);
    assert_eq!(ids(&c.find(&Query::new(Filter::eq("seen", 1))).await.unwrap()), ["a", "c"]);
    fx.teardown().await;
}

/// `$unset` removes a field; unsetting a missing field is no error.
pub async fn update_unset_removes_field(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "x": 1, "y": {"z": 2, "w": 3}}])).await;
    c.update_by_id("a", &Update::new().unset("x").unset("y.z").unset("nope")).await.unwrap();
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap(), d(json!({"_id": "a", "y": {"w": 3}})));
    fx.teardown().await;
}

/// `$inc` adds, creates a missing field, keeps integers integral and mixes with floats.
pub async fn update_inc_adds_creates_and_keeps_types(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "n": 5, "f": 0.5}])).await;
    c.update_by_id("a", &Update::new().inc("n", 2).inc("f", 1).inc("new", -3).inc("nested.count", 1))
        .await
        .unwrap();
    let doc = Value::Object(c.find_by_id("a").await.unwrap().unwrap());
    assert_eq!(doc, json!({"_id": "a", "n": 7, "f": 1.5, "new": -3, "nested": {"count": 1}}));
    assert!(doc["n"].is_i64());
    c.update_by_id("a", &Update::new().inc("n", 0.5)).await.unwrap();
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["n"], 7.5);
    fx.teardown().await;
}

/// "an update that cannot apply (`$inc` on a string) is `InvalidInput` and changes nothing".
pub async fn update_inc_on_string_is_invalid_and_changes_nothing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "s": "text", "v": 1}])).await;
    let m = assert_kind(
        c.update_by_id("a", &Update::new().set("v", 2).inc("s", 1)).await,
        ErrorKind::InvalidInput,
    );
    assert!(m.contains("\"s\""), "the error names the field: {m}");
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap(), d(json!({"_id": "a", "s": "text", "v": 1})));
    fx.teardown().await;
}

/// "`update_many` ... when the update cannot apply to one of them, no document changes".
pub async fn update_many_failure_changes_no_document(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "n": 1}, {"_id": "b", "n": "oops"}, {"_id": "c", "n": 3}])).await;
    assert_kind(c.update_many(&Filter::All, &Update::new().inc("n", 1)).await, ErrorKind::InvalidInput);
    let all = c.find_all().await.unwrap();
    assert_eq!(all, docs(json!([{"_id": "a", "n": 1}, {"_id": "b", "n": "oops"}, {"_id": "c", "n": 3}])));
    fx.teardown().await;
}

/// Updates cannot change `_id`; empty, conflicting and unknown updates are refused.
pub async fn invalid_updates_are_refused(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "v": 1}])).await;
    for u in [
        Update::new().set("_id", "b"),
        Update::new(),
        Update::new().set("v", 1).inc("v", 1),
        Update::new().set("a..b", 1),
        Update::new().inc("v", "one"),
        Update::new().set("v", json!({"bad.key": 1})),
    ] {
        assert_kind(c.update_many(&Filter::All, &u).await, ErrorKind::InvalidInput);
    }
    assert_kind(Update::from_json(&json!({"$push": {"v": 1}})), ErrorKind::InvalidInput);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap(), d(json!({"_id": "a", "v": 1})));
    fx.teardown().await;
}

/// `$set` on a dotted path creates the objects on the way; through a scalar it is refused.
pub async fn update_set_dotted_path_creates_objects(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "p": {"q": 1}, "s": 5}])).await;
    c.update_by_id("a", &Update::new().set("p.r.t", "x").set("new.deep", [1, 2])).await.unwrap();
    assert_eq!(
        c.find_by_id("a").await.unwrap().unwrap(),
        d(json!({"_id": "a", "p": {"q": 1, "r": {"t": "x"}}, "s": 5, "new": {"deep": [1, 2]}}))
    );
    assert_kind(c.update_by_id("a", &Update::new().set("s.t", 1)).await, ErrorKind::InvalidInput);
    fx.teardown().await;
}

/// "deleting a missing id returns 0".
pub async fn delete_missing_id_returns_zero(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a"}])).await;
    assert_eq!(c.delete_one(&Filter::eq("_id", "zz")).await.unwrap(), 0);
    assert!(!c.delete_by_id("zz").await.unwrap());
    assert_eq!(c.count_all().await.unwrap(), 1);
    fx.teardown().await;
}

/// "`delete_one` deletes the first matching document in `_id` order".
pub async fn delete_one_takes_first_in_id_order(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "b", "k": 1}, {"_id": "a", "k": 1}, {"_id": "c", "k": 2}])).await;
    assert_eq!(c.delete_one(&Filter::eq("k", 1)).await.unwrap(), 1);
    assert_eq!(ids(&c.find_all().await.unwrap()), ["b", "c"]);
    fx.teardown().await;
}

/// "`delete_many` deletes every matching document and returns how many".
pub async fn delete_many_returns_count(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 2}, {"_id": "c", "k": 1}])).await;
    assert_eq!(c.delete_many(&Filter::eq("k", 1)).await.unwrap(), 2);
    assert_eq!(ids(&c.find_all().await.unwrap()), ["b"]);
    assert_eq!(c.delete_many(&Filter::All).await.unwrap(), 1);
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

/// "`count` is how many documents match"; an empty collection counts 0.
pub async fn count_matches_filter_and_empty_is_zero(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let empty = fx.coll("empty").await;
    assert_eq!(empty.count_all().await.unwrap(), 0);
    assert_eq!(empty.count(&Filter::gt("x", 1)).await.unwrap(), 0);
    let c = seeded(&fx, json!([{"_id": "a", "x": 1}, {"_id": "b", "x": 2}, {"_id": "c", "x": 3}])).await;
    assert_eq!(c.count(&Filter::gt("x", 1)).await.unwrap(), 2);
    fx.teardown().await;
}

/// "a collection that is empty returns an empty list" from every read.
pub async fn reads_on_empty_collection_return_nothing(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    assert!(c.find(&Query::all().sort_desc("x").offset(3).limit(5)).await.unwrap().is_empty());
    assert!(c.find_one(Filter::eq("x", 1)).await.unwrap().is_none());
    assert_eq!(c.delete_many(&Filter::All).await.unwrap(), 0);
    assert_eq!(c.update_many(&Filter::All, &Update::new().set("a", 1)).await.unwrap(), 0);
    fx.teardown().await;
}

/// "`find_stream` returns the same documents as `find`, in the same order".
pub async fn find_stream_matches_find(f: &dyn BackendFactory) {
    use futures::TryStreamExt;
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let batch: Vec<_> = (0..500).map(|i| d(json!({"_id": format!("{i:04}"), "m": i % 7}))).collect();
    c.insert_many(batch).await.unwrap();
    let q = Query::new(Filter::gte("m", 3)).sort_desc("m").offset(10).limit(200);
    let streamed: Vec<_> = c.find_stream(&q).await.unwrap().try_collect().await.unwrap();
    assert_eq!(streamed, c.find(&q).await.unwrap());
    assert_eq!(streamed.len(), 200);
    fx.teardown().await;
}
