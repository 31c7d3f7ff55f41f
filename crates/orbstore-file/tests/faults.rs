//! Damaged and unusual data directories: each gives the documented result (crates/orbstore-file
//! README, "Guarantees") and loses no good record.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use orbstore_core::{CollectionExt, ErrorKind, FileConfig, FileSync, PersistenceBackend};
use orbstore_file::FileBackend;
use serde_json::json;

/// Writes `n` documents one by one (one log record each) and closes.
async fn write_numbered(dir: &Path, n: usize) {
    let store = open(dir, FileSync::Always).await;
    let c = store.collection("t").await.unwrap();
    for i in 0..n {
        c.insert_value(json!({"_id": format!("{i:02}"), "i": i})).await.unwrap();
    }
    store.close().await.unwrap();
}

fn ids(docs: &[orbstore_core::Document]) -> Vec<String> {
    docs.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_log_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_numbered(dir.path(), 10).await;
    let log = dir.path().join("t.log");
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len - 5).unwrap();
    {
        let store = open(dir.path(), FileSync::Always).await;
        assert_eq!(all(&store, "t").await.len(), 9);
        assert!(store.warnings().iter().any(|w| w.contains("torn")), "{:?}", store.warnings());
        assert!(store.stats().await.unwrap().warnings.iter().any(|w| w.contains("torn")));
        store.collection("t").await.unwrap().insert_value(json!({"_id": "new"})).await.unwrap();
        store.close().await.unwrap();
    }
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "t").await.len(), 10, "the write after the cut is intact");
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_the_middle_skips_one_record_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_numbered(dir.path(), 10).await;
    let log = dir.path().join("t.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let original = bytes.clone();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
        .collect();
    bytes[line_starts[4] + 20] ^= 0x04; // inside the 5th record's JSON
    std::fs::write(&log, &bytes).unwrap();
    {
        let store = open(dir.path(), FileSync::Always).await;
        let got = ids(&all(&store, "t").await);
        assert_eq!(got, ["00", "01", "02", "03", "05", "06", "07", "08", "09"]);
        assert!(store.warnings().iter().any(|w| w.contains("corrupt")), "{:?}", store.warnings());
        let kept = files_with(dir.path(), "t.log.corrupt-");
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read(&kept[0]).unwrap(), bytes, "the log as found is kept");
        assert_ne!(bytes, original);
        store.close().await.unwrap();
    }
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "t").await.len(), 9);
    assert!(store.warnings().is_empty(), "repaired once: {:?}", store.warnings());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_snapshot_is_moved_aside_and_the_log_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), FileSync::Always).await;
        let c = store.collection("t").await.unwrap();
        c.insert_value(json!({"_id": "in-snapshot"})).await.unwrap();
        store.compact_collection("t").await.unwrap();
        c.insert_value(json!({"_id": "in-log"})).await.unwrap();
        store.close().await.unwrap();
    }
    let snap = dir.path().join("t.json");
    let garbage = b"{\"format\": \"orbstore.snapshot\", \"documents\": [ {\"_id\": \"x\"".to_vec();
    std::fs::write(&snap, &garbage).unwrap();

    // strict refuses, and moves nothing
    let e = FileBackend::open(FileConfig { strict: true, ..FileConfig::new(dir.path()) }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("t.json"), "{e}");
    assert_eq!(std::fs::read(&snap).unwrap(), garbage);
    assert!(files_with(dir.path(), "corrupt").is_empty());

    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(ids(&all(&store, "t").await), ["in-log"]);
    let aside = files_with(dir.path(), "t.json.corrupt-");
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "the bytes are kept, never overwritten");
    let warnings = store.stats().await.unwrap().warnings;
    assert!(warnings.iter().any(|w| w.contains("unreadable") && w.contains("t.json")), "{warnings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_files_open_as_an_empty_collection() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.json"), b"").unwrap();
    std::fs::write(dir.path().join("t.log"), b"").unwrap();
    std::fs::write(dir.path().join("_orbstore.txlog"), b"").unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(store.list_collections().await.unwrap(), ["t"]);
    assert!(all(&store, "t").await.is_empty());
    store.collection("t").await.unwrap().insert_value(json!({"_id": "a"})).await.unwrap();
    store.close().await.unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(ids(&all(&store, "t").await), ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_opener_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), FileSync::Always).await;
    let e = FileBackend::open(FileConfig::new(dir.path())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let m = e.to_string();
    assert!(m.contains(&dir.path().display().to_string()), "{m}");
    assert!(m.contains(&format!("pid {}", std::process::id())), "{m}");
    first.close().await.unwrap();
    let second = FileBackend::open(FileConfig::new(dir.path())).await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_without_write_permission_is_a_clear_io_error() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = parent.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let running_as_root = std::fs::metadata(parent.path()).unwrap().uid() == 0
        && std::fs::File::create(dir.join("probe")).is_ok();
    if !running_as_root {
        let e = FileBackend::open(FileConfig::new(&dir)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        return;
    }
    // Root ignores permissions: run the opener as `nobody` in a child process instead.
    std::fs::remove_file(dir.join("probe")).unwrap();
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orbstore-file-crash-writer"))
        .args([dir.to_str().unwrap(), "always", "0"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("I/O error") && stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_json_files_load_and_are_never_modified() {
    let dir = tempfile::tempdir().unwrap();
    let q = r#"{"s1:left": {"q": 0.5, "visits": 3}, "s1:right": 0.25}"#;
    let e = r#"[{"_id": "e1", "reward": 1.0}, {"reward": 0.5}, 7]"#;
    let u = r#"{"u1": {"exploration_rate": 0.3}}"#;
    std::fs::write(dir.path().join("qtable.json"), q).unwrap();
    std::fs::write(dir.path().join("experiences.json"), e).unwrap();
    std::fs::write(dir.path().join("user-profiles.json"), u).unwrap();
    {
        let store = open(dir.path(), FileSync::Always).await;
        assert_eq!(store.list_collections().await.unwrap(), ["experiences", "qtable", "user_profiles"]);
        assert_eq!(
            all(&store, "qtable").await,
            vec![
                doc(json!({"_id": "s1:left", "q": 0.5, "visits": 3})),
                doc(json!({"_id": "s1:right", "value": 0.25}))
            ]
        );
        assert_eq!(all(&store, "experiences").await.len(), 2);
        assert!(store.warnings().iter().any(|w| w.contains("element 2")), "{:?}", store.warnings());
        assert_eq!(
            all(&store, "user_profiles").await,
            vec![doc(json!({"_id": "u1", "exploration_rate": 0.3}))]
        );
        for name in ["qtable", "user_profiles"] {
            store.collection(name).await.unwrap().insert_value(json!({"_id": "new"})).await.unwrap();
            store.compact_collection(name).await.unwrap();
        }
        store.close().await.unwrap();
    }
    let kept = files_with(dir.path(), "qtable.json.orig-");
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), q);
    assert_eq!(std::fs::read_to_string(dir.path().join("user-profiles.json")).unwrap(), u);
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "qtable").await.len(), 3);
    assert_eq!(all(&store, "user_profiles").await.len(), 2);
    assert!(store.warnings().iter().any(|w| w.contains("user-profiles.json")), "{:?}", store.warnings());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.txt"), "hi").unwrap();
    std::fs::write(dir.path().join("Bad Name!.json"), "{}").unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    assert!(store.list_collections().await.unwrap().is_empty());
    assert!(store.warnings().iter().any(|w| w.contains("Bad Name!.json")), "{:?}", store.warnings());
    assert_eq!(std::fs::read_to_string(dir.path().join("README.txt")).unwrap(), "hi");
}
