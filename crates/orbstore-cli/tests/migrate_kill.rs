//! `orb migrate` killed with SIGKILL at random points, then run again: after every kill the
//! target holds exactly a prefix of the source in `_id` order (no gap, no duplicate), and the
//! final run ends verified equal. File -> PostgreSQL and SQLite -> MongoDB, 10 kills each.
//! Guards the resume rule of `orbstore_ops::migrate` (continue after the target's largest `_id`)
//! against real crashes of a real process.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use orbstore::{BackendConfig, Config, Document, Query, Store};
use rand::{Rng, SeedableRng};
use serde_json::json;

const KILLS: usize = 10;

fn config(url: &str) -> Config {
    Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.to_owned())).unwrap()
}

fn unique_name() -> String {
    format!("orbtest_{}", orbstore::generate_id().replace('-', ""))
}

/// Fills the source with documents of about 300 bytes, in batches.
async fn fill(url: &str, docs: usize) {
    let store = orbstore::open(config(url)).await.unwrap();
    let c = store.collection("events").await.unwrap();
    for chunk in (0..docs).collect::<Vec<_>>().chunks(2000) {
        let batch: Vec<Document> = chunk
            .iter()
            .map(|i| {
                json!({"_id": format!("ev-{i:06}"), "n": i, "user": format!("u{}", i % 97),
                       "payload": "p".repeat(200), "reward": *i as f64 / 7.0})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        c.insert_many(batch).await.unwrap();
    }
    store
        .collection("small")
        .await
        .unwrap()
        .insert_many(vec![json!({"_id": "a"}).as_object().unwrap().clone()])
        .await
        .unwrap();
    store.close().await.unwrap();
}

async fn ids(store: &Store, name: &str) -> Vec<String> {
    let c = store.collection(name).await.unwrap();
    let mut s = c.find_stream(&Query::all()).await.unwrap();
    let mut out = Vec::new();
    while let Some(d) = s.next().await {
        out.push(orbstore::id_of(&d.unwrap()).unwrap().to_owned());
    }
    out
}

fn orb_migrate(from: &str, to: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orb"));
    cmd.args(["migrate", "--from", from, "--to", to, "--batch-size", "500", "--json"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn kill_and_resume(from: &str, to: &str, docs: usize, seed: u64) {
    fill(from, docs).await;
    let expected: Vec<String> = (0..docs).map(|i| format!("ev-{i:06}")).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut progressed = Vec::new();
    for round in 0..KILLS {
        let mut child = orb_migrate(from, to).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2000)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // The target holds a prefix of the source, in order, whatever the kill interrupted.
        let target = orbstore::open(config(to)).await.unwrap();
        let held = ids(&target, "events").await;
        assert_eq!(held[..], expected[..held.len()], "round {round}: not a prefix (gap or duplicate)");
        progressed.push(held.len());
        target.close().await.unwrap();
    }
    let out = orb_migrate(from, to).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], json!(true), "{report}");
    let (source, target) =
        (orbstore::open(config(from)).await.unwrap(), orbstore::open(config(to)).await.unwrap());
    assert_eq!(ids(&target, "events").await, expected);
    assert_eq!(ids(&target, "small").await, ["a"]);
    assert_eq!(
        source.collection("events").await.unwrap().find_all().await.unwrap(),
        target.collection("events").await.unwrap().find_all().await.unwrap()
    );
    source.close().await.unwrap();
    target.close().await.unwrap();
    // Run again after success: nothing changes, and it says so.
    let again = orb_migrate(from, to).output().unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    let again: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&again.stderr)));
    assert_eq!(
        (again["ok"].clone(), again["changed_nothing"].clone()),
        (json!(true), json!(true)),
        "{again}"
    );
    eprintln!("documents in the target after each kill: {progressed:?}");
}

use orbstore::{CollectionExt, PersistenceBackend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn migrate_file_to_postgres_survives_sigkill_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let from = format!("file://{}", dir.path().join("src").display());
    let url = orbstore_testkit::containers::postgres_url()
        .expect("this test needs a PostgreSQL server: ORBSTORE_TEST_POSTGRES_URL or a Docker engine");
    let schema = unique_name();
    let sep = if url.contains('?') { '&' } else { '?' };
    let to = format!("{url}{sep}schema={schema}");
    kill_and_resume(&from, &to, 20_000, 11).await;
    let BackendConfig::Postgres(pg) = config(&to).backend else { unreachable!() };
    let b = orbstore::backends::PostgresBackend::open(pg).await.unwrap();
    b.raw_client().await.unwrap().batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
async fn migrate_sqlite_to_mongodb_survives_sigkill_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}", dir.path().join("src.sqlite3").display());
    let url = std::env::var("ORBSTORE_TEST_MONGODB_URL").expect("ORBSTORE_TEST_MONGODB_URL");
    let (base, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let to = format!("{}/{}?{query}", base.trim_end_matches('/'), unique_name());
    kill_and_resume(&from, &to, 8_000, 29).await;
    let BackendConfig::Mongo(m) = config(&to).backend else { unreachable!() };
    let b = orbstore::backends::MongoBackend::open(m).await.unwrap();
    b.database().drop().await.unwrap();
    b.close().await.unwrap();
}
