//! The query language, rule by rule, as written in `docs/query-semantics.md`.

use orbstore_core::{CollectionExt, Condition, ErrorKind, Filter, Projection, Query};
use serde_json::{json, Value};

use crate::support::*;

/// A mixed bag of documents many filter tests share.
fn mixed() -> Value {
    json!([
        {"_id": "int1", "v": 1},
        {"_id": "flt1", "v": 1.0},
        {"_id": "flt15", "v": 1.5},
        {"_id": "str1", "v": "1"},
        {"_id": "strb", "v": "b"},
        {"_id": "true", "v": true},
        {"_id": "fals", "v": false},
        {"_id": "null", "v": null},
        {"_id": "miss"},
        {"_id": "arr", "v": [0, 1, 10]},
        {"_id": "obj", "v": {"a": 1}},
        {"_id": "earr", "v": []}
    ])
}

/// Numbers compare as numbers: `1 == 1.0`, and equality finds both.
pub async fn filter_integer_equals_float(f: &dyn BackendFactory) {
    expect_filters(
        f,
        mixed(),
        &[
            (json!({"v": 1}), &["arr", "flt1", "int1"]),
            (json!({"v": 1.0}), &["arr", "flt1", "int1"]),
            (json!({"v": {"$eq": 1.5}}), &["flt15"]),
        ],
    )
    .await;
}

/// Booleans are not numbers and strings are not numbers: `{v: 1}` does not match `true` or `"1"`.
pub async fn filter_equality_respects_types(f: &dyn BackendFactory) {
    expect_filters(
        f,
        mixed(),
        &[
            (json!({"v": true}), &["true"]),
            (json!({"v": false}), &["fals"]),
            (json!({"v": "1"}), &["str1"]),
            (json!({"v": 0}), &["arr"]),
        ],
    )
    .await;
}

/// Range operators compare within a type class only (type bracketing).
pub async fn filter_range_is_type_bracketed(f: &dyn BackendFactory) {
    expect_filters(
        f,
        mixed(),
        &[
            (json!({"v": {"$gt": 0}}), &["arr", "flt1", "flt15", "int1"]),
            (json!({"v": {"$gte": 1, "$lt": 1.5}}), &["arr", "flt1", "int1"]),
            (json!({"v": {"$lt": 1}}), &["arr"]),
            (json!({"v": {"$gt": "0"}}), &["str1", "strb"]),
            (json!({"v": {"$gte": false}}), &["fals", "true"]),
            (json!({"v": {"$gt": false}}), &["true"]),
            (json!({"v": {"$lt": {"b": 0}}}), &["obj"]),
        ],
    )
    .await;
}

/// Strings compare by code points (byte order of UTF-8), not by a locale's collation.
pub async fn filter_strings_compare_by_code_point(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "upper", "s": "Z"}, {"_id": "lower", "s": "a"}, {"_id": "accent", "s": "é"},
        {"_id": "emoji", "s": "🦀"}, {"_id": "empty", "s": ""}, {"_id": "prefix", "s": "ab"}
    ]);
    expect_filters(
        f,
        docs.clone(),
        &[
            (json!({"s": {"$gt": "a"}}), &["accent", "emoji", "prefix"]),
            (json!({"s": {"$lt": "a"}}), &["empty", "upper"]),
            (json!({"s": {"$gt": "z"}}), &["accent", "emoji"]),
        ],
    )
    .await;
    expect_query(
        f,
        docs,
        Query::all().sort_asc("s"),
        &["empty", "upper", "lower", "prefix", "accent", "emoji"],
    )
    .await;
}

/// `{a: null}` matches null and missing (and arrays holding null), not `0`, `false` or `""`.
pub async fn filter_null_matches_null_and_missing(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "n", "a": null}, {"_id": "m"}, {"_id": "z", "a": 0}, {"_id": "f", "a": false},
        {"_id": "e", "a": ""}, {"_id": "an", "a": [1, null]}, {"_id": "ae", "a": []}
    ]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"a": null}), &["an", "m", "n"]),
            (json!({"a": {"$ne": null}}), &["ae", "e", "f", "z"]),
            (json!({"a": {"$gte": null}}), &["an", "m", "n"]),
            (json!({"a": {"$lte": null}}), &["an", "m", "n"]),
            (json!({"a": {"$gt": null}}), &[]),
        ],
    )
    .await;
}

