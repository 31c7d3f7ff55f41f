//! Test helper for the crash test: inserts numbered documents into an SQLite database with
//! `synchronous = FULL` from 16 concurrent writers (so group commits are killed too) and prints
//! each id once its insert is acknowledged, until killed.
//!
//! Usage: `orbstore-sqlite-crash-writer <db-file> <first-number>`

use std::io::Write;

use orbstore_core::{CollectionExt, PersistenceBackend, SqliteConfig, SqliteLocation};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, first] = args.as_slice() else {
        eprintln!("usage: orbstore-sqlite-crash-writer <db-file> <first-number>");
        std::process::exit(2);
    };
    let first: u64 = first.parse().expect("first number");
    let store = match orbstore_sqlite::SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(
        path.into(),
    )))
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let coll = store.collection("crash").await.expect("collection");
    // Concurrent writers, so that the writer thread's group commits are what gets killed: each
    // writes the numbers congruent to its index, and prints each id once it is acknowledged.
    let mut tasks = Vec::new();
    for k in 0..WRITERS {
        let coll = coll.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let i = first + n * WRITERS + k;
                let id = format!("{i:010}");
                coll.insert_value(
                    serde_json::json!({"_id": id, "i": i, "pad": "x".repeat(64 + (i % 200) as usize)}),
                )
                .await
                .expect("insert");
                let mut out = std::io::stdout().lock();
                writeln!(out, "{id}").expect("stdout");
                out.flush().expect("stdout");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
}

/// How many writers insert at once.
const WRITERS: u64 = 16;
