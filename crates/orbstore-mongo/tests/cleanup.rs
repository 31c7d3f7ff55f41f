//! `cleanup` on MongoDB: orphans made for real with the raw driver, as a crash between the two
//! steps of `drop_collection` (collection dropped, catalog rows not yet deleted) or of
//! `create_index` (index built, not yet recorded) leaves them; listed exactly, removed only with
//! `apply`, never touching a live collection's documents, its catalogued indexes, or indexes
//! made by hand.
//!
//! Guards against a cleanup that misses an orphan, removes one without `apply`, drops an index
//! it did not make, or leaves a stale catalog row that keeps `create_index` from building.

mod common;

use mongodb::bson::{doc, Document as BsonDocument};
use mongodb::IndexModel;
use orbstore_core::{CollectionExt, Filter, IndexSpec, MongoQueryMode, PersistenceBackend};
use orbstore_mongo::MongoBackend;
use orbstore_testkit::cleanup::{contents, o, summary};
use orbstore_testkit::d;
use serde_json::json;

/// The index names the server has on a collection, sorted.
async fn server_indexes(store: &MongoBackend, name: &str) -> Vec<String> {
    let mut v = store.database().collection::<BsonDocument>(name).list_index_names().await.unwrap();
    v.sort();
    v
}

/// The server's name for the index over `field` (nx-27017 names indexes itself).
async fn index_over(store: &MongoBackend, coll: &str, field: &str) -> String {
    let mut cursor = store.database().collection::<BsonDocument>(coll).list_indexes().await.unwrap();
    while let Some(m) = futures::TryStreamExt::try_next(&mut cursor).await.unwrap() {
        if m.keys.keys().map(String::as_str).eq([field]) {
            return m.options.and_then(|o| o.name).unwrap();
        }
    }
    panic!("no index over {field:?} on {coll:?}")
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn cleanup_lists_exactly_the_orphans_and_removes_them_only_with_apply() {
    let cfg = common::require(common::config(MongoQueryMode::Auto));
    let store = MongoBackend::open(cfg.clone()).await.unwrap_or_else(|e| panic!("open: {e}"));
    let db = store.database().clone();
    // Live collections, left alone throughout.
    let a = store.collection("a").await.unwrap();
    a.insert_many((0..20).map(|i| d(json!({"_id": format!("a{i:02}"), "n": i}))).collect()).await.unwrap();
    a.create_index(IndexSpec::new(["n"])).await.unwrap();
    let b = store.collection("b").await.unwrap();
    b.insert_value(json!({"_id": "b1", "tags": ["x", "y"]})).await.unwrap();
    b.create_index(IndexSpec::new(["tags"])).await.unwrap();
    // A live collection whose catalogued index is dropped by hand.
    let c = store.collection("c").await.unwrap();
    c.insert_value(json!({"_id": "c1", "n": 1})).await.unwrap();
    c.create_index(IndexSpec::new(["n"])).await.unwrap();
    let c_index = index_over(&store, "c", "n").await;
    db.collection::<BsonDocument>("c").drop_index(c_index).await.unwrap();
    assert_eq!(server_indexes(&store, "c").await, ["_id_"]);
    // drop_collection interrupted after its first step: the collection is gone, its rows stay.
    let gone = store.collection("gone").await.unwrap();
    gone.insert_value(json!({"_id": "g1", "arr": [1, 2]})).await.unwrap();
    gone.create_index(IndexSpec::new(["arr"])).await.unwrap();
    db.collection::<BsonDocument>("gone").drop().await.unwrap();
    // The same, then the collection written again: the stale row makes create_index a no-op.
    let again = store.collection("again").await.unwrap();
    again.insert_value(json!({"_id": "x1", "x": 1})).await.unwrap();
    again.create_index(IndexSpec::new(["x"])).await.unwrap();
    db.collection::<BsonDocument>("again").drop().await.unwrap();
    again.insert_value(json!({"_id": "x2", "x": 2})).await.unwrap();
    again.create_index(IndexSpec::new(["x"])).await.unwrap();
    assert_eq!(
        server_indexes(&store, "again").await,
        ["_id_"],
        "the stale row kept create_index from building"
    );
    // create_index interrupted after its first step: the index is built, not recorded.
    db.collection::<BsonDocument>("a")
        .create_index(IndexModel::builder().keys(doc! {"z": 1}).build())
        .await
        .unwrap();
    let z_index = index_over(&store, "a", "z").await;
    // What orbstore did not make is left alone: a unique index without orbstore's partial filter.
    db.collection::<BsonDocument>("a")
        .create_index(
            IndexModel::builder()
                .keys(doc! {"h": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name("by_hand".to_owned())
                        .unique(true)
                        .sparse(true)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    // A catalog row nobody can read: listed, kept.
    db.collection::<BsonDocument>("_orbstore_indexes").insert_one(doc! {"_id": "junk"}).await.unwrap();
    let before_a = contents(&store, "a").await;
    let before_b = contents(&store, "b").await;
    let indexes_a = server_indexes(&store, "a").await;
    let indexes_b = server_indexes(&store, "b").await;
    assert_eq!(indexes_a.len(), 4, "_id, n, z and by hand: {indexes_a:?}");

    let expected = |removed: bool| {
        vec![
            o("index catalog row without a collection", "gone/arr_1", removed),
            o("index catalog row without its index", "again/x_1", removed),
            o("index catalog row without its index", "c/n_1", removed),
            // Listed, never dropped: it may be hand-made.
            o("index not in the catalog", &format!("a/{z_index}"), false),
            o("unreadable index catalog row", "junk", false),
        ]
    };

    // Listing removes nothing.
    let listed = store.cleanup(false).await.unwrap();
    assert!(!listed.applied);
    assert_eq!(summary(&listed), expected(false), "{listed:#?}");
    assert!(listed.notes.iter().any(|n| n.contains("left alone 1 indexes")), "{:?}", listed.notes);
    assert!(
        listed.notes.iter().any(|n| n.contains("an index drops with its collection")),
        "{:?}",
        listed.notes
    );
    assert_eq!(store.cleanup(false).await.unwrap().orphans, listed.orphans, "listing twice finds the same");
    assert_eq!(server_indexes(&store, "a").await, indexes_a);
    assert_eq!(db.collection::<BsonDocument>("_orbstore_indexes").count_documents(doc! {}).await.unwrap(), 6);

    // Applying removes them (the unreadable row excepted), while another task keeps writing.
    let writer = {
        let b = b.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                b.insert_value(json!({"_id": format!("w{i:02}"), "tags": "w"})).await.unwrap();
            }
        })
    };
    let applied = store.cleanup(true).await.unwrap();
    writer.await.unwrap();
    assert!(applied.applied);
    assert_eq!(summary(&applied), expected(true), "{applied:#?}");
    assert_eq!(b.delete_many(&Filter::eq("tags", "w")).await.unwrap(), 30);

    // Nothing left but the unreadable row and the uncatalogued index.
    let again_report = store.cleanup(false).await.unwrap();
    assert_eq!(
        summary(&again_report),
        vec![
            o("index not in the catalog", &format!("a/{z_index}"), false),
            o("unreadable index catalog row", "junk", false)
        ],
        "{again_report:#?}"
    );

    // The live collections are as they were, the hand-made index too.
    assert_eq!(contents(&store, "a").await, before_a);
    assert_eq!(contents(&store, "b").await, before_b);
    assert_eq!(server_indexes(&store, "a").await, indexes_a, "an uncatalogued index is never dropped");
    assert_eq!(server_indexes(&store, "b").await, indexes_b);
    assert!(!store.list_collections().await.unwrap().contains(&"gone".to_owned()));
    // With the stale rows gone, create_index builds again.
    assert_eq!(c.list_indexes().await.unwrap(), vec![]);
    assert_eq!(again.list_indexes().await.unwrap(), vec![]);
    again.create_index(IndexSpec::new(["x"])).await.unwrap();
    assert_eq!(server_indexes(&store, "again").await.len(), 2, "built");
    assert_eq!(again.count(&Filter::All).await.unwrap(), 1);

    store.close().await.unwrap();
    common::drop_database(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn a_clean_database_has_no_orphans() {
    let cfg = common::require(common::config(MongoQueryMode::Auto));
    let store = MongoBackend::open(cfg.clone()).await.unwrap_or_else(|e| panic!("open: {e}"));
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "1", "a": [1]})).await.unwrap();
    c.create_index(IndexSpec::new(["a"])).await.unwrap();
    store.collection("dropped").await.unwrap().create_index(IndexSpec::new(["x"])).await.unwrap();
    assert!(store.drop_collection("dropped").await.unwrap());
    for apply in [false, true] {
        let r = store.cleanup(apply).await.unwrap();
        assert_eq!(r.backend, "mongodb");
        assert_eq!(r.applied, apply);
        assert_eq!(r.orphans, vec![], "{r:#?}");
    }
    assert_eq!(c.list_indexes().await.unwrap(), vec![IndexSpec::new(["a"])]);
    store.close().await.unwrap();
    common::drop_database(&cfg).await;
}
