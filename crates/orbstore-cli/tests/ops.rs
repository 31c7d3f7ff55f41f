//! `orb backup`, `restore`, `inspect` and `export` end to end, through the binary: summaries,
//! one JSON object with `--json`, exit codes that say whether the whole operation succeeded, and
//! the store taken from the environment.

use std::path::{Path, PathBuf};

use orbstore::{CollectionExt, IndexSpec};
use serde_json::{json, Value};

mod common;

use common::{object, orb, NO_VARS};

fn store_url(dir: &Path, name: &str) -> (&'static str, String) {
    ("DATABASE_URL", format!("file://{}", dir.join(name).display()))
}

async fn seed(dir: &Path) {
    let url = store_url(dir, "source").1;
    let store = orbstore::open(
        orbstore::Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap(),
    )
    .await
    .unwrap();
    let users = store.collection("users").await.unwrap();
    users.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
    for i in 0..300 {
        users
            .insert_value(
                json!({"_id": format!("u{i:03}"), "email": format!("{i}@x"), "score": f64::from(i) / 10.0,
                                 "name": "Zoë ✓"}),
            )
            .await
            .unwrap();
    }
    let events = store.collection("events").await.unwrap();
    for i in 0..50 {
        events
            .insert_value(json!({"_id": format!("e{i:02}"), "kind": if i % 2 == 0 { "a" } else { "b" }}))
            .await
            .unwrap();
    }
    store.close().await.unwrap();
}

fn archive_in(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    found.sort();
    found.pop().expect("an archive")
}

#[tokio::test]
async fn backup_inspect_restore_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path()).await;
    let source = [store_url(dir.path(), "source")];

    let r = orb(dir.path(), &source, &["backup"]);
    assert!(r.ok, "{}\n{}", r.out, r.err);
    assert!(r.out.contains("Backed up 2 collections and 350 documents from the file backend"), "{}", r.out);
    let log = object(&orb(dir.path(), &source, &["audit", "--last", "1", "--json"]).out);
    assert_eq!(
        (log["records"][0]["what"].as_str(), log["records"][0]["counts"]["documents"].as_u64()),
        (Some("backup"), Some(350)),
        "{log}"
    );
    let archive = archive_in(&dir.path().join("backups"));
    assert!(archive.file_name().unwrap().to_str().unwrap().starts_with("orbstore-"));

    let r = orb(dir.path(), NO_VARS, &["inspect", archive.to_str().unwrap()]);
    assert!(r.ok && r.out.contains("Every checksum, count and size verifies"), "{}\n{}", r.out, r.err);
    assert!(r.out.contains("email_1 (email, unique)"), "{}", r.out);
    let v = object(&orb(dir.path(), NO_VARS, &["inspect", "--json", archive.to_str().unwrap()]).out);
    assert_eq!(
        (v["ok"].clone(), v["verified"].clone(), v["documents"].clone()),
        (json!(true), json!(true), json!(350))
    );
    assert_eq!(v["source_backend"], "file");

    let target = [store_url(dir.path(), "target")];
    let r = orb(dir.path(), &target, &["restore", "--json", archive.to_str().unwrap()]);
    assert!(r.ok, "{}\n{}", r.out, r.err);
    let v = object(&r.out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["collections"][1]["name"], "users");
    assert_eq!(v["collections"][1]["state"], "verified");

    // The same documents come out of both stores.
    let a = orb(dir.path(), &source, &["export", "--collection", "users"]);
    let b = orb(dir.path(), &target, &["export", "--collection", "users"]);
    assert!(a.ok && b.ok, "{}{}", a.err, b.err);
    assert_eq!(a.out.lines().count(), 300);
    assert_eq!(a.out, b.out);
    assert!(a.err.contains("Exported 300 documents from users"), "the summary goes to stderr: {}", a.err);

    // Again into the same target: refused, then replaced.
    let r = orb(dir.path(), &target, &["restore", archive.to_str().unwrap()]);
    assert!(!r.ok);
    assert!(
        r.err.contains("already has collections events, users") && r.err.contains("Nothing was written"),
        "{}",
        r.err
    );
    let r = orb(dir.path(), &target, &["restore", "--replace", archive.to_str().unwrap()]);
    assert!(r.ok && r.out.contains("Replaced: events, users."), "{}\n{}", r.out, r.err);
}

