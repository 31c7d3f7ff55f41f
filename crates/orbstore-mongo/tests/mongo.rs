//! MongoDB-specific promises: the BSON each query becomes, the JSON <-> BSON mapping through a
//! real server, the query mode chosen from `buildInfo`, exact-mode refusals, and an unreachable
//! server failing fast.

mod common;

use std::time::{Duration, Instant};

use mongodb::bson::{doc, Bson};
use orbstore_core::{
    CollectionExt, ErrorKind, Filter, IndexSpec, MongoConfig, MongoQueryMode, PersistenceBackend, Query,
    Secret, Update,
};
use orbstore_mongo::{filter_bson, native_safe, sort_bson, update_bson, Mode, MongoBackend};
use orbstore_testkit::{d, ids};
use serde_json::json;

fn f(v: serde_json::Value) -> Filter {
    Filter::from_json(&v).unwrap()
}

#[test]
fn queries_become_the_bson_mongodb_reads() {
    assert_eq!(
        filter_bson(&f(json!({"score": {"$gte": 0.5, "$lt": 1}, "user": "u1"}))),
        doc! {"score": {"$gte": 0.5, "$lt": 1}, "user": {"$eq": "u1"}}
    );
    assert_eq!(
        filter_bson(&Filter::and([Filter::gte("score", 0.25), Filter::lt("score", 0.35)])),
        doc! {"score": {"$gte": 0.25, "$lt": 0.35}}
    );
    // The same operator twice on one path keeps the `$and`.
    assert_eq!(
        filter_bson(&Filter::and([Filter::gt("a", 1), Filter::gt("a", 2)])),
        doc! {"$and": [{"a": {"$gt": 1}}, {"a": {"$gt": 2}}]}
    );
    assert_eq!(
        filter_bson(&f(json!({"n": 3_000_000_000_i64}))),
        doc! {"n": {"$eq": Bson::Int64(3_000_000_000)}}
    );
    assert_eq!(
        filter_bson(&f(json!({"a.b": {"$in": [1, "x", null]}}))),
        doc! {"a.b": {"$in": [1, "x", Bson::Null]}}
    );
    assert_eq!(
        filter_bson(&f(json!({"$or": [{"a": {"$exists": false}}, {"b": {"$not": {"$gt": 2}}}]}))),
        doc! {"$or": [{"a": {"$exists": false}}, {"b": {"$not": {"$gt": 2}}}]}
    );
    assert_eq!(filter_bson(&Filter::All), doc! {});
    assert_eq!(
        sort_bson(&Query::all().sort_desc("score").sort_asc("user")),
        doc! {"score": -1, "user": 1, "_id": 1}
    );
    assert_eq!(sort_bson(&Query::all().sort_desc("_id")), doc! {"_id": -1});
    assert_eq!(
        update_bson(&Update::new().set("a.b", true).inc("n", 1).unset("gone")),
        doc! {"$set": {"a.b": true}, "$inc": {"n": 1}, "$unset": {"gone": ""}}
    );
}

#[test]
fn object_operands_are_not_pushed_down() {
    assert!(native_safe(&f(json!({"a": 1, "b": {"$in": [[1, 2]]}}))));
    assert!(!native_safe(&f(json!({"o": {"x": 1}}))));
    assert!(!native_safe(&f(json!({"$or": [{"a": 1}, {"o": {"$in": [{"x": 1}]}}]}))));
}

