//! `orb schema` and `orb validate` end to end on the file and SQLite backends: the shipped
//! schemas accept everything the demo writes (in strict mode), a stricter schema finds the
//! stored documents that fail it, `--fix` repairs them, strict mode then refuses the demo's
//! writes, an import that fails a strict schema writes nothing, and every change is audited.

mod common;

use std::path::Path;

use common::{object, orb, Run};
use serde_json::{json, Value};

fn run(dir: &Path, url: &str, args: &[&str]) -> Run {
    orb(dir, &[("DATABASE_URL", url)], args)
}

fn ok_json(dir: &Path, url: &str, args: &[&str]) -> Value {
    let r = run(dir, url, args);
    assert!(r.ok, "orb {args:?}:\n{}\n{}", r.out, r.err);
    object(&r.out)
}

fn shipped(collection: &str) -> Value {
    let (_, text) = orbstore_rl::SCHEMAS.iter().find(|(c, _)| *c == collection).expect("shipped schema");
    serde_json::from_str(text).unwrap()
}

fn schemas_end_to_end(url: &str, tmp: &Path) {
    let installed = ok_json(tmp, url, &["schema", "install", "rl", "--mode", "strict", "--json"]);
    assert!(installed["collections"].as_array().unwrap().contains(&json!("experiences")), "{installed}");
    let demo = run(tmp, url, &["demo", "--episodes", "10"]);
    assert!(demo.ok, "the shipped schemas accept what the demo writes:\n{}\n{}", demo.out, demo.err);
    let report = ok_json(tmp, url, &["validate", "--json"]);
    assert!(report["collections"].as_array().unwrap().len() >= 10, "{report}");

    // A stricter rule than the data: the goal's reward of 10 is above 5.
    let mut stricter = shipped("experiences");
    stricter["properties"]["reward"]["maximum"] = json!(5);
    let file = tmp.join("experiences.schema.json");
    std::fs::write(&file, stricter.to_string()).unwrap();
    ok_json(tmp, url, &["schema", "set", "experiences", file.to_str().unwrap(), "--mode", "warn", "--json"]);
    let failing = run(tmp, url, &["validate", "--collection", "experiences"]);
    assert!(!failing.ok, "failing documents make the exit code non-zero");
    assert!(failing.out.contains("at /reward:") && failing.out.contains("(maximum)"), "{}", failing.out);
    let r = run(tmp, url, &["validate", "--collection", "experiences", "--json"]);
    let v = object(&r.out);
    assert!(!r.ok && v["ok"] == json!(false), "{v}");
    let invalid = v["collections"][0]["invalid"].as_u64().unwrap();
    assert!(invalid > 0, "{v}");

    let fixed = ok_json(tmp, url, &["validate", "--fix", "--json"]);
    let c =
        fixed["collections"].as_array().unwrap().iter().find(|c| c["collection"] == "experiences").unwrap();
    assert_eq!((c["fixed"].as_u64(), c["unfixable"].as_u64()), (Some(invalid), Some(0)), "{fixed}");
    assert_eq!(c["documents"][0]["changes"][0]["rule"], "clamp", "{fixed}");
    ok_json(tmp, url, &["validate", "--json"]);

    // Strict: the demo's next goal reward is refused, naming the rule.
    ok_json(tmp, url, &["schema", "mode", "experiences", "strict", "--json"]);
    let demo = run(tmp, url, &["demo", "--episodes", "5"]);
    assert!(!demo.ok, "{}", demo.out);
    assert!(
        demo.err.contains("does not match the collection's schema") && demo.err.contains("maximum"),
        "{}",
        demo.err
    );

    let listed = ok_json(tmp, url, &["schema", "list", "--json"]);
    let modes: Vec<_> =
        listed["schemas"].as_array().unwrap().iter().filter(|s| s["collection"] == "experiences").collect();
    assert_eq!(modes[0]["mode"], "strict", "{listed}");
    let shown = ok_json(tmp, url, &["schema", "show", "experiences", "--json"]);
    assert_eq!(shown["schema"]["properties"]["reward"]["maximum"], 5, "{shown}");
    let removed = ok_json(tmp, url, &["schema", "remove", "experiences", "--json"]);
    assert_eq!(removed["removed"], true);
    assert!(run(tmp, url, &["demo", "--episodes", "2"]).ok, "no schema, no check");

    let audit = ok_json(tmp, url, &["audit", "--json"]);
    let whats: Vec<&str> =
        audit["records"].as_array().unwrap().iter().filter_map(|r| r["what"].as_str()).collect();
    for what in ["schema-install", "schema-set", "validate-fix", "schema-mode", "schema-remove"] {
        assert!(whats.contains(&what), "{what} audited: {whats:?}");
    }
}

