//! `orb compact` end to end on the file and SQLite backends: after most documents are deleted,
//! compaction shrinks the store, changes no document, and records itself in the audit log.

mod common;

use common::{object, orb, EXPIRE_EXPERIENCES};

fn compact_shrinks(vars: &[(&str, &str)], dir: &std::path::Path) {
    let run = orb(dir, vars, &["demo", "--episodes", "40"]);
    assert!(run.ok, "{}", run.err);
    assert!(orb(dir, vars, EXPIRE_EXPERIENCES).ok);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(orb(dir, vars, &["retention", "run"]).ok);
    let before = orb(dir, vars, &["export"]).out;
    let report = object(&orb(dir, vars, &["compact", "--json"]).out);
    assert_eq!(report["ok"], true, "{report}");
    let (b, a) = (report["bytes_before"].as_u64().unwrap(), report["bytes_after"].as_u64().unwrap());
    assert!(a < b, "compaction reclaims the deleted experiences' space: {b} -> {a}");
    let after = orb(dir, vars, &["export"]).out;
    let strip =
        |s: &str| s.lines().filter(|l| !l.contains("\"access_logs\"")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(strip(&before), strip(&after), "no document changed");
    let log = object(&orb(dir, vars, &["audit", "--last", "1", "--json"]).out);
    assert_eq!(log["records"][0]["what"], "compact", "{log}");
}

#[test]
fn compact_on_file() {
    let dir = tempfile::tempdir().unwrap();
    compact_shrinks(&[], dir.path());
}

#[test]
fn compact_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.sqlite3").display());
    compact_shrinks(&[("DATABASE_URL", url.as_str())], dir.path());
}

#[test]
fn cleanup_lists_then_removes_with_apply_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = orb(dir.path(), common::NO_VARS, &["demo", "--episodes", "3"]);
    assert!(run.ok, "{}", run.err);
    let data = dir.path().join("data");
    // An interrupted atomic replace of the transaction log, and a corrupt log's copy that
    // recovery kept 40 days ago.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    for name in ["_orbstore.txlog.tmp", "q_values.log.corrupt-20240101T000000Z"] {
        std::fs::write(data.join(name), b"x").unwrap();
        std::fs::File::options().write(true).open(data.join(name)).unwrap().set_modified(old).unwrap();
    }
    let listed = orb(dir.path(), common::NO_VARS, &["cleanup"]);
    assert!(listed.ok, "{}", listed.err);
    assert!(
        listed.out.contains("Found 2 orphan(s)") && listed.out.contains("temporary file"),
        "{}",
        listed.out
    );
    assert!(listed.out.contains("quarantined file") && listed.out.contains("--apply"), "{}", listed.out);
    assert!(data.join("_orbstore.txlog.tmp").exists(), "listing removes nothing");
    let applied = object(&orb(dir.path(), common::NO_VARS, &["cleanup", "--apply", "--json"]).out);
    assert_eq!(
        (applied["ok"].as_bool(), applied["applied"].as_bool()),
        (Some(true), Some(true)),
        "{applied}"
    );
    assert_eq!(applied["orphans"][1]["removed"], true, "{applied}");
    assert!(!data.join("_orbstore.txlog.tmp").exists());
    let again = object(&orb(dir.path(), common::NO_VARS, &["cleanup", "--json"]).out);
    assert_eq!(again["orphans"], serde_json::json!([]), "{again}");
    let log = object(&orb(dir.path(), common::NO_VARS, &["audit", "--last", "1", "--json"]).out);
    assert_eq!(log["records"][0]["what"], "cleanup", "{log}");
    assert_eq!(log["records"][0]["counts"]["removed"], 2, "{log}");
    let resumed = orb(dir.path(), common::NO_VARS, &["demo", "--episodes", "1"]);
    assert!(resumed.out.contains("from 3 earlier episodes"), "{}", resumed.out);
}