/// `$ne` matches documents where the field is missing, and not arrays holding the value.
pub async fn filter_ne_matches_missing(f: &dyn BackendFactory) {
    expect_filters(
        f,
        mixed(),
        &[(
            json!({"v": {"$ne": 1}}),
            &["earr", "fals", "flt15", "miss", "null", "obj", "str1", "strb", "true"],
        )],
    )
    .await;
}

/// `$nin` matches missing fields; `$nin: []` matches everything.
pub async fn filter_nin_matches_missing(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "a", "x": 1}, {"_id": "b", "x": 2}, {"_id": "c"}, {"_id": "d", "x": [2, 3]}]);
    expect_filters(
        f,
        docs,
        &[(json!({"x": {"$nin": [2, 5]}}), &["a", "c"]), (json!({"x": {"$nin": []}}), &["a", "b", "c", "d"])],
    )
    .await;
}

/// `$exists: true` counts `null` as present; `$exists: false` only missing.
pub async fn filter_exists_true_and_false(f: &dyn BackendFactory) {
    let docs =
        json!([{"_id": "a", "x": null}, {"_id": "b", "x": 0}, {"_id": "c"}, {"_id": "d", "y": {"x": 1}}]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"x": {"$exists": true}}), &["a", "b"]),
            (json!({"x": {"$exists": false}}), &["c", "d"]),
            (json!({"y.x": {"$exists": true}}), &["d"]),
        ],
    )
    .await;
}

/// A condition on an array field matches when any element matches.
pub async fn filter_array_matches_any_element(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "tags": ["red", "blue"]}, {"_id": "b", "tags": ["green"]}, {"_id": "c", "tags": "red"},
        {"_id": "d", "tags": [["red"]]}
    ]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"tags": "red"}), &["a", "c"]),
            (json!({"tags": {"$in": ["green", "blue"]}}), &["a", "b"]),
            (json!({"tags": {"$ne": "red"}}), &["b", "d"]),
        ],
    )
    .await;
}

/// Equality with an array value matches the whole array (order matters) or an element that is
/// that array.
pub async fn filter_array_whole_value_equality(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "v": [1, 2]}, {"_id": "b", "v": [2, 1]}, {"_id": "c", "v": [[1, 2], 3]}, {"_id": "d", "v": [1, 2, 3]}
    ]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"v": [1, 2]}), &["a", "c"]),
            (json!({"v": [1.0, 2]}), &["a", "c"]),
            (json!({"v": []}), &[]),
        ],
    )
    .await;
}

/// Range conditions on arrays: any element, and several conditions may be met by different
/// elements (as in MongoDB).
pub async fn filter_array_range_any_element(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "a", "v": [1, 10]}, {"_id": "b", "v": [6, 7]}, {"_id": "c", "v": [1, 2]}, {"_id": "d", "v": ["x", 20]}]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"v": {"$gt": 5}}), &["a", "b", "d"]),
            (json!({"v": {"$gt": 5, "$lt": 8}}), &["a", "b"]),
            (json!({"v": {"$lt": 0}}), &[]),
            (json!({"v": {"$gte": "a"}}), &["d"]),
        ],
    )
    .await;
}

/// Dotted paths reach into nested objects; a missing level is a missing field.
pub async fn filter_nested_paths(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "p": {"q": {"r": 1}}}, {"_id": "b", "p": {"q": 2}}, {"_id": "c", "p": 5}, {"_id": "d"}
    ]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"p.q.r": 1}), &["a"]),
            (json!({"p.q": 2}), &["b"]),
            (json!({"p.q": {"r": 1}}), &["a"]),
            (json!({"p.q.r": null}), &["b", "c", "d"]),
            (json!({"p.q.r": {"$exists": false}}), &["b", "c", "d"]),
        ],
    )
    .await;
}

/// A path through an array of objects looks into each element; a numeric segment indexes.
pub async fn filter_paths_through_arrays(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "items": [{"sku": "x", "n": 1}, {"sku": "y", "n": 5}]},
        {"_id": "b", "items": [{"sku": "y", "n": 2}]},
        {"_id": "c", "items": [{"n": 9}]},
        {"_id": "d", "items": []}
    ]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"items.sku": "y"}), &["a", "b"]),
            (json!({"items.n": {"$gt": 4}}), &["a", "c"]),
            (json!({"items.0.sku": "y"}), &["b"]),
            (json!({"items.1.n": 5}), &["a"]),
            (json!({"items.sku": null}), &["c", "d"]),
            (json!({"items.sku": {"$exists": true}}), &["a", "b"]),
        ],
    )
    .await;
}

