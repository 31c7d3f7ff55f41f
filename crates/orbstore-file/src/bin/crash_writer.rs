//! Test helper for the crash tests: writes numbered documents to a data directory and prints
//! each id once the write is acknowledged, until it is killed.
//!
//! Usage: `orbstore-file-crash-writer <dir> <always|debounced:<ms>|never> <first-number>`

use orbstore_core::{CollectionExt, FileConfig, FileSync, PersistenceBackend};
use std::io::Write;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, mode, first] = args.as_slice() else {
        eprintln!("usage: orbstore-file-crash-writer <dir> <always|debounced:<ms>|never> <first-number>");
        std::process::exit(2);
    };
    let sync = match mode.as_str() {
        "always" => FileSync::Always,
        "never" => FileSync::Never,
        other => match other.strip_prefix("debounced:").and_then(|ms| ms.parse().ok()) {
            Some(ms) => FileSync::Debounced(std::time::Duration::from_millis(ms)),
            None => {
                eprintln!("bad mode {other:?}");
                std::process::exit(2);
            }
        },
    };
    let first: u64 = first.parse().expect("first number");
    let store = match orbstore_file::FileBackend::open(FileConfig { sync, ..FileConfig::new(dir) }).await {
        Ok(store) => store,
        Err(e) => {
            // The whole chain, as a user would want to read it.
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("error: {msg}");
            std::process::exit(1);
        }
    };
    let coll = store.collection("crash").await.expect("collection");
    let mut out = std::io::stdout().lock();
    for i in first.. {
        let id = format!("{i:010}");
        coll.insert_value(serde_json::json!({"_id": id, "i": i, "pad": "x".repeat(64 + (i % 200) as usize)}))
            .await
            .expect("insert");
        writeln!(out, "{id}").expect("stdout");
        out.flush().expect("stdout");
    }
}