/// A backend on a fresh database and its settings; panics without a server (the test is ignored
/// then, unless run with `--ignored`).
async fn open(mode: MongoQueryMode) -> (MongoBackend, MongoConfig) {
    let cfg = common::require(common::config(mode));
    (MongoBackend::open(cfg.clone()).await.unwrap_or_else(|e| panic!("open: {e}")), cfg)
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn documents_round_trip_through_the_server_without_loss() {
    let (store, cfg) = open(MongoQueryMode::Auto).await;
    let c = store.collection("t").await.unwrap();
    let doc = json!({
        "_id": "a", "i32": 7, "i64max": i64::MAX, "i64min": i64::MIN, "one": 1.0, "frac": -2.5,
        "deep": {"l1": {"l2": {"l3": {"l4": [1, {"l5": "x"}]}}}}, "ключ": "значение", "emoji😀": [true, null]
    });
    c.insert_value(doc.clone()).await.unwrap();
    let back = c.find_by_id("a").await.unwrap().unwrap();
    assert_eq!(serde_json::Value::Object(back.clone()), doc);
    assert!(back["one"].is_f64(), "1.0 stays a float");
    assert!(back["i64max"].is_i64());
    // As stored: integers are BSON integers, the id a string.
    let raw =
        store.database().collection::<mongodb::bson::Document>("t").find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(raw.get("_id"), Some(&Bson::String("a".into())));
    assert_eq!(raw.get("i32"), Some(&Bson::Int32(7)));
    assert_eq!(raw.get("i64max"), Some(&Bson::Int64(i64::MAX)));
    assert_eq!(raw.get("one"), Some(&Bson::Double(1.0)));
    // Keys with `.` or a leading `$` are refused before any I/O (not escaped).
    for bad in [json!({"a.b": 1}), json!({"$x": 1}), json!({"o": {"p.q": 1}})] {
        assert_eq!(c.insert_value(bad).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    // A value JSON cannot hold, written by someone else, is refused on read, naming the path.
    store
        .database()
        .collection::<mongodb::bson::Document>("t")
        .insert_one(doc! {"_id": "odd", "when": mongodb::bson::DateTime::now()})
        .await
        .unwrap();
    let e = c.find_by_id("odd").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("when"), "{e}");
    store.close().await.unwrap();
    common::drop_database(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn the_mode_follows_build_info_and_exact_mode_refuses_what_it_cannot_keep() {
    let (store, cfg) = open(MongoQueryMode::Auto).await;
    if store.server().starts_with("MongoDB ") {
        assert_eq!(store.mode(), Mode::Native, "{}", store.server());
    } else {
        assert_eq!(store.mode(), Mode::Exact, "{}", store.server());
        assert!(!store.capabilities().unique_indexes);
        let c = store.collection("t").await.unwrap();
        let e = c.create_index(IndexSpec::new(["k"]).unique()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        c.create_index(IndexSpec::new(["k"])).await.unwrap();
        // Setting a boolean keeps it a boolean (nx-27017's own `$set` would store 1).
        c.insert_value(json!({"_id": "a", "k": 1, "flag": false})).await.unwrap();
        assert_eq!(c.update_many(&f(json!({"k": 1})), &Update::new().set("flag", true)).await.unwrap(), 1);
        assert_eq!(c.find_by_id("a").await.unwrap().unwrap()["flag"], json!(true));
        assert_eq!(ids(&c.find(&Query::new(Filter::eq("flag", true))).await.unwrap()), ["a"]);
    }
    let e = store.begin().await.err().expect("transactions are not offered");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("transactions"), "{e}");
    store.close().await.unwrap();
    common::drop_database(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn insert_many_refused_midway_leaves_nothing() {
    let (store, cfg) = open(MongoQueryMode::Auto).await;
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "k050"})).await.unwrap();
    let batch: Vec<_> = (0..100).map(|i| d(json!({"_id": format!("k{i:03}")}))).collect();
    assert_eq!(c.insert_many(batch).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(ids(&c.find_all().await.unwrap()), ["k050"], "the pre-existing document stays, nothing else");
    store.close().await.unwrap();
    common::drop_database(&cfg).await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_prompt_unavailable_without_the_password() {
    let cfg = MongoConfig {
        url: Secret::new(
            "mongodb://bob:hunter2-secret@127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=1500",
        ),
        database: "x".into(),
        query_mode: MongoQueryMode::Auto,
    };
    let start = Instant::now();
    let e = MongoBackend::open(cfg.clone()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    for text in [e.to_string(), format!("{e:?}"), format!("{cfg:?}")] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    // Without a timeout in the URL, the backend's own bound applies.
    let cfg = MongoConfig {
        url: Secret::new("mongodb://127.0.0.1:1/?directConnection=true"),
        database: "x".into(),
        query_mode: MongoQueryMode::Auto,
    };
    let start = Instant::now();
    assert_eq!(MongoBackend::open(cfg).await.unwrap_err().kind(), ErrorKind::Unavailable);
    assert!(start.elapsed() < orbstore_mongo::SERVER_SELECTION_TIMEOUT + Duration::from_secs(3));
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn stats_and_health_come_from_the_server() {
    let (store, cfg) = open(MongoQueryMode::Auto).await;
    let c = store.collection("t").await.unwrap();
    c.insert_many((0..10).map(|i| d(json!({"i": i}))).collect()).await.unwrap();
    c.create_index(IndexSpec::new(["i"])).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.backend, "mongodb");
    assert_eq!(stats.collections.len(), 1);
    assert_eq!((stats.collections[0].documents, stats.collections[0].indexes), (10, 1));
    let h = store.health().await;
    assert!(h.healthy, "{h:?}");
    assert!(h.message.contains("ping"), "{h:?}");
    store.close().await.unwrap();
    common::drop_database(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn transactions_are_offered_only_where_the_server_runs_them() {
    let cfg = common::require(common::config(MongoQueryMode::Auto));
    let plain = MongoBackend::open(cfg.clone()).await.unwrap();
    let opted = MongoBackend::open_allowing_unisolated_transactions(cfg.clone()).await.unwrap();
    let replicated = plain.server().contains("replicated");
    let caps = plain.capabilities();
    assert_eq!(caps.transactions, caps.isolated_transactions, "{caps:?}");
    if plain.server().starts_with("MongoDB ") {
        assert_eq!(caps.transactions, replicated, "{}", plain.server());
    } else {
        // nx-27017 runs transactions, but not isolated ones: only on request.
        assert!(!caps.transactions, "{}", plain.server());
        let opted_caps = opted.capabilities();
        assert!(opted_caps.transactions && !opted_caps.isolated_transactions, "{opted_caps:?}");
        let tx = opted.begin().await.unwrap();
        tx.collection("t").await.unwrap().insert_value(json!({"_id": "x"})).await.unwrap();
        tx.commit().await.unwrap();
        assert!(opted.collection("t").await.unwrap().find_by_id("x").await.unwrap().is_some());
    }
    plain.close().await.unwrap();
    opted.close().await.unwrap();
    common::drop_database(&cfg).await;
}