/// `$in` with values of mixed types, `null` in the list matching missing, `$in: []` nothing.
pub async fn filter_in_with_mixed_types(f: &dyn BackendFactory) {
    expect_filters(
        f,
        mixed(),
        &[
            (json!({"v": {"$in": [1.5, "b", true]}}), &["flt15", "strb", "true"]),
            (json!({"v": {"$in": [null, {"a": 1.0}]}}), &["miss", "null", "obj"]),
            (json!({"v": {"$in": []}}), &[]),
            (json!({"v": {"$in": [[]]}}), &["earr"]),
        ],
    )
    .await;
}

/// `$not` is the exact complement of its conditions, so it matches missing fields and other types.
pub async fn filter_not_is_the_complement(f: &dyn BackendFactory) {
    expect_filters(
        f,
        mixed(),
        &[
            (
                json!({"v": {"$not": {"$gte": 1}}}),
                &["earr", "fals", "miss", "null", "obj", "str1", "strb", "true"],
            ),
            (
                json!({"v": {"$not": {"$gt": 0, "$lt": 1.5}}}),
                &["earr", "fals", "flt15", "miss", "null", "obj", "str1", "strb", "true"],
            ),
            (
                json!({"v": {"$not": {"$in": [1, "b"]}}}),
                &["earr", "fals", "flt15", "miss", "null", "obj", "str1", "true"],
            ),
            (json!({"v": {"$not": {"$exists": true}}}), &["miss"]),
        ],
    )
    .await;
}

/// `$and`, `$or`, nesting, and several top-level keys ANDed.
pub async fn filter_and_or_combine(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "x": 1, "y": "p"}, {"_id": "b", "x": 2, "y": "q"}, {"_id": "c", "x": 3, "y": "p"}, {"_id": "d"}
    ]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"$or": [{"x": 1}, {"y": "q"}]}), &["a", "b"]),
            (json!({"$and": [{"x": {"$gte": 2}}, {"y": "p"}]}), &["c"]),
            (json!({"x": {"$gte": 1}, "y": "p"}), &["a", "c"]),
            (json!({"$or": [{"$and": [{"x": 1}, {"y": "p"}]}, {"x": {"$exists": false}}]}), &["a", "d"]),
            (
                json!({"$and": [{"$or": [{"x": 1}, {"x": 3}]}, {"$or": [{"y": "p"}, {"y": "q"}]}]}),
                &["a", "c"],
            ),
            (json!({}), &["a", "b", "c", "d"]),
        ],
    )
    .await;
}

/// Empty `$and` / `$or` are `InvalidInput`, from JSON and from the builder.
pub async fn filter_empty_and_or_are_invalid(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a"}])).await;
    assert_kind(Filter::from_json(&json!({"$and": []})), ErrorKind::InvalidInput);
    assert_kind(Filter::from_json(&json!({"$or": []})), ErrorKind::InvalidInput);
    assert_kind(c.find(&Query::new(Filter::or([]))).await, ErrorKind::InvalidInput);
    assert_kind(c.count(&Filter::and([])).await, ErrorKind::InvalidInput);
    assert_kind(c.delete_many(&Filter::or([])).await, ErrorKind::InvalidInput);
    assert_eq!(c.count_all().await.unwrap(), 1, "a refused delete deletes nothing");
    fx.teardown().await;
}

/// Unknown operators, non-object filters and malformed operands are `InvalidInput` naming the part.
pub async fn filter_malformed_is_invalid_and_named(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    for (bad, needle) in [
        (json!({"a": {"$regex": "x"}}), "$regex"),
        (json!({"$where": "1"}), "$where"),
        (json!("a"), "JSON object"),
        (json!({"a": {"$in": 3}}), "$in"),
        (json!({"a": {"$gt": 1, "b": 1}}), "\"b\""),
        (json!({"a": {"$not": 1}}), "$not"),
        (json!({"a": {"$exists": "yes"}}), "$exists"),
        (json!({"a.": 1}), "a."),
    ] {
        let m = assert_kind(Filter::from_json(&bad), ErrorKind::InvalidInput);
        assert!(m.contains(needle), "{bad}: {m}");
    }
    fx.teardown().await;
}

