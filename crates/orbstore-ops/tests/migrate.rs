//! `migrate` between backends: the same documents and index specs on both sides, verified by
//! content hash; a second run changes nothing; an interrupted copy resumes with no gap and no
//! duplicate; foreign data in the target and the same store on both sides are refused; a
//! mismatch is reported by class with the ids. Guards the promise that a migration either ends
//! verified equal or says exactly how it is not.

mod common;

use common::*;
use orbstore::{CollectionExt, Filter, Update};
use orbstore_ops::migrate::MARKERS;
use orbstore_ops::{migrate, MigrateOptions, MigrationState};
use serde_json::json;

/// The collections of a store without the migration markers.
async fn data(store: &orbstore::Store) -> Vec<(String, Vec<Vec<u8>>)> {
    contents(store).await.into_iter().filter(|(n, _)| n != MARKERS).collect()
}

async fn pair(from: &'static str, to: &'static str) {
    let source = target(from).await;
    let dest = target(to).await;
    let unique = source.store.capabilities().unique_indexes && dest.store.capabilities().unique_indexes;
    fill_fixture(&source.store, unique).await;
    let options = MigrateOptions { batch_size: 700, ..MigrateOptions::default() };

    let dry = migrate(&source.store, &dest.store, &MigrateOptions { dry_run: true, ..options.clone() })
        .await
        .unwrap();
    assert!(dry.collections.iter().all(|c| c.state == MigrationState::Planned && c.target_count == 0));
    assert_eq!(dry.collections.iter().find(|c| c.name == "items").unwrap().source_count, 2500);
    assert!(!dest.store.list_collections().await.unwrap().contains(&"items".to_owned()), "a dry run wrote");

    let report =
        migrate(&source.store, &dest.store, &options).await.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
    assert!(report.verified(), "{report:?}");
    assert_eq!(report.copied(), 2506);
    assert!(report
        .collections
        .iter()
        .all(|c| c.state == MigrationState::Copied && c.source_sha256 == c.target_sha256));
    assert_eq!(data(&source.store).await, data(&dest.store).await, "{from} -> {to}");
    assert_eq!(indexes(&source.store).await, indexes(&dest.store).await, "{from} -> {to}");

    let again = migrate(&source.store, &dest.store, &options).await.unwrap();
    assert!(again.changed_nothing(), "{again:?}");
    assert_eq!(again.copied(), 0);
    source.cleanup().await;
    dest.cleanup().await;
}

macro_rules! pair {
    ($name:ident, $from:literal, $to:literal $(, $cfg:meta)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[cfg_attr($cfg, ignore = "needs a server URL (ORBSTORE_TEST_POSTGRES_URL / ORBSTORE_TEST_MONGODB_URL)")])?
        async fn $name() {
            pair($from, $to).await
        }
    };
}

pair!(migrate_memory_to_file, "memory", "file");
pair!(migrate_file_to_sqlite, "file", "sqlite");
pair!(migrate_sqlite_to_memory, "sqlite", "memory");
pair!(migrate_file_to_postgres, "file", "postgres", orbstore_no_postgres);
pair!(migrate_postgres_to_sqlite, "postgres", "sqlite", orbstore_no_postgres);
pair!(migrate_sqlite_to_mongodb, "sqlite", "mongodb", orbstore_no_mongodb);
pair!(migrate_mongodb_to_postgres, "mongodb", "postgres", any(orbstore_no_mongodb, orbstore_no_postgres));

/// A copy interrupted after some batches (the target holds a prefix and the marker says not
/// done) resumes after the target's largest `_id`: nothing is copied twice, nothing is missed.
#[tokio::test]
async fn an_interrupted_copy_resumes_after_the_largest_id_in_the_target() {
    let source = target("memory").await;
    let dest = target("sqlite").await;
    let src = source.store.collection("c").await.unwrap();
    let all: Vec<_> = (0..3000).map(|i| doc(json!({"_id": format!("{i:05}"), "n": i}))).collect();
    src.insert_many(all.clone()).await.unwrap();
    // What a run killed after 1,400 documents leaves behind.
    dest.store.collection("c").await.unwrap().insert_many(all[..1400].to_vec()).await.unwrap();
    dest.store
        .collection(MARKERS)
        .await
        .unwrap()
        .upsert(doc(json!({"_id": "c", "done": false})))
        .await
        .unwrap();

    let report = migrate(&source.store, &dest.store, &MigrateOptions::default()).await.unwrap();
    let c = &report.collections[0];
    assert_eq!(
        (c.state, c.copied, c.resumed_after.as_deref()),
        (MigrationState::Copied, 1600, Some("01399"))
    );
    assert_eq!(data(&source.store).await, data(&dest.store).await);
    source.cleanup().await;
    dest.cleanup().await;
}

