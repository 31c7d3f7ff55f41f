//! Rotation: a backup into `BACKUP_DIR` prunes this tool's archives older than the retention,
//! and nothing else; the settings are read from the environment's variables with clear errors;
//! a backup never overwrites a file and leaves no partial file behind.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use orbstore::ErrorKind;
use orbstore_ops::rotation::archive_name;
use orbstore_ops::{backup, BackupOptions, Compression};

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_prunes_only_its_own_archives_older_than_the_retention() {
    let t = target("memory").await;
    fill_fixture(&t.store, true).await;
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let old = archive_name(now - 40 * DAY, Compression::Gzip);
    let old_zst = archive_name(now - 31 * DAY, Compression::Zstd);
    let old_partial = format!("{}.partial", archive_name(now - 45 * DAY, Compression::Gzip));
    let recent = archive_name(now - 10 * DAY, Compression::Gzip);
    let foreign = ["notes.txt", "orbstore-notes.tar.gz", "pg-2001-01-01.tar.gz"];
    for name in [&old, &old_zst, &old_partial, &recent].into_iter().map(String::as_str).chain(foreign) {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    let options = BackupOptions { dir: dir.path().to_owned(), retention_days: 30, ..Default::default() };
    let made = backup(&t.store, &options).await.unwrap();
    let mut pruned: Vec<_> =
        made.pruned.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_owned()).collect();
    pruned.sort();
    let mut expected = vec![old.clone(), old_zst.clone(), old_partial.clone()];
    expected.sort();
    assert_eq!(pruned, expected);
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
    want.push(recent.clone());
    want.push(made.path.file_name().unwrap().to_str().unwrap().to_owned());
    want.sort();
    assert_eq!(left, want, "the new archive, the recent one and foreign files stay; no .partial is left");

    // Retention 0 keeps everything; an explicit --out never prunes.
    std::fs::write(dir.path().join(&old), b"x").unwrap();
    let keep = BackupOptions { retention_days: 0, ..options.clone() };
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(backup(&t.store, &keep).await.unwrap().pruned.is_empty());
    let out = BackupOptions { out: Some(dir.path().join("manual.tar.gz")), ..options.clone() };
    assert!(backup(&t.store, &out).await.unwrap().pruned.is_empty());
    assert!(dir.path().join(&old).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_overwrites_and_leaves_no_partial_file() {
    let t = target("memory").await;
    t.store.collection("c").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.tar.gz");
    std::fs::write(&out, b"precious").unwrap();
    let options = BackupOptions { out: Some(out.clone()), ..Default::default() };
    let e = backup(&t.store, &options).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("exists already"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    let nowhere = BackupOptions { out: Some(dir.path().join("no/such/dir/b.tar.gz")), ..Default::default() };
    assert_eq!(backup(&t.store, &nowhere).await.unwrap_err().kind(), ErrorKind::InvalidInput);

    // A store that fails while it is read: the partial archive is removed.
    t.store.close().await.unwrap();
    let failing = BackupOptions { out: Some(dir.path().join("fails.tar.gz")), ..Default::default() };
    assert!(backup(&t.store, &failing).await.is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["b.tar.gz"], "no partial file is left");
}

#[test]
fn settings_come_from_the_variables_with_errors_naming_them() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let o = BackupOptions::from_lookup(vars(&[])).unwrap();
    assert_eq!(
        (o.dir.to_str().unwrap(), o.retention_days, o.compression),
        ("./backups", 30, Compression::Gzip)
    );
    let o = BackupOptions::from_lookup(vars(&[
        ("BACKUP_DIR", "/var/b"),
        ("BACKUP_RETENTION_DAYS", "7"),
        ("BACKUP_COMPRESSION", "zstd"),
    ]))
    .unwrap();
    assert_eq!((o.dir.to_str().unwrap(), o.retention_days, o.compression), ("/var/b", 7, Compression::Zstd));
    // Empty counts as unset.
    let o = BackupOptions::from_lookup(vars(&[("BACKUP_RETENTION_DAYS", ""), ("BACKUP_COMPRESSION", " ")]))
        .unwrap();
    assert_eq!((o.retention_days, o.compression), (30, Compression::Gzip));
    for (bad, var) in [
        (&[("BACKUP_RETENTION_DAYS", "a month")][..], "BACKUP_RETENTION_DAYS"),
        (&[("BACKUP_RETENTION_DAYS", "-3")][..], "BACKUP_RETENTION_DAYS"),
        (&[("BACKUP_COMPRESSION", "lz4")][..], "BACKUP_COMPRESSION"),
    ] {
        let bad: &'static [(&'static str, &'static str)] = Box::leak(bad.to_vec().into_boxed_slice());
        let e = BackupOptions::from_lookup(vars(bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains(var), "{e}");
    }
}
