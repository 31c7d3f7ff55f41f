//! Crash tests (sled's way): a child process writes numbered documents and prints each id once
//! the write is acknowledged; the parent kills it with SIGKILL at a random moment, reopens the
//! directory and checks the promise of the sync mode against what was acknowledged.
//!
//! Guards against: acknowledging before the fsync (`always`), losing more than what was pending
//! (`debounced`), and any crash leaving a directory that does not open cleanly.
//!
//! Soak: `ORBSTORE_CRASH_KILLS=500 cargo test --release -p orbstore-file --test crash` runs that
//! many kills in the `always` test instead of 25.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use orbstore_core::{FileSync, PersistenceBackend, Query};
use rand::Rng;

/// Runs the writer on `dir` from `first`, kills it after `run`, returns the acknowledged ids.
fn run_and_kill(dir: &Path, mode: &str, first: u64, run: Duration) -> Vec<String> {
    let first = first.to_string();
    orbstore_testkit::crash::run_and_kill(
        env!("CARGO_BIN_EXE_orbstore-file-crash-writer"),
        &[dir.to_str().unwrap(), mode, &first],
        run,
    )
}

/// The highest number stored, so the next run continues after it.
async fn next_number(dir: &Path) -> u64 {
    let store = open(dir, FileSync::Always).await;
    let last =
        store.collection("crash").await.unwrap().find(&Query::all().sort_desc("_id").limit(1)).await.unwrap();
    store.close().await.unwrap();
    last.first().map_or(0, |d| d["_id"].as_str().unwrap().parse::<u64>().unwrap() + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_always_loses_no_acknowledged_write_over_many_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut total_acked = 0;
    let kills: usize =
        std::env::var("ORBSTORE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(25).max(20);
    for round in 0..kills {
        let first = next_number(dir.path()).await;
        let acked =
            run_and_kill(dir.path(), "always", first, Duration::from_millis(rng.random_range(40..250)));
        total_acked += acked.len();
        let store = open(dir.path(), FileSync::Always).await;
        let coll = store.collection("crash").await.unwrap();
        for id in &acked {
            assert!(
                coll.find_by_id(id).await.unwrap().is_some(),
                "round {round}: acknowledged {id} is missing"
            );
        }
        let bad: Vec<_> = store.warnings().into_iter().filter(|w| !w.contains("torn")).collect();
        assert!(bad.is_empty(), "round {round}: the directory must open cleanly: {bad:?}");
        store.close().await.unwrap();
    }
    assert!(total_acked > 25, "the writer acknowledged only {total_acked} writes; the test proves little");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debounced_loses_at_most_the_pending_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    for round in 0..6 {
        let first = next_number(dir.path()).await;
        let acked = run_and_kill(
            dir.path(),
            "debounced:30",
            first,
            Duration::from_millis(rng.random_range(100..400)),
        );
        let store = open(dir.path(), FileSync::Always).await;
        let coll = store.collection("crash").await.unwrap();
        let mut present = Vec::with_capacity(acked.len());
        for id in &acked {
            present.push(coll.find_by_id(id).await.unwrap().is_some());
        }
        // Flushes write in order, so what survives is a prefix of what was acknowledged...
        let kept = present.iter().take_while(|p| **p).count();
        assert!(present[kept..].iter().all(|p| !p), "round {round}: a gap in the surviving writes");
        // ...and what is lost was pending: at most 1,000 writes.
        let lost = acked.len() - kept;
        assert!(lost <= 1_000, "round {round}: lost {lost} acknowledged writes");
        let bad: Vec<_> = store.warnings().into_iter().filter(|w| !w.contains("torn")).collect();
        assert!(bad.is_empty(), "round {round}: {bad:?}");
        store.close().await.unwrap();
    }
}
