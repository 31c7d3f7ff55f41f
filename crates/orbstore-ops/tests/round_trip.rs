//! Backup on one backend, restore on another: the same documents (canonical bytes), the same
//! index specs, the same content hashes, for every ordered pair of backends. Guards the promise
//! that the archive is one logical format and the hash one definition on every backend.

mod common;

use common::*;
use orbstore_ops::{backup, inspect, restore, Compression, NoProgress, RestoreOptions, RestoreState};

async fn round_trip(from: &'static str, to: &'static str) {
    let source = target(from).await;
    let dest = target(to).await;
    // A unique index only where both ends enforce one (MongoDB in exact mode does not; restore
    // refuses such an archive there, tested below).
    let unique = source.store.capabilities().unique_indexes && dest.store.capabilities().unique_indexes;
    fill_fixture(&source.store, unique).await;
    let dir = tempfile::tempdir().unwrap();
    // Each pair uses one compression, so all three are exercised across the pairs.
    let compression = match (from.len() + to.len()) % 3 {
        0 => Compression::Gzip,
        1 => Compression::Zstd,
        _ => Compression::None,
    };
    let options = orbstore_ops::BackupOptions { compression, ..options_in(dir.path()) };
    let made = backup(&source.store, &options).await.unwrap_or_else(|e| panic!("backup on {from}: {e}"));
    assert!(made.path.file_name().unwrap().to_str().unwrap().ends_with(compression.extension()));
    assert_eq!(made.manifest.source_backend, source.store.kind());
    assert_eq!(
        made.manifest.collections.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["empty", "items", "mixed"]
    );
    assert_eq!(made.manifest.collection("items").unwrap().count, 2500);
    assert_eq!(made.manifest.collection("mixed").unwrap().count, 6);

    let seen = inspect(&made.path, &NoProgress).unwrap();
    assert!(seen.verified, "{:?}", seen.problems);
    assert_eq!(seen.compression, compression);

    let report = restore(&dest.store, &made.path, &RestoreOptions::default())
        .await
        .unwrap_or_else(|e| panic!("restore {from} -> {to}: {e}"));
    assert!(report.collections.iter().all(|c| c.state == RestoreState::Verified), "{report:?}");

    assert_eq!(contents(&source.store).await, contents(&dest.store).await, "{from} -> {to}");
    let (src_idx, dst_idx) = (indexes(&source.store).await, indexes(&dest.store).await);
    assert_eq!(src_idx, dst_idx, "{from} -> {to}");

    // A backup of the restored store hashes the same as the original.
    let dir2 = tempfile::tempdir().unwrap();
    let again = backup(&dest.store, &options_in(dir2.path())).await.unwrap();
    for (a, b) in made.manifest.collections.iter().zip(&again.manifest.collections) {
        assert_eq!(
            (&a.name, a.count, a.bytes, &a.sha256),
            (&b.name, b.count, b.bytes, &b.sha256),
            "{from} -> {to}"
        );
        assert_eq!(a.indexes, b.indexes);
    }
    source.cleanup().await;
    dest.cleanup().await;
}

/// One round-trip test per ordered pair, ignored when a server it needs was not configured at
/// build time.
macro_rules! pair {
    ($name:ident, $from:literal, $to:literal $(, $cfg:meta)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[cfg_attr($cfg, ignore = "needs a server URL (ORBSTORE_TEST_POSTGRES_URL / ORBSTORE_TEST_MONGODB_URL)")])?
        async fn $name() {
            round_trip($from, $to).await
        }
    };
}

pair!(memory_to_file, "memory", "file");
pair!(file_to_sqlite, "file", "sqlite");
pair!(sqlite_to_memory, "sqlite", "memory");
pair!(memory_to_sqlite, "memory", "sqlite");
pair!(file_to_memory, "file", "memory");
pair!(sqlite_to_file, "sqlite", "file");
pair!(file_to_file, "file", "file");
pair!(memory_to_postgres, "memory", "postgres", orbstore_no_postgres);
pair!(file_to_postgres, "file", "postgres", orbstore_no_postgres);
pair!(postgres_to_sqlite, "postgres", "sqlite", orbstore_no_postgres);
pair!(postgres_to_file, "postgres", "file", orbstore_no_postgres);
pair!(sqlite_to_postgres, "sqlite", "postgres", orbstore_no_postgres);
pair!(postgres_to_postgres, "postgres", "postgres", orbstore_no_postgres);
pair!(memory_to_mongodb, "memory", "mongodb", orbstore_no_mongodb);
pair!(sqlite_to_mongodb, "sqlite", "mongodb", orbstore_no_mongodb);
pair!(mongodb_to_file, "mongodb", "file", orbstore_no_mongodb);
pair!(mongodb_to_memory, "mongodb", "memory", orbstore_no_mongodb);
pair!(postgres_to_mongodb, "postgres", "mongodb", any(orbstore_no_postgres, orbstore_no_mongodb));
pair!(mongodb_to_postgres, "mongodb", "postgres", any(orbstore_no_postgres, orbstore_no_mongodb));

/// A unique index the target cannot enforce is refused before the first write, not dropped
/// silently and not found out halfway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn a_unique_index_the_target_cannot_enforce_is_refused_before_writing() {
    let source = target("memory").await;
    let dest = target("mongodb").await;
    fill_fixture(&source.store, true).await;
    let dir = tempfile::tempdir().unwrap();
    let made = backup(&source.store, &options_in(dir.path())).await.unwrap();
    if dest.store.capabilities().unique_indexes {
        restore(&dest.store, &made.path, &RestoreOptions::default()).await.unwrap();
    } else {
        let e = restore(&dest.store, &made.path, &RestoreOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), orbstore::ErrorKind::Unsupported);
        let m = e.to_string();
        assert!(m.contains("code_1") && m.contains("nothing was written"), "{m}");
        assert!(dest.store.list_collections().await.unwrap().is_empty());
    }
    source.cleanup().await;
    dest.cleanup().await;
}
