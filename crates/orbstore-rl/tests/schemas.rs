//! The JSON Schemas of [`orbstore_rl::SCHEMAS`] against what the stores really write: every store
//! is driven through its public API (ordinary documents and the edge cases: empty optional
//! fields, zero counts, an exploration rate decayed to its minimum, the extreme ids and counters),
//! then every document of every collection is read back and validated. Guards against a store
//! changing its documents without its schema (or a schema drifting from its store): a validator
//! installed from these schemas would then reject, or a sanitizer rewrite, what the store wrote.
//!
//! So that the test cannot pass vacuously, each schema must also reject a document with a
//! required field removed, a field of the wrong type, an unknown field where none is allowed
//! and a value just outside each bound; `required` must be exactly the fields every stored
//! document has; and each collection must hold documents. Run on memory, file and SQLite: the
//! schemas describe the documents as a backend gives them back.

use std::collections::{BTreeMap, BTreeSet};

use orbstore::{BackendConfig, Config, Query, Store};
use orbstore_rl::*;
use serde_json::{json, Map, Value};

/// The keywords the schemas may use (what the validation layer's sanitizer understands, plus
/// annotations).
const KEYWORDS: &[&str] = &[
    "$schema",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "enum",
    "default",
    "uniqueItems",
    "minItems",
];

/// Collections of the store's own machinery (ledger, data-subject map, ...), not of the stores.
fn is_internal(collection: &str) -> bool {
    collection.starts_with("orbstore_")
}

fn schema(collection: &str) -> Value {
    let (_, text) = SCHEMAS
        .iter()
        .find(|(c, _)| *c == collection)
        .unwrap_or_else(|| panic!("no schema for {collection:?} in SCHEMAS"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the schema of {collection:?} is not JSON: {e}"))
}

fn validator(collection: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&schema(collection))
        .unwrap_or_else(|e| panic!("the schema of {collection:?} does not compile: {e}"))
}

/// The violations of a document, one line each (empty when valid).
fn violations(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("at {:?} ({}): {e}", e.instance_path().to_string(), e.kind().keyword()))
        .collect()
}

