//! Client crash with a full journal: a child process writes through a `JournalLayer` over a
//! private PostgreSQL cluster (inserts and increments of shared counters, printing each
//! acknowledgement); the server is crashed, the child keeps writing until the journal is full
//! (writes then fail with `Unavailable`), and is killed with SIGKILL. The server is started
//! again and the journal reopened in a new layer (as the restarted application would): it
//! replays the journal and ships it, and the server then holds every acknowledged insert exactly
//! once and counters equal to the acknowledged increments. Twice, on the same journal.
//!
//! Guards against: acknowledging before the journal's fsync, losing the journal's tail at a
//! crash, forgetting entries that were in flight, and shipping replayed entries twice.

mod journal_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use journal_support::{check_server, create_counters, open_url, Acked, PgCluster, COUNTERS};
use orbstore::{CollectionExt, ErrorKind, FileConfig, FileSync, PersistenceBackend, Store, Update};
use orbstore_layers::{JournalConfig, JournalLayer};
use serde_json::json;

const CHILD_DIR: &str = "ORBSTORE_JOURNAL_CRASH_DIR";
const CHILD_URL: &str = "ORBSTORE_JOURNAL_CRASH_URL";
const CHILD_ROUND: &str = "ORBSTORE_JOURNAL_CRASH_ROUND";

async fn open_layer(dir: &Path, url: &str, max_pending_bytes: u64) -> JournalLayer {
    let inner = open_url(url).await.expect("open the private PostgreSQL");
    let local = orbstore_file::FileBackend::open(FileConfig {
        dir: dir.join("replica"),
        sync: FileSync::Debounced(Duration::from_secs(1)),
        strict: false,
    })
    .await
    .expect("open the local store");
    let mut config = JournalConfig::new(dir.join("journal"));
    config.max_pending_bytes = max_pending_bytes;
    config.min_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(300);
    config.attempt_timeout = Duration::from_secs(2);
    JournalLayer::open(inner, Arc::new(local), config).await.expect("open the journal")
}

/// The child: writes until killed, printing `I <tag>` / `C <counter>` for each acknowledged
/// write and `FULL` when the journal refuses writes. Runs only when the parent starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the crash test's child process; started by journal_survives_sigkill_with_a_full_journal"]
async fn crash_child() {
    let (Some(dir), Some(url), Some(round)) =
        (std::env::var_os(CHILD_DIR), std::env::var(CHILD_URL).ok(), std::env::var(CHILD_ROUND).ok())
    else {
        return;
    };
    let layer: Store = Arc::new(open_layer(Path::new(&dir), &url, 256 << 10).await);
    if round == "0" {
        create_counters(&layer).await;
    }
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = move |line: String| {
        let mut out = out.lock().unwrap();
        writeln!(out, "{line}").and_then(|()| out.flush()).expect("stdout");
    };
    say("READY".to_owned());
    let full = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let (layer, say, full, round) = (layer.clone(), say.clone(), full.clone(), round.clone());
            tokio::spawn(async move {
                let items = layer.collection("items").await.expect("items");
                let counters = layer.collection("counters").await.expect("counters");
                for i in 0u64.. {
                    let tag = format!("k{round}-w{w}-{i}");
                    let inserted = items.insert_value(json!({"tag": tag, "w": w, "i": i})).await;
                    let counter = format!("c{}", (w + i as usize) % COUNTERS);
                    let incremented = counters.update_by_id(&counter, &Update::new().inc("n", 1)).await;
                    for r in [inserted.map(drop), incremented.map(drop)]
                        .iter()
                        .zip([format!("I {tag}"), format!("C {counter}")])
                    {
                        match r {
                            (Ok(()), line) => say(line),
                            (Err(e), _)
                                if e.kind() == ErrorKind::Unavailable
                                    && e.message().contains("journal is full") =>
                            {
                                if !full.swap(true, Ordering::AcqRel) {
                                    say("FULL".to_owned());
                                }
                            }
                            (Err(e), _) => panic!("unexpected error: {e}"),
                        }
                    }
                    if full.load(Ordering::Acquire) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_survives_sigkill_with_a_full_journal() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let server = open_url(&pg.url()).await.expect("a client to check the server");
    let mut acked = Acked::default();
    for round in 0..2 {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_URL, pg.url())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let (stdout, lines) = (child.stdout.take().expect("piped"), lines.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        let wait_for = |what: &str, limit: Duration| {
            let deadline = Instant::now() + limit;
            // libtest prints the test's name before its output, on the same line.
            while !lines.lock().unwrap().iter().any(|l| l.ends_with(what)) {
                assert!(Instant::now() < deadline, "the child did not print {what} within {limit:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for("READY", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(500));
        pg.crash();
        wait_for("FULL", Duration::from_secs(120));
        // Every writer now fails before journaling: nothing is in flight when the kill comes.
        std::thread::sleep(Duration::from_millis(300));
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("reap the child");
        assert!(!status.success(), "the child must die by the kill: {status:?}");
        reader.join().expect("reader");
        let lines = std::mem::take(&mut *lines.lock().unwrap());
        let before = acked.tags.len();
        for line in lines.iter() {
            if let Some(tag) = line.strip_prefix("I ") {
                acked.tags.push(tag.to_owned());
            } else if let Some(c) = line.strip_prefix("C ") {
                *acked.incs.entry(c.to_owned()).or_default() += 1;
            }
        }
        assert!(acked.tags.len() > before, "the child acknowledged nothing");
        pg.start_server();
        let layer = open_layer(dir.path(), &pg.url(), 256 << 10).await;
        let pending = layer.sync_status().pending_writes;
        let status = layer.sync_now(Duration::from_secs(120)).await.expect("the replayed journal drains");
        assert!(status.synced && status.dead_letters.is_empty(), "{status:?}");
        check_server(&server, &acked).await;
        eprintln!(
            "kill {round}: {} inserts acknowledged in all, {pending} journaled writes replayed after the kill; server verified",
            acked.tags.len()
        );
        layer.close().await.expect("close");
    }
    server.close().await.expect("close the checking client");
}
