//! A measurement, not a test (ignored; run it by name): bytes per archived event of
//! `orbstore-rl`'s event shape in a cold archive, beside the hot store's bytes per event (the file
//! backend's compacted snapshot), for issue 12's goal of at most 100 B per archived event.
//!
//! `cargo test --release -p orbstore-ops --test measure_archive -- --ignored --nocapture`

use std::time::{Duration, UNIX_EPOCH};

use orbstore::Config;
use orbstore_ops::retention::{self, cold, presets, RetentionOptions};
use orbstore_rl::{Event, EventStore, Rewards};
use rand::{Rng, SeedableRng};

const NOW_SECS: u64 = 1_741_996_800;

fn events(n: u64) -> Vec<Event> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut round = |scale: f64| (rng.random::<f64>() * scale * 1000.0).round() / 1000.0;
    (0..n)
        .map(|i| Event {
            id: u128::from(i) << 64 | u128::from(i * 7919),
            // 8 to 38 days old: due under the 7-day preset.
            timestamp_us: (NOW_SECS - 8 * 86_400 - i * 26) * 1_000_000,
            episode: i / 200,
            step: (i % 200) as u32,
            event_type: ["route", "reward", "explore"][(i % 3) as usize].to_owned(),
            flags: (i % 4) as u32,
            state: std::array::from_fn(|_| round(1.0)),
            action: std::array::from_fn(|_| round(2.0) - 1.0),
            rewards: Rewards {
                homeostasis: round(1.0),
                curiosity: round(0.5),
                efficiency: round(1.0),
                goal: round(1.0),
            },
            policy_version: format!("{:016x}", (i / 5000) * 0x9e37_79b9),
            sequence: i,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by name with --ignored --release"]
async fn archive_bytes_per_event() {
    let n = 100_000u64;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("data").display());
    let store = orbstore::open(Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap())
        .await
        .unwrap();
    let es = EventStore::open(&*store).await.unwrap();
    for chunk in events(n).chunks(1000) {
        es.write_batch(chunk).await.unwrap();
    }
    let compacted = store.compact().await.unwrap();
    let hot = compacted.bytes_after.unwrap() as f64 / n as f64;
    retention::set_policy(&*store, &presets::experience_events()).await.unwrap();
    let options = RetentionOptions {
        now: UNIX_EPOCH + Duration::from_secs(NOW_SECS),
        ..RetentionOptions::new(dir.path().join("cold"))
    };
    let report = retention::run(&store, &options).await.unwrap();
    assert_eq!(report.collections[0].archived, n);
    let archives = cold::list(&dir.path().join("cold")).unwrap();
    let bytes: u64 = archives.iter().map(|a| a.bytes).sum();
    println!(
        "{n} events of the orbstore-rl shape: hot (file backend, compacted snapshot) {hot:.0} B/event; \
         cold archive (zstd month files, {} files) {:.1} B/event (goal <= 100 B); archived in {:.1} s",
        archives.len(),
        bytes as f64 / n as f64,
        report.elapsed.as_secs_f64()
    );
    store.close().await.unwrap();
}
