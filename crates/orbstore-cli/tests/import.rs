//! `orb import` end to end: the binary reads EmotiStream's and Orb's files into the store named
//! by `DATABASE_URL`, reports each file (one JSON object with `--json`), exits non-zero when a
//! file failed, writes nothing of that file, and changes nothing when run again.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// Runs `orb` in `cwd` on the store at `url`; `(stdout, stderr, success)`.
fn orb(cwd: &Path, url: &str, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(args)
        .current_dir(cwd)
        .env("DATABASE_URL", url)
        .env_remove("DB_BACKEND")
        .env_remove("ORB_PERSISTENCE")
        .output()
        .expect("run orb");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn write(dir: &Path, file: &str, v: &Value) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// Documents per collection, from `orb stats --json`.
fn counts(cwd: &Path, url: &str) -> Value {
    let (out, err, ok) = orb(cwd, url, &["stats", "--json"]);
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    let mut counts = serde_json::Map::new();
    for c in stats["collections"].as_array().unwrap() {
        counts.insert(c["name"].as_str().unwrap().to_owned(), c["documents"].clone());
    }
    Value::Object(counts)
}

fn emotistream(dir: &Path) {
    // The Q-table as `[[key, value], ...]`, the experiences as `{key: value}`.
    write(
        dir,
        "qtable.json",
        &json!([
            ["calm:c1", {"stateHash": "calm", "contentId": "c1", "qValue": 0.5, "visitCount": 2, "lastUpdated": 1_714_564_800_000u64}],
            ["calm:c2", {"stateHash": "calm", "contentId": "c2", "qValue": -0.1, "visitCount": 1, "lastUpdated": 1_714_564_900_000u64}],
            ["tense:c1", {"stateHash": "tense", "contentId": "c1", "qValue": 0.9, "visitCount": 7, "lastUpdated": 1_714_565_000_000u64}]
        ]),
    );
    let exp = |id: &str, user: &str| {
        json!({"id": id, "userId": user, "stateHash": "calm", "contentId": "c1", "reward": 0.8,
               "nextStateHash": "calm", "timestamp": 1_714_564_800_000u64, "completed": true, "watchDuration": 1800})
    };
    write(
        dir,
        "experiences.json",
        &json!({"e1": exp("e1", "u1"), "e2": exp("e2", "u1"), "e3": exp("e3", "u2")}),
    );
}

#[test]
fn emotistream_import_reports_each_file_refuses_a_bad_one_and_imports_again_to_the_same_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("store").display());
    let src = tmp.path().join("emotistream");
    emotistream(&src);
    // The profiles are cut off: nothing of them may be written.
    std::fs::write(src.join("user-profiles.json"), "[[\"u1\", {\"userId\": \"u1\",").unwrap();

    let (out, err, ok) =
        orb(tmp.path(), &url, &["import", "--format", "emotistream", src.to_str().unwrap(), "--json"]);
    assert!(!ok, "a failed file fails the command:\n{out}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("one JSON object: {e}\n{out}"));
    assert_eq!(report["ok"], false);
    assert_eq!(report["format"], "emotistream");
    assert_eq!(report["backend"], "file");
    assert_eq!(report["imported"], 6);
    let files = report["files"].as_array().unwrap();
    let summary: Vec<_> =
        files.iter().map(|f| (f["file"].clone(), f["status"].clone(), f["imported"].clone())).collect();
    assert_eq!(
        summary,
        [
            (json!("qtable.json"), json!("imported"), json!(3)),
            (json!("experiences.json"), json!("imported"), json!(3)),
            (json!("user-profiles.json"), json!("failed"), json!(0)),
        ]
    );
    let error = files[2]["error"].as_str().unwrap();
    assert!(
        error.starts_with("user-profiles.json: not valid JSON: ") && error.contains("line 1 column"),
        "{error}"
    );
    let after_failure = counts(tmp.path(), &url);
    assert_eq!((&after_failure["q_values"], &after_failure["experiences"]), (&json!(3), &json!(3)));
    assert!(after_failure.get("user_profiles").is_none_or(|n| n == 0), "{after_failure}");

    write(
        &src,
        "user-profiles.json",
        &json!({"u1": {"userId": "u1", "explorationRate": 0.2, "totalExperiences": 2, "policyVersion": 1,
                        "createdAt": 1_714_000_000_000u64, "updatedAt": "2024-05-01T12:00:00Z"}}),
    );
    let (out, err, ok) = orb(tmp.path(), &url, &["import", "--format", "emotistream", src.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Importing EmotiStream files from") && out.contains("into the file backend"),
        "{out}"
    );
    assert!(out.contains("qtable.json         imported 3 Q-values"), "{out}");
    assert!(out.contains("user-profiles.json  imported 1 profiles"), "{out}");
    assert!(out.contains("7 records imported from 3 of 3 files."), "{out}");
    let once = counts(tmp.path(), &url);
    assert_eq!(once["user_profiles"], 1);
    let (_, err, ok) = orb(tmp.path(), &url, &["import", "--format", "emotistream", src.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(counts(tmp.path(), &url), once, "importing again changes no count");
}

#[test]
fn orb_import_on_sqlite_says_what_was_missing_and_a_wrong_shape_names_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("orb.sqlite3").display());
    let src = tmp.path().join("orb");
    write(
        &src,
        "luna/profiles.json",
        &json!({"u1": {"activeMode": "focus", "profiles": {
            "focus": {"userId": "u1", "modeId": "focus", "preferences": ["brief"], "constraints": [],
                      "updatedAt": "2024-05-01T12:00:00Z"}}}}),
    );
    let (out, err, ok) = orb(tmp.path(), &url, &["import", "--format", "orb", src.to_str().unwrap()]);
    assert!(ok, "a missing file is not a failure:\n{out}\n{err}");
    assert!(out.contains("luna/profiles.json   imported 1 Luna profiles"), "{out}");
    assert!(out.contains("te/reflections.json  not there, skipped"), "{out}");
    assert!(out.contains("1 records imported from 1 of 2 files."), "{out}");

    write(
        &src,
        "te/reflections.json",
        &json!({"sessions": {"s1": [{"id": "r1", "input": "hi", "output": "hello", "tags": [],
                                       "createdAt": "today"}]}}),
    );
    let (out, err, ok) = orb(tmp.path(), &url, &["import", "--format", "orb", src.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(r#"FAILED: te/reflections.json: session "s1", reflection "r1": createdAt must be"#),
        "{out}"
    );
    assert!(out.contains(r#"got "today""#) && out.contains("; 1 file failed."), "{out}");
    assert!(err.contains("1 of 2 Orb files could not be imported"), "{err}");
    let c = counts(tmp.path(), &url);
    assert_eq!(c["luna_profiles"], 1, "{c}");
    assert!(c.get("te_reflections").is_none_or(|n| n == 0), "{c}");
}

#[test]
fn a_directory_that_is_not_there_is_a_clear_error_and_one_json_object() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("store").display());
    let (out, err, ok) = orb(tmp.path(), &url, &["import", "--format", "orb", "no-such-dir", "--json"]);
    assert!(!ok);
    assert!(err.contains("no-such-dir") && !err.contains("panicked"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((v["ok"].clone(), v["format"].clone()), (json!(false), json!("orb")));
    let (_, err, ok) = orb(tmp.path(), &url, &["import", "--format", "csv", "."]);
    assert!(!ok && err.contains("emotistream") && err.contains("orb"), "clap lists the formats: {err}");
}
