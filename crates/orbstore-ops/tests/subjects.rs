//! The data-subject map and the export of one user (GDPR article 20) on every backend: entries
//! stored and read back, bad entries refused, the user's documents found at top-level, nested
//! and `_id` fields, and in the cold archives, nobody else's.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use orbstore::{CollectionExt, ErrorKind};
use orbstore_ops::retention::{self, Action, RetentionOptions, RetentionPolicy, TimeUnit};
use orbstore_ops::subjects::{self, SUBJECTS};
use serde_json::json;

async fn subjects_on(name: &'static str) {
    let t = target(name).await;
    let store = &t.store;
    let work = tempfile::tempdir().unwrap();
    assert!(subjects::stored_map(&**store).await.unwrap().is_empty());
    assert!(
        !store.list_collections().await.unwrap().contains(&SUBJECTS.to_owned()),
        "reading creates nothing"
    );

    subjects::register(&**store, "notes", &["owner.id", "shared_with"]).await.unwrap();
    subjects::register(&**store, "profiles", &["_id"]).await.unwrap();
    subjects::register(&**store, "events", &["user"]).await.unwrap();
    let map = subjects::stored_map(&**store).await.unwrap();
    assert_eq!(map["notes"], ["owner.id", "shared_with"]);
    assert_eq!(map.len(), 3);
    for (c, paths, needle) in
        [("Bad", vec!["u"], "collection name"), ("x", vec![], "at least one"), ("x", vec![""], "user field")]
    {
        let e = subjects::register(&**store, c, &paths).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains(needle), "{e}");
    }

    let notes = store.collection("notes").await.unwrap();
    notes.insert_value(json!({"_id": "n1", "owner": {"id": "ada"}, "text": "mine"})).await.unwrap();
    notes.insert_value(json!({"_id": "n2", "owner": {"id": "bob"}, "shared_with": "ada"})).await.unwrap();
    notes.insert_value(json!({"_id": "n3", "owner": {"id": "bob"}})).await.unwrap();
    let profiles = store.collection("profiles").await.unwrap();
    profiles.insert_value(json!({"_id": "ada", "lang": "en"})).await.unwrap();
    profiles.insert_value(json!({"_id": "bob", "lang": "fr"})).await.unwrap();
    // Events: Ada's old ones are archived, her new one stays.
    let events = store.collection("events").await.unwrap();
    let now = 1_741_996_800u64;
    for (id, user, age_days) in [("e1", "ada", 30), ("e2", "bob", 30), ("e3", "ada", 1)] {
        events
            .insert_value(json!({"_id": id, "user": user, "t": (now - age_days * 86_400) * 1000}))
            .await
            .unwrap();
    }
    let policy = RetentionPolicy::max_age(
        "events",
        "t",
        TimeUnit::Millis,
        Duration::from_secs(7 * 86_400),
        Action::Archive,
    );
    retention::set_policy(&**store, &policy).await.unwrap();
    let options =
        RetentionOptions { now: UNIX_EPOCH + Duration::from_secs(now), ..RetentionOptions::new(work.path()) };
    assert_eq!(retention::run(store, &options).await.unwrap().collections[0].archived, 2);

    let export = subjects::export_user(&**store, &map, "ada", Some(work.path())).await.unwrap();
    let ids = |docs: &Vec<orbstore::Document>| {
        docs.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&export.collections["notes"]), ["n1", "n2"], "{name}: owner and shared");
    assert_eq!(ids(&export.collections["profiles"]), ["ada"]);
    assert_eq!(ids(&export.collections["events"]), ["e3"]);
    assert_eq!(ids(&export.archived["events"]), ["e1"], "{name}: archived ones too, nobody else's");
    assert_eq!(export.total(), 5);
    let nobody = subjects::export_user(&**store, &map, "carol", Some(work.path())).await.unwrap();
    assert_eq!(nobody.total(), 0);
    assert!(subjects::export_user(&**store, &map, "", None).await.is_err());
    t.cleanup().await;
}

macro_rules! on {
    ($name:ident, $backend:literal $(, $cfg:meta)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[cfg_attr($cfg, ignore = "needs a server URL (ORBSTORE_TEST_POSTGRES_URL / ORBSTORE_TEST_MONGODB_URL)")])?
        async fn $name() {
            subjects_on($backend).await
        }
    };
}

on!(subjects_on_memory, "memory");
on!(subjects_on_file, "file");
on!(subjects_on_sqlite, "sqlite");
on!(subjects_on_postgres, "postgres", orbstore_no_postgres);
on!(subjects_on_mongodb, "mongodb", orbstore_no_mongodb);
