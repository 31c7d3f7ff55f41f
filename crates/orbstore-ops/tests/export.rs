//! Export: JSON lines or one JSON array, filtered, of one collection or several, to any writer
//! or atomically to a file; the same bytes from every backend for the same data.

mod common;

use common::*;
use orbstore::{ErrorKind, Filter};
use orbstore_ops::{export, export_to_file, ExportFormat, ExportOptions};
use serde_json::{json, Value};

fn one(name: &str) -> ExportOptions {
    ExportOptions { collections: vec![name.to_owned()], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_collection_exports_as_canonical_json_lines_in_id_order() {
    let t = target("memory").await;
    fill_fixture(&t.store, true).await;
    let filter = Filter::from_json(&json!({"group": 3})).unwrap();
    let (report, out) =
        export(&t.store, &ExportOptions { filter, ..one("items") }, Vec::new()).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), (0..2500).filter(|i| i % 7 == 3).count());
    assert_eq!(report.documents, lines.len() as u64);
    assert_eq!(report.bytes, text.len() as u64);
    assert_eq!(report.collections, [("items".to_owned(), lines.len() as u64)]);
    let mut previous = String::new();
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["group"], 3);
        assert_eq!(orbstore_ops::canonical::to_bytes(v.as_object().unwrap()), l.as_bytes());
        let id = v["_id"].as_str().unwrap().to_owned();
        assert!(id > previous);
        previous = id;
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_and_several_collections_say_where_each_document_came_from() {
    let t = target("file").await;
    fill_fixture(&t.store, true).await;
    let options = ExportOptions { format: ExportFormat::Json, ..one("mixed") };
    let (_, out) = export(&t.store, &options, Vec::new()).await.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);

    let empty = ExportOptions { format: ExportFormat::Json, ..one("empty") };
    assert_eq!(export(&t.store, &empty, Vec::new()).await.unwrap().1, b"[]\n");

    // Every collection (the default): wrapped lines, then an object of arrays.
    let (report, out) = export(&t.store, &ExportOptions::default(), Vec::new()).await.unwrap();
    assert_eq!(report.documents, 2506);
    let first: Value =
        serde_json::from_str(std::str::from_utf8(&out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["collection"], "items");
    assert_eq!(first["document"]["_id"], "item-00000");
    let options = ExportOptions { format: ExportFormat::Json, ..Default::default() };
    let (_, out) = export(&t.store, &options, Vec::new()).await.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["empty"], json!([]));
    assert_eq!(v["items"].as_array().unwrap().len(), 2500);
    assert_eq!(v["mixed"].as_array().unwrap().len(), 6);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_a_file_is_atomic_and_a_missing_collection_is_not_found() {
    let t = target("sqlite").await;
    fill_fixture(&t.store, true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("items.jsonl");
    let report = export_to_file(&t.store, &one("items"), &path).await.unwrap();
    assert_eq!(report.path.as_deref(), Some(path.as_path()));
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2500);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no partial file left");

    let e = export(&t.store, &one("nope"), Vec::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("items"), "{e}");
    assert_eq!(
        export(&t.store, &one("Bad-Name"), Vec::new()).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(ExportFormat::parse("xml").unwrap_err().kind(), ErrorKind::InvalidInput);
    let gone = dir.path().join("missing-dir/x.jsonl");
    assert_eq!(
        export_to_file(&t.store, &one("items"), &gone).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_data_exports_to_the_same_bytes_on_every_backend() {
    let mut outputs = Vec::new();
    let mut names = vec!["memory", "file", "sqlite"];
    if orbstore_testkit::containers::postgres_url().is_some() {
        names.push("postgres");
    }
    if std::env::var("ORBSTORE_TEST_MONGODB_URL").is_ok_and(|u| !u.is_empty()) {
        names.push("mongodb");
    }
    for name in names {
        let t = target(name).await;
        fill_fixture(&t.store, false).await;
        let (_, out) = export(&t.store, &ExportOptions::default(), Vec::new()).await.unwrap();
        outputs.push((name, out));
        t.cleanup().await;
    }
    for (name, out) in &outputs[1..] {
        assert!(out == &outputs[0].1, "{name} exports other bytes than {}", outputs[0].0);
    }
}
