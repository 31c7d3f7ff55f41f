//! `cleanup` on SQLite: orphans made for real with a second connection (what hand edits or a
//! partial restore leave, since orbstore's own steps commit together), listed exactly, removed
//! only with `apply`, never touching a live collection or a table that holds data.
//!
//! Guards against a cleanup that drops data, misses an orphan, removes one without `apply`, or
//! leaves the catalog cache naming what it removed.

use std::path::Path;

use orbstore_core::{CollectionExt, Filter, IndexSpec, PersistenceBackend, SqliteConfig, SqliteLocation};
use orbstore_sqlite::SqliteBackend;
use orbstore_testkit::cleanup::{contents, o, summary};
use serde_json::json;

async fn open(path: &Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path.to_owned())))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"))
}

fn names(conn: &rusqlite::Connection, kind: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = ? AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    stmt.query_map([kind], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_lists_exactly_the_orphans_and_removes_them_only_with_apply() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.sqlite3");
    let store = open(&db).await;
    // Live collections, left alone throughout.
    let a = store.collection("a").await.unwrap();
    a.insert_many((0..20).map(|i| orbstore_testkit::d(json!({"_id": format!("a{i:02}"), "n": i}))).collect())
        .await
        .unwrap();
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
    let kept = store.collection("kept").await.unwrap();
    kept.insert_many((0..3).map(|i| orbstore_testkit::d(json!({"_id": format!("k{i}"), "v": i}))).collect())
        .await
        .unwrap();
    kept.create_index(IndexSpec::new(["v"])).await.unwrap();
    let before_a = contents(&store, "a").await;
    let before_b = contents(&store, "b").await;

    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    raw.execute_batch(
        r#"
        -- A table gone behind the catalog's back: its collection, index and multikey rows stay.
        DROP TABLE "c_gone";
        -- Catalog rows for a table that never was.
        INSERT INTO orbstore_collections (name) VALUES ('ghost');
        INSERT INTO orbstore_indexes (collection, name, spec)
            VALUES ('ghost', 'y_1', '{"name":"y_1","fields":["y"],"unique":false}');
        -- An index named like orbstore's that its catalog does not describe, on a live collection.
        CREATE INDEX "ix_a__stray_1" ON "c_a" (json_extract(doc, '$."z"'));
        -- A table whose catalog row is gone (it keeps its catalogued index), and an index named
        -- like orbstore's on it that the catalog never had.
        DELETE FROM orbstore_collections WHERE name = 'kept';
        CREATE INDEX "ix_kept__old_1" ON "c_kept" (json_extract(doc, '$."old"'));
        -- A catalogued index that no longer exists.
        DROP INDEX "ix_c__n_1";
        -- Another program's table in the same file, with an index named as SQLAlchemy names
        -- them: listed, never dropped.
        CREATE TABLE users (email TEXT);
        CREATE UNIQUE INDEX "ix_users_email" ON users (email);
        "#,
    )
    .unwrap();
    let tables_before = names(&raw, "table");

    let expected_found = |removed: bool| {
        vec![
            o("catalog row without a table", "ghost", removed),
            o("catalog row without a table", "gone", removed),
            o("index catalog row without a table", "ghost/y_1", removed),
            o("index catalog row without a table", "gone/arr_1", removed),
            o("index catalog row without its index", "c/n_1", removed),
            o("index not in the catalog", "ix_a__stray_1", removed),
            o("index not in the catalog", "ix_kept__old_1", removed),
            o("index not in the catalog", "ix_users_email", false),
            o("multikey catalog rows without a table", "gone", removed),
            o("table without a catalog row", "c_kept", false),
        ]
    };

    // Listing removes nothing.
    let listed = store.cleanup(false).await.unwrap();
    assert!(!listed.applied);
    assert_eq!(summary(&listed), expected_found(false), "{listed:#?}");
    let kept_orphan = listed.orphans.iter().find(|o| o.kind == "table without a catalog row").unwrap();
    assert!(kept_orphan.detail.contains("kept because it holds data (3 rows"), "{}", kept_orphan.detail);
    assert!(!listed.notes.is_empty());
    assert_eq!(store.cleanup(false).await.unwrap().orphans, listed.orphans, "listing twice finds the same");
    assert!(names(&raw, "index").contains(&"ix_a__stray_1".to_owned()));
    assert_eq!(
        raw.query_row("SELECT count(*) FROM orbstore_collections WHERE name = 'ghost'", [], |r| r
            .get::<_, i64>(0))
            .unwrap(),
        1
    );

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
    assert_eq!(summary(&applied), expected_found(true), "{applied:#?}");
    a.delete_many(&Filter::gte("n", 100)).await.unwrap();

    // Nothing left but the table that holds data and the other program's index.
    let again = store.cleanup(false).await.unwrap();
    assert_eq!(
        summary(&again),
        vec![
            o("index not in the catalog", "ix_users_email", false),
            o("table without a catalog row", "c_kept", false)
        ],
        "{again:#?}"
    );

    // The live collections are as they were; the kept table keeps its rows and its catalogued index.
    assert_eq!(contents(&store, "a").await, before_a);
    assert_eq!(contents(&store, "b").await, before_b);
    assert_eq!(names(&raw, "table"), tables_before, "no table dropped");
    assert_eq!(raw.query_row("SELECT count(*) FROM c_kept", [], |r| r.get::<_, i64>(0)).unwrap(), 3);
    let indexes = names(&raw, "index");
    assert_eq!(indexes, ["ix_a__n_1", "ix_b__tags_1", "ix_kept__v_1", "ix_users_email"], "{indexes:?}");
    for (table, left) in [
        ("orbstore_collections WHERE name IN ('ghost', 'gone')", 0),
        ("orbstore_indexes WHERE collection IN ('ghost', 'gone') OR (collection = 'c' AND name = 'n_1')", 0),
        ("orbstore_shapes WHERE collection = 'gone'", 0),
        ("orbstore_indexes WHERE collection = 'kept'", 1),
        ("orbstore_shapes WHERE collection = 'b'", 2),
    ] {
        let n: i64 = raw.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        assert_eq!(n, left, "{table}");
    }

    // The catalog cache forgot what was removed: "c" lists no index, and building it works again.
    assert_eq!(c.list_indexes().await.unwrap(), vec![]);
    c.create_index(IndexSpec::new(["n"])).await.unwrap();
    assert!(names(&raw, "index").contains(&"ix_c__n_1".to_owned()));
    let listed_now = store.list_collections().await.unwrap();
    assert!(
        !listed_now.contains(&"gone".to_owned()) && !listed_now.contains(&"ghost".to_owned()),
        "{listed_now:?}"
    );
    drop(raw);
    store.close().await.unwrap();
    // ... and says what a fresh open of the database says.
    let reopened = open(&db).await;
    assert_eq!(reopened.list_collections().await.unwrap(), listed_now);
    assert_eq!(contents(&reopened, "a").await, before_a);
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn a_clean_database_has_no_orphans_and_memory_databases_work_too() {
    let store = SqliteBackend::open(SqliteConfig::new(SqliteLocation::Memory)).await.unwrap();
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "1", "a": [1]})).await.unwrap();
    c.create_index(IndexSpec::new(["a"])).await.unwrap();
    store.collection("dropped").await.unwrap().create_index(IndexSpec::new(["x"])).await.unwrap();
    assert!(store.drop_collection("dropped").await.unwrap());
    for apply in [false, true] {
        let r = store.cleanup(apply).await.unwrap();
        assert_eq!(r.backend, "sqlite");
        assert_eq!(r.applied, apply);
        assert_eq!(r.orphans, vec![], "{r:#?}");
    }
    assert_eq!(c.list_indexes().await.unwrap(), vec![IndexSpec::new(["a"])]);
    store.close().await.unwrap();
    assert!(store.cleanup(false).await.is_err(), "a closed backend refuses");
}
