//! A measurement, not a test (ignored; never a timed assertion): a backup of 1 M ~300-byte
//! documents from PostgreSQL beside `pg_dump -Fc` of the same schema, in the same run.
//!
//! ```text
//! ORBSTORE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test --release -p orbstore-ops --test measure_backup -- --ignored --nocapture
//! ```
//! `MEASURE_DOCS` changes the count. The schema is dropped at the end.

mod common;

use std::time::Instant;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by name with --ignored --release (needs ORBSTORE_TEST_POSTGRES_URL)"]
async fn backup_of_a_million_documents_beside_pg_dump() {
    let n: usize = std::env::var("MEASURE_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let t = target("postgres").await;
    let orbstore::BackendConfig::Postgres(pg) = t.config.as_ref().unwrap().backend.clone() else {
        unreachable!()
    };
    let docs = t.store.collection("events").await.unwrap();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    let mut bytes = 0usize;
    for i in 0..n {
        let action = ["left", "right", "up", "down"][i % 4];
        let d = doc(json!({
            "_id": format!("evt-{i:09}"),
            "user": format!("user-{:05}", i % 10_000),
            "state": format!("s{:04}", i % 977),
            "action": action,
            "reward": (i % 1000) as f64 / 37.0,
            "ts": 1_700_000_000_000i64 + i as i64,
            "done": i % 10 == 0,
            "tags": ["replay", format!("t{}", i % 13)],
            "note": "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua",
        }));
        bytes += orbstore_ops::canonical::to_bytes(&d).len();
        batch.push(d);
        if batch.len() == 1000 {
            docs.insert_many(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    if !batch.is_empty() {
        docs.insert_many(batch).await.unwrap();
    }
    eprintln!(
        "seeded {n} documents, {:.0} canonical bytes each on average, in {:.1} s",
        bytes as f64 / n as f64,
        started.elapsed().as_secs_f64()
    );

    // The floor: reading every document through a snapshot, and nothing else.
    let started = Instant::now();
    let snapshot = orbstore::read_snapshot(&t.store).await.unwrap();
    let mut stream = snapshot.find_stream("events", &orbstore::Query::all()).await.unwrap();
    let mut read = 0u64;
    while let Some(d) = futures::StreamExt::next(&mut stream).await {
        d.unwrap();
        read += 1;
    }
    drop(stream);
    drop(snapshot);
    eprintln!("read only: {read} documents in {:.2} s", started.elapsed().as_secs_f64());

    let dir = tempfile::tempdir().unwrap();
    for compression in
        [orbstore_ops::Compression::Gzip, orbstore_ops::Compression::Zstd, orbstore_ops::Compression::None]
    {
        let options = orbstore_ops::BackupOptions { compression, ..options_in(dir.path()) };
        let started = Instant::now();
        let made = orbstore_ops::backup(&t.store, &options).await.unwrap();
        eprintln!(
            "orb backup ({}): {:.2} s, {} bytes, consistency {}",
            compression.as_str(),
            started.elapsed().as_secs_f64(),
            made.archive_bytes,
            made.manifest.consistency
        );
        std::fs::remove_file(&made.path).unwrap();
    }

    let out = dir.path().join("pg.dump");
    let started = Instant::now();
    let status = std::process::Command::new("pg_dump")
        .args(["-Fc", "-h", &pg.host, "-p", &pg.port.to_string(), "-U", &pg.user, "-n", &pg.schema, "-f"])
        .arg(&out)
        .arg(&pg.database)
        .status()
        .expect("run pg_dump");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(status.success());
    eprintln!(
        "pg_dump -Fc -n {}: {elapsed:.2} s, {} bytes",
        pg.schema,
        std::fs::metadata(&out).unwrap().len()
    );
    t.cleanup().await;
}

/// The compressors alone over the same kind of documents, for choosing levels.
#[test]
#[ignore = "a measurement: run it by name with --ignored --release"]
fn compression_levels() {
    use std::io::Write;
    let mut data = Vec::new();
    for i in 0..300_000usize {
        let action = ["left", "right", "up", "down"][i % 4];
        let d = doc(json!({"_id": format!("evt-{i:09}"), "user": format!("user-{:05}", i % 10_000),
            "state": format!("s{:04}", i % 977), "action": action, "reward": (i % 1000) as f64 / 37.0,
            "ts": 1_700_000_000_000i64 + i as i64, "done": i % 10 == 0, "tags": ["replay", format!("t{}", i % 13)],
            "note": "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua"}));
        data.extend_from_slice(&orbstore_ops::canonical::to_bytes(&d));
        data.push(b'\n');
    }
    for level in [1, 2, 3, 6] {
        let started = Instant::now();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(&data).unwrap();
        let out = e.finish().unwrap();
        eprintln!(
            "gzip {level}: {} -> {} bytes in {:.2} s",
            data.len(),
            out.len(),
            started.elapsed().as_secs_f64()
        );
    }
    for level in [1, 3] {
        let started = Instant::now();
        let out = zstd::encode_all(&data[..], level).unwrap();
        eprintln!(
            "zstd {level}: {} -> {} bytes in {:.2} s",
            data.len(),
            out.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let _ = sha2_hash(&data);
    eprintln!("sha256: {:.2} s", started.elapsed().as_secs_f64());
}

fn sha2_hash(data: &[u8]) -> String {
    let mut h = orbstore_ops::ContentHasher::new();
    h.add_line(data);
    h.finish().sha256
}