/// Writes realistic documents, edge cases included, through every store's public API.
async fn write_everything(store: &Store) {
    let s: &dyn orbstore::PersistenceBackend = &**store;

    // Q-values: learned, set by hand (negative), imported with zero visits at time 0.
    let q = QTable::open(s).await.unwrap();
    q.update("s1", "a", 1.0, "s2", 0.1, 0.9).await.unwrap();
    q.set("s2", "b", -2.5).await.unwrap();
    q.set("s2", "zero", 0.0).await.unwrap();
    q.put_entries(vec![QEntry {
        state: "imported".into(),
        action: "x".into(),
        value: 3.0,
        visits: 0,
        updated_at: 0,
    }])
    .await
    .unwrap();
    q.flush().await.unwrap();

    // Experiences: fresh ones (not completed, no watch duration), a completed one watched for
    // 0 s with a reward of 0, an imported one at time 0, and one evicted by the capacity.
    let xp = ExperienceStore::open(s, Some(3)).await.unwrap();
    xp.add(Experience::new("u1", "s1", "a", 1.0, "s2")).await.unwrap();
    let mut done = Experience::new("u1", "s2", "b", 0.0, "s3");
    done.completed = true;
    done.watch_duration = Some(0.0);
    xp.add(done).await.unwrap();
    let mut long = Experience::new("u1", "s3", "c", -0.75, "s4");
    long.completed = true;
    long.watch_duration = Some(125.5);
    xp.add_batch(vec![long, Experience::new("u1", "s4", "d", 2.0, "s5")]).await.unwrap();
    let mut old = Experience::new("u2", "", "", 0.0, "");
    old.id = "imported-1".into();
    old.timestamp = 0;
    xp.put_batch(vec![old]).await.unwrap();
    assert_eq!(xp.by_user("u1").len(), 3, "the oldest of u1 was evicted");
    // A priority set and saved (and one of 0).
    let kept = xp.by_user("u1");
    xp.update_priorities(&[(kept[0].id.clone(), 2.5), (kept[1].id.clone(), 0.0)]).unwrap();
    xp.flush().await.unwrap();

    // Profiles: new (0.3, zero counts), decayed to the minimum, set to 0 and to 1, reset,
    // policy version bumped, imported with zero counts at time 0.
    let profiles = UserProfileStore::open(s).await.unwrap();
    profiles.create("fresh").await.unwrap();
    let decayed = profiles.increment_experiences("veteran", 5_000).await.unwrap();
    assert_eq!(decayed.exploration_rate, MIN_EXPLORATION, "decayed to its minimum");
    profiles.update_exploration_rate("greedy", 0.0).await.unwrap();
    profiles.update_exploration_rate("explorer", 1.0).await.unwrap();
    profiles.increment_policy_version("explorer").await.unwrap();
    profiles.increment_experiences("reset", 3).await.unwrap();
    profiles.reset_exploration("reset").await.unwrap();
    profiles
        .put(&UserProfile {
            user: "imported".into(),
            exploration_rate: INITIAL_EXPLORATION,
            experiences: 0,
            policy_version: 0,
            created_at: 0,
            updated_at: 0,
        })
        .await
        .unwrap();

    // Policies: a lineage of three (no parent, then parents; older ones deactivated), no
    // weights, metadata of every kind, executions with positive and negative rewards.
    let policies = PolicyStore::open(s).await.unwrap();
    let weights: BTreeMap<String, f64> = [("left".to_owned(), 0.25), ("right".to_owned(), -1.0)].into();
    let p1 =
        policies.save_policy("bin-a", "rule-1", weights.clone(), json!({"note": "first"})).await.unwrap();
    policies.save_policy("bin-a", "rule-2", BTreeMap::new(), Value::Null).await.unwrap();
    let p3 = policies.save_policy("bin-a", "rule-2", weights, json!("just text")).await.unwrap();
    policies.save_policy("bin-b", "", BTreeMap::new(), json!([1, 2, 3])).await.unwrap();
    assert!(policies.record_execution(&p3.id, 1.5).await.unwrap());
    assert!(policies.record_execution(&p3.id, -4.0).await.unwrap());
    assert!(policies.record_execution(&p1.id, 0.0).await.unwrap());

    // Configuration: two versions of a key, values of every kind, an empty key.
    let config = ConfigStore::open(s).await.unwrap();
    config.save_config("router", "threshold", json!(0.5)).await.unwrap();
    config.save_config("router", "threshold", json!({"value": 0.75, "why": "tuned"})).await.unwrap();
    config.save_config("router", "", Value::Null).await.unwrap();
    config.save_config("ui", "modes", json!(["focus", "relax"])).await.unwrap();

    // Metrics: with and without a related policy, data of every kind.
    let metrics = LearningMetrics::open(s).await.unwrap();
    metrics.record("episode_reward", json!(12.5), Some(p3.id.as_str())).await.unwrap();
    metrics.record("loss", json!({"td": 0.01, "n": 0}), None).await.unwrap();
    metrics.record("heartbeat", Value::Null, None).await.unwrap();

    // Events: the smallest and largest ids and counters, zero and negative rewards, metadata of
    // two kinds, a batch, and an archived one.
    let events = EventStore::open(s).await.unwrap();
    let event = |id: u128, t: u64| Event {
        id,
        timestamp_us: t,
        episode: 0,
        step: 0,
        event_type: "step".into(),
        flags: 0,
        state: [0.0; 8],
        action: [0.0; 8],
        rewards: Rewards::default(),
        policy_version: String::new(),
        sequence: 0,
    };
    events.write_event(&event(0, 0)).await.unwrap();
    // The largest counters a store can hold: orbstore refuses integers beyond i64.
    let big = Event {
        episode: i64::MAX as u64,
        step: u32::MAX,
        flags: u32::MAX,
        state: [1.0, -1.0, 0.5, 0.0, 1e-9, -1e9, 3.25, 7.0],
        action: [0.125; 8],
        rewards: Rewards { homeostasis: 0.5, curiosity: -0.25, efficiency: 0.0, goal: 10.0 },
        policy_version: "9f2c".into(),
        sequence: i64::MAX as u64,
        ..event(u128::MAX, 2_000_000_000_000_000)
    };
    events
        .write_event_with_metadata(
            &big,
            &ActionMetadata {
                intent_type: "move".into(),
                executor_id: "arm-1".into(),
                parameters: json!({"speed": 2, "axes": ["x", "y"]}),
            },
        )
        .await
        .unwrap();
    events
        .write_event_with_metadata(
            &event(42, 1_000),
            &ActionMetadata {
                intent_type: String::new(),
                executor_id: String::new(),
                parameters: Value::Null,
            },
        )
        .await
        .unwrap();
    events.write_batch(&[event(7, 1_500_000), event(8, 1_500_001)]).await.unwrap();
    assert_eq!(events.archive_events(1_000_000).await.unwrap(), 2, "events 0 and 42 archived");

    // Luna: profiles with nothing, with strings and with other values; active modes, one of
    // them without a profile.
    let luna = LunaPreferenceStore::open(s).await.unwrap();
    luna.set_profile(&LunaProfile::new("ana", "focus", Vec::new(), Vec::new())).await.unwrap();
    luna.set_profile(&LunaProfile::new(
        "ana",
        "relax",
        vec![json!("quiet"), json!("warm light")],
        vec![json!("no calls after 22:00")],
    ))
    .await
    .unwrap();
    let mut imported =
        LunaProfile::new("ben", "focus", vec![json!(3), json!({"k": "v"}), Value::Null], vec![]);
    imported.updated_at = 0;
    luna.set_profile(&imported).await.unwrap();
    luna.set_active_mode("ana", "relax").await.unwrap();
    luna.set_active_mode("cleo", "sleep").await.unwrap();

    // Te: a bare reflection (no tags, no notes, empty texts), one with tags and notes, one
    // replaced, sessions and their users.
    let te = TeReflectionStore::open(s).await.unwrap();
    te.add(&Reflection::new("sess-1", "", "")).await.unwrap();
    let mut noted = Reflection::new("sess-1", "how was the day?", "calm");
    noted.tags = vec!["mood".into(), "evening".into(), "mood".into()];
    noted.notes = Some(String::new());
    te.add(&noted).await.unwrap();
    noted.notes = Some("slept well".into());
    noted.created_at = 0;
    te.add(&noted).await.unwrap();
    te.add(&Reflection::new("sess-2", "in", "out")).await.unwrap();
    te.set_session_user("sess-1", "ana").await.unwrap();
    te.set_session_user("sess-2", "ana").await.unwrap();
    te.set_session_user("sess-2", "ben").await.unwrap();
}

