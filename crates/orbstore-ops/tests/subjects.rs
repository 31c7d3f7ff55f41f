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
    notes.insert_value(json!({"_id": "n1", "owner": {"id": "ada-lovelace"}, "text": "mine"})).await.unwrap();
    notes
        .insert_value(json!({"_id": "n2", "owner": {"id": "bob"}, "shared_with": "ada-lovelace"}))
        .await
        .unwrap();
    notes.insert_value(json!({"_id": "n3", "owner": {"id": "bob"}})).await.unwrap();
    let profiles = store.collection("profiles").await.unwrap();
    profiles.insert_value(json!({"_id": "ada-lovelace", "lang": "en"})).await.unwrap();
    profiles.insert_value(json!({"_id": "bob", "lang": "fr"})).await.unwrap();
    // Events: Ada's old ones are archived, her new one stays.
    let events = store.collection("events").await.unwrap();
    let now = 1_741_996_800u64;
    for (id, user, age_days) in [("e1", "ada-lovelace", 30), ("e2", "bob", 30), ("e3", "ada-lovelace", 1)] {
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

    let export = subjects::export_user(&**store, &map, "ada-lovelace", Some(work.path())).await.unwrap();
    let ids = |docs: &Vec<orbstore::Document>| {
        docs.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&export.collections["notes"]), ["n1", "n2"], "{name}: owner and shared");
    assert_eq!(ids(&export.collections["profiles"]), ["ada-lovelace"]);
    assert_eq!(ids(&export.collections["events"]), ["e3"]);
    assert_eq!(ids(&export.archived["events"]), ["e1"], "{name}: archived ones too, nobody else's");
    assert_eq!(export.total(), 5);
    let nobody = subjects::export_user(&**store, &map, "carol", Some(work.path())).await.unwrap();
    assert_eq!(nobody.total(), 0);
    assert!(subjects::export_user(&**store, &map, "", None).await.is_err());

    // Forget Ada: gone from every mapped collection and archive, Bob untouched, a tombstone
    // without her id, and (on file and SQLite) her id in no file of the store.
    let holds_id = |dir: &std::path::Path| {
        files(dir)
            .into_iter()
            .filter(|f| std::fs::read(f).unwrap().windows(12).any(|w| w == b"ada-lovelace"))
            .collect::<Vec<_>>()
    };
    if let Some(dir) = &t.dir {
        store.flush().await.unwrap();
        assert!(!holds_id(dir.path()).is_empty(), "{name}: the scan finds the id before the erasure");
    }
    let report = subjects::forget_user(&**store, &map, "ada-lovelace", Some(work.path())).await.unwrap();
    assert_eq!(report.deleted.values().sum::<u64>(), 4, "{name}: {report:?}");
    assert_eq!(report.archived_removed["events"], 1, "{name}: {report:?}");
    assert!(report.tombstone.len() == 64 && report.tombstone.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        subjects::export_user(&**store, &map, "ada-lovelace", Some(work.path())).await.unwrap().total(),
        0,
        "{name}"
    );
    let bob = subjects::export_user(&**store, &map, "bob", Some(work.path())).await.unwrap();
    assert_eq!(
        bob.total(),
        3,
        "{name}: Bob keeps n3, his profile and e2 (n2, shared with Ada, went with her)"
    );
    assert!(subjects::is_forgotten(&**store, "ada-lovelace").await.unwrap());
    assert!(!subjects::is_forgotten(&**store, "bob").await.unwrap());
    let ledger = store.collection(subjects::ERASURES).await.unwrap().find_all().await.unwrap();
    assert!(
        ledger.iter().all(|d| !serde_json::to_string(d).unwrap().contains("ada-lovelace")),
        "{name}: the ledger holds no id"
    );
    // An import carrying her back: the ledger, re-applied, removes exactly her documents.
    notes.insert_value(json!({"_id": "n9", "owner": {"id": "ada-lovelace"}})).await.unwrap();
    notes.insert_value(json!({"_id": "n8", "owner": {"id": "dan"}})).await.unwrap();
    let purged = subjects::reapply_ledger(&**store, &map).await.unwrap();
    assert_eq!(purged.into_iter().collect::<Vec<_>>(), [("notes".to_owned(), 1)], "{name}");
    assert!(
        notes.find_by_id("n8").await.unwrap().is_some() && notes.find_by_id("n9").await.unwrap().is_none()
    );
    let again = subjects::forget_user(&**store, &map, "ada-lovelace", Some(work.path())).await.unwrap();
    assert_eq!(
        (again.deleted.len(), again.archived_removed.len()),
        (0, 0),
        "{name}: forgetting twice changes nothing"
    );
    assert_eq!(again.tombstone, report.tombstone, "{name}: one key, one tombstone per user");
    if let Some(dir) = &t.dir {
        assert_eq!(
            holds_id(dir.path()),
            Vec::<std::path::PathBuf>::new(),
            "{name}: files still holding the id"
        );
    }
    let mut archived = Vec::new();
    orbstore_ops::retention::cold::read(work.path(), "events", None, None, |d| {
        archived.push(d);
        Ok(())
    })
    .unwrap();
    assert_eq!(archived.iter().map(|d| d["_id"].clone()).collect::<Vec<_>>(), [json!("e2")], "{name}");
    t.cleanup().await;
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