#[tokio::test]
async fn export_filters_formats_and_files() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path()).await;
    let source = [store_url(dir.path(), "source")];
    let r = orb(
        dir.path(),
        &source,
        &["export", "--collection", "events", "--filter", r#"{"kind": "a"}"#, "--json"],
    );
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.out.lines().count(), 25);
    let summary = object(&r.err);
    assert_eq!((summary["ok"].clone(), summary["documents"].clone()), (json!(true), json!(25)));

    let r = orb(dir.path(), &source, &["export", "--format", "json", "--out", "all.json", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(object(&r.out)["documents"], 350);
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("all.json")).unwrap()).unwrap();
    assert_eq!(all["events"].as_array().unwrap().len(), 50);
    assert_eq!(all["users"].as_array().unwrap().len(), 300);

    for (args, needle) in [
        (vec!["export", "--filter", "{not json"], "--filter is not JSON"),
        (vec!["export", "--filter", r#"{"a": {"$regex": "x"}}"#], "$regex"),
        (vec!["export", "--format", "xml"], "--format"),
        (vec!["export", "--collection", "nope"], "no collection \"nope\""),
    ] {
        let r = orb(dir.path(), &source, &args);
        assert!(!r.ok && r.err.contains(needle), "{args:?}: {}", r.err);
        assert!(!r.err.contains("panicked"), "{}", r.err);
    }
}

#[tokio::test]
async fn damaged_archives_fail_inspect_and_restore_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path()).await;
    let source = [store_url(dir.path(), "source")];
    let r = orb(dir.path(), &source, &["backup", "--out", "b.tar.zst", "--json"]);
    assert!(r.ok, "{}", r.out);
    let v = object(&r.out);
    assert_eq!(v["path"], "b.tar.zst");
    let path = dir.path().join("b.tar.zst");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(dir.path().join("bad.tar.zst"), &bytes).unwrap();

    let r = orb(dir.path(), NO_VARS, &["inspect", "bad.tar.zst"]);
    assert!(!r.ok, "a damaged archive must not inspect as fine:\n{}", r.out);
    let v = object(&orb(dir.path(), NO_VARS, &["inspect", "--json", "bad.tar.zst"]).out);
    assert_eq!((v["ok"].clone(), v["verified"].clone()), (json!(false), json!(false)), "{v}");

    let target = [store_url(dir.path(), "target")];
    let r = orb(dir.path(), &target, &["restore", "--json", "bad.tar.zst"]);
    assert!(!r.ok);
    let v = object(&r.out);
    assert_eq!((v["ok"].clone(), v["wrote_anything"].clone()), (json!(false), json!(false)), "{v}");
    assert_eq!(v["error"]["kind"], "Corrupt");
    // Nothing of the archive was written; the audit log has the failed attempt.
    let r = orb(dir.path(), &target, &["export"]);
    let lines: Vec<Value> = r.out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(r.ok && lines.len() == 1, "the target holds only its audit record: {}", r.out);
    assert_eq!(
        (lines[0]["collection"].clone(), lines[0]["document"]["outcome"].clone()),
        (json!("access_logs"), json!("failed"))
    );

    let r = orb(dir.path(), NO_VARS, &["inspect", "missing.tar.gz"]);
    assert!(!r.ok && r.err.contains("no archive at missing.tar.gz"), "{}", r.err);
}

#[tokio::test]
async fn backup_settings_come_from_the_environment_and_rotation_prunes() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path()).await;
    let backups = dir.path().join("nightly");
    std::fs::create_dir(&backups).unwrap();
    let old = backups.join("orbstore-2001-01-01T00-00-00.000Z.tar.gz");
    std::fs::write(&old, b"old").unwrap();
    std::fs::write(backups.join("keep-me.tar.gz"), b"not ours").unwrap();
    let vars = [
        store_url(dir.path(), "source"),
        ("BACKUP_DIR", backups.display().to_string()),
        ("BACKUP_RETENTION_DAYS", "7".to_owned()),
        ("BACKUP_COMPRESSION", "none".to_owned()),
    ];
    let r = orb(dir.path(), &vars, &["backup", "--json"]);
    assert!(r.ok, "{}", r.out);
    let v = object(&r.out);
    assert!(v["path"].as_str().unwrap().ends_with(".tar"), "{v}");
    assert_eq!(v["pruned"], json!([old.display().to_string()]));
    assert!(!old.exists() && backups.join("keep-me.tar.gz").exists());

    for (var, value) in [("BACKUP_RETENTION_DAYS", "forever"), ("BACKUP_COMPRESSION", "lz4")] {
        let mut bad = vars.to_vec();
        bad.retain(|(k, _)| *k != var);
        bad.push((var, value.to_owned()));
        let r = orb(dir.path(), &bad, &["backup"]);
        assert!(!r.ok && r.err.contains(var) && r.err.contains(value), "{}", r.err);
        let v = object(&orb(dir.path(), &bad, &["backup", "--json"]).out);
        assert_eq!(v["error"]["kind"], "InvalidInput");
    }
    // A store that cannot be opened: still one JSON object.
    let r = orb(dir.path(), &[("DB_BACKEND", "oracle".to_owned())], &["backup", "--json"]);
    assert!(!r.ok);
    assert!(object(&r.out)["error"]["message"].as_str().unwrap().contains("DB_BACKEND"));
}
