//! Damaged archives are refused with a clear message and nothing is written to the target: one
//! flipped byte (in each compression), a truncated archive, a missing manifest, an unknown
//! format version. Also: a target holding the archive's collections is refused unless replaced,
//! and a restore that fails halfway says what the target holds.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use orbstore::{ErrorKind, IndexSpec, Store};
use orbstore_ops::{backup, inspect, restore, Compression, NoProgress, RestoreOptions, RestoreState};
use serde_json::json;

/// A backup of the fixture in `compression`, in `dir`.
async fn archive(dir: &Path, compression: Compression) -> PathBuf {
    let source = target("memory").await;
    fill_fixture(&source.store, true).await;
    let options = orbstore_ops::BackupOptions { compression, ..options_in(dir) };
    backup(&source.store, &options).await.unwrap().path
}

/// Restores `path` into a fresh file store; asserts it fails with `kind` and writes nothing.
async fn refused(path: &Path, kind: ErrorKind) -> String {
    let dest = target("file").await;
    let e = restore(&dest.store, path, &RestoreOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), kind, "{e}");
    assert!(dest.store.list_collections().await.unwrap().is_empty(), "something was written: {e}");
    let m = e.to_string();
    assert!(m.contains("nothing was written to the target"), "{m}");
    assert!(m.contains(&path.display().to_string()), "the message names the archive: {m}");
    dest.cleanup().await;
    m
}

fn copy_with(path: &Path, name: &str, change: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    let out = path.with_file_name(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_byte_is_refused_in_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let good = archive(dir.path(), compression).await;
        let len = std::fs::metadata(&good).unwrap().len() as usize;
        // Positions in the compressed stream; for the plain tar, a byte of a document, of an
        // index spec and of the manifest, where a flip changes what the archive says.
        let positions: Vec<usize> = if compression == Compression::None {
            let bytes = std::fs::read(&good).unwrap();
            let find = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle).unwrap();
            vec![
                find(b"item-01234") + 7,
                find(b"\"unique\"") + 2,
                find(b"\"sha256\"") + 14,
                find(b"1mib") + 2,
            ]
        } else {
            vec![len / 3, len / 2, len * 2 / 3, len - 200]
        };
        for (i, at) in positions.into_iter().enumerate() {
            let bad = copy_with(
                &good,
                &format!("flip-{}-{i}{}", compression.as_str(), compression.extension()),
                |b| b[at] ^= 0x20,
            );
            let m = refused(&bad, ErrorKind::Corrupt).await;
            assert!(
                m.contains("checksum")
                    || m.contains("collections/")
                    || m.contains("manifest.json")
                    || m.contains("stopped"),
                "{compression:?} at {at}: {m}"
            );
            let seen = inspect(&bad, &NoProgress);
            assert!(seen.map_or(true, |r| !r.verified), "inspect must not call it verified");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let good = archive(dir.path(), compression).await;
        let len = std::fs::metadata(&good).unwrap().len() as usize;
        // For the plain tar, the last 1,024 bytes are the end-of-archive marker: cut into the
        // manifest before it instead.
        let cuts = if compression == Compression::None {
            vec![1, len / 10, len / 2, len - 1100]
        } else {
            vec![1, len / 10, len / 2, len - 20, len - 1]
        };
        for cut in cuts {
            let bad = copy_with(
                &good,
                &format!("cut-{}-{cut}{}", compression.as_str(), compression.extension()),
                |b| b.truncate(cut),
            );
            let m = refused(&bad, ErrorKind::Corrupt).await;
            assert!(!m.is_empty());
        }
    }
    let empty = dir.path().join("empty.tar.gz");
    std::fs::write(&empty, b"").unwrap();
    assert!(refused(&empty, ErrorKind::Corrupt).await.contains("empty"));
}