#[test]
fn schemas_and_validate_on_the_file_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("data").display());
    schemas_end_to_end(&url, tmp.path());
}

#[test]
fn schemas_and_validate_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("orb.sqlite3").display());
    schemas_end_to_end(&url, tmp.path());
}

#[test]
fn an_import_failing_a_strict_schema_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("orb.sqlite3").display());
    let src = tmp.path().join("orb");
    let profiles = json!({"u1": {"activeMode": "focus", "profiles": {
        "focus": {"userId": "u1", "modeId": "focus", "preferences": ["brief"], "constraints": [],
                  "updatedAt": "2024-05-01T12:00:00Z"}}}});
    let path = src.join("luna/profiles.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, profiles.to_string()).unwrap();
    let mut schema = shipped("luna_profiles");
    schema["properties"]["preferences"]["minItems"] = json!(2);
    let file = tmp.path().join("luna.schema.json");
    std::fs::write(&file, schema.to_string()).unwrap();
    ok_json(tmp.path(), &url, &["schema", "set", "luna_profiles", file.to_str().unwrap(), "--json"]);

    let r = run(tmp.path(), &url, &["import", "--format", "orb", src.to_str().unwrap()]);
    assert!(!r.ok);
    assert!(
        r.err.contains("nothing was imported")
            && r.err.contains("/preferences")
            && r.err.contains("minItems"),
        "{}",
        r.err
    );
    let r = run(tmp.path(), &url, &["stats", "--json"]);
    let stats: Value = serde_json::from_str(&r.out).unwrap();
    let held = |c: &str| {
        stats["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == c)
            .map_or(0, |x| x["documents"].as_u64().unwrap())
    };
    assert_eq!((held("luna_profiles"), held("luna_users")), (0, 0), "nothing of any file: {stats}");

    ok_json(tmp.path(), &url, &["schema", "mode", "luna_profiles", "warn", "--json"]);
    let r = run(tmp.path(), &url, &["import", "--format", "orb", src.to_str().unwrap()]);
    assert!(r.ok, "{}\n{}", r.out, r.err);
    assert!(r.err.contains("warning: not matching the schema"), "{}", r.err);
}

#[test]
fn bad_schema_input_is_refused_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("data").display());
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"type": "bogus"}"#).unwrap();
    let notjson = tmp.path().join("notjson.json");
    std::fs::write(&notjson, "{").unwrap();
    let good = tmp.path().join("good.json");
    std::fs::write(&good, r#"{"type": "object"}"#).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["schema", "set", "notes", "missing.json"], "missing.json"),
        (&["schema", "set", "notes", bad.to_str().unwrap()], "not a valid JSON Schema"),
        (&["schema", "set", "notes", notjson.to_str().unwrap()], "not JSON"),
        (&["schema", "set", "notes", good.to_str().unwrap(), "--mode", "loud"], "off, warn, strict"),
        (&["schema", "set", "orbstore_erasures", good.to_str().unwrap()], "orbstore's own collections"),
        (&["schema", "show", "notes"], "\"notes\" has no schema"),
        (&["schema", "mode", "notes", "warn"], "\"notes\" has no schema"),
        (&["schema", "install", "everything"], "the set is rl"),
        (&["validate", "--collection", "notes"], "\"notes\" has no schema"),
    ];
    for (args, expected) in cases {
        let r = run(tmp.path(), &url, args);
        assert!(!r.ok, "orb {args:?} must fail");
        assert!(r.err.contains(expected), "orb {args:?}: {expected:?} in {}", r.err);
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let j = run(tmp.path(), &url, &with_json);
        let v = object(&j.out);
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(expected), "{v}");
    }
    let none = ok_json(tmp.path(), &url, &["validate", "--json"]);
    assert_eq!(none["collections"], json!([]), "no schema: nothing to check, success");
}