/// Filters built in Rust with a bad path are refused by every operation, before any change.
pub async fn filter_builder_bad_path_is_invalid(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "x": 1}])).await;
    for bad in [Filter::eq("", 1), Filter::eq("a..b", 1), Filter::gt("$x", 1), Filter::not("x", vec![])] {
        assert_kind(c.find(&Query::new(bad.clone())).await, ErrorKind::InvalidInput);
        assert_kind(c.count(&bad).await, ErrorKind::InvalidInput);
        assert_kind(
            c.update_many(&bad, &orbstore_core::Update::new().set("x", 2)).await,
            ErrorKind::InvalidInput,
        );
        assert_kind(c.delete_many(&bad).await, ErrorKind::InvalidInput);
    }
    assert_kind(c.find(&Query::all().sort_asc("a..b")).await, ErrorKind::InvalidInput);
    assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["x"], 1);
    fx.teardown().await;
}

/// Embedded objects are equal regardless of the order their keys were written in.
pub async fn filter_object_equality_ignores_key_order(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let written: Value = serde_json::from_str(r#"{"_id":"a","o":{"y":2,"x":1}}"#).unwrap();
    c.insert_value(written).await.unwrap();
    c.insert_value(json!({"_id": "b", "o": {"x": 1}})).await.unwrap();
    let filter: Value = serde_json::from_str(r#"{"o":{"x":1,"y":2.0}}"#).unwrap();
    let found = c.find(&Query::new(Filter::from_json(&filter).unwrap())).await.unwrap();
    assert_eq!(ids(&found), ["a"]);
    fx.teardown().await;
}

/// Several conditions on one field are ANDed; the builder's `field` says the same.
pub async fn filter_several_conditions_on_one_field(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "x": 1}, {"_id": "b", "x": 5}, {"_id": "c", "x": 9}])).await;
    let built =
        Filter::field("x", vec![Condition::Gt(json!(2)), Condition::Lt(json!(9)), Condition::Ne(json!(4))]);
    assert_eq!(ids(&c.find(&Query::new(built)).await.unwrap()), ["b"]);
    fx.teardown().await;
}

/// Filters on `_id`: equality, `$in`, ranges (ids are strings).
pub async fn filter_on_id(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "a1"}, {"_id": "a2"}, {"_id": "b1"}, {"_id": "c1"}]);
    expect_filters(
        f,
        docs,
        &[
            (json!({"_id": "a2"}), &["a2"]),
            (json!({"_id": {"$in": ["c1", "a1", "zz"]}}), &["a1", "c1"]),
            (json!({"_id": {"$gte": "a2", "$lt": "c"}}), &["a2", "b1"]),
            (json!({"_id": "a2", "x": {"$exists": true}}), &[]),
            (json!({"_id": {"$ne": "a1"}}), &["a2", "b1", "c1"]),
        ],
    )
    .await;
}

/// Sort puts missing and null first, then numbers, strings, objects, arrays, booleans; a
/// one-element array sorts as its element.
pub async fn sort_orders_type_classes(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "1", "a": 2}, {"_id": "2"}, {"_id": "3", "a": "x"}, {"_id": "4", "a": null},
        {"_id": "5", "a": true}, {"_id": "6", "a": {"k": 1}}, {"_id": "7", "a": [1]}, {"_id": "8", "a": -1.5},
        {"_id": "9", "a": false}, {"_id": "10", "a": [[1]]}
    ]);
    let asc = ["2", "4", "8", "7", "1", "3", "6", "10", "9", "5"];
    expect_query(f, docs.clone(), Query::all().sort_asc("a"), &asc).await;
    let desc = ["5", "9", "10", "6", "3", "1", "7", "8", "2", "4"];
    expect_query(f, docs, Query::all().sort_desc("a"), &desc).await;
}