/// Rewrites a plain-tar archive entry by entry; `change` gets each entry's path and bytes and
/// returns what to write instead (`None` drops the entry).
fn rewrite(from: &Path, to: &Path, mut change: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let mut reader = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(from).unwrap()));
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::fast(),
    ));
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if let Some(bytes) = change(&path, bytes) {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, &path, &bytes[..]).unwrap();
        }
    }
    builder.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = archive(dir.path(), Compression::Gzip).await;
    let bad = dir.path().join("no-manifest.tar.gz");
    rewrite(&good, &bad, |path, bytes| (path != "manifest.json").then_some(bytes));
    let m = refused(&bad, ErrorKind::Corrupt).await;
    assert!(m.contains("no manifest.json") && m.contains("incomplete"), "{m}");
    assert_eq!(inspect(&bad, &NoProgress).unwrap_err().kind(), ErrorKind::Corrupt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_after_the_manifest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = archive(dir.path(), Compression::Gzip).await;
    let bad = dir.path().join("after.tar.gz");
    let mut reader =
        tar::Archive::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(&good).unwrap()));
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(&bad).unwrap(),
        flate2::Compression::fast(),
    ));
    let mut extra = None;
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        if path == "collections/empty/indexes.json" {
            extra = Some((path, bytes));
            continue;
        }
        builder.append_data(&mut h, &path, &bytes[..]).unwrap();
    }
    let (path, bytes) = extra.unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_cksum();
    builder.append_data(&mut h, &path, &bytes[..]).unwrap();
    builder.into_inner().unwrap().finish().unwrap().flush().unwrap();
    let m = refused(&bad, ErrorKind::Corrupt).await;
    assert!(m.contains("follows manifest.json"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = archive(dir.path(), Compression::Gzip).await;
    let bad = dir.path().join("v2.tar.gz");
    rewrite(&good, &bad, |path, bytes| {
        if path != "manifest.json" {
            return Some(bytes);
        }
        let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        m["format_version"] = json!(2);
        Some(serde_json::to_vec(&m).unwrap())
    });
    let m = refused(&bad, ErrorKind::Unsupported).await;
    assert!(m.contains("format version 2"), "{m}");
    assert_eq!(inspect(&bad, &NoProgress).unwrap_err().kind(), ErrorKind::Unsupported);

    // The rewritten archive itself (same content, version 1) is fine: only the version differs.
    let same = dir.path().join("v1.tar.gz");
    rewrite(&good, &same, |_, bytes| Some(bytes));
    assert!(inspect(&same, &NoProgress).unwrap().verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_are_not_archives_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let dest = target("memory").await;
    for path in [dir.path().join("nothing-here.tar.gz"), dir.path().to_owned()] {
        let e = restore(&dest.store, &path, &RestoreOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(inspect(&path, &NoProgress).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an archive at all, just some text that is long enough ".repeat(20)).unwrap();
    let e = restore(&dest.store, &text, &RestoreOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(dest.store.list_collections().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_the_collections_is_refused_unless_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = archive(dir.path(), Compression::Zstd).await;
    let dest = target("sqlite").await;
    let items = dest.store.collection("items").await.unwrap();
    items.insert_one(doc(json!({"_id": "mine", "n": -1}))).await.unwrap();
    dest.store.collection("other").await.unwrap().insert_one(doc(json!({"_id": "keep"}))).await.unwrap();

    let e = restore(&dest.store, &path, &RestoreOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("items") && e.to_string().contains("--replace"), "{e}");
    assert_eq!(dest.store.list_collections().await.unwrap(), ["items", "other"]);
    assert_eq!(items.count(&orbstore::Filter::all()).await.unwrap(), 1);

    let report =
        restore(&dest.store, &path, &RestoreOptions { replace: true, ..Default::default() }).await.unwrap();
    let restored_items = report.collections.iter().find(|c| c.name == "items").unwrap();
    assert!(restored_items.replaced && restored_items.state == RestoreState::Verified);
    assert_eq!(items.count(&orbstore::Filter::all()).await.unwrap(), 2500);
    assert!(items.find_by_id("mine").await.unwrap().is_none());
    assert_eq!(dest.store.list_collections().await.unwrap(), ["empty", "items", "mixed", "other"]);
    dest.cleanup().await;
}

/// A plain-tar archive with a correct manifest over `collections` (canonical lines, hashes).
fn handmade(path: &Path, collections: &[(&str, Vec<orbstore::Document>, Vec<IndexSpec>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut entries = Vec::new();
    let add = |b: &mut tar::Builder<std::fs::File>, p: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, p, bytes).unwrap();
    };
    for (name, docs, specs) in collections {
        add(&mut b, &format!("collections/{name}/indexes.json"), &serde_json::to_vec(specs).unwrap());
        let mut lines = Vec::new();
        let mut hasher = orbstore_ops::ContentHasher::new();
        for d in docs {
            let mut line = orbstore_ops::canonical::to_bytes(d);
            line.push(b'\n');
            hasher.add_line(&line);
            lines.extend_from_slice(&line);
        }
        add(&mut b, &format!("collections/{name}/documents.jsonl"), &lines);
        let digest = hasher.finish();
        entries.push(
            json!({"name": name, "count": digest.count, "bytes": digest.bytes, "sha256": digest.sha256,
                            "indexes": specs}),
        );
    }
    let manifest = json!({"format": "orbstore-backup", "format_version": 1, "orbstore_version": "0.1.0",
        "source_backend": "handmade", "created_at": "2025-01-01T00:00:00.000Z", "consistency": "point-in-time",
        "content_hash": "sha256", "collections": entries});
    add(&mut b, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
}

async fn halfway(store: &Store) -> orbstore_ops::RestoreError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handmade.tar");
    let a: Vec<_> = (0..1500).map(|i| doc(json!({"_id": format!("a{i:05}"), "n": i}))).collect();
    // A valid archive line that no store accepts: an integer beyond i64, in the second batch.
    let b: Vec<_> = (0..2500)
        .map(|i| {
            if i == 1200 {
                doc(json!({"_id": format!("b{i:05}"), "n": u64::MAX}))
            } else {
                doc(json!({"_id": format!("b{i:05}"), "n": i}))
            }
        })
        .collect();
    let c: Vec<_> = (0..10).map(|i| doc(json!({"_id": format!("c{i}")}))).collect();
    handmade(&path, &[("a", a, vec![IndexSpec::new(["n"])]), ("b", b, vec![]), ("c", c, vec![])]);
    assert!(inspect(&path, &NoProgress).unwrap().verified);
    restore(store, &path, &RestoreOptions::default()).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_halfway_says_what_the_target_holds() {
    let dest = target("file").await;
    let e = halfway(&dest.store).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let report = e.report.as_ref().unwrap();
    let states: Vec<_> = report.collections.iter().map(|c| (c.name.as_str(), c.written, c.state)).collect();
    assert_eq!(
        states,
        [
            ("a", 1500, RestoreState::Verified),
            ("b", 1000, RestoreState::Partial),
            ("c", 0, RestoreState::NotStarted)
        ]
    );
    let m = e.to_string();
    assert!(m.contains("writing collection \"b\""), "{m}");
    assert!(m.contains("b incomplete (1000 of 2500 documents"), "{m}");
    assert!(m.contains("c not restored"), "{m}");
    assert_eq!(
        dest.store.collection("b").await.unwrap().count(&orbstore::Filter::all()).await.unwrap(),
        1000
    );
    dest.cleanup().await;
}
