//! Concurrency, large and unusual documents, typed collections.

use std::sync::Arc;

use orbstore_core::{CollectionExt, Filter, Query, TypedExt, Update};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::*;

/// 100 concurrent `$inc` on one document lose no update.
pub async fn concurrent_increments_lose_no_update(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = seeded(&fx, json!([{"_id": "ctr", "n": 0}])).await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.update_by_id("ctr", &Update::new().inc("n", 1)).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap());
    }
    assert_eq!(c.find_by_id("ctr").await.unwrap().unwrap()["n"], 100);
    fx.teardown().await;
}

/// Concurrent inserts from many tasks all land, with unique generated ids.
pub async fn concurrent_inserts_all_land(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let tasks: Vec<_> = (0..20)
        .map(|task| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    ids.push(c.insert_value(json!({"task": task, "i": i})).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 500);
    assert_eq!(c.count_all().await.unwrap(), 500);
    fx.teardown().await;
}

/// Concurrent inserts of the same id: exactly one wins, the others get `Conflict`.
pub async fn concurrent_same_id_inserts_one_wins(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.insert_value(json!({"_id": "same", "by": i})).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.kind(), orbstore_core::ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(c.count_all().await.unwrap(), 1);
    fx.teardown().await;
}

/// A 1 MiB document round-trips intact, and queries still see its small fields.
pub async fn one_mib_document_round_trips(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let big = "ab€🦀".repeat(1024 * 1024 / 9);
    let arr: Vec<u32> = (0..20_000).collect();
    c.insert_value(json!({"_id": "big", "blob": big, "arr": arr, "tag": "x"})).await.unwrap();
    let back = c.find_by_id("big").await.unwrap().unwrap();
    assert_eq!(back["blob"].as_str().unwrap(), big);
    assert_eq!(back["arr"].as_array().unwrap().len(), 20_000);
    assert_eq!(ids(&c.find(&Query::new(Filter::eq("tag", "x"))).await.unwrap()), ["big"]);
    assert_eq!(c.count(&Filter::eq("arr", 19_999)).await.unwrap(), 1);
    fx.teardown().await;
}

/// Unicode keys and values are stored and matched exactly (no normalization).
pub async fn unicode_keys_and_values(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    // "é" precomposed and decomposed are different strings and stay different.
    let doc =
        json!({"_id": "ü-ñ-日本", "名前": "値", "emoji🦀": {"ключ": "значение"}, "é": 1, "e\u{301}": 2});
    c.insert_value(doc.clone()).await.unwrap();
    assert_eq!(serde_json::Value::Object(c.find_by_id("ü-ñ-日本").await.unwrap().unwrap()), doc);
    assert_eq!(c.count(&Filter::eq("名前", "値")).await.unwrap(), 1);
    assert_eq!(c.count(&Filter::eq("emoji🦀.ключ", "значение")).await.unwrap(), 1);
    assert_eq!(c.count(&Filter::eq("é", 1)).await.unwrap(), 1);
    assert_eq!(c.count(&Filter::eq("e\u{301}", 2)).await.unwrap(), 1);
    assert_eq!(c.count(&Filter::eq("é", 2)).await.unwrap(), 0);
    fx.teardown().await;
}

/// Values full of quoting and SQL metacharacters, NUL included, are stored and matched literally.
pub async fn hostile_values_are_stored_literally(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let hostile =
        ["'; DROP TABLE t; --", "\" OR 1=1 --", "\\", "a\u{0}b", "$gt", "{\"$ne\": null}", "%_*?", "\n\r\t"];
    for (i, s) in hostile.iter().enumerate() {
        c.insert_value(json!({"_id": format!("h{i}"), "s": s, "nested": {"s": s}})).await.unwrap();
    }
    for (i, s) in hostile.iter().enumerate() {
        let found = c.find(&Query::new(Filter::eq("s", *s))).await.unwrap();
        assert_eq!(ids(&found), [format!("h{i}")], "value {s:?}");
        assert_eq!(found[0]["nested"]["s"], *s);
    }
    assert_eq!(c.count_all().await.unwrap(), hostile.len() as u64);
    assert_eq!(fx.backend().list_collections().await.unwrap(), ["t"]);
    fx.teardown().await;
}

/// Ids with spaces, slashes, quotes and unicode work like any other id.
pub async fn unusual_ids_work(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("t").await;
    let unusual = ["a b", "a/b/../c", "'quoted'", "\"dq\"", "ключ", "🦀", "x%y_z", &"l".repeat(512)];
    for id in unusual {
        c.insert_value(json!({"_id": id, "v": 1})).await.unwrap();
        assert!(c.exists(id).await.unwrap(), "{id}");
        assert!(c.update_by_id(id, &Update::new().inc("v", 1)).await.unwrap());
    }
    for id in unusual {
        assert_eq!(c.find_by_id(id).await.unwrap().unwrap()["v"], 2);
        assert!(c.delete_by_id(id).await.unwrap());
    }
    assert_eq!(c.count_all().await.unwrap(), 0);
    fx.teardown().await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    #[serde(rename = "_id")]
    id: String,
    exploration_rate: f64,
    experiences: u64,
    tags: Vec<String>,
}

/// `TypedCollection` round-trips serde types, and a stored document of the wrong shape is
/// `Corrupt`, naming its id.
pub async fn typed_collection_round_trips(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let c = fx.coll("profiles").await;
    let typed = c.typed::<Profile>();
    let p = Profile { id: "u1".into(), exploration_rate: 0.3, experiences: 0, tags: vec!["new".into()] };
    assert_eq!(typed.insert(&p).await.unwrap(), "u1");
    assert_eq!(typed.get("u1").await.unwrap(), Some(p.clone()));
    let mut q = p.clone();
    q.experiences = 5;
    assert!(!typed.upsert(&q).await.unwrap().inserted);
    assert_eq!(typed.find(&Query::new(Filter::gte("experiences", 1))).await.unwrap(), [q]);
    c.insert_value(json!({"_id": "broken", "exploration_rate": "high"})).await.unwrap();
    let m = assert_kind(typed.get("broken").await, orbstore_core::ErrorKind::Corrupt);
    assert!(m.contains("broken"), "{m}");
    assert!(typed.delete("u1").await.unwrap());
    fx.teardown().await;
}

/// Handles are cheap to share: many clones of one handle and fresh handles see the same data.
pub async fn handles_share_one_collection(f: &dyn BackendFactory) {
    let Some(fx) = open(f).await else { return };
    let a = fx.coll("t").await;
    let b = fx.coll("t").await;
    let a2: Arc<dyn orbstore_core::Collection> = a.clone();
    a.insert_value(json!({"_id": "x"})).await.unwrap();
    assert!(b.exists("x").await.unwrap());
    assert!(a2.exists("x").await.unwrap());
    fx.teardown().await;
}