/// An array field sorts by its smallest element ascending and its largest descending, in the
/// order of type classes; an empty array sorts below null and missing; a nested array is an
/// element of the array class.
pub async fn sort_arrays_by_smallest_or_largest_element(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "v": [3, 1, 2]}, {"_id": "b", "v": 2}, {"_id": "c", "v": []}, {"_id": "d"},
        {"_id": "e", "v": [null, 5]}, {"_id": "f", "v": ["x", 0]}, {"_id": "g", "v": [[0], 4]},
        {"_id": "h", "v": [{"k": 1}, true]}
    ]);
    expect_query(f, docs.clone(), Query::all().sort_asc("v"), &["c", "d", "e", "f", "a", "b", "g", "h"])
        .await;
    expect_query(f, docs.clone(), Query::all().sort_desc("v"), &["h", "g", "f", "e", "a", "b", "d", "c"])
        .await;
    expect_query(f, docs.clone(), Query::all().sort_asc("v").offset(1).limit(3), &["d", "e", "f"]).await;
    let numbers_only = Query::new(Filter::from_json(&json!({"_id": {"$in": ["a", "b", "e"]}})).unwrap());
    expect_query(f, docs, numbers_only.sort_desc("v"), &["e", "a", "b"]).await;
}

/// A path through an array of objects sorts by the smallest or largest of its values; an element
/// without the field counts as null, and an array at the end of the path gives its elements.
pub async fn sort_paths_through_arrays_of_objects(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "p", "r": [{"s": 5}, {"s": 1}]}, {"_id": "q", "r": [{"s": 3}, {"t": 9}]},
        {"_id": "r", "r": {"s": 2}}, {"_id": "s", "r": [{"s": [7, 0]}]}, {"_id": "t", "r": [{"s": []}, {"s": 4}]}
    ]);
    expect_query(f, docs.clone(), Query::all().sort_asc("r.s"), &["t", "q", "s", "p", "r"]).await;
    expect_query(f, docs.clone(), Query::all().sort_desc("r.s"), &["s", "p", "t", "q", "r"]).await;
    expect_query(f, docs, Query::all().sort_desc("r.s").limit(2), &["s", "p"]).await;
}

/// Ties are broken by `_id` ascending, whatever the insertion order.
pub async fn sort_ties_break_by_id(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "d", "g": 1}, {"_id": "b", "g": 2}, {"_id": "a", "g": 1}, {"_id": "c", "g": 2}, {"_id": "e"}]);
    expect_query(f, docs, Query::all().sort_asc("g"), &["e", "a", "d", "b", "c"]).await;
}

/// Descending reverses the values, not the `_id` tie-break; `1` and `1.0` tie.
pub async fn sort_descending_keeps_id_tie_break_ascending(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "b", "a": 1}, {"_id": "a", "a": 1.0}, {"_id": "c", "a": 2}]);
    expect_query(f, docs, Query::all().sort_desc("a"), &["c", "a", "b"]).await;
}

/// Several sort keys apply in order.
pub async fn sort_on_several_fields(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "1", "u": "x", "s": 3}, {"_id": "2", "u": "y", "s": 1}, {"_id": "3", "u": "x", "s": 5},
        {"_id": "4", "u": "y", "s": 9}, {"_id": "5", "u": "x", "s": 5}
    ]);
    expect_query(f, docs, Query::all().sort_asc("u").sort_desc("s"), &["3", "5", "1", "4", "2"]).await;
}

/// Sorting on a nested path; numbers of both kinds interleave by value.
pub async fn sort_nested_path_and_mixed_numbers(f: &dyn BackendFactory) {
    let docs = json!([
        {"_id": "a", "m": {"q": 2.5}}, {"_id": "b", "m": {"q": 2}}, {"_id": "c", "m": {"q": -10}},
        {"_id": "d", "m": {"q": 1e10}}, {"_id": "e", "m": {}}, {"_id": "f", "m": {"q": i64::MAX}}
    ]);
    expect_query(f, docs, Query::all().sort_asc("m.q"), &["e", "c", "b", "a", "d", "f"]).await;
}

/// Sorting on `_id` itself, both ways.
pub async fn sort_on_id(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "b"}, {"_id": "c"}, {"_id": "a"}]);
    expect_query(f, docs.clone(), Query::all().sort_desc("_id"), &["c", "b", "a"]).await;
    expect_query(f, docs, Query::all().sort_asc("_id"), &["a", "b", "c"]).await;
}

/// Inclusion projection returns only the named fields plus `_id`.
pub async fn projection_includes_named_fields_and_id(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "x": 1, "y": 2, "z": {"w": 3, "v": 4}}])).await;
    let got = c.find(&Query::all().project(Projection::include(["x", "z.w", "missing"]))).await.unwrap();
    assert_eq!(got, docs(json!([{"_id": "a", "x": 1, "z": {"w": 3}}])));
    fx.teardown().await;
}

