//! Damaged logs (issue 16): bytes the backend cannot read are never cut, rewritten or compacted
//! away before the file as found is copied aside; a torn last write is told from corruption;
//! strict mode refuses corruption and still opens after an ordinary crash. Each test damages
//! real files the way a disk, a crash or another program would, and reopens the real backend.
//!
//! Guards against: truncating unreadable bytes without a copy (143,000 random bytes used to be
//! "a torn last write" and vanished), calling corruption a torn write, copies of one second
//! overwriting each other, and a rewrite of the transaction log that a crash could empty.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use orbstore_core::{CollectionExt, ErrorKind, FileConfig, FileSync, PersistenceBackend};
use orbstore_file::{FileBackend, MAX_WRITE};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;

/// Writes documents `00`.. `n-1` one by one (one log record each), closes, and returns the log.
async fn write_numbered(dir: &Path, n: usize) -> Vec<u8> {
    let store = open(dir, FileSync::Always).await;
    let c = store.collection("t").await.unwrap();
    for i in 0..n {
        c.insert_value(json!({"_id": format!("{i:02}"), "i": i})).await.unwrap();
    }
    store.close().await.unwrap();
    std::fs::read(dir.join("t.log")).unwrap()
}

/// Offsets where lines start, and the end.
fn line_starts(bytes: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
        .collect()
}

fn ids(docs: &[orbstore_core::Document]) -> Vec<String> {
    docs.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect()
}

fn numbers(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("{i:02}")).collect()
}

