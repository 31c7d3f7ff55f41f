//! Running the `orb` binary in the CLI tests: in a directory of the test's, with only the given
//! variables choosing the store, its layers and the backup settings.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What a run printed, and whether it exited 0.
pub struct Run {
    pub out: String,
    pub err: String,
    pub ok: bool,
}

/// Every variable `orb` reads that the tests' own environment might set.
const CHOOSING: &[&str] = &[
    "DATABASE_URL",
    "DB_BACKEND",
    "ORB_PERSISTENCE",
    "ORB_DATA_DIR",
    "BACKUP_DIR",
    "BACKUP_RETENTION_DAYS",
    "BACKUP_COMPRESSION",
    "PERSISTENCE_OFFLINE_MODE",
    "ORB_JOURNAL_DIR",
    "PERSISTENCE_AUTO_SAVE",
    "PERSISTENCE_CACHE_SIZE",
    "DB_MAX_RETRIES",
    "ORB_OFFLINE_COLD_START",
];

/// `orb retention set` for the demo's experiences: every one older than a second is due.
pub const EXPIRE_EXPERIENCES: &[&str] =
    &["retention", "set", "experiences", "--time-field", "timestamp", "--unit", "millis", "--max-age", "1s"];

/// No variable: the default store, or none for commands that name theirs.
pub const NO_VARS: &[(&str, &str)] = &[];

/// Runs `orb args` in `dir` with only `vars` set of the variables that choose the store.
pub fn orb<V: AsRef<str>>(dir: &Path, vars: &[(&str, V)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orb"));
    cmd.args(args).current_dir(dir);
    for v in CHOOSING {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v.as_ref());
    }
    let out = cmd.output().expect("run orb");
    Run {
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// The one JSON object a `--json` run printed.
pub fn object(text: &str) -> Value {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one JSON object expected, got:\n{text}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {text}"))
}
