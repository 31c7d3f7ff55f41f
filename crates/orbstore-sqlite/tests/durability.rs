//! Crash, corruption, injection and schema tests of the SQLite backend.
//!
//! The crash test guards against acknowledging a write before SQLite made it durable: a child
//! writes in `synchronous = FULL` mode and is killed with SIGKILL at random moments; every
//! acknowledged id must be there after reopen.

use std::path::Path;
use std::time::Duration;

use orbstore_core::{
    CollectionExt, ErrorKind, Filter, IndexSpec, PersistenceBackend, Query, SqliteConfig, SqliteLocation,
};
use orbstore_sqlite::SqliteBackend;
use rand::Rng;
use serde_json::json;

async fn open(path: &Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path.to_owned())))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"))
}

fn run_and_kill(db: &Path, first: u64, run: Duration) -> Vec<String> {
    let first = first.to_string();
    orbstore_testkit::crash::run_and_kill(
        env!("CARGO_BIN_EXE_orbstore-sqlite-crash-writer"),
        &[db.to_str().unwrap(), &first],
        run,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_loses_no_acknowledged_write_over_20_kills() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite3");
    let mut rng = rand::rng();
    let mut total = 0;
    for round in 0..20 {
        let first = {
            let store = open(&db).await;
            let last = store
                .collection("crash")
                .await
                .unwrap()
                .find(&Query::all().sort_desc("_id").limit(1))
                .await
                .unwrap();
            store.close().await.unwrap();
            last.first().map_or(0, |d| d["_id"].as_str().unwrap().parse::<u64>().unwrap() + 1)
        };
        let acked = run_and_kill(&db, first, Duration::from_millis(rng.random_range(60..300)));
        total += acked.len();
        let store = open(&db).await;
        let c = store.collection("crash").await.unwrap();
        for id in &acked {
            assert!(c.find_by_id(id).await.unwrap().is_some(), "round {round}: acknowledged {id} is missing");
        }
        assert!(store.health().await.healthy);
        store.close().await.unwrap();
    }
    assert!(total > 20, "only {total} writes were acknowledged; the test proves little");
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.sqlite3");
    std::fs::write(&path, "this is a text file, not a database ".repeat(200)).unwrap();
    let e = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path.clone()))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("not.sqlite3"), "{e}");
}

#[tokio::test]
async fn a_truncated_database_is_corrupt_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    {
        let store = open(&path).await;
        let c = store.collection("t").await.unwrap();
        let docs: Vec<_> = (0..3000)
            .map(|i| json!({"i": i, "pad": "y".repeat(300)}).as_object().cloned().unwrap())
            .collect();
        c.insert_many(docs).await.unwrap();
        store.close().await.unwrap();
    }
    // Fold the WAL into the file, then cut the file in half.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        conn.execute_batch("PRAGMA journal_mode = DELETE").unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    let outcome = async {
        let store = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path.clone()))).await?;
        let c = store.collection("t").await?;
        c.count(&Filter::All).await?;
        c.find(&Query::new(Filter::gte("i", 0))).await.map(|d| d.len())
    }
    .await;
    let e = outcome.expect_err("a database cut in half cannot read back");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[tokio::test]
async fn a_schema_newer_than_the_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    open(&path).await.close().await.unwrap();
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let e = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("99"), "{e}");
}

#[tokio::test]
async fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/db.sqlite3");
    let before = {
        let store = open(&path).await;
        let c = store.collection("users").await.unwrap();
        c.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
        c.insert_value(json!({"_id": "a", "email": "a@x", "tags": ["t"]})).await.unwrap();
        c.insert_value(json!({"_id": "b", "email": "b@x"})).await.unwrap();
        let tx = store.begin().await.unwrap();
        tx.collection("log").await.unwrap().insert_value(json!({"_id": "l"})).await.unwrap();
        tx.commit().await.unwrap();
        let docs = c.find_all().await.unwrap();
        store.close().await.unwrap();
        docs
    };
    let store = open(&path).await;
    assert_eq!(store.list_collections().await.unwrap(), ["log", "users"]);
    let c = store.collection("users").await.unwrap();
    assert_eq!(c.find_all().await.unwrap(), before);
    assert_eq!(c.list_indexes().await.unwrap(), [IndexSpec::new(["email"]).unique()]);
    assert_eq!(c.insert_value(json!({"email": "a@x"})).await.unwrap_err().kind(), ErrorKind::Conflict);
    // the multikey flag was kept: a filter on the array field is still exact
    assert_eq!(c.count(&Filter::eq("tags", "t")).await.unwrap(), 1);
    let (plan, _) = store.explain("users", &Query::new(Filter::eq("tags", "t"))).await.unwrap();
    assert!(!plan.exact_filter);
}