/// Every file in the directory but the lock, with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "_orbstore.lock")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Strict mode refuses with `Corrupt`, naming the file and the offset, and changes nothing.
async fn assert_strict_refuses(dir: &Path, file: &str, offset: usize) {
    let before = contents(dir);
    let e = FileBackend::open(FileConfig { strict: true, ..FileConfig::new(dir) }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let m = e.to_string();
    assert!(m.contains(&dir.join(file).display().to_string()), "names the file: {m}");
    assert!(m.contains(&format!("from byte {offset}:")), "names the offset {offset}: {m}");
    assert!(m.contains("strict"), "{m}");
    assert_eq!(contents(dir), before, "strict mode changed no file");
}

/// Opens (not strict) and checks the damage was reported as `kind` ("corrupt" or "torn") with
/// one copy of `file` aside holding exactly `found`, private, named in the warning.
async fn open_and_check_copy(dir: &Path, file: &str, kind: &str, found: &[u8]) -> FileBackend {
    let store = open(dir, FileSync::Always).await;
    let copies = files_with(dir, &format!("{file}.{kind}-"));
    assert_eq!(copies.len(), 1, "{:?}", std::fs::read_dir(dir).unwrap().collect::<Vec<_>>());
    assert_copy(&copies[0], found);
    let warnings = store.stats().await.unwrap().warnings;
    let named: Vec<_> = warnings.iter().filter(|w| w.contains(&copies[0].display().to_string())).collect();
    assert_eq!(named.len(), 1, "one warning names the copy: {warnings:?}");
    match kind {
        "corrupt" => {
            assert!(named[0].contains("is corrupt from byte") && !named[0].contains("torn"), "{named:?}")
        }
        _ => assert!(named[0].contains("torn last write"), "{named:?}"),
    }
    store
}

fn assert_copy(copy: &PathBuf, found: &[u8]) {
    assert!(
        std::fs::read(copy).unwrap() == found,
        "{} holds the file as found, byte for byte",
        copy.display()
    );
    assert_eq!(std::fs::metadata(copy).unwrap().permissions().mode() & 0o777, 0o600, "{}", copy.display());
}

/// Reopens and checks the repair was done once: no warnings, the same documents.
async fn reopen_quietly(dir: &Path, expected: &[String]) {
    let store = open(dir, FileSync::Always).await;
    assert!(store.warnings().is_empty(), "repaired once: {:?}", store.warnings());
    assert_eq!(ids(&all(&store, "t").await), expected);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_replacing_a_log_are_corruption_and_kept_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_numbered(dir.path(), 20).await;
    let mut random = vec![0u8; 143_000];
    StdRng::seed_from_u64(16).fill(&mut random[..]);
    std::fs::write(dir.path().join("t.log"), &random).unwrap();

    assert_strict_refuses(dir.path(), "t.log", 0).await;
    let store = open_and_check_copy(dir.path(), "t.log", "corrupt", &random).await;
    assert!(all(&store, "t").await.is_empty());
    assert_eq!(std::fs::metadata(dir.path().join("t.log")).unwrap().len(), 0, "cut, after the copy");
    store.collection("t").await.unwrap().insert_value(json!({"_id": "after"})).await.unwrap();
    store.close().await.unwrap();
    reopen_quietly(dir.path(), &["after".to_owned()]).await;
    assert_copy(&files_with(dir.path(), "t.log.corrupt-")[0], &random);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zeroed_middle_is_corruption_and_the_records_around_it_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = write_numbered(dir.path(), 60).await;
    let starts = line_starts(&bytes);
    let (from, to) = (starts[20] + 7, starts[30] + 3); // lines 20..=30 touched
    bytes[from..to].fill(0);
    std::fs::write(dir.path().join("t.log"), &bytes).unwrap();

    assert_strict_refuses(dir.path(), "t.log", starts[20]).await;
    let store = open_and_check_copy(dir.path(), "t.log", "corrupt", &bytes).await;
    let expected: Vec<String> = numbers((0..20).chain(31..60));
    assert_eq!(ids(&all(&store, "t").await), expected);
    store.close().await.unwrap();
    reopen_quietly(dir.path(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cut_out_of_the_middle_are_corruption_and_the_rest_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = write_numbered(dir.path(), 60).await;
    let starts = line_starts(&bytes);
    // Line 20's beginning joined to line 40's end: one unreadable line, 21..=39 gone.
    bytes.drain(starts[20] + 15..starts[40] + 30);
    std::fs::write(dir.path().join("t.log"), &bytes).unwrap();

    assert_strict_refuses(dir.path(), "t.log", starts[20]).await;
    let store = open_and_check_copy(dir.path(), "t.log", "corrupt", &bytes).await;
    let expected: Vec<String> = numbers((0..20).chain(41..60));
    assert_eq!(ids(&all(&store, "t").await), expected);
    store.close().await.unwrap();
    reopen_quietly(dir.path(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_another_program_is_corruption_never_a_torn_write() {
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0\x1f\xf3\xffa";
    let text: &[u8] = b"# notes\nq-values are in qtable.json\n";
    for foreign in [png, text] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.log"), foreign).unwrap();
        assert_strict_refuses(dir.path(), "t.log", 0).await;
        let store = open_and_check_copy(dir.path(), "t.log", "corrupt", foreign).await;
        assert!(all(&store, "t").await.is_empty());
        store.close().await.unwrap();
        reopen_quietly(dir.path(), &[]).await;
    }
    // Another program appending to a good log: the records before are recovered.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = write_numbered(dir.path(), 5).await;
    let end = bytes.len();
    bytes.extend_from_slice(text);
    std::fs::write(dir.path().join("t.log"), &bytes).unwrap();
    assert_strict_refuses(dir.path(), "t.log", end).await;
    let store = open_and_check_copy(dir.path(), "t.log", "corrupt", &bytes).await;
    assert_eq!(ids(&all(&store, "t").await), numbers(0..5));
    store.close().await.unwrap();
    reopen_quietly(dir.path(), &numbers(0..5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_record_is_cut_with_a_copy_and_strict_mode_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = write_numbered(dir.path(), 10).await;
    let starts = line_starts(&bytes);
    bytes.truncate(bytes.len() - 5);
    std::fs::write(dir.path().join("t.log"), &bytes).unwrap();

    let store = FileBackend::open(FileConfig { strict: true, ..FileConfig::new(dir.path()) }).await.unwrap();
    assert_eq!(ids(&all(&store, "t").await), numbers(0..9));
    let copies = files_with(dir.path(), "t.log.torn-");
    assert_eq!(copies.len(), 1);
    assert_copy(&copies[0], &bytes);
    let w = store.warnings();
    assert!(
        w.len() == 1 && w[0].contains("torn last write") && w[0].contains(&copies[0].display().to_string()),
        "{w:?}"
    );
    assert!(w[0].contains(&format!("at byte {} ({} bytes)", starts[9], bytes.len() - starts[9])), "{w:?}");
    assert!(files_with(dir.path(), "corrupt").is_empty());
    assert_eq!(std::fs::metadata(dir.path().join("t.log")).unwrap().len(), starts[9] as u64);
    store.collection("t").await.unwrap().insert_value(json!({"_id": "10"})).await.unwrap();
    store.close().await.unwrap();

    // Torn again within the same second: a second copy, not an overwritten first one.
    let mut again = std::fs::read(dir.path().join("t.log")).unwrap();
    again.extend_from_slice(b"0123abcd {\"op\":\"put\",\"doc\":{\"_i");
    std::fs::write(dir.path().join("t.log"), &again).unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    let copies = files_with(dir.path(), "t.log.torn-");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies.iter().any(|c| std::fs::read(c).unwrap() == bytes));
    assert!(copies.iter().any(|c| std::fs::read(c).unwrap() == again));
    store.close().await.unwrap();
    let mut expected = numbers(0..9);
    expected.push("10".into());
    reopen_quietly(dir.path(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_tail_longer_than_one_write_is_corruption() {
    // Zeros, as a power loss leaves them: torn within one write, corruption beyond it.
    for (len, kind) in [(4096, "torn"), (MAX_WRITE + 1, "corrupt")] {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = write_numbered(dir.path(), 10).await;
        let end = bytes.len();
        bytes.resize(end + len, 0);
        std::fs::write(dir.path().join("t.log"), &bytes).unwrap();
        if kind == "corrupt" {
            assert_strict_refuses(dir.path(), "t.log", end).await;
        }
        let store = open_and_check_copy(dir.path(), "t.log", kind, &bytes).await;
        assert_eq!(ids(&all(&store, "t").await), numbers(0..10), "{kind}");
        store.close().await.unwrap();
        reopen_quietly(dir.path(), &numbers(0..10)).await;
    }
    // Lines that look like records but are not, more of them than one write holds.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = write_numbered(dir.path(), 10).await;
    let end = bytes.len();
    while bytes.len() - end <= MAX_WRITE {
        bytes.extend_from_slice(b"0badc0de {\"op\":\"put\",\"doc\":{\"_id\":\"x\"}}\n");
    }
    std::fs::write(dir.path().join("t.log"), &bytes).unwrap();
    assert_strict_refuses(dir.path(), "t.log", end).await;
    let store = open_and_check_copy(dir.path(), "t.log", "corrupt", &bytes).await;
    assert_eq!(ids(&all(&store, "t").await), numbers(0..10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_old_log_is_copied_before_compaction_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = write_numbered(dir.path(), 10).await;
    // A compaction that stopped after rotating the log, whose old log lost its last bytes.
    bytes.truncate(bytes.len() - 5);
    std::fs::write(dir.path().join("t.log.old"), &bytes).unwrap();
    std::fs::write(dir.path().join("t.log"), b"").unwrap();

    let store = open_and_check_copy(dir.path(), "t.log.old", "torn", &bytes).await;
    assert!(!dir.path().join("t.log.old").exists(), "the compaction at open finished");
    assert_eq!(ids(&all(&store, "t").await), numbers(0..9));
    store.close().await.unwrap();
    reopen_quietly(dir.path(), &numbers(0..9)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_transaction_log_is_kept_and_rewritten_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), FileSync::Always).await;
        for id in ["tx1", "tx2"] {
            let tx = store.begin().await.unwrap();
            tx.collection("t").await.unwrap().insert_value(json!({"_id": id})).await.unwrap();
            tx.commit().await.unwrap();
        }
        store.close().await.unwrap();
    }
    let txlog = dir.path().join("_orbstore.txlog");
    let markers = std::fs::read(&txlog).unwrap();
    let second = line_starts(&markers)[1];

    // Text between the two markers: corruption; both transactions still count.
    let mut bytes = markers[..second].to_vec();
    bytes.extend_from_slice(b"edited by hand\n");
    bytes.extend_from_slice(&markers[second..]);
    std::fs::write(&txlog, &bytes).unwrap();
    assert_strict_refuses(dir.path(), "_orbstore.txlog", second).await;
    let store = open_and_check_copy(dir.path(), "_orbstore.txlog", "corrupt", &bytes).await;
    assert_eq!(ids(&all(&store, "t").await), ["tx1", "tx2"]);
    store.close().await.unwrap();
    assert_eq!(std::fs::read(&txlog).unwrap(), markers, "rewritten with the readable markers");

    // A torn last marker: the transaction never committed; strict mode opens.
    let torn = &markers[..markers.len() - 3];
    std::fs::write(&txlog, torn).unwrap();
    let store = FileBackend::open(FileConfig { strict: true, ..FileConfig::new(dir.path()) }).await.unwrap();
    assert_eq!(ids(&all(&store, "t").await), ["tx1"]);
    assert_copy(&files_with(dir.path(), "_orbstore.txlog.torn-")[0], torn);
    store.close().await.unwrap();
    reopen_quietly(dir.path(), &["tx1".to_owned()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_written_in_pieces_of_at_most_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    let c = store.collection("t").await.unwrap();
    let docs: Vec<_> =
        (0..3_000).map(|i| doc(json!({"_id": format!("{i:04}"), "pad": "x".repeat(1_000)}))).collect();
    let before = store.log_fsyncs();
    c.insert_many(docs).await.unwrap();
    let size = std::fs::metadata(dir.path().join("t.log")).unwrap().len() as usize;
    assert!(size > 3 * MAX_WRITE);
    // One fsync per piece: a crash can leave at most the last piece unfinished.
    assert_eq!(store.log_fsyncs() - before, size.div_ceil(MAX_WRITE) as u64);
    store.close().await.unwrap();
    let store = open(dir.path(), FileSync::Always).await;
    assert_eq!(all(&store, "t").await.len(), 3_000);
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
}
