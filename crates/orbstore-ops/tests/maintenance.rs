//! The maintenance scheduler: settings read and checked, tasks run on their schedules, two
//! schedulers sharing a store never run the same task at once (a lease in the store), a stale
//! lease is taken over, and shutdown waits for a running task.

mod common;

use std::time::Duration;

use common::*;
use orbstore::{CollectionExt, ErrorKind};
use orbstore_ops::maintenance::{Maintenance, MaintenanceConfig, LEASES};
use serde_json::json;

fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
}

#[test]
fn settings_are_read_and_bad_ones_named() {
    let c = MaintenanceConfig::from_lookup(lookup(&[])).unwrap();
    assert!(c.backup.is_none() && c.retention.is_none() && c.compact.is_none());
    let c = MaintenanceConfig::from_lookup(lookup(&[
        ("BACKUP_ENABLED", "true"),
        ("BACKUP_FREQUENCY", "hourly"),
        ("ORB_RETENTION_INTERVAL", "15m"),
        ("ORB_COMPACT_INTERVAL", "daily"),
    ]))
    .unwrap();
    assert_eq!(c.backup.unwrap().0, Duration::from_secs(3600));
    assert_eq!(c.retention.unwrap().0, Duration::from_secs(900));
    assert_eq!(c.compact, Some(Duration::from_secs(86_400)));
    for (var, value) in
        [("BACKUP_ENABLED", "sometimes"), ("ORB_COMPACT_INTERVAL", "often"), ("ORB_RETENTION_INTERVAL", "0s")]
    {
        let e = MaintenanceConfig::from_lookup(lookup(&[(var, value), ("BACKUP_FREQUENCY", "daily")]))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains(var), "{e}");
    }
    let e = MaintenanceConfig::from_lookup(lookup(&[
        ("BACKUP_ENABLED", "1"),
        ("BACKUP_FREQUENCY", "weekly-ish"),
    ]))
    .err()
    .unwrap();
    assert!(e.message().contains("BACKUP_FREQUENCY"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_store_never_run_a_backup_twice_at_once() {
    let t = target("sqlite").await;
    t.store.collection("items").await.unwrap().insert_value(json!({"_id": "a"})).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().display().to_string();
    let config = || {
        MaintenanceConfig::from_lookup(lookup(&[
            ("BACKUP_ENABLED", "true"),
            ("BACKUP_FREQUENCY", "1s"),
            ("BACKUP_DIR", backups.as_str()),
            ("BACKUP_RETENTION_DAYS", "0"),
            ("ORB_COMPACT_INTERVAL", "1s"),
        ]))
        .unwrap()
    };
    let a = Maintenance::spawn(t.store.clone(), config());
    let b = Maintenance::spawn(t.store.clone(), config());
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let (sa, sb) = (a.status(), b.status());
    a.shutdown().await;
    b.shutdown().await;
    let backup = |s: &Vec<orbstore_ops::maintenance::TaskStatus>| {
        s.iter().find(|t| t.task == "backup").unwrap().clone()
    };
    let (ba, bb) = (backup(&sa), backup(&sb));
    assert!(ba.last_error.is_none() && bb.last_error.is_none(), "{ba:?} {bb:?}");
    let runs = ba.runs + bb.runs;
    assert!(runs >= 2, "a backup every second for 3.6 s: {ba:?} {bb:?}");
    // Every turn of both either ran or found the other's lease (which the lease test below
    // checks deterministically; here the turns are nearly simultaneous).
    assert!(runs + ba.skipped + bb.skipped >= 4, "{ba:?} {bb:?}");
    // Each run wrote one archive (their names carry the time to the millisecond).
    let archives = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".tar.gz"))
        .count();
    assert_eq!(archives as u64, runs, "{ba:?} {bb:?}");
    assert!(sa.iter().chain(&sb).any(|s| s.task == "compact" && s.runs > 0));
    // Every lease was released.
    assert_eq!(t.store.collection(LEASES).await.unwrap().count_all().await.unwrap(), 0);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_of_a_crashed_process_is_taken_over() {
    let t = target("memory").await;
    let leases = t.store.collection(LEASES).await.unwrap();
    // A lease that expired long ago, and one that is still valid.
    leases.insert_value(json!({"_id": "compact", "holder": "crashed", "until_ms": 1})).await.unwrap();
    let config = MaintenanceConfig::from_lookup(lookup(&[("ORB_COMPACT_INTERVAL", "1s")])).unwrap();
    let m = Maintenance::spawn(t.store.clone(), config);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = m.status();
    m.shutdown().await;
    assert_eq!((s[0].runs, s[0].skipped), (1, 0), "{s:?}");
    leases
        .insert_value(json!({"_id": "compact", "holder": "alive", "until_ms": u64::MAX / 2}))
        .await
        .unwrap();
    let config = MaintenanceConfig::from_lookup(lookup(&[("ORB_COMPACT_INTERVAL", "1s")])).unwrap();
    let m = Maintenance::spawn(t.store.clone(), config);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = m.status();
    m.shutdown().await;
    assert_eq!((s[0].runs, s[0].skipped), (0, 1), "a valid lease is respected: {s:?}");
    t.cleanup().await;
}
