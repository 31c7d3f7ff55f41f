//! Crash tests of write-behind (sled's way): a child process writes numbered documents through
//! write-behind over the file backend (`sync = always`) and prints each one once it is
//! acknowledged, with the time; the parent kills it with SIGKILL at a random moment, reopens the
//! directory and checks what survived against the documented loss window (docs/durability.md,
//! "Write-behind"):
//!
//! - by count: every write acknowledged more than `max_pending` writes before the kill is there;
//! - by time: every write acknowledged more than `max_age` (plus one flush's time, here a margin
//!   of 2 s for a loaded machine) before the kill is there;
//! - SIGTERM with `flush_on_signal`: nothing acknowledged is lost.
//!
//! Guards against: a queue that grows past its bound, a flush trigger that does not fire, a
//! flush acknowledged before the inner backend made it durable, a shutdown path that drops writes.
//! Each round prints how many writes were lost (`cargo test -p orbstore-layers --test
//! write_behind_crash -- --nocapture`).
//!
//! The child is this test binary run again with `--ignored --exact crash_child`, so it needs no
//! binary of its own (a bin would make the library depend on the file backend).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orbstore_core::{CollectionExt, FileConfig, FileSync, PersistenceBackend, Projection, Query};
use orbstore_layers::{WriteBehindConfig, WriteBehindLayer};
use rand::Rng;

const DIR_VAR: &str = "ORB_WB_CHILD_DIR";
/// `max_pending:max_age_ms:debounce_ms:pause_us:signal` (signal: 1 installs flush_on_signal).
const SPEC_VAR: &str = "ORB_WB_CHILD_SPEC";

fn micros_now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_micros()
}

/// The child: writes until killed. Returns at once when not run by a crash test.
#[test]
#[ignore = "the child process of the crash tests below, which run it themselves"]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else { return };
    let spec: Vec<u64> =
        std::env::var(SPEC_VAR).expect("spec").split(':').map(|p| p.parse().expect("number")).collect();
    let [max_pending, max_age_ms, debounce_ms, pause_us, signal] = spec[..] else {
        panic!("bad spec {spec:?}")
    };
    let config = WriteBehindConfig {
        max_pending: max_pending as usize,
        max_age: Duration::from_millis(max_age_ms),
        debounce: Duration::from_millis(debounce_ms),
        ..WriteBehindConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let file_config = FileConfig { sync: FileSync::Always, ..FileConfig::new(&dir) };
        let file = orbstore_file::FileBackend::open(file_config).await.expect("open the data directory");
        let layer = WriteBehindLayer::new(Arc::new(file), config);
        if signal == 1 {
            orbstore_layers::write_behind::flush_on_signal(|| std::process::exit(0));
        }
        let c = layer.collection("crash").await.unwrap();
        let mut out = std::io::stdout().lock();
        for i in 0u64.. {
            let id = format!("{i:010}");
            let doc = serde_json::json!({"_id": id, "i": i, "pad": "x".repeat(64 + (i % 200) as usize)});
            if let Err(e) = c.insert_value(doc).await {
                // Closed by the signal handler: wait for it to flush and exit.
                eprintln!("write refused: {e}");
                std::future::pending::<()>().await;
            }
            writeln!(out, "ack {id} {}", micros_now()).unwrap();
            out.flush().unwrap();
            if pause_us > 0 {
                tokio::time::sleep(Duration::from_micros(pause_us)).await;
            }
        }
    });
}

enum Stop {
    Kill,
    Term,
}

struct Run {
    /// Acknowledged ids with the time of their acknowledgement, in order.
    acked: Vec<(String, u128)>,
    /// When the signal was sent.
    stopped_at: u128,
}

