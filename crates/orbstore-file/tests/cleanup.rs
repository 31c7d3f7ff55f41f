//! `cleanup()` on a real data directory: the orphans an interrupted operation leaves are listed
//! and removed only with `apply`; young quarantined copies, fresh temporary files, live
//! collections' files and files orbstore does not name are never touched.

mod common;

use std::fs::{self, File};
use std::time::{Duration, SystemTime};

use common::*;
use orbstore_core::{CollectionExt, FileSync, Filter, PersistenceBackend};
use serde_json::json;

fn aged(path: &std::path::Path, bytes: &[u8], age: Duration) {
    fs::write(path, bytes).unwrap();
    File::options().write(true).open(path).unwrap().set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn orphans_are_listed_then_removed_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = open(dir, FileSync::Always).await;
    let users = store.collection("users").await.unwrap();
    for i in 0..5 {
        users.insert_value(json!({"_id": format!("u{i}"), "n": i})).await.unwrap();
    }
    store.compact_collection("users").await.unwrap();
    users.insert_value(json!({"_id": "u5"})).await.unwrap();

    let day = Duration::from_secs(86_400);
    // What crashes leave: a drop interrupted after its marker, an atomic replace interrupted,
    // a corrupt log's copy from long ago.
    aged(&dir.join("old_events.log"), b"{}\n", day);
    aged(&dir.join("old_events.log.old"), b"{}\n", day);
    aged(&dir.join("_orbstore.txlog.tmp"), b"x", 2 * day);
    aged(&dir.join("users.log.corrupt-20240101T000000Z"), b"bad", 40 * day);
    // Kept: a young quarantined copy, a temporary file that may be in progress, foreign files.
    aged(&dir.join("users.log.torn-20250101T000000Z"), b"torn", 3 * day);
    fs::write(dir.join("users.json.tmp"), b"in progress").unwrap();
    aged(&dir.join("notes.txt"), b"mine", 400 * day);
    aged(&dir.join("Not A Name.log"), b"?", 400 * day);

    let before: Vec<_> = files_with(dir, "");
    let listed = store.cleanup(false).await.unwrap();
    let names: Vec<String> = listed
        .orphans
        .iter()
        .map(|o| std::path::Path::new(&o.name).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["_orbstore.txlog.tmp", "old_events.log", "old_events.log.old", "users.log.corrupt-20240101T000000Z"],
        "{listed:?}"
    );
    assert!(!listed.applied && listed.orphans.iter().all(|o| !o.removed));
    assert_eq!(listed.orphans[1].kind, "log of a dropped collection");
    assert_eq!(listed.orphans[3].bytes, Some(3));
    assert_eq!(files_with(dir, ""), before, "listing removes nothing");

    let applied = store.cleanup(true).await.unwrap();
    assert!(applied.applied && applied.orphans.len() == 4 && applied.orphans.iter().all(|o| o.removed));
    for gone in
        ["_orbstore.txlog.tmp", "old_events.log", "old_events.log.old", "users.log.corrupt-20240101T000000Z"]
    {
        assert!(!dir.join(gone).exists(), "{gone} removed");
    }
    for kept in [
        "users.log.torn-20250101T000000Z",
        "users.json.tmp",
        "notes.txt",
        "Not A Name.log",
        "users.log",
        "users.json",
    ] {
        assert!(dir.join(kept).exists(), "{kept} kept");
    }
    assert!(store.cleanup(false).await.unwrap().orphans.is_empty());
    assert_eq!(users.count(&Filter::all()).await.unwrap(), 6);
    store.close().await.unwrap();

    let reopened = open(dir, FileSync::Always).await;
    assert_eq!(all(&reopened, "users").await.len(), 6, "the live collection is whole after a reopen");
    assert_eq!(reopened.list_collections().await.unwrap(), vec!["users".to_owned()]);
}