/// Every document of a collection, as the backend gives it back.
async fn documents(store: &Store, collection: &str) -> Vec<Value> {
    let coll = store.collection(collection).await.unwrap();
    coll.find(&Query::all()).await.unwrap().into_iter().map(Value::Object).collect()
}

/// Writes everything to `store`, then checks every collection against its schema.
async fn stored_documents_match_their_schemas(backend: &str, store: Store) {
    write_everything(&store).await;
    let mut failures = Vec::new();
    for (collection, _) in SCHEMAS {
        let v = validator(collection);
        let docs = documents(&store, collection).await;
        assert!(!docs.is_empty(), "{backend}: nothing was written to {collection:?}: its schema is untested");
        for doc in &docs {
            for e in violations(&v, doc) {
                failures.push(format!("{backend}: {collection} {}: {e}\n    {doc}", doc["_id"]));
            }
        }
        // `required` is exactly what every document has, `properties` what some document has.
        let s = schema(collection);
        let required: BTreeSet<&str> =
            s["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        let in_every: BTreeSet<&str> = docs
            .iter()
            .map(|d| d.as_object().unwrap().keys().map(String::as_str).collect::<BTreeSet<_>>())
            .reduce(|a, b| a.intersection(&b).copied().collect())
            .unwrap();
        assert_eq!(required, in_every, "{backend}: {collection}: required vs the fields every document has");
        let seen: BTreeSet<&str> =
            docs.iter().flat_map(|d| d.as_object().unwrap().keys()).map(String::as_str).collect();
        let declared: BTreeSet<&str> =
            s["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(declared, seen, "{backend}: {collection}: properties vs the fields the documents have");
    }
    assert!(failures.is_empty(), "{} violation(s):\n{}", failures.len(), failures.join("\n"));

    // No collection the stores wrote to goes without a schema.
    let schemas: BTreeSet<&str> = SCHEMAS.iter().map(|(c, _)| *c).collect();
    for c in store.list_collections().await.unwrap() {
        if !is_internal(&c) && !documents(&store, &c).await.is_empty() {
            assert!(schemas.contains(c.as_str()), "{backend}: {c:?} holds documents but has no schema");
        }
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn stored_documents_match_their_schemas_on_memory() {
    let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    stored_documents_match_their_schemas("memory", store).await;
}

fn url_config(url: String) -> Config {
    Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap()
}

#[tokio::test]
async fn stored_documents_match_their_schemas_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = orbstore::open(url_config(format!("file://{}", dir.path().display()))).await.unwrap();
    stored_documents_match_their_schemas("file", store).await;
}

#[tokio::test]
async fn stored_documents_match_their_schemas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rl.sqlite3").display());
    let store = orbstore::open(url_config(url)).await.unwrap();
    stored_documents_match_their_schemas("sqlite", store).await;
}

#[test]
fn every_collection_has_one_schema_and_every_schema_compiles() {
    let expected = [
        Q_COLLECTION,
        EXPERIENCE_COLLECTION,
        PROFILE_COLLECTION,
        POLICY_COLLECTION,
        CONFIG_COLLECTION,
        METRICS_COLLECTION,
        EVENT_COLLECTION,
        METADATA_COLLECTION,
        LUNA_PROFILE_COLLECTION,
        LUNA_USER_COLLECTION,
        TE_REFLECTION_COLLECTION,
        TE_SESSION_COLLECTION,
    ];
    let listed: Vec<&str> = SCHEMAS.iter().map(|(c, _)| *c).collect();
    assert_eq!(listed.iter().collect::<BTreeSet<_>>(), expected.iter().collect::<BTreeSet<_>>());
    assert_eq!(listed.len(), expected.len(), "a collection listed twice");
    for (collection, _) in SCHEMAS {
        let s = schema(collection);
        validator(collection);
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema", "{collection}");
        assert!(s["title"].as_str().is_some_and(|t| !t.is_empty()), "{collection}: a title");
        assert!(s["description"].as_str().is_some_and(|t| !t.is_empty()), "{collection}: a description");
        assert_eq!(s["type"], "object", "{collection}");
        assert_eq!(s["properties"]["_id"]["type"], "string", "{collection}: _id is a string");
        assert!(s["required"].as_array().unwrap().contains(&json!("_id")), "{collection}: _id required");
        check_keywords(collection, &s, &s);
    }
}

/// Only the core keywords, and only local references that resolve.
fn check_keywords(collection: &str, root: &Value, s: &Value) {
    let Value::Object(m) = s else {
        assert!(s.is_boolean(), "{collection}: a schema is an object or a boolean, got {s}");
        return;
    };
    for (k, v) in m {
        assert!(KEYWORDS.contains(&k.as_str()), "{collection}: keyword {k:?} is outside the core set");
        match k.as_str() {
            "properties" | "$defs" => {
                for sub in v.as_object().unwrap().values() {
                    check_keywords(collection, root, sub);
                }
            }
            "items" | "additionalProperties" => check_keywords(collection, root, v),
            "$ref" => {
                let r = v.as_str().unwrap();
                let pointer =
                    r.strip_prefix('#').unwrap_or_else(|| panic!("{collection}: $ref {r:?} not local"));
                assert!(root.pointer(pointer).is_some(), "{collection}: $ref {r:?} resolves to nothing");
            }
            _ => {}
        }
    }
}

/// A property's schema, following a local `$ref` (whose sibling keywords also apply).
fn property(root: &Value, name: &str) -> Map<String, Value> {
    let mut p = root["properties"][name].as_object().cloned().unwrap_or_default();
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let target = root.pointer(r.trim_start_matches('#')).unwrap().as_object().unwrap().clone();
        for (k, v) in target {
            p.entry(k).or_insert(v);
        }
    }
    p
}

/// A value matching none of the JSON types listed.
fn wrong_type(types: &Value) -> Value {
    let types: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
        other => panic!("type {other}"),
    };
    let candidates = [
        ("object", json!({"wrong": true})),
        ("array", json!(["wrong"])),
        ("string", json!("wrong")),
        ("boolean", json!(true)),
        ("number", json!(1.5)),
        ("null", Value::Null),
    ];
    candidates.into_iter().find(|(t, _)| !types.contains(t)).map(|(_, v)| v).unwrap()
}

