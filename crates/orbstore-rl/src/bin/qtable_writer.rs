//! Test helper for the Q-table crash test: sets Q-values on a file backend (`sync = always`)
//! with a save policy that saves every 10 updates (no interval, no quiet period), printing each
//! update's number once `set` returns, until it is killed.
//!
//! Usage: `orbstore-rl-qtable-writer <dir> <first-number>`

use std::io::Write;
use std::time::Duration;

use orbstore_core::{FileConfig, FileSync};
use orbstore_rl::{QTable, SavePolicy};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, first] = args.as_slice() else {
        eprintln!("usage: orbstore-rl-qtable-writer <dir> <first-number>");
        std::process::exit(2);
    };
    let first: u64 = first.parse().expect("first number");
    let store =
        orbstore_file::FileBackend::open(FileConfig { sync: FileSync::Always, ..FileConfig::new(dir) })
            .await
            .expect("open");
    let hour = Duration::from_secs(3600);
    let policy = SavePolicy { every_updates: 10, interval: hour, debounce: hour };
    let q = QTable::open_with(&store, policy).await.expect("qtable");
    let mut out = std::io::stdout();
    for i in first.. {
        q.set("s", &format!("a{i}"), i as f64).await.expect("set");
        let _ = writeln!(out, "{i}");
        let _ = out.flush();
    }
}
