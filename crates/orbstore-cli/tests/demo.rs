//! `orb demo` trains, persists, and resumes; `orb stats` reports what it stored.

use std::process::Command;

fn orb(dir: &std::path::Path, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(args)
        .current_dir(dir)
        // The default backend: the file backend in ./data (no other choice in the environment).
        .env_remove("DATABASE_URL")
        .env_remove("DB_BACKEND")
        .env_remove("ORB_PERSISTENCE")
        .env_remove("ORB_DATA_DIR")
        .output()
        .expect("run orb");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn the_demo_learns_resumes_and_stats_report_it() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err, ok) = orb(dir.path(), &["demo", "--episodes", "200"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Starting fresh on the file backend"), "{out}");
    assert!(out.contains("It reaches the goal in 9 steps"), "200 episodes learn the shortest path:\n{out}");
    assert!(
        dir.path().join("data").join("q_values.log").exists()
            || dir.path().join("data").join("q_values.json").exists()
    );

    let (out, err, ok) = orb(dir.path(), &["demo", "--episodes", "5"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Resumed on the file backend: found"), "{out}");
    assert!(out.contains("from 200 earlier episodes"), "{out}");

    let (out, err, ok) = orb(dir.path(), &["stats", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["backend"], "file");
    assert_eq!(v["healthy"], true);
    let metrics =
        v["collections"].as_array().unwrap().iter().find(|c| c["name"] == "learning_metrics").unwrap();
    assert_eq!(metrics["documents"], 205);
    let (out, _, ok) = orb(dir.path(), &["stats"]);
    assert!(ok && out.contains("q_values") && out.contains("experiences"), "{out}");
}

#[test]
fn a_bad_backend_choice_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(["stats"])
        .current_dir(dir.path())
        .env("DB_BACKEND", "oracle")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DB_BACKEND") && err.contains("oracle"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