/// Each schema accepts a stored document and rejects it once broken: a required field removed,
/// a typed field of the wrong type, an unknown field (where none is allowed), a value just
/// outside a bound; and accepts it with each defaulted field set to its default.
#[tokio::test]
async fn each_schema_rejects_broken_documents() {
    let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    write_everything(&store).await;
    let mut checks = 0;
    for (collection, _) in SCHEMAS {
        let s = schema(collection);
        let v = validator(collection);
        let docs = documents(&store, collection).await;
        let good = docs.first().unwrap_or_else(|| panic!("no {collection} document")).clone();
        assert!(violations(&v, &good).is_empty(), "{collection}: {good} is valid");
        let rejected = |broken: &Value, what: &str| {
            assert!(!violations(&v, broken).is_empty(), "{collection}: accepted with {what}: {broken}");
        };

        for r in s["required"].as_array().unwrap() {
            let mut broken = good.clone();
            broken.as_object_mut().unwrap().remove(r.as_str().unwrap());
            rejected(&broken, &format!("{r} removed"));
            checks += 1;
        }
        for name in s["properties"].as_object().unwrap().keys() {
            let p = property(&s, name);
            if let Some(types) = p.get("type") {
                let mut broken = good.clone();
                broken[name] = wrong_type(types);
                rejected(&broken, &format!("{name} of the wrong type"));
                checks += 1;
            }
            let integer = p.get("type").is_some_and(|t| t == "integer");
            let step = if integer { 1.0 } else { 1e-9 };
            if let Some(min) = p.get("minimum").and_then(Value::as_f64) {
                let mut broken = good.clone();
                broken[name] = if integer { json!(min as i64 - 1) } else { json!(min - step) };
                rejected(&broken, &format!("{name} below its minimum"));
                checks += 1;
            }
            if let Some(max) = p.get("maximum").and_then(Value::as_f64) {
                let mut broken = good.clone();
                broken[name] = if integer { json!(max as u64 + 1) } else { json!(max + step) };
                rejected(&broken, &format!("{name} above its maximum"));
                checks += 1;
            }
            if let Some(default) = p.get("default") {
                let mut with_default = good.clone();
                with_default[name] = default.clone();
                let errors = violations(&v, &with_default);
                assert!(errors.is_empty(), "{collection}: the default of {name} is invalid: {errors:?}");
            }
        }
        if s["additionalProperties"] == json!(false) {
            let mut broken = good.clone();
            broken["unexpected"] = json!(1);
            rejected(&broken, "an unknown field");
            checks += 1;
        }
    }
    assert!(checks >= 3 * SCHEMAS.len(), "only {checks} negative checks");
    store.close().await.unwrap();
}