/// Exclusion projection returns everything but the named fields.
pub async fn projection_excludes_named_fields(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "x": 1, "secret": "s", "z": {"w": 3, "pw": "p"}}])).await;
    let got = c.find(&Query::all().project(Projection::exclude(["secret", "z.pw"]))).await.unwrap();
    assert_eq!(got, docs(json!([{"_id": "a", "x": 1, "z": {"w": 3}}])));
    fx.teardown().await;
}

/// `_id` can be left out; a projection that mixes inclusion and exclusion is `InvalidInput`.
pub async fn projection_without_id_and_mixing_refused(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "x": 1, "y": 2}])).await;
    let got = c.find(&Query::all().project(Projection::include(["x"]).without_id())).await.unwrap();
    assert_eq!(got, docs(json!([{"x": 1}])));
    let p = Projection::from_json(&json!({"_id": 0, "y": 0})).unwrap();
    assert_eq!(c.find(&Query::all().project(p)).await.unwrap(), docs(json!([{"x": 1}])));
    assert_kind(Projection::from_json(&json!({"x": 1, "y": 0})), ErrorKind::InvalidInput);
    fx.teardown().await;
}

/// Projection through an array of objects applies to each object element.
pub async fn projection_through_arrays(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "items": [{"sku": "x", "n": 1}, {"n": 2}, 7]}])).await;
    let got = c.find(&Query::all().project(Projection::include(["items.sku"]))).await.unwrap();
    assert_eq!(got, docs(json!([{"_id": "a", "items": [{"sku": "x"}, {}]}])));
    fx.teardown().await;
}

/// Projection applies after sort, offset and limit, so it may drop the sort key.
pub async fn projection_after_sort_may_drop_sort_key(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "a", "k": 2, "v": "A"}, {"_id": "b", "k": 1, "v": "B"}])).await;
    let got =
        c.find(&Query::all().sort_asc("k").project(Projection::include(["v"]).without_id())).await.unwrap();
    assert_eq!(got, docs(json!([{"v": "B"}, {"v": "A"}])));
    fx.teardown().await;
}

/// `limit(0)` returns nothing; no limit returns everything.
pub async fn limit_zero_returns_nothing(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "a"}, {"_id": "b"}]);
    expect_query(f, docs.clone(), Query::all().limit(0), &[]).await;
    expect_query(f, docs, Query::all(), &["a", "b"]).await;
}

/// An offset at or past the end returns nothing; huge offsets and limits are fine.
pub async fn offset_past_end_returns_nothing(f: &dyn BackendFactory) {
    let docs = json!([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]);
    expect_query(f, docs.clone(), Query::all().offset(3), &[]).await;
    expect_query(f, docs.clone(), Query::all().offset(u64::MAX), &[]).await;
    expect_query(f, docs, Query::all().offset(1).limit(u64::MAX), &["b", "c"]).await;
}

/// Offset and limit page through a sorted result without gaps or repeats.
pub async fn offset_and_limit_page_through(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let batch: Vec<_> = (0..25).map(|i| d(json!({"_id": format!("{i:02}"), "k": i % 4}))).collect();
    c.insert_many(batch).await.unwrap();
    let mut seen = Vec::new();
    for page in 0..4 {
        let q = Query::all().sort_desc("k").offset(page * 7).limit(7);
        seen.extend(ids(&c.find(&q).await.unwrap()));
    }
    let whole = ids(&c.find(&Query::all().sort_desc("k")).await.unwrap());
    assert_eq!(seen, whole);
    assert_eq!(seen.len(), 25);
    fx.teardown().await;
}

/// Queries parse from JSON in the documented shape and give the same result as the builder.
pub async fn query_from_json_equals_builder(f: &dyn BackendFactory) {
    let docs =
        json!([{"_id": "a", "k": 1}, {"_id": "b", "k": 3}, {"_id": "c", "k": 2}, {"_id": "d", "k": 0}]);
    let q =
        Query::from_json(&json!({"filter": {"k": {"$gte": 1}}, "sort": [{"k": -1}], "skip": 1, "limit": 1}))
            .unwrap();
    assert_eq!(q, Query::new(Filter::gte("k", 1)).sort_desc("k").offset(1).limit(1));
    expect_query(f, docs, q, &["c"]).await;
}
