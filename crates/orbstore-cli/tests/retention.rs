//! `orb retention` and `orb archive` end to end through the binary, on the file backend: a policy
//! stored, a dry run that changes nothing, a run that archives then deletes, the archive listed
//! and read back, and bad input named.

mod common;

use common::{object, orb, EXPIRE_EXPERIENCES};
use serde_json::Value;

#[test]
fn retention_archives_then_deletes_and_the_archive_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let archives = dir.path().join("cold");
    let vars = [("ORB_ARCHIVE_DIR", archives.to_str().unwrap())];
    let run = orb(dir.path(), &vars, &["demo", "--episodes", "20"]);
    assert!(run.ok, "{}", run.err);
    let stats = |dir: &std::path::Path| -> Value {
        let run = orb(dir, &vars, &["stats", "--json"]);
        serde_json::from_str(&run.out).unwrap()
    };
    let experiences = |v: &Value| -> u64 {
        v["collections"].as_array().unwrap().iter().find(|c| c["name"] == "experiences").unwrap()["documents"]
            .as_u64()
            .unwrap()
    };
    let before = experiences(&stats(dir.path()));
    assert!(before > 0);

    let set = [EXPIRE_EXPERIENCES, &["--archive", "--json"]].concat();
    let v = object(&orb(dir.path(), &vars, &set).out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["stored"][0]["action"], "archive");
    std::thread::sleep(std::time::Duration::from_millis(1200));

    let dry = object(&orb(dir.path(), &vars, &["retention", "run", "--dry-run", "--json"]).out);
    assert_eq!(
        (dry["dry_run"].clone(), dry["collections"][0]["due"].as_u64()),
        (Value::Bool(true), Some(before)),
        "{dry}"
    );
    assert_eq!(experiences(&stats(dir.path())), before, "a dry run changes nothing");

    let done = object(&orb(dir.path(), &vars, &["retention", "run", "--json"]).out);
    assert_eq!(done["collections"][0]["archived"].as_u64(), Some(before), "{done}");
    assert_eq!(done["collections"][0]["deleted"].as_u64(), Some(before), "{done}");
    let after = stats(dir.path());
    assert_eq!(experiences(&after), 0);
    assert_eq!(after["archived"][0]["name"], "experiences", "stats shows the cold archives: {after}");
    assert_eq!(after["archived"][0]["documents"].as_u64(), Some(before));

    let listed = object(&orb(dir.path(), &vars, &["archive", "list", "--json"]).out);
    let total: u64 =
        listed["archives"].as_array().unwrap().iter().map(|a| a["documents"].as_u64().unwrap()).sum();
    assert_eq!(total, before, "{listed}");
    let read = orb(dir.path(), &vars, &["archive", "read", "experiences"]);
    assert!(read.ok, "{}", read.err);
    assert_eq!(read.out.lines().count() as u64, before);
    for line in read.out.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        assert!(doc["timestamp"].is_u64() && doc["user"] == "grid-agent", "{doc}");
    }

    // The audit log holds the policy change and the run (not the dry run), by ORB_ACTOR.
    let audited = [("ORB_ARCHIVE_DIR", archives.to_str().unwrap()), ("ORB_ACTOR", "ops-team")];
    let log = object(&orb(dir.path(), &audited, &["audit", "--json"]).out);
    let records = log["records"].as_array().unwrap();
    let whats: Vec<&str> = records.iter().map(|r| r["what"].as_str().unwrap()).collect();
    assert_eq!(whats, ["retention-policy", "retention"], "{log}");
    assert_eq!(records[1]["counts"]["experiences"]["archived"].as_u64(), Some(before), "{log}");
    assert_eq!(records[1]["outcome"], "ok");
    let last = object(&orb(dir.path(), &audited, &["audit", "--last", "1", "--json"]).out);
    assert_eq!(last["records"].as_array().unwrap().len(), 1);

    // The agent's data, live and archived, as one document (GDPR article 20).
    let out = dir.path().join("agent.json");
    let summary = object(
        &orb(dir.path(), &vars, &["user", "export", "grid-agent", "--out", out.to_str().unwrap(), "--json"])
            .out,
    );
    assert_eq!(
        (summary["documents"].as_u64(), summary["archived"].as_u64()),
        (Some(1), Some(before)),
        "{summary}"
    );
    let export: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(export["user"], "grid-agent");
    assert_eq!(export["collections"]["user_profiles"][0]["_id"], "grid-agent");
    assert_eq!(export["archived"]["experiences"].as_array().unwrap().len() as u64, before);

    // Forget the agent: nothing of it is left, live or archived; the audit log keeps a record
    // naming only the tombstone.
    // A backup made before holds the agent; --rewrite-backups rewrites it without.
    let backups = dir.path().join("backups");
    let with_backups =
        [("ORB_ARCHIVE_DIR", archives.to_str().unwrap()), ("BACKUP_DIR", backups.to_str().unwrap())];
    assert!(orb(dir.path(), &with_backups, &["backup"]).ok);
    let forgot = object(
        &orb(dir.path(), &with_backups, &["user", "forget", "grid-agent", "--rewrite-backups", "--json"]).out,
    );
    assert_eq!(forgot["archived_removed"]["experiences"].as_u64(), Some(before), "{forgot}");
    let held = forgot["backups_holding_the_user"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{forgot}");
    assert_eq!(held[0]["rewritten"], true, "{forgot}");
    let inspect = object(
        &orb(dir.path(), &with_backups, &["inspect", "--json", held[0]["path"].as_str().unwrap()]).out,
    );
    assert_eq!(inspect["verified"], true, "the rewritten backup verifies: {inspect}");
    let again = object(
        &orb(dir.path(), &vars, &["user", "export", "grid-agent", "--out", out.to_str().unwrap(), "--json"])
            .out,
    );
    assert_eq!((again["documents"].as_u64(), again["archived"].as_u64()), (Some(0), Some(0)), "{again}");
    let log = object(&orb(dir.path(), &vars, &["audit", "--json"]).out);
    let erasure = log["records"].as_array().unwrap().iter().find(|r| r["what"] == "erasure").unwrap().clone();
    assert_eq!(erasure["target"], forgot["tombstone"], "{log}");
    assert!(!log.to_string().contains("grid-agent"), "the audit log names no user: {log}");

    // Bad input names what was wrong, with exit code 1 (clap's own usage errors exit 2).
    for (args, needle) in [
        (
            vec![
                "retention",
                "set",
                "x",
                "--time-field",
                "t",
                "--unit",
                "parsecs",
                "--max-age",
                "1d",
                "--json",
            ],
            "parsecs",
        ),
        (vec!["retention", "set", "x", "--time-field", "t", "--unit", "ms", "--json"], "--max-age"),
        (
            vec!["retention", "set", "x", "--time-field", "t", "--unit", "ms", "--max-age", "soon", "--json"],
            "soon",
        ),
        (vec!["retention", "run", "--collection", "nope", "--json"], "nope"),
        (vec!["retention", "preset", "sml-guardian", "--json"], "--time-field"),
    ] {
        let run = orb(dir.path(), &vars, &args);
        let v = object(&run.out);
        assert!(!run.ok && v["ok"] == false, "{args:?}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{args:?}: {v}");
    }
    let run = orb(dir.path(), &vars, &["archive", "read", "experiences", "--from", "12-2026"]);
    assert!(!run.ok && run.err.contains("YYYY-MM"), "{}", run.err);
}