/// The bounds the stores guarantee, spelled out once by hand (the generic checks above would
/// pass with none).
#[test]
fn the_guaranteed_bounds_are_in_the_schemas() {
    let profile = schema(PROFILE_COLLECTION);
    let rate = &profile["properties"]["exploration_rate"];
    assert_eq!((rate["minimum"].as_f64(), rate["maximum"].as_f64()), (Some(0.0), Some(1.0)));
    assert_eq!(rate["default"].as_f64(), Some(INITIAL_EXPLORATION));
    let v = validator(PROFILE_COLLECTION);
    let p = |rate: Value| {
        json!({"_id": "u", "exploration_rate": rate, "experiences": 0, "policy_version": 0,
               "created_at": 0, "updated_at": 0})
    };
    assert!(violations(&v, &p(json!(MIN_EXPLORATION))).is_empty());
    assert!(!violations(&v, &p(json!(1.01))).is_empty());
    assert!(!violations(&v, &p(json!(-0.01))).is_empty());
    assert!(!violations(&v, &p(json!("0.3"))).is_empty(), "a rate as a string");
    let negative = json!({"_id": "u", "exploration_rate": 0.3, "experiences": -1, "policy_version": 0,
                          "created_at": 0, "updated_at": 0});
    assert!(!violations(&v, &negative).is_empty(), "a negative count");

    for (collection, field) in [
        (Q_COLLECTION, "visits"),
        (Q_COLLECTION, "updated_at"),
        (EXPERIENCE_COLLECTION, "timestamp"),
        (PROFILE_COLLECTION, "experiences"),
        (PROFILE_COLLECTION, "created_at"),
        (POLICY_COLLECTION, "executions"),
        (METRICS_COLLECTION, "timestamp"),
        (EVENT_COLLECTION, "timestamp_us"),
        (EVENT_COLLECTION, "sequence"),
        (LUNA_PROFILE_COLLECTION, "updated_at"),
        (TE_REFLECTION_COLLECTION, "created_at"),
    ] {
        let p = &schema(collection)["properties"][field];
        assert_eq!((&p["type"], &p["minimum"]), (&json!("integer"), &json!(0)), "{collection}.{field}");
    }
    for collection in [POLICY_COLLECTION, CONFIG_COLLECTION] {
        assert_eq!(
            schema(collection)["properties"]["version"]["minimum"],
            1,
            "{collection}: versions from 1"
        );
    }
    let event = validator(EVENT_COLLECTION);
    let e = json!({"_id": "0", "id": "0", "timestamp_us": 0, "episode": 0, "step": 4_294_967_296u64,
                   "event_type": "", "flags": 0, "state": [0, 0, 0, 0, 0, 0, 0, 0],
                   "action": [0, 0, 0, 0, 0, 0, 0], "rewards": {"homeostasis": 0, "curiosity": 0,
                   "efficiency": 0, "goal": 0}, "policy_version": "", "sequence": 0,
                   "total_reward": 0, "archived": false});
    let errors = violations(&event, &e);
    assert!(errors.iter().any(|e| e.contains("\"/step\"")), "a step beyond u32: {errors:?}");
    assert!(errors.iter().any(|e| e.contains("\"/action\"")), "7 action components: {errors:?}");
    // Free-form values stay open.
    for (collection, field) in
        [(POLICY_COLLECTION, "metadata"), (CONFIG_COLLECTION, "value"), (METRICS_COLLECTION, "data")]
    {
        assert!(schema(collection)["properties"][field].get("type").is_none(), "{collection}.{field}");
    }
}