/// Everything in `sqlite_master`, to prove nothing else changed.
fn schema(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT type, name FROM sqlite_master ORDER BY type, name").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[tokio::test]
async fn hostile_names_paths_and_values_change_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    let store = open(&path).await;
    let c = store.collection("t").await.unwrap();
    c.insert_value(json!({"_id": "seed"})).await.unwrap();
    let before = schema(&path);
    for bad in ["t; DROP TABLE c_t", "x'; DROP TABLE c_t; --", "t\"", "T"] {
        assert_eq!(store.collection(bad).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    let hostile = "'; DROP TABLE c_t; --";
    c.insert_value(json!({"_id": hostile, "it's": hostile, "q\"uote": "\u{0}", "n": {"o'k": 1}}))
        .await
        .unwrap();
    assert_eq!(c.count(&Filter::eq("it's", hostile)).await.unwrap(), 1);
    assert_eq!(
        c.count(&Filter::eq("q\"uote", "\u{0}")).await.unwrap(),
        1,
        "a key SQLite paths cannot spell goes to the evaluator"
    );
    assert_eq!(c.count(&Filter::eq("n.o'k", 1)).await.unwrap(), 1);
    assert_eq!(c.count(&Filter::eq("_id", hostile)).await.unwrap(), 1);
    assert_eq!(c.count(&Filter::gt("it's", "'")).await.unwrap(), 1);
    c.create_index(IndexSpec::new(["it's"])).await.unwrap();
    assert_eq!(c.create_index(IndexSpec::new(["q\"uote"])).await.unwrap_err().kind(), ErrorKind::Unsupported);
    assert_eq!(c.count(&Filter::All).await.unwrap(), 2);
    let mut after = schema(&path);
    after.retain(|(_, name)| name != "ix_t__it_s_1");
    assert_eq!(after, before, "only the one index was added");
}

#[tokio::test]
async fn a_second_opener_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    let first = open(&path).await;
    let e = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(path.clone()))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("db.sqlite3"), "{e}");
    first.close().await.unwrap();
    open(&path).await.close().await.unwrap();
}

/// Group commit: 64 writers at once, one write of every eight refused (a duplicate id). Every
/// other write is acknowledged and stored, every refused one changed nothing (its savepoint
/// alone rolled back), and the answers match what the database holds after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writes_fail_alone_and_the_rest_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("group.sqlite3");
    let store = std::sync::Arc::new(open(&db).await);
    let c = store.collection("g").await.unwrap();
    for i in 0..100 {
        c.insert_value(serde_json::json!({"_id": format!("taken{i}"), "v": "old"})).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for n in 0..50 {
                let clash = (w * 50 + n) % 8 == 0;
                let id = if clash { format!("taken{}", (w + n) % 100) } else { format!("w{w}-{n}") };
                let r = c.insert_value(serde_json::json!({"_id": id.clone(), "v": "new"})).await;
                results.push((id, clash, r.map_err(|e| e.kind())));
            }
            results
        }));
    }
    let mut stored = 0;
    for t in tasks {
        for (id, clash, r) in t.await.unwrap() {
            if clash {
                assert_eq!(r, Err(orbstore_core::ErrorKind::Conflict), "{id}");
            } else {
                assert!(r.is_ok(), "{id}: {r:?}");
                stored += 1;
            }
        }
    }
    store.close().await.unwrap();
    let store = open(&db).await;
    let c = store.collection("g").await.unwrap();
    assert_eq!(c.count(&orbstore_core::Filter::eq("v", "new")).await.unwrap(), stored);
    assert_eq!(
        c.count(&orbstore_core::Filter::eq("v", "old")).await.unwrap(),
        100,
        "the refused writes changed nothing"
    );
    assert_eq!(stored, 64 * 50 - 400);
}
