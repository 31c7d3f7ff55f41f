//! Schemas on every backend: validation on write in strict, warn and off modes through
//! `SchemaLayer` (inserts, a whole `insert_many`, upserts, updates, transactions), a schema set
//! by one process seen by another, and `validate` reporting and repairing stored documents.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use orbstore::{CollectionExt, ErrorKind, Filter, PersistenceBackend, Store, Update};
use orbstore_ops::validate::{validate, ValidateOptions};
use orbstore_schema::{set_schema, Mode, SchemaEntry, SchemaLayer};
use serde_json::{json, Value};

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "user": {"type": "string"},
            "epsilon": {"type": "number", "minimum": 0, "maximum": 1},
            "mode": {"type": "string", "default": "explore"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
        },
        "required": ["user", "mode"],
        "additionalProperties": false
    })
}

async fn count(store: &dyn PersistenceBackend, c: &str) -> u64 {
    store.collection(c).await.unwrap().count(&Filter::all()).await.unwrap()
}

async fn schemas_on(name: &'static str) {
    let t = target(name).await;
    let raw: Store = t.store.clone();
    let layer = SchemaLayer::new(raw.clone());
    // Another process's view: rereads the stored schemas on every write.
    let other = SchemaLayer::with_refresh(raw.clone(), Duration::ZERO);
    let profiles = layer.collection("profiles").await.unwrap();
    // Before any schema every write passes (and reading the schemas created nothing).
    profiles.insert_value(json!({"_id": "free", "anything": true})).await.unwrap();
    assert!(!raw.list_collections().await.unwrap().contains(&"orbstore_schemas".to_owned()));
    profiles.delete_by_id("free").await.unwrap();
    // The other process reads the schemas (none yet) before they are set, so what it sees below
    // comes from rereading them.
    other.collection("scratch").await.unwrap().insert_value(json!({"_id": "x"})).await.unwrap();

    set_schema(&layer, &SchemaEntry::new("profiles", schema(), Mode::Strict)).await.unwrap();

    // Strict: refused with the document, path and rule named; nothing written.
    let e = profiles
        .insert_value(json!({"_id": "p1", "user": "u1", "mode": "x", "epsilon": 2}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
    assert!(
        e.message().contains("p1") && e.message().contains("/epsilon") && e.message().contains("maximum"),
        "{e}"
    );
    let batch = vec![
        doc(json!({"_id": "ok1", "user": "u1", "mode": "m"})),
        doc(json!({"_id": "bad1", "user": 7, "mode": "m"})),
    ];
    let e = profiles.insert_many(batch).await.unwrap_err();
    assert!(e.message().contains("bad1") && e.message().contains("/user"), "{e}");
    assert_eq!(count(&*raw, "profiles").await, 0, "{name}: nothing of a refused insert_many is written");
    let e = profiles.upsert(doc(json!({"_id": "p1", "mode": "m"}))).await.unwrap_err();
    assert!(e.message().contains("required"), "{e}");
    let e = other
        .collection("profiles")
        .await
        .unwrap()
        .insert_value(json!({"_id": "p9", "user": "u", "mode": "m", "junk": 1}))
        .await
        .unwrap_err();
    assert!(e.message().contains("additionalProperties"), "the other process sees the schema: {e}");

    // Valid writes pass; updates are checked on what they make.
    profiles.insert_value(json!({"_id": "p1", "user": "u1", "mode": "m", "epsilon": 0.5})).await.unwrap();
    profiles.insert_value(json!({"_id": "p2", "user": "u2", "mode": "m", "epsilon": 0.9})).await.unwrap();
    let e =
        profiles.update_one(&Filter::eq("_id", "p1"), &Update::new().set("epsilon", 5)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        profiles.update_one(&Filter::eq("_id", "p1"), &Update::new().set("epsilon", 0.1)).await.unwrap(),
        1
    );
    // +0.2 breaks p2 only (0.9 → 1.1): refused, so p1 is not changed either.
    let e = profiles.update_many(&Filter::all(), &Update::new().inc("epsilon", 0.2)).await.unwrap_err();
    assert!(e.message().contains("p2"), "{e}");
    let p1 = raw.collection("profiles").await.unwrap().find_by_id("p1").await.unwrap().unwrap();
    assert_eq!(p1["epsilon"], json!(0.1), "{name}");
    if raw.capabilities().transactions {
        let tx = layer.begin().await.unwrap();
        let e = tx
            .collection("profiles")
            .await
            .unwrap()
            .insert_value(json!({"_id": "t1", "user": "u", "mode": "m", "epsilon": -1}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: in a transaction");
        tx.rollback().await.unwrap();
    }

    // Warn: written, counted.
    set_schema(&layer, &SchemaEntry::new("profiles", schema(), Mode::Warn)).await.unwrap();
    profiles.insert_value(json!({"_id": "w1", "user": "u", "mode": "m", "epsilon": 3})).await.unwrap();
    assert_eq!(layer.warnings().get("profiles"), Some(&1), "{name}");
    // Off: not checked.
    set_schema(&layer, &SchemaEntry::new("profiles", schema(), Mode::Off)).await.unwrap();
    profiles.insert_value(json!({"_id": "o1", "user": "u", "mode": "m", "epsilon": 4})).await.unwrap();
    assert_eq!(layer.warnings().get("profiles"), Some(&1));

    // Stored documents, written around the layer: what validate reports and repairs.
    let direct = raw.collection("profiles").await.unwrap();
    for v in [
        json!({"_id": "s-number", "user": "u", "mode": "m", "epsilon": " 0.25 "}),
        json!({"_id": "s-extra", "user": "u", "mode": "m", "legacy": {"x": 1}}),
        json!({"_id": "s-default", "user": "u"}),
        json!({"_id": "s-dupes", "user": "u", "mode": "m", "tags": ["a", "b", "a"]}),
        json!({"_id": "s-words", "user": "u", "mode": "m", "epsilon": "lots"}),
        json!({"_id": "s-nouser", "mode": "m"}),
    ] {
        direct.insert_value(v).await.unwrap();
    }
    let report = validate(&*raw, &ValidateOptions::default()).await.unwrap();
    let c = &report.collections[0];
    assert_eq!((c.collection.as_str(), c.scanned, c.invalid), ("profiles", 10, 8), "{name}: {report:?}");
    let listed: Vec<_> = c.documents.iter().map(|d| d.id.as_str()).collect();
    for id in ["w1", "o1", "s-number", "s-words", "s-nouser"] {
        assert!(listed.contains(&id), "{name}: {id} listed in {listed:?}");
    }
    let words = c.documents.iter().find(|d| d.id == "s-words").unwrap();
    assert_eq!((words.violations[0].path.as_str(), words.violations[0].rule.as_str()), ("/epsilon", "type"));
    assert_eq!(count(&*raw, "profiles").await, 10, "a report changes nothing");

    let report =
        validate(&layer, &ValidateOptions { fix: true, ..ValidateOptions::default() }).await.unwrap();
    let c = &report.collections[0];
    assert_eq!((c.invalid, c.fixed, c.unfixable), (8, 6, 2), "{name}: {report:?}");
    let by_id = |id: &str| c.documents.iter().find(|d| d.id == id).unwrap().clone();
    assert!(!by_id("s-words").fixed && !by_id("s-nouser").fixed);
    assert_eq!(by_id("s-extra").changes[0].rule, "drop");
    let stored = |id: &'static str| {
        let direct = direct.clone();
        async move { Value::Object(direct.find_by_id(id).await.unwrap().unwrap()) }
    };
    assert_eq!(stored("s-number").await["epsilon"], json!(0.25), "{name}");
    assert_eq!(stored("w1").await["epsilon"], json!(1), "{name}: clamped");
    assert_eq!(stored("s-extra").await, json!({"_id": "s-extra", "user": "u", "mode": "m"}), "{name}");
    assert_eq!(stored("s-default").await["mode"], json!("explore"), "{name}");
    assert_eq!(stored("s-dupes").await["tags"], json!(["a", "b"]), "{name}");
    assert_eq!(stored("s-words").await["epsilon"], json!("lots"), "{name}: left as it was");
    let again = validate(&*raw, &ValidateOptions::default()).await.unwrap();
    assert_eq!(again.remaining(), 2, "{name}: only the unfixable remain");

    let e =
        validate(&*raw, &ValidateOptions { collection: Some("nope".into()), ..ValidateOptions::default() })
            .await
            .unwrap_err();
    assert!(e.message().contains("\"nope\" has no schema"), "{e}");
    drop((profiles, direct));
    drop(Arc::new(other));
    t.cleanup().await;
}

every_backend!(schemas_on;
    schemas_on_memory: "memory",
    schemas_on_file: "file",
    schemas_on_sqlite: "sqlite",
    schemas_on_postgres: "postgres" if orbstore_no_postgres,
    schemas_on_mongodb: "mongodb" if orbstore_no_mongodb,
);
