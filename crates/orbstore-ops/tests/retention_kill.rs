//! Retention killed with SIGKILL mid-run on the file and SQLite backends, then run again to the
//! end: nothing that should stay is gone, every due document is archived exactly once and as it
//! was stored, and none is left in the store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use orbstore::{CollectionExt, Config, Document, Store};
use orbstore_ops::retention::{self, cold, presets, RetentionOptions};
use rand::Rng;
use serde_json::json;

const CHILD_URL: &str = "ORBSTORE_RETENTION_KILL_URL";
const CHILD_DIR: &str = "ORBSTORE_RETENTION_KILL_DIR";
/// 2025-03-15T00:00:00Z, the clock of parent and child.
const NOW_SECS: u64 = 1_741_996_800;
const DUE: u64 = 24_000;
const HOT: u64 = 6_000;

async fn open(url: &str) -> Store {
    let url = url.to_owned();
    orbstore::open(Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap())
        .await
        .unwrap()
}

fn options(dir: &Path) -> RetentionOptions {
    RetentionOptions { now: UNIX_EPOCH + Duration::from_secs(NOW_SECS), ..RetentionOptions::new(dir) }
}

fn event(i: u64) -> Document {
    // The first DUE are 8 to 60 days old (due under the 7-day preset), the rest under 7 days.
    let age_secs = if i < DUE { 8 * 86_400 + (i * 191) % (52 * 86_400) } else { (i * 37) % (6 * 86_400) };
    let us = (NOW_SECS - age_secs) * 1_000_000;
    json!({"_id": format!("e{i:06}"), "timestamp_us": us, "reward": (i % 13) as f64 * 0.25, "state": [i % 5, i % 7]})
        .as_object()
        .unwrap()
        .clone()
}

/// The child: one retention run, killed by the parent at a random point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the retention kill tests below, which run it themselves"]
async fn retention_kill_child() {
    let (Ok(url), Ok(dir)) = (std::env::var(CHILD_URL), std::env::var(CHILD_DIR)) else { return };
    let store = open(&url).await;
    println!("RUNNING");
    let report = retention::run(&store, &options(Path::new(&dir))).await.unwrap();
    println!("DONE {} due in {:?}", report.total_due(), report.elapsed);
}

async fn killed_and_rerun(url: &str, archives: &Path) {
    let store = open(url).await;
    let events = store.collection("experience_events").await.unwrap();
    let all: Vec<Document> = (0..DUE + HOT).map(event).collect();
    for chunk in all.chunks(2000) {
        events.insert_many(chunk.to_vec()).await.unwrap();
    }
    retention::set_policy(&*store, &presets::experience_events()).await.unwrap();
    store.close().await.unwrap();

    let mut rng = rand::rng();
    let mut finished_early = 0;
    // Kills at random points in a window that grows each round (each child resumes what the
    // killed ones left), so that early rounds cut a run short whatever the machine's speed, and
    // late ones (up to 20 s) let a child progress on a heavily loaded machine (a CI run beside
    // builds once had all of 8 rounds, up to 5 s, killed before any progress).
    const ROUNDS: usize = 10;
    let mut window_ms: u64 = 40;
    for _ in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "retention_kill_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, url)
            .env(CHILD_DIR, archives)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(Ok(line)) = lines.next() {
            // The harness prints its own text on the same line before the child's.
            if line.ends_with("RUNNING") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(window_ms / 2..window_ms)));
        window_ms *= 2;
        // SIGKILL: no destructor, no flush.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        let done: Vec<String> = lines.map_while(|l| l.ok()).filter(|l| l.starts_with("DONE")).collect();
        eprintln!("child: {status:?} {done:?}");
        if status.code() == Some(0) {
            finished_early += 1;
        }
    }
    eprintln!("{url}: {finished_early} of {ROUNDS} children finished before their kill");
    assert!(finished_early < ROUNDS, "{url}: no kill landed during a run");

    // Run again to the end, in this process.
    let store = open(url).await;
    let report = retention::run(&store, &options(archives)).await.unwrap();
    eprintln!("the final run found {} due", report.total_due());
    assert!(report.total_due() < DUE, "{url}: the killed children made no progress, so nothing was tested");
    let events = store.collection("experience_events").await.unwrap();
    let mut left: Vec<Document> = events.find_all().await.unwrap();
    left.sort_by(|a, b| a["_id"].as_str().cmp(&b["_id"].as_str()));
    let hot: Vec<Document> = (DUE..DUE + HOT).map(event).collect();
    assert_eq!(left.len(), hot.len(), "{url}: exactly the hot events stay");
    assert!(left == hot, "{url}: the hot events are unchanged");
    let mut archived: Vec<Document> = Vec::new();
    cold::read(archives, "experience_events", None, None, |d| {
        archived.push(d);
        Ok(())
    })
    .unwrap();
    archived.sort_by(|a, b| a["_id"].as_str().cmp(&b["_id"].as_str()));
    let due: Vec<Document> = (0..DUE).map(event).collect();
    assert_eq!(archived.len(), due.len(), "{url}: every due event archived exactly once");
    // Compared as the archive holds them: canonical JSON, where 0.0 and 0 are one number.
    let canonical = orbstore_ops::canonical::to_bytes;
    if let Some((a, d)) = archived.iter().zip(&due).find(|(a, d)| canonical(a) != canonical(d)) {
        panic!("{url}: archived {a:?}, stored {d:?}");
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_file_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("data").display());
    killed_and_rerun(&url, &dir.path().join("archives")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_sqlite_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.sqlite3").display());
    killed_and_rerun(&url, &dir.path().join("archives")).await;
}
