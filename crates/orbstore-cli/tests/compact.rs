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
