//! How the data commands (`backup`, `restore`, `inspect`, `export`) report: a human summary, or
//! with `--json` exactly one JSON object whose `ok` says whether the whole operation succeeded;
//! the exit code says the same.

use std::io::Write;
use std::process::ExitCode;

use serde_json::{json, Map, Value};

/// Where a report goes: stdout, or stderr when stdout carries the data (`orb export` without
/// `--out`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// Writes a line, ignoring a closed stream (`orb inspect … | head` must not panic).
pub fn line(channel: Channel, text: &str) {
    let _ = match channel {
        Channel::Stdout => writeln!(std::io::stdout(), "{text}"),
        Channel::Stderr => writeln!(std::io::stderr(), "{text}"),
    };
}

/// The JSON form of an error: its kind (as the enum names it) and its whole message.
pub fn error_json(e: &orbstore::Error) -> Value {
    json!({"kind": format!("{:?}", e.kind()), "message": e.to_string()})
}

/// Prints a success: `fields` with `"ok": true` as one JSON object, or the human lines.
pub fn success(as_json: bool, channel: Channel, fields: Map<String, Value>, human: &[String]) -> ExitCode {
    report(as_json, channel, true, fields, human)
}

/// Prints a failure of `command`: `"ok": false` and `"error"` beside `fields`, or the message
/// then the human lines on stderr.
pub fn failure(
    as_json: bool,
    channel: Channel,
    command: &str,
    error: &orbstore::Error,
    mut fields: Map<String, Value>,
    human: &[String],
) -> ExitCode {
    if as_json {
        fields.insert("error".into(), error_json(error));
        return report(true, channel, false, fields, &[]);
    }
    line(Channel::Stderr, &format!("orb {command}: {error}"));
    for l in human {
        line(Channel::Stderr, l);
    }
    ExitCode::FAILURE
}

/// Prints one report; the exit code follows `ok`.
pub fn report(
    as_json: bool,
    channel: Channel,
    ok: bool,
    fields: Map<String, Value>,
    human: &[String],
) -> ExitCode {
    if as_json {
        let mut object = Map::new();
        object.insert("ok".into(), Value::Bool(ok));
        object.extend(fields);
        line(channel, &Value::Object(object).to_string());
    } else {
        for l in human {
            line(channel, l);
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A size for people: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1 document`, `2 documents`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Index specs as JSON.
pub fn indexes_json(specs: &[orbstore::IndexSpec]) -> Value {
    serde_json::to_value(specs).unwrap_or(Value::Null)
}

/// Index specs for people: `n_1 (n), code_1 (code, unique)`, or `-`.
pub fn indexes_human(specs: &[orbstore::IndexSpec]) -> String {
    if specs.is_empty() {
        return "-".into();
    }
    specs
        .iter()
        .map(|s| format!("{} ({}{})", s.name, s.fields.join(", "), if s.unique { ", unique" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts a `json!({...})` object to its map.
pub fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
