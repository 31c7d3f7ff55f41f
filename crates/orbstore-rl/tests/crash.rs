//! The Q-table's documented loss bound under SIGKILL, on the file backend with `sync = always`
//! and a policy that saves every 10 updates: every update acknowledged up to the last save
//! survives, and at most 9 acknowledged updates (those after it) are lost.

use std::time::Duration;

use orbstore_core::{FileConfig, FileSync, PersistenceBackend};
use orbstore_rl::QTable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_loses_at_most_the_unsaved_updates() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = 0u64;
    let mut total = 0;
    for round in 0..5 {
        let acked: Vec<u64> = orbstore_testkit::crash::run_and_kill(
            env!("CARGO_BIN_EXE_orbstore-rl-qtable-writer"),
            &[dir.path().to_str().unwrap(), &first.to_string()],
            Duration::from_millis(150 + 60 * round),
        )
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
        total += acked.len();
        let store = orbstore_file::FileBackend::open(FileConfig {
            sync: FileSync::Always,
            ..FileConfig::new(dir.path())
        })
        .await
        .unwrap();
        let q = QTable::open(&store).await.unwrap();
        // Saves happen on every 10th update of a run: numbers first+9, first+19, ...
        let last_saved = acked.iter().copied().filter(|i| (i - first + 1).is_multiple_of(10)).max();
        let mut lost = 0;
        for &i in &acked {
            let present = q.get("s", &format!("a{i}")).is_some_and(|e| e.value == i as f64);
            if last_saved.is_some_and(|s| i <= s) {
                assert!(present, "round {round}: update {i} was saved (up to {last_saved:?}) but is missing");
            } else if !present {
                lost += 1;
            }
        }
        assert!(lost <= 9, "round {round}: {lost} acknowledged updates lost, the bound is 9");
        first = acked.last().map_or(first, |l| l + 1);
        store.close().await.unwrap();
    }
    assert!(total > 50, "the writer acknowledged only {total} updates; the test proves little");
}
