//! `cleanup` on PostgreSQL: orphans made for real with a raw connection (what hand edits or a
//! partial restore leave, since orbstore's own steps commit together), listed exactly, removed
//! only with `apply`, only in the backend's schema, never touching a live collection or a table
//! that holds data.
//!
//! Guards against a cleanup that drops data, misses an orphan, removes one without `apply`,
//! reaches into another schema, or leaves the multikey cache naming what it removed.

mod common;

use orbstore_core::{CollectionExt, Filter, IndexSpec, PersistenceBackend, Query};
use orbstore_postgres::PostgresBackend;
use orbstore_testkit::cleanup::{contents, o, summary};
use orbstore_testkit::d;
use serde_json::json;

/// The names of the schema's tables (`'r'`) or indexes (`'i'`), sorted.
async fn relations(store: &PostgresBackend, kind: &str) -> Vec<String> {
    let c = store.raw_client().await.unwrap();
    c.query(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind::text = $2 AND c.relname NOT LIKE '\\_pk\\_%' ORDER BY 1",
        &[&store.schema(), &kind],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn count(store: &PostgresBackend, sql: &str) -> i64 {
    let c = store.raw_client().await.unwrap();
    c.query_one(&sql.replace("S.", &format!("\"{}\".", store.schema())), &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn cleanup_lists_exactly_the_orphans_in_its_schema_and_removes_them_only_with_apply() {
    let (store, cfg) = common::setup().await;
    // Another store in another schema, with an orphan of its own: never looked at.
    let (other, other_cfg) = common::setup().await;
    other.collection("x").await.unwrap().insert_value(json!({"_id": "1"})).await.unwrap();
    other
        .raw_client()
        .await
        .unwrap()
        .batch_execute(&format!("CREATE INDEX \"_ix_foreign\" ON \"{}\".\"x\" ((doc->>'q'))", other.schema()))
        .await
        .unwrap();

    // Live collections, left alone throughout.
    let a = store.collection("a").await.unwrap();
    a.insert_many((0..20).map(|i| d(json!({"_id": format!("a{i:02}"), "n": i}))).collect()).await.unwrap();
    a.create_index(IndexSpec::new(["n"]).unique()).await.unwrap();
    let b = store.collection("b").await.unwrap();
    b.insert_value(json!({"_id": "b1", "tags": ["x", "y"], "o": {"p": 1}})).await.unwrap();
    b.create_index(IndexSpec::new(["tags"])).await.unwrap();
    // A live collection whose catalogued index will be dropped behind orbstore's back.
    let c = store.collection("c").await.unwrap();
    c.insert_value(json!({"_id": "c1", "n": 1})).await.unwrap();
    c.create_index(IndexSpec::new(["n"])).await.unwrap();
    // Collections to be damaged.
    let gone = store.collection("gone").await.unwrap();
    gone.insert_value(json!({"_id": "g1", "arr": [1, 2]})).await.unwrap();
    gone.create_index(IndexSpec::new(["arr"])).await.unwrap();
    assert_eq!(store.collection("gone").await.unwrap().count(&Filter::eq("arr", 1)).await.unwrap(), 1);
    let kept = store.collection("kept").await.unwrap();
    kept.insert_many((0..3).map(|i| d(json!({"_id": format!("k{i}"), "v": i}))).collect()).await.unwrap();
    kept.create_index(IndexSpec::new(["v"])).await.unwrap();
    let before_a = contents(&store, "a").await;
    let before_b = contents(&store, "b").await;

    let s = format!("\"{}\"", store.schema());
    let raw = store.raw_client().await.unwrap();
    let c_index: String = raw
        .query_one(&format!("SELECT pg_name FROM {s}._indexes WHERE collection = 'c'"), &[])
        .await
        .unwrap()
        .get(0);
    let gone_function: String = raw
        .query_one(&format!("SELECT index_function FROM {s}._collections WHERE name = 'gone'"), &[])
        .await
        .unwrap()
        .get(0);
    let kept_index: String = raw
        .query_one(&format!("SELECT pg_name FROM {s}._indexes WHERE collection = 'kept'"), &[])
        .await
        .unwrap()
        .get(0);
    raw.batch_execute(&format!(
        r#"
        -- A table gone behind the catalog's back: its collection, index and multikey rows stay.
        DROP TABLE {s}."gone";
        -- Catalog rows for a table that never was.
        INSERT INTO {s}._collections (name) VALUES ('ghost');
        INSERT INTO {s}._indexes (collection, name, spec, pg_name)
            VALUES ('ghost', 'y_1', '{{"name":"y_1","fields":["y"],"unique":false}}', '_ix_ghost');
        -- An index named like orbstore's that its catalog does not describe, on a live collection.
        CREATE INDEX "_ix_stray" ON {s}."a" ((doc->>'z'));
        -- A table whose catalog row is gone (it keeps its catalogued index), and an index named
        -- like orbstore's on it that the catalog never had.
        DELETE FROM {s}._collections WHERE name = 'kept';
        CREATE INDEX "_ix_old" ON {s}."kept" ((doc->>'old'));
        -- A catalogued index that no longer exists.
        DROP INDEX {s}."{c_index}";
        -- What is not orbstore's: left alone.
        CREATE TABLE {s}."NotOurs" (x int);
        CREATE INDEX "by_hand" ON {s}."a" ((doc->>'h'));
        "#
    ))
    .await
    .unwrap();
    drop(raw);
    let tables_before = relations(&store, "r").await;

    let expected = |removed: bool| {
        vec![
            o("catalog row without a table", "ghost", removed),
            o("catalog row without a table", "gone", removed),
            o("index catalog row without a table", "ghost/y_1", removed),
            o("index catalog row without a table", "gone/arr_1", removed),
            o("index catalog row without its index", "c/n_1", removed),
            o("index function without a collection", &gone_function, removed),
            o("index not in the catalog", "_ix_old", removed),
            o("index not in the catalog", "_ix_stray", removed),
            o("index-column catalog rows without a table", "gone", removed),
            o("multikey catalog rows without a table", "gone", removed),
            o("table without a catalog row", "kept", false),
        ]
    };

    // Listing removes nothing.
    let listed = store.cleanup(false).await.unwrap();
    assert!(!listed.applied);
    assert_eq!(summary(&listed), expected(false), "{listed:#?}");
    let kept_orphan = listed.orphans.iter().find(|o| o.kind == "table without a catalog row").unwrap();
    assert!(kept_orphan.detail.contains("kept because it holds data (3 rows"), "{}", kept_orphan.detail);
    assert!(listed.notes.iter().any(|n| n.contains("left alone 1 tables")), "{:?}", listed.notes);
    assert_eq!(store.cleanup(false).await.unwrap().orphans, listed.orphans, "listing twice finds the same");
    assert!(relations(&store, "i").await.contains(&"_ix_stray".to_owned()));
    assert_eq!(count(&store, "SELECT count(*) FROM S._collections WHERE name = 'ghost'").await, 1);

    // Applying removes them (the kept table excepted), while another task keeps writing.
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                a.insert_value(json!({"_id": format!("w{i:02}"), "n": 100 + i})).await.unwrap();
            }
        })
    };
    let applied = store.cleanup(true).await.unwrap();
    writer.await.unwrap();
    assert!(applied.applied);
    assert_eq!(summary(&applied), expected(true), "{applied:#?}");
    assert_eq!(a.delete_many(&Filter::gte("n", 100)).await.unwrap(), 50);

    // Nothing left but the table that holds data.
    let again = store.cleanup(false).await.unwrap();
    assert_eq!(summary(&again), vec![o("table without a catalog row", "kept", false)], "{again:#?}");

    // The live collections are as they were; the kept table keeps its rows and catalogued index.
    assert_eq!(contents(&store, "a").await, before_a);
    assert_eq!(contents(&store, "b").await, before_b);
    assert_eq!(relations(&store, "r").await, tables_before, "no table dropped");
    assert_eq!(count(&store, "SELECT count(*) FROM S.kept").await, 3);
    let mut indexes = relations(&store, "i").await;
    indexes.retain(|i| i.starts_with("_ix_") || i == "by_hand");
    let mut expected_indexes = vec!["by_hand".to_owned(), kept_index];
    for coll in ["a", "b"] {
        let sql = format!("SELECT pg_name FROM S._indexes WHERE collection = '{coll}'");
        let c = store.raw_client().await.unwrap();
        expected_indexes
            .push(c.query_one(&sql.replace("S.", &format!("{s}.")), &[]).await.unwrap().get::<_, String>(0));
    }
    expected_indexes.sort();
    assert_eq!(indexes, expected_indexes);
    for (sql, left) in [
        ("SELECT count(*) FROM S._collections WHERE name IN ('ghost', 'gone')", 0),
        ("SELECT count(*) FROM S._indexes WHERE collection IN ('ghost', 'gone', 'c')", 0),
        ("SELECT count(*) FROM S._shapes WHERE collection = 'gone'", 0),
        ("SELECT count(*) FROM S._indexes WHERE collection = 'kept'", 1),
        ("SELECT count(*) FROM S._shapes WHERE collection = 'b'", 2),
    ] {
        assert_eq!(count(&store, sql).await, left, "{sql}");
    }

    // "c" lists no index now, and building it works again.
    assert_eq!(c.list_indexes().await.unwrap(), vec![]);
    c.create_index(IndexSpec::new(["n"])).await.unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM S._indexes WHERE collection = 'c'").await, 1);
    let listed_now = store.list_collections().await.unwrap();
    assert_eq!(listed_now, ["a", "b", "c"]);
    // "gone" made again by another process is a fresh collection for this one too.
    let second = PostgresBackend::open(cfg.clone()).await.unwrap();
    second.collection("gone").await.unwrap().insert_value(json!({"_id": "g2", "arr": 5})).await.unwrap();
    second.close().await.unwrap();
    let gone = store.collection("gone").await.unwrap();
    assert_eq!(
        gone.find(&Query::new(Filter::eq("arr", 5))).await.unwrap(),
        vec![d(json!({"_id": "g2", "arr": 5}))]
    );
    assert_eq!(gone.count(&Filter::All).await.unwrap(), 1);

    // The other schema was not touched.
    let other_report = other.cleanup(false).await.unwrap();
    assert_eq!(summary(&other_report), vec![o("index not in the catalog", "_ix_foreign", false)]);

    store.close().await.unwrap();
    other.close().await.unwrap();
    common::drop_schema(&cfg).await;
    common::drop_schema(&other_cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn a_clean_schema_has_no_orphans() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "1", "a": [1]})).await.unwrap();
    c.create_index(IndexSpec::new(["a"])).await.unwrap();
    store.collection("dropped").await.unwrap().create_index(IndexSpec::new(["x"])).await.unwrap();
    assert!(store.drop_collection("dropped").await.unwrap());
    for apply in [false, true] {
        let r = store.cleanup(apply).await.unwrap();
        assert_eq!(r.backend, "postgres");
        assert_eq!(r.applied, apply);
        assert_eq!(r.orphans, vec![], "{r:#?}");
    }
    assert_eq!(c.list_indexes().await.unwrap(), vec![IndexSpec::new(["a"])]);
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}