every_backend!(subjects_on;
    subjects_on_memory: "memory",
    subjects_on_file: "file",
    subjects_on_sqlite: "sqlite",
    subjects_on_postgres: "postgres" if orbstore_no_postgres,
    subjects_on_mongodb: "mongodb" if orbstore_no_mongodb,
);

/// A backup made before an erasure, restored over the store afterwards: the erased user does not
/// come back, everybody else does, and the store keeps its ledger.
async fn erased_users_stay_erased_through_restore(name: &'static str) {
    use orbstore_ops::{backup, restore, BackupOptions, RestoreOptions};
    let t = target(name).await;
    let store = &t.store;
    let work = tempfile::tempdir().unwrap();
    subjects::register(&**store, "notes", &["owner"]).await.unwrap();
    let notes = store.collection("notes").await.unwrap();
    for (id, owner) in [("n1", "ada-lovelace"), ("n2", "bob"), ("n3", "ada-lovelace"), ("n4", "cy")] {
        notes.insert_value(json!({"_id": id, "owner": owner})).await.unwrap();
    }
    let options =
        BackupOptions { dir: work.path().to_owned(), ..BackupOptions::from_lookup(|_| None).unwrap() };
    let old = backup(store, &options).await.unwrap().path;
    let map = subjects::stored_map(&**store).await.unwrap();
    subjects::forget_user(&**store, &map, "ada-lovelace", None).await.unwrap();
    let report = restore(store, &old, &RestoreOptions { replace: true, ..Default::default() }).await.unwrap();
    let notes_report = report.collections.iter().find(|c| c.name == "notes").unwrap();
    assert_eq!((notes_report.written, notes_report.erased), (2, 2), "{name}: {report:?}");
    let owners: Vec<String> =
        notes.find_all().await.unwrap().iter().map(|d| d["owner"].as_str().unwrap().to_owned()).collect();
    assert_eq!(owners, ["bob", "cy"], "{name}: Ada does not come back from the old backup");
    assert!(
        subjects::is_forgotten(&**store, "ada-lovelace").await.unwrap(),
        "{name}: the ledger survives the restore"
    );

    // The old backup still holds her until it is rewritten without her.
    let holding = subjects::backups_holding(work.path(), &map, "ada-lovelace").unwrap();
    assert_eq!(holding, std::slice::from_ref(&old), "{name}");
    assert_eq!(subjects::rewrite_backup_without(&old, &map, "ada-lovelace").unwrap(), 2);
    assert!(subjects::backups_holding(work.path(), &map, "ada-lovelace").unwrap().is_empty());
    let inspected = orbstore_ops::inspect(&old, &orbstore_ops::NoProgress).unwrap();
    assert!(inspected.verified, "{name}: the rewritten backup verifies: {:?}", inspected.problems);
    assert_eq!(inspected.manifest.collection("notes").unwrap().count, 2);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_survives_restore_on_file() {
    erased_users_stay_erased_through_restore("file").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_survives_restore_on_sqlite() {
    erased_users_stay_erased_through_restore("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn erasure_survives_restore_on_postgres() {
    erased_users_stay_erased_through_restore("postgres").await
}

/// Migrating old data into a store that has erased a user: their documents are not copied, and
/// the verification expects them absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_survives_migrate_from_memory_to_sqlite() {
    use orbstore_ops::{migrate, MigrateOptions, MigrationState};
    let (old, t) = (target("memory").await, target("sqlite").await);
    for store in [&old.store, &t.store] {
        subjects::register(&**store, "notes", &["owner"]).await.unwrap();
    }
    let notes = old.store.collection("notes").await.unwrap();
    for (id, owner) in [("n1", "ada-lovelace"), ("n2", "bob"), ("n3", "ada-lovelace")] {
        notes.insert_value(json!({"_id": id, "owner": owner})).await.unwrap();
    }
    let map = subjects::stored_map(&*t.store).await.unwrap();
    subjects::forget_user(&*t.store, &map, "ada-lovelace", None).await.unwrap();
    let report = migrate(&old.store, &t.store, &MigrateOptions::default()).await.unwrap();
    let n = report.collections.iter().find(|c| c.name == "notes").unwrap();
    assert_eq!((n.state, n.copied, n.erased), (MigrationState::Copied, 1, 2), "{report:?}");
    let owners: Vec<String> = t
        .store
        .collection("notes")
        .await
        .unwrap()
        .find_all()
        .await
        .unwrap()
        .iter()
        .map(|d| d["owner"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(owners, ["bob"]);
    assert!(!report.collections.iter().any(|c| c.name == subjects::ERASURES), "the target's ledger is kept");
    assert!(subjects::is_forgotten(&*t.store, "ada-lovelace").await.unwrap());
    // Again: nothing to do, still verified.
    let again = migrate(&old.store, &t.store, &MigrateOptions::default()).await.unwrap();
    assert!(again.changed_nothing() && again.verified(), "{again:?}");
    old.cleanup().await;
    t.cleanup().await;
}

/// Applications store numeric user ids as numbers: `forget 42` finds `{"user": 42}` (not
/// `{"user": 420}` nor `"042"`), and the ledger recognizes it again in a later import.
async fn numeric_ids_on(name: &'static str) {
    let t = target(name).await;
    let store = &t.store;
    subjects::register(&**store, "sessions", &["user"]).await.unwrap();
    let map = subjects::stored_map(&**store).await.unwrap();
    let sessions = store.collection("sessions").await.unwrap();
    for (id, user) in [
        ("s1", json!(42)),
        ("s2", json!("42")),
        ("s3", json!(420)),
        ("s4", json!("042")),
        ("s5", json!([7, 42])),
        ("s7", json!(42.0)),
    ] {
        sessions.insert_value(json!({"_id": id, "user": user})).await.unwrap();
    }
    let export = subjects::export_user(&**store, &map, "42", None).await.unwrap();
    assert_eq!(export.total(), 4, "{name}: {export:?}");
    let report = subjects::forget_user(&**store, &map, "42", None).await.unwrap();
    assert_eq!(report.deleted["sessions"], 4, "{name}");
    let left: Vec<_> = sessions.find_all().await.unwrap().into_iter().map(|d| d["_id"].clone()).collect();
    assert_eq!(left, [json!("s3"), json!("s4")], "{name}");
    sessions.insert_value(json!({"_id": "s6", "user": 42})).await.unwrap();
    sessions.insert_value(json!({"_id": "s8", "user": 42.0})).await.unwrap();
    let purged = subjects::reapply_ledger(&**store, &map).await.unwrap();
    assert_eq!(purged.get("sessions"), Some(&2), "{name}: the ledger knows the number too, as 42 and 42.0");
    t.cleanup().await;
}

every_backend!(numeric_ids_on;
    numeric_ids_on_memory: "memory",
    numeric_ids_on_sqlite: "sqlite",
    numeric_ids_on_postgres: "postgres" if orbstore_no_postgres,
    numeric_ids_on_mongodb: "mongodb" if orbstore_no_mongodb,
);