/// A target collection holding documents that no migration wrote is refused before anything is
/// written; so is a dry run over it.
#[tokio::test]
async fn foreign_documents_in_the_target_are_refused() {
    let source = target("memory").await;
    let dest = target("file").await;
    source.store.collection("c").await.unwrap().insert_value(json!({"_id": "a"})).await.unwrap();
    dest.store.collection("c").await.unwrap().insert_value(json!({"_id": "theirs"})).await.unwrap();
    for dry_run in [true, false] {
        let e = migrate(&source.store, &dest.store, &MigrateOptions { dry_run, ..MigrateOptions::default() })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), orbstore::ErrorKind::Conflict, "{e}");
        assert!(e.message().contains("\"c\"") && e.message().contains("1 documents"), "{e}");
    }
    let held = dest.store.collection("c").await.unwrap().find_all().await.unwrap();
    assert_eq!(held.len(), 1);
    source.cleanup().await;
    dest.cleanup().await;
}

/// The same store as source and target is refused, also when it is reached through two handles.
#[tokio::test]
async fn the_same_store_on_both_sides_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("one.sqlite3").display());
    let config = orbstore::Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap();
    let a = orbstore::open(config.clone()).await.unwrap();
    a.collection("c").await.unwrap().insert_value(json!({"_id": "x"})).await.unwrap();
    let e = migrate(&a, &a, &MigrateOptions::default()).await.unwrap_err();
    assert!(e.message().contains("same store"), "{e}");
    // A second handle on the same database: SQLite allows one process only, which the lock
    // already refuses; the probe is what catches aliases on servers (tested on PostgreSQL below).
    a.close().await.unwrap();
}

/// Two handles on one PostgreSQL schema are the same store: the probe document written to the
/// target shows up in the source.
#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn two_handles_on_one_postgres_schema_are_the_same_store() {
    let one = target("postgres").await;
    let other = orbstore::open(one.config.clone().unwrap()).await.unwrap();
    one.store.collection("c").await.unwrap().insert_value(json!({"_id": "x"})).await.unwrap();
    let e = migrate(&one.store, &other, &MigrateOptions::default()).await.unwrap_err();
    assert!(e.message().contains("same store"), "{e}");
    assert!(
        other.collection(MARKERS).await.unwrap().find_all().await.unwrap().is_empty(),
        "the probe stayed"
    );
    other.close().await.unwrap();
    one.cleanup().await;
}

/// After a migration, a document changed, one deleted and one added in the target are reported
/// as content that differs, missing and extra, with their ids; the state is a mismatch.
#[tokio::test]
async fn a_mismatch_is_reported_by_class_with_ids() {
    let source = target("file").await;
    let dest = target("memory").await;
    let src = source.store.collection("c").await.unwrap();
    src.insert_many((0..50).map(|i| doc(json!({"_id": format!("{i:03}"), "n": i}))).collect()).await.unwrap();
    let first = migrate(&source.store, &dest.store, &MigrateOptions::default()).await.unwrap();
    assert!(first.verified());
    let dst = dest.store.collection("c").await.unwrap();
    dst.update_by_id("010", &Update::new().set("n", -1)).await.unwrap();
    dst.delete_by_id("020").await.unwrap();
    dst.insert_value(json!({"_id": "zzz"})).await.unwrap();
    let second = migrate(&source.store, &dest.store, &MigrateOptions::default()).await.unwrap();
    assert!(!second.verified());
    let c = &second.collections[0];
    assert_eq!(c.state, MigrationState::Mismatch);
    assert_eq!(
        (c.differences.missing_ids.clone(), c.differences.extra_ids.clone()),
        (vec!["020".to_owned()], vec!["zzz".to_owned()])
    );
    assert_eq!(c.differences.differing_ids, ["010"]);
    assert_ne!(c.source_sha256, c.target_sha256);
    // The marker is not set to done while the sides differ.
    let marker = dest.store.collection(MARKERS).await.unwrap().find_by_id("c").await.unwrap().unwrap();
    assert_eq!(marker["done"], json!(false));
    assert_eq!(dst.count(&Filter::All).await.unwrap(), 50);
    source.cleanup().await;
    dest.cleanup().await;
}
