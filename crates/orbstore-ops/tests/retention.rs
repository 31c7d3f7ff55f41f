//! Retention on every backend, with an injected clock: policies stored in the store, a dry run
//! that changes nothing, deletes by age in every time unit, a newest-N cap per group, archive
//! then delete into verified month files that read back, unreadable times kept, and a rerun
//! after archiving that neither loses nor duplicates anything.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use orbstore::{CollectionExt, ErrorKind, Store};
use orbstore_ops::retention::{
    self, cold, presets, Action, RetentionOptions, RetentionPolicy, TimeUnit, POLICIES,
};
use serde_json::json;

const DAY: u64 = 86_400;

/// The test's clock: 2025-03-15T00:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_741_996_800)
}

fn days_ago(d: u64) -> SystemTime {
    now() - Duration::from_secs(d * DAY)
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn options(dir: &std::path::Path, dry_run: bool) -> RetentionOptions {
    RetentionOptions { now: now(), dry_run, ..RetentionOptions::new(dir.join("archives")) }
}

async fn ids(store: &Store, c: &str) -> Vec<String> {
    let mut ids: Vec<String> = store
        .collection(c)
        .await
        .unwrap()
        .find_all()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn retention_on(name: &'static str) {
    let t = target(name).await;
    let store = &t.store;
    let work = tempfile::tempdir().unwrap();

    // Sessions: RFC 3339 times with offsets, 90 days, deleted; one without a readable time.
    let sessions = store.collection("sessions").await.unwrap();
    for (id, age) in [("s-old", 120), ("s-edge", 91), ("s-new", 10)] {
        let at = humantime::format_rfc3339(days_ago(age)).to_string();
        sessions.insert_value(json!({"_id": id, "started": at, "user": "u1"})).await.unwrap();
    }
    sessions.insert_value(json!({"_id": "s-bad", "started": "last tuesday"})).await.unwrap();
    sessions.insert_value(json!({"_id": "s-none"})).await.unwrap();
    // Interactions: milliseconds, 90 days, deleted.
    let interactions = store.collection("interactions").await.unwrap();
    for i in 0..30u64 {
        let ms = micros(days_ago(i * 5)) / 1000;
        interactions.insert_value(json!({"_id": format!("i{i:03}"), "at": ms})).await.unwrap();
    }
    // Reflections: keep the newest 3 per session (seconds).
    let reflections = store.collection("reflections").await.unwrap();
    for s in ["a", "b"] {
        for i in 0..5u64 {
            let secs = micros(days_ago(i)) / 1_000_000;
            reflections
                .insert_value(json!({"_id": format!("{s}{i}"), "session": s, "t": secs}))
                .await
                .unwrap();
        }
    }
    // Experience events: micros, 7 days hot, then archived (the orbstore-rl preset), across
    // two months.
    let events = store.collection("experience_events").await.unwrap();
    for i in 0..40u64 {
        let us = micros(days_ago(i));
        events
            .insert_value(json!({"_id": format!("e{i:03}"), "timestamp_us": us, "reward": i as f64 / 4.0}))
            .await
            .unwrap();
    }

    let mut sml = presets::sml_guardian("started", TimeUnit::Rfc3339);
    sml.retain(|p| p.collection == "sessions");
    for p in sml.into_iter().chain([
        RetentionPolicy::max_age(
            "interactions",
            "at",
            TimeUnit::Millis,
            Duration::from_secs(90 * DAY),
            Action::Delete,
        ),
        RetentionPolicy {
            max_age: None,
            ..RetentionPolicy::max_age(
                "reflections",
                "t",
                TimeUnit::Seconds,
                Duration::from_secs(1),
                Action::Delete,
            )
        }
        .keeping_newest(3, Some("session")),
        presets::experience_events(),
    ]) {
        retention::set_policy(&**store, &p).await.unwrap();
    }
    let stored = retention::policies(&**store).await.unwrap();
    assert_eq!(
        stored.iter().map(|p| p.collection.as_str()).collect::<Vec<_>>(),
        ["experience_events", "interactions", "reflections", "sessions"]
    );
    assert_eq!(stored[0], presets::experience_events(), "{name}: a policy reads back as written");

    // Dry run: counts, oldest and newest, and nothing changes.
    let before: Vec<_> = futures::future::join_all(
        ["sessions", "interactions", "reflections", "experience_events"].map(|c| ids(store, c)),
    )
    .await;
    let dry = retention::run(store, &options(work.path(), true)).await.unwrap();
    let due: Vec<(String, u64)> = dry.collections.iter().map(|c| (c.collection.clone(), c.due)).collect();
    let expected = [
        ("experience_events".to_owned(), 40 - 8),
        ("interactions".to_owned(), (0..30u64).filter(|i| i * 5 > 90).count() as u64),
        ("reflections".to_owned(), 4),
        ("sessions".to_owned(), 2),
    ];
    assert_eq!(due, expected, "{name}: {dry:?}");
    let sessions_dry = &dry.collections[3];
    assert_eq!(sessions_dry.unreadable_time, 2, "{name}: missing and unreadable times are kept and counted");
    assert_eq!(sessions_dry.oldest.as_deref().map(|s| &s[..10]), Some("2024-11-15"), "{name}");
    assert!(dry.collections.iter().all(|c| c.deleted == 0 && c.archived == 0));
    let after_dry: Vec<_> = futures::future::join_all(
        ["sessions", "interactions", "reflections", "experience_events"].map(|c| ids(store, c)),
    )
    .await;
    assert_eq!(before, after_dry, "{name}: a dry run changes nothing");
    assert!(!work.path().join("archives").exists(), "{name}: a dry run writes no archive");

    // The run.
    let report = retention::run(store, &options(work.path(), false)).await.unwrap();
    for (c, (name_due, n)) in report.collections.iter().zip(&expected) {
        assert_eq!((&c.collection, c.due, c.deleted), (name_due, *n, *n), "{name}: {report:?}");
    }
    assert_eq!(ids(store, "sessions").await, ["s-bad", "s-new", "s-none"], "{name}");
    assert_eq!(ids(store, "reflections").await, ["a0", "a1", "a2", "b0", "b1", "b2"], "{name}");
    assert_eq!(ids(store, "interactions").await.len(), 30 - expected[1].1 as usize, "{name}");
    let hot = ids(store, "experience_events").await;
    assert_eq!(hot, (0..8).map(|i| format!("e{i:03}")).collect::<Vec<_>>(), "{name}: a week stays hot");

    // The archived events: verified month files, every one once, each as it was stored.
    let events_report = &report.collections[0];
    assert_eq!(events_report.archived, 32, "{name}");
    let listed = cold::list(&work.path().join("archives")).unwrap();
    let months: Vec<&str> = listed.iter().map(|a| a.period.as_str()).collect();
    assert_eq!(months, ["2025-02", "2025-03"], "{name}: one file per month");
    assert_eq!(listed.iter().map(|a| a.documents).sum::<u64>(), 32, "{name}");
    let mut back = Vec::new();
    cold::read(&work.path().join("archives"), "experience_events", None, None, |d| {
        back.push(d);
        Ok(())
    })
    .unwrap();
    let mut back_ids: Vec<String> = back.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    back_ids.sort();
    assert_eq!(back_ids, (8..40).map(|i| format!("e{i:03}")).collect::<Vec<_>>(), "{name}");
    let e10 = back.iter().find(|d| d["_id"] == "e010").unwrap();
    assert_eq!(e10["reward"], json!(2.5));
    assert_eq!(e10["timestamp_us"], json!(micros(days_ago(10))));
    let march =
        cold::read(&work.path().join("archives"), "experience_events", Some("2025-03"), None, |_| Ok(()))
            .unwrap();
    assert_eq!(march, (8..=14).count() as u64, "{name}: --from selects months");

    // A crash between archiving and deleting leaves archived documents in the store: put two
    // back and run again. They are archived again (replacing their copies) and deleted.
    for d in back.iter().filter(|d| d["_id"] == "e020" || d["_id"] == "e030") {
        events.insert_one(d.clone()).await.unwrap();
    }
    let again = retention::run(store, &options(work.path(), false)).await.unwrap();
    assert_eq!((again.collections[0].due, again.collections[0].archived), (2, 2), "{name}: {again:?}");
    let listed = cold::list(&work.path().join("archives")).unwrap();
    assert_eq!(listed.iter().map(|a| a.documents).sum::<u64>(), 32, "{name}: no duplicate in the archives");
    let third = retention::run(store, &options(work.path(), false)).await.unwrap();
    assert_eq!(third.total_due(), 0, "{name}: a second run finds nothing: {third:?}");

    // Only the named collections; an unknown one is refused.
    let mut only = options(work.path(), true);
    only.collections = vec!["sessions".into()];
    assert_eq!(retention::run(store, &only).await.unwrap().collections.len(), 1);
    only.collections = vec!["nope".into()];
    let e = retention::run(store, &only).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("nope"), "{e}");

    assert!(retention::remove_policy(&**store, "sessions").await.unwrap());
    assert!(!retention::remove_policy(&**store, "sessions").await.unwrap());
    assert!(store.list_collections().await.unwrap().contains(&POLICIES.to_owned()));
    t.cleanup().await;
}

every_backend!(retention_on;
    retention_on_memory: "memory",
    retention_on_file: "file",
    retention_on_sqlite: "sqlite",
    retention_on_postgres: "postgres" if orbstore_no_postgres,
    retention_on_mongodb: "mongodb" if orbstore_no_mongodb,
);

#[tokio::test]
async fn bad_policies_are_refused_naming_what_is_wrong() {
    let t = target("memory").await;
    let cases = [
        (
            RetentionPolicy::max_age(
                "Bad Name",
                "t",
                TimeUnit::Millis,
                Duration::from_secs(60),
                Action::Delete,
            ),
            "Bad Name",
        ),
        (
            RetentionPolicy::max_age("x", "", TimeUnit::Millis, Duration::from_secs(60), Action::Delete),
            "time field",
        ),
        (
            RetentionPolicy::max_age("x", "t", TimeUnit::Millis, Duration::ZERO, Action::Delete),
            "at least one second",
        ),
        (
            RetentionPolicy {
                max_age: None,
                ..RetentionPolicy::max_age("x", "t", TimeUnit::Millis, Duration::from_secs(1), Action::Delete)
            },
            "neither",
        ),
        (
            RetentionPolicy::max_age(
                POLICIES,
                "t",
                TimeUnit::Millis,
                Duration::from_secs(60),
                Action::Delete,
            ),
            "orbstore's own",
        ),
    ];
    for (policy, needle) in cases {
        let e = retention::set_policy(&*t.store, &policy).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{policy:?}");
        assert!(e.message().contains(needle), "{e} lacks {needle}");
    }
    assert!(retention::policies(&*t.store).await.unwrap().is_empty());
    assert!(t.store.list_collections().await.unwrap().is_empty(), "reading policies creates nothing");
    assert_eq!(TimeUnit::parse("fortnights").unwrap_err().kind(), ErrorKind::InvalidInput);
    t.cleanup().await;
}

#[tokio::test]
async fn a_wrong_time_unit_is_refused_before_anything_is_deleted() {
    let t = target("memory").await;
    let work = tempfile::tempdir().unwrap();
    let c = t.store.collection("interactions").await.unwrap();
    for i in 0..10u64 {
        // Seconds, but the policy will say milliseconds: every time reads as January 1970.
        c.insert_value(json!({"_id": format!("i{i}"), "at": 1_741_000_000 + i})).await.unwrap();
    }
    let policy = RetentionPolicy::max_age(
        "interactions",
        "at",
        TimeUnit::Millis,
        Duration::from_secs(86_400),
        Action::Delete,
    );
    retention::set_policy(&*t.store, &policy).await.unwrap();
    let dry = retention::run(&t.store, &options(work.path(), true)).await.unwrap();
    assert_eq!((dry.collections[0].due, dry.collections[0].before_2000), (10, 10), "{dry:?}");
    let e = retention::run(&t.store, &options(work.path(), false)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("probably wrong") && e.message().contains("millis"), "{e}");
    assert_eq!(c.count_all().await.unwrap(), 10, "nothing deleted");
    t.cleanup().await;
}

#[tokio::test]
async fn a_damaged_month_file_stops_the_archive_and_deletes_nothing() {
    let t = target("file").await;
    let work = tempfile::tempdir().unwrap();
    let events = t.store.collection("experience_events").await.unwrap();
    for i in 0..20u64 {
        events
            .insert_value(json!({"_id": format!("e{i:03}"), "timestamp_us": micros(days_ago(30 + i))}))
            .await
            .unwrap();
    }
    retention::set_policy(&*t.store, &presets::experience_events()).await.unwrap();
    // A month file that is not an archive.
    let archives = work.path().join("archives");
    for period in ["2025-01", "2025-02"] {
        let path = retention::archive_path(&archives, "experience_events", period);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"not an archive at all, just bytes").unwrap();
    }
    let e = retention::run(&t.store, &options(work.path(), false)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().contains("experience_events"), "{e}");
    assert_eq!(events.count_all().await.unwrap(), 20, "nothing deleted without its archive");
    t.cleanup().await;
}