fn run_child(dir: &Path, spec: &str, run: Duration, stop: Stop) -> Run {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(SPEC_VAR, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("ack") {
                if let (Some(id), Some(t)) = (parts.next(), parts.next()) {
                    acked.push((id.to_owned(), t.parse().unwrap()));
                }
            }
        }
        acked
    });
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    std::thread::sleep(run);
    let stopped_at = micros_now();
    match stop {
        Stop::Kill => {
            child.kill().expect("SIGKILL the child");
            let status = child.wait().unwrap();
            assert!(!status.success(), "the child must die by the kill: {status:?}");
        }
        Stop::Term => {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
            let mut waited = Duration::ZERO;
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                assert!(waited < Duration::from_secs(30), "the child did not exit after SIGTERM");
                std::thread::sleep(Duration::from_millis(10));
                waited += Duration::from_millis(10);
            };
            assert!(status.success(), "the child exits 0 after flushing: {status:?}");
        }
    }
    let acked = reader.join().unwrap();
    let errors = errors.join().unwrap();
    assert!(acked.len() > 20, "the child acknowledged only {} writes; stderr: {errors}", acked.len());
    Run { acked, stopped_at }
}

/// The ids in the directory, read by the file backend itself.
async fn stored_ids(dir: &Path) -> HashSet<String> {
    let store =
        orbstore_file::FileBackend::open(FileConfig { sync: FileSync::Always, ..FileConfig::new(dir) })
            .await
            .expect("the directory opens after the crash");
    let c = store.collection("crash").await.unwrap();
    let q = Query::all().project(Projection::include(["_id"]));
    let ids = c.find(&q).await.unwrap().iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    store.close().await.unwrap();
    ids
}

/// The acknowledged writes that are missing, as (position from the end, age at the kill).
fn lost(run: &Run, stored: &HashSet<String>) -> Vec<(usize, Duration)> {
    let n = run.acked.len();
    run.acked
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| !stored.contains(id))
        .map(|(i, (_, t))| (n - i, Duration::from_micros(run.stopped_at.saturating_sub(*t) as u64)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_at_most_max_pending_writes() {
    let max_pending = 64;
    let mut rng = rand::rng();
    let mut total_lost = 0;
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        // Age and quiet period never fire: only the count bounds the loss. Full speed.
        let spec = format!("{max_pending}:3600000:3600000:0:0");
        let run = run_child(dir.path(), &spec, Duration::from_millis(rng.random_range(200..800)), Stop::Kill);
        let lost = lost(&run, &stored_ids(dir.path()).await);
        println!(
            "count window {max_pending}, round {round}: {} acknowledged, {} lost (at most {max_pending} allowed)",
            run.acked.len(),
            lost.len()
        );
        for (from_end, _) in &lost {
            assert!(
                *from_end <= max_pending,
                "round {round}: a write acknowledged {from_end} writes before the kill is missing"
            );
        }
        total_lost += lost.len();
    }
    println!("count window: {total_lost} lost in all over 6 kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_at_most_max_age_of_writes() {
    let max_age = Duration::from_millis(200);
    let margin = Duration::from_secs(2);
    let mut rng = rand::rng();
    let mut worst = Duration::ZERO;
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        // A queue that never fills and no quiet period (a write every 0.5 ms): only age flushes.
        let spec = format!("1000000:{}:3600000:500:0", max_age.as_millis());
        let run =
            run_child(dir.path(), &spec, Duration::from_millis(rng.random_range(400..1500)), Stop::Kill);
        let lost = lost(&run, &stored_ids(dir.path()).await);
        let oldest = lost.iter().map(|(_, age)| *age).max().unwrap_or_default();
        worst = worst.max(oldest);
        println!(
            "time window {max_age:?}, round {round}: {} acknowledged, {} lost, the oldest lost acknowledged {oldest:?} before the kill",
            run.acked.len(),
            lost.len()
        );
        assert!(
            oldest <= max_age + margin,
            "round {round}: a write acknowledged {oldest:?} before the kill is missing (window {max_age:?})"
        );
        // Something was flushed by age alone (the run is longer than max_age).
        assert!(lost.len() < run.acked.len(), "round {round}: nothing was flushed by age");
    }
    println!("time window: the oldest lost write was acknowledged {worst:?} before its kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_acknowledged_write() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        // Nothing flushes by itself: what survives is the signal handler's doing.
        let spec = "1000000:3600000:3600000:200:1";
        let run = run_child(dir.path(), spec, Duration::from_millis(300 + 200 * round), Stop::Term);
        let lost = lost(&run, &stored_ids(dir.path()).await);
        println!("SIGTERM, round {round}: {} acknowledged, {} lost", run.acked.len(), lost.len());
        assert!(lost.is_empty(), "round {round}: {} acknowledged writes lost after SIGTERM", lost.len());
    }
}
