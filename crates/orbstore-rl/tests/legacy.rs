//! Orb's Luna and Te stores, and the legacy import of EmotiStream's and Orb's JSON files, on
//! every backend (`<test>::sqlite`): memory, file and SQLite always; PostgreSQL and MongoDB (each
//! in a schema or database of its own) ignored when `ORBSTORE_TEST_POSTGRES_URL` /
//! `ORBSTORE_TEST_MONGODB_URL` was not set at build time (see `build.rs`).
//!
//! The import tests guard the promises of `orbstore_rl::import`: both `Map` serializations give
//! the same data, a missing file is skipped, a file with bad JSON or a bad shape is refused with
//! its name and the position or entry, and nothing of it is written while the other files are,
//! and importing twice leaves the same documents.

use std::collections::BTreeMap;
use std::path::Path;

use orbstore::{BackendConfig, Config, Document, ErrorKind, Query, Store};
use orbstore_rl::import::{import_emotistream, import_orb, FileStatus, ImportReport};
use orbstore_rl::*;
use serde_json::{json, Value};

/// A backend and how to open it again (`None` for memory).
struct Target {
    name: &'static str,
    config: Option<Config>,
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    async fn reopen(&self) -> Option<Store> {
        let cfg = self.config.clone()?;
        self.store.close().await.unwrap();
        Some(orbstore::open(cfg).await.unwrap())
    }
}

/// A fresh store of one backend: `memory`, `file`, `sqlite`, `postgres` or `mongodb`.
async fn target(name: &'static str) -> Target {
    let (config, dir) = match name {
        "memory" => {
            let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
            return Target { name, config: None, store, _dir: None };
        }
        "file" => {
            let dir = tempfile::tempdir().unwrap();
            (url_config(format!("file://{}", dir.path().display())), Some(dir))
        }
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            (url_config(format!("sqlite://{}", dir.path().join("rl.sqlite3").display())), Some(dir))
        }
        // `orbtest_<UUIDv7>`: the PostgreSQL tests' sweeper recognizes (and drops, an hour on) what
        // a panicking test leaves behind.
        "postgres" => {
            let url = orbstore_testkit::containers::postgres_url()
                .expect("this test needs a PostgreSQL server: ORBSTORE_TEST_POSTGRES_URL or a Docker engine");
            let sep = if url.contains('?') { '&' } else { '?' };
            (url_config(format!("{url}{sep}schema={}", unique_name())), None)
        }
        "mongodb" => {
            let url = server_url("ORBSTORE_TEST_MONGODB_URL");
            let (base, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
            (url_config(format!("{}/{}?{query}", base.trim_end_matches('/'), unique_name())), None)
        }
        other => panic!("no backend {other}"),
    };
    let store = orbstore::open(config.clone()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    Target { name, config: Some(config), store, _dir: dir }
}

fn url_config(url: String) -> Config {
    Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap()
}

fn unique_name() -> String {
    format!("orbtest_{}", orbstore::generate_id().replace('-', ""))
}

/// A server's URL; a panic without it (the test is ignored then, unless run with `--ignored`).
fn server_url(var: &str) -> String {
    std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| panic!("this test needs {var}"))
}

/// Drops the schema or database a test used on a server backend.
async fn cleanup(t: &Target, store: &Store) {
    let _ = store.close().await;
    match t.config.as_ref().map(|c| &c.backend) {
        Some(BackendConfig::Postgres(pg)) => {
            let mut pg = pg.clone();
            pg.pool_size = 1;
            let b = orbstore_postgres::PostgresBackend::open(pg.clone()).await.unwrap();
            let c = b.raw_client().await.unwrap();
            c.batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", pg.schema)).await.unwrap();
        }
        Some(BackendConfig::Mongo(m)) => {
            let b = orbstore_mongo::MongoBackend::open(m.clone()).await.unwrap();
            b.database().drop().await.unwrap();
        }
        _ => {}
    }
}

/// Each listed test once per backend, as `<test>::memory`, `::file`, `::sqlite`, `::postgres` and
/// `::mongodb`; the server ones are ignored when their URL was not set at build time (see
/// `build.rs`).
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn memory() {
                super::$test(super::target("memory").await).await
            }

            #[tokio::test]
            async fn file() {
                super::$test(super::target("file").await).await
            }

            #[tokio::test]
            async fn sqlite() {
                super::$test(super::target("sqlite").await).await
            }

            #[tokio::test]
            #[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
            async fn postgres() {
                super::$test(super::target("postgres").await).await
            }

            #[tokio::test]
            #[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
            async fn mongodb() {
                super::$test(super::target("mongodb").await).await
            }
        }
    )*};
}

on_every_backend!(
    luna_profiles_are_kept_per_user_and_mode_with_an_active_mode,
    te_reflections_are_listed_newest_first_per_session_with_their_user,
    experiences_put_by_id_replace_what_is_stored_under_it,
    emotistream_files_in_either_map_serialization_import_the_same_data_and_again_change_nothing,
    orb_files_import_into_luna_and_te_and_again_change_nothing,
    a_missing_file_is_skipped_and_the_others_are_imported,
    a_file_with_bad_json_is_refused_with_its_line_and_column_and_nothing_of_it_is_written,
    a_wrongly_shaped_file_is_refused_naming_the_entry_and_nothing_of_it_is_written,
);

// ---------------------------------------------------------------------------------------------
// The stores

async fn luna_profiles_are_kept_per_user_and_mode_with_an_active_mode(t: Target) {
    let luna = LunaPreferenceStore::open(&*t.store).await.unwrap();
    assert_eq!(luna.get_profile("ada", "focus").await.unwrap(), None);
    assert_eq!(luna.active_mode("ada").await.unwrap(), None);
    let focus = LunaProfile {
        user: "ada".into(),
        mode: "focus".into(),
        preferences: vec![json!("short answers"), json!({"theme": "dark"})],
        constraints: vec![json!("no notifications after 22:00")],
        updated_at: 1_714_564_800_000,
    };
    luna.set_profile(&focus).await.unwrap();
    luna.set_profile(&LunaProfile::new("ada", "relax", vec![json!("music")], vec![])).await.unwrap();
    luna.set_profile(&LunaProfile::new("bob", "focus", vec![], vec![])).await.unwrap();
    assert_eq!(luna.get_profile("ada", "focus").await.unwrap().as_ref(), Some(&focus), "{}", t.name);
    assert_eq!(luna.modes("ada").await.unwrap(), ["focus", "relax"]);
    assert_eq!(luna.modes("nobody").await.unwrap(), Vec::<String>::new());
    luna.set_active_mode("ada", "relax").await.unwrap();
    luna.set_active_mode("ada", "focus").await.unwrap();
    assert_eq!(luna.active_mode("ada").await.unwrap().as_deref(), Some("focus"), "the last one set");
    assert_eq!(luna.active_profile("ada").await.unwrap().as_ref(), Some(&focus));
    assert_eq!(luna.active_mode("bob").await.unwrap(), None);
    assert_eq!(luna.active_profile("bob").await.unwrap(), None);
    // Setting a profile again replaces it: still three.
    let mut changed = focus.clone();
    changed.preferences.push(json!("bullet points"));
    luna.set_profile(&changed).await.unwrap();
    assert_eq!(luna.count().await.unwrap(), 3, "{}", t.name);
    assert_eq!(luna.get_profile("ada", "focus").await.unwrap().unwrap().preferences.len(), 3);
    let empty = LunaProfile::new("", "focus", vec![], vec![]);
    assert_eq!(luna.set_profile(&empty).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(luna.set_active_mode("ada", "").await.unwrap_err().kind(), ErrorKind::InvalidInput);
    if let Some(store) = t.reopen().await {
        let again = LunaPreferenceStore::open(&*store).await.unwrap();
        assert_eq!(again.get_profile("ada", "focus").await.unwrap(), Some(changed), "{}", t.name);
        assert_eq!(again.active_mode("ada").await.unwrap().as_deref(), Some("focus"));
        cleanup(&t, &store).await;
    }
}

fn reflection(session: &str, id: &str, created_at: u64) -> Reflection {
    Reflection {
        id: id.into(),
        session: session.into(),
        input: format!("what went well in {id}?"),
        output: "the plan held".into(),
        tags: vec!["retro".into()],
        notes: None,
        created_at,
    }
}

async fn te_reflections_are_listed_newest_first_per_session_with_their_user(t: Target) {
    let te = TeReflectionStore::open(&*t.store).await.unwrap();
    te.add(&reflection("s1", "r1", 1_000)).await.unwrap();
    te.add(&reflection("s1", "r2", 3_000)).await.unwrap();
    te.add(&reflection("s1", "r3", 2_000)).await.unwrap();
    // The same reflection id in another session is another reflection.
    te.add(&reflection("s2", "r1", 5_000)).await.unwrap();
    let ids = |rs: Vec<Reflection>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(te.by_session("s1").await.unwrap()), ["r2", "r3", "r1"], "{}: newest first", t.name);
    assert_eq!(te.count().await.unwrap(), 4);
    assert_eq!(te.count_in("s1").await.unwrap(), 3);
    let mut noted = reflection("s1", "r1", 1_000);
    noted.notes = Some("revisit on Friday".into());
    te.add(&noted).await.unwrap();
    assert_eq!(te.count().await.unwrap(), 4, "adding an id the session holds replaces it");
    assert_eq!(te.get("s1", "r1").await.unwrap().as_ref(), Some(&noted), "{}", t.name);
    assert_eq!(te.get("s2", "r1").await.unwrap().unwrap().created_at, 5_000);
    te.set_session_user("s1", "ada").await.unwrap();
    te.set_session_user("s2", "ada").await.unwrap();
    te.set_session_user("s3", "bob").await.unwrap();
    assert_eq!(te.sessions_of("ada").await.unwrap(), ["s1", "s2"], "{}", t.name);
    assert_eq!(te.session_user("s3").await.unwrap().as_deref(), Some("bob"));
    assert_eq!(te.session_user("s9").await.unwrap(), None);
    assert!(te.by_session("s9").await.unwrap().is_empty());
    assert_eq!(te.add(&reflection("s1", "", 1)).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    if let Some(store) = t.reopen().await {
        let again = TeReflectionStore::open(&*store).await.unwrap();
        assert_eq!(ids(again.by_session("s1").await.unwrap()), ["r2", "r3", "r1"], "{}", t.name);
        assert_eq!(again.sessions_of("ada").await.unwrap(), ["s1", "s2"]);
        cleanup(&t, &store).await;
    }
}

fn experience(id: &str, user: &str, reward: f64) -> Experience {
    let mut e = Experience::new(user, "calm", "c1", reward, "calm");
    e.id = id.into();
    e
}

async fn experiences_put_by_id_replace_what_is_stored_under_it(t: Target) {
    let xs = ExperienceStore::open(&*t.store, None).await.unwrap();
    // Opened before anything is stored: it must still replace what the other handle stores.
    let other = ExperienceStore::open(&*t.store, None).await.unwrap();
    assert_eq!(
        xs.put_batch(vec![experience("x1", "u1", 1.0), experience("x2", "u1", 1.0)]).await.unwrap(),
        2
    );
    let moved = experience("x1", "u2", 5.0);
    let batch = vec![moved.clone(), experience("x2", "u1", 2.0), experience("x2", "u1", 3.0)];
    assert_eq!(other.put_batch(batch).await.unwrap(), 2, "{}: x2 twice, the last wins", t.name);
    assert_eq!(other.by_user("u2"), [moved], "{}: x1 moved to u2", t.name);
    assert_eq!(other.by_user("u1").iter().map(|e| e.reward).collect::<Vec<_>>(), [3.0]);
    assert_eq!(xs.put_batch(vec![experience("x1", "u2", 5.0)]).await.unwrap(), 1);
    assert_eq!(xs.by_user("u1").len(), 1, "{}: the index follows the replaced experience", t.name);
    let bad = vec![experience("x3", "u1", 1.0), experience("x4", "u1", f64::NAN)];
    assert_eq!(xs.put_batch(bad).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(xs.get("x3").is_none(), "nothing of a refused batch is written");
    assert_eq!(xs.put_batch(Vec::new()).await.unwrap(), 0);
    if let Some(store) = t.reopen().await {
        let again = ExperienceStore::open(&*store, None).await.unwrap();
        assert_eq!(again.len(), 2, "{}", t.name);
        assert_eq!(again.get("x1").unwrap().user, "u2");
        assert_eq!(again.get("x2").unwrap().reward, 3.0);
        cleanup(&t, &store).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The import

fn write(dir: &Path, file: &str, content: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// EmotiStream's Q-table entries, keyed as EmotiStream keys them (`<state>:<content>`).
fn q_entries() -> Vec<(String, Value)> {
    [
        ("v:-0.4|a:0.6|s:0.8", "content-calm-ocean", 0.72, 14, 1_714_564_800_000u64),
        ("v:-0.4|a:0.6|s:0.8", "content-upbeat-pop", -0.15, 3, 1_714_565_000_000),
        ("v:0.5|a:0.2|s:0.1", "content-calm-ocean", 0.05, 1, 1_714_566_000_000),
    ]
    .into_iter()
    .map(|(s, c, q, n, at)| {
        (
            format!("{s}:{c}"),
            json!({"stateHash": s, "contentId": c, "qValue": q, "visitCount": n, "lastUpdated": at}),
        )
    })
    .collect()
}

fn experience_entries() -> Vec<(String, Value)> {
    (0..4)
        .map(|i| {
            let id = format!("exp-{i:03}");
            let mut v = json!({
                "id": id, "userId": if i < 3 { "user-ada" } else { "user-bob" },
                "stateHash": "v:-0.4|a:0.6|s:0.8", "contentId": format!("content-{i}"),
                "reward": 0.25 * i as f64, "nextStateHash": "v:0.5|a:0.2|s:0.1",
                "timestamp": 1_714_564_800_000u64 + i * 60_000, "completed": i % 2 == 0,
                "watchDuration": 1_800
            });
            if i == 3 {
                // Experiences whose content was not watched have no duration.
                v["watchDuration"] = Value::Null;
            }
            (id, v)
        })
        .collect()
}

fn profile_entries() -> Vec<(String, Value)> {
    vec![
        (
            "user-ada".into(),
            json!({"userId": "user-ada", "explorationRate": 0.181, "totalExperiences": 100,
                   "policyVersion": 3, "createdAt": 1_714_000_000_000u64, "updatedAt": 1_714_564_800_000u64}),
        ),
        // A `Date` serialized by `JSON.stringify` is an ISO string.
        (
            "user-bob".into(),
            json!({"userId": "user-bob", "explorationRate": 0.3, "totalExperiences": 0,
                   "policyVersion": 0, "createdAt": "2024-05-01T12:00:00.000Z",
                   "updatedAt": "2024-05-01T14:00:00.250+02:00"}),
        ),
    ]
}

/// `JSON.stringify([...map])`.
fn as_pairs(entries: &[(String, Value)]) -> String {
    pretty(&Value::Array(entries.iter().map(|(k, v)| json!([k, v])).collect()))
}

/// `JSON.stringify(Object.fromEntries(map))`.
fn as_object(entries: &[(String, Value)]) -> String {
    pretty(&Value::Object(entries.iter().cloned().collect()))
}

fn emotistream_dir(pairs: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ser = if pairs { as_pairs } else { as_object };
    write(dir.path(), "qtable.json", &ser(&q_entries()));
    write(dir.path(), "experiences.json", &ser(&experience_entries()));
    write(dir.path(), "user-profiles.json", &ser(&profile_entries()));
    dir
}

/// Every document of every collection, by collection.
async fn everything(store: &Store) -> BTreeMap<String, Vec<Document>> {
    let mut out = BTreeMap::new();
    for name in store.list_collections().await.unwrap() {
        let docs = store.collection(&name).await.unwrap().find(&Query::all()).await.unwrap();
        out.insert(name, docs);
    }
    out
}

fn statuses(r: &ImportReport) -> Vec<(&str, FileStatus, usize)> {
    r.files.iter().map(|f| (f.file.as_str(), f.status, f.imported)).collect()
}

async fn emotistream_files_in_either_map_serialization_import_the_same_data_and_again_change_nothing(
    t: Target,
) {
    let pairs = emotistream_dir(true);
    let report = import_emotistream(&*t.store, pairs.path()).await.unwrap();
    let expected = vec![
        ("qtable.json", FileStatus::Imported, 3),
        ("experiences.json", FileStatus::Imported, 4),
        ("user-profiles.json", FileStatus::Imported, 2),
    ];
    assert_eq!(statuses(&report), expected, "{}: {report:?}", t.name);
    assert!(report.is_success() && report.imported() == 9);

    let q = QTable::open(&*t.store).await.unwrap();
    let e = q.get("v:-0.4|a:0.6|s:0.8", "content-calm-ocean").unwrap();
    assert_eq!((e.value, e.visits, e.updated_at), (0.72, 14, 1_714_564_800_000), "{}", t.name);
    assert_eq!(q.best_action("v:-0.4|a:0.6|s:0.8").as_deref(), Some("content-calm-ocean"));
    assert_eq!(q.stats().entries, 3);
    let xs = ExperienceStore::open(&*t.store, None).await.unwrap();
    assert_eq!(xs.by_user("user-ada").len(), 3, "{}", t.name);
    let x = xs.get("exp-002").unwrap();
    assert_eq!(
        (x.user.as_str(), x.action.as_str(), x.reward, x.timestamp, x.completed, x.watch_duration),
        ("user-ada", "content-2", 0.5, 1_714_564_920_000, true, Some(1_800.0))
    );
    assert_eq!(xs.get("exp-003").unwrap().watch_duration, None);
    let profiles = UserProfileStore::open(&*t.store).await.unwrap();
    let ada = profiles.get("user-ada").await.unwrap().unwrap();
    assert_eq!(
        (ada.exploration_rate, ada.experiences, ada.policy_version, ada.created_at),
        (0.181, 100, 3, 1_714_000_000_000)
    );
    let bob = profiles.get("user-bob").await.unwrap().unwrap();
    assert_eq!((bob.created_at, bob.updated_at), (1_714_564_800_000, 1_714_564_800_250), "{}", t.name);
    drop((q, xs));

    let before = everything(&t.store).await;
    // The same data as objects, then the pairs again: the same documents, no more of them.
    let objects = emotistream_dir(false);
    let again = import_emotistream(&*t.store, objects.path()).await.unwrap();
    assert_eq!(statuses(&again), expected, "{}: {again:?}", t.name);
    assert_eq!(everything(&t.store).await, before, "{}: objects import the same documents", t.name);
    let third = import_emotistream(&*t.store, pairs.path()).await.unwrap();
    assert_eq!(statuses(&third), expected);
    assert_eq!(everything(&t.store).await, before, "{}: importing again changes nothing", t.name);
    if let Some(store) = t.reopen().await {
        assert_eq!(everything(&store).await, before, "{}", t.name);
        cleanup(&t, &store).await;
    }
}

fn orb_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let luna = json!({
        "user-ada": {
            "activeMode": "focus",
            "profiles": {
                "focus": {"userId": "user-ada", "modeId": "focus",
                          "preferences": ["short answers", "code first"],
                          "constraints": ["no meetings before 10:00"],
                          "updatedAt": "2024-05-01T12:00:00.000Z"},
                "relax": {"userId": "user-ada", "modeId": "relax", "preferences": ["ambient music"],
                          "constraints": [], "updatedAt": "2024-04-30T20:15:00Z"}
            }
        },
        "user-bob": {"activeMode": null, "profiles": {
            "focus": {"userId": "user-bob", "modeId": "focus", "preferences": [], "constraints": [],
                      "updatedAt": "2024-05-02T08:00:00+01:00"}
        }}
    });
    let te = json!({
        "sessions": {
            "sess-1": [
                {"id": "r-1", "input": "I keep postponing the report", "output": "Split it in three parts",
                 "tags": ["procrastination", "work"], "notes": "", "createdAt": "2024-05-01T09:00:00Z"},
                {"id": "r-2", "input": "Finished part one", "output": "Good: schedule part two",
                 "tags": ["progress"], "notes": null, "createdAt": "2024-05-01T17:30:00Z"}
            ],
            "sess-2": [
                {"id": "r-1", "input": "Slept badly", "output": "Keep the evening screen-free",
                 "tags": [], "notes": "check again in a week", "createdAt": 1_714_636_800_000u64}
            ]
        },
        "userSessions": {"user-ada": ["sess-1"], "user-bob": ["sess-2"]}
    });
    write(dir.path(), "luna/profiles.json", &pretty(&luna));
    write(dir.path(), "te/reflections.json", &pretty(&te));
    dir
}

async fn orb_files_import_into_luna_and_te_and_again_change_nothing(t: Target) {
    let dir = orb_dir();
    let report = import_orb(&*t.store, dir.path()).await.unwrap();
    let expected = vec![
        ("luna/profiles.json", FileStatus::Imported, 3),
        ("te/reflections.json", FileStatus::Imported, 3),
    ];
    assert_eq!(statuses(&report), expected, "{}: {report:?}", t.name);

    let luna = LunaPreferenceStore::open(&*t.store).await.unwrap();
    assert_eq!(luna.modes("user-ada").await.unwrap(), ["focus", "relax"], "{}", t.name);
    let active = luna.active_profile("user-ada").await.unwrap().unwrap();
    assert_eq!(active.mode, "focus");
    assert_eq!(active.preferences, [json!("short answers"), json!("code first")]);
    assert_eq!(active.constraints, [json!("no meetings before 10:00")]);
    assert_eq!(active.updated_at, 1_714_564_800_000);
    assert_eq!(luna.active_mode("user-bob").await.unwrap(), None, "activeMode null: none active");
    assert_eq!(luna.get_profile("user-bob", "focus").await.unwrap().unwrap().updated_at, 1_714_633_200_000);

    let te = TeReflectionStore::open(&*t.store).await.unwrap();
    let s1 = te.by_session("sess-1").await.unwrap();
    assert_eq!(s1.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r-2", "r-1"], "{}", t.name);
    assert_eq!(s1[1].tags, ["procrastination", "work"]);
    assert_eq!((s1[1].notes.as_deref(), s1[0].notes.as_deref()), (Some(""), None));
    assert_eq!(s1[1].created_at, 1_714_554_000_000);
    assert_eq!(
        te.get("sess-2", "r-1").await.unwrap().unwrap().notes.as_deref(),
        Some("check again in a week")
    );
    assert_eq!(te.sessions_of("user-ada").await.unwrap(), ["sess-1"]);
    assert_eq!(te.session_user("sess-2").await.unwrap().as_deref(), Some("user-bob"));
    assert_eq!(te.count().await.unwrap(), 3);

    let before = everything(&t.store).await;
    let again = import_orb(&*t.store, dir.path()).await.unwrap();
    assert_eq!(statuses(&again), expected);
    assert_eq!(everything(&t.store).await, before, "{}: importing again changes nothing", t.name);
    if let Some(store) = t.reopen().await {
        cleanup(&t, &store).await;
    }
}

async fn a_missing_file_is_skipped_and_the_others_are_imported(t: Target) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "qtable.json", &as_object(&q_entries()));
    let report = import_emotistream(&*t.store, dir.path()).await.unwrap();
    assert_eq!(
        statuses(&report),
        [
            ("qtable.json", FileStatus::Imported, 3),
            ("experiences.json", FileStatus::Missing, 0),
            ("user-profiles.json", FileStatus::Missing, 0),
        ],
        "{}",
        t.name
    );
    assert!(report.is_success(), "a missing file is not a failure");
    assert!(report.files.iter().all(|f| f.error.is_none()));
    assert_eq!(QTable::open(&*t.store).await.unwrap().stats().entries, 3);
    let collections = t.store.list_collections().await.unwrap();
    assert!(
        !collections.iter().any(|c| c == EXPERIENCE_COLLECTION || c == PROFILE_COLLECTION),
        "{collections:?}"
    );

    let orb = tempfile::tempdir().unwrap();
    let report = import_orb(&*t.store, orb.path()).await.unwrap();
    assert!(report.is_success() && report.files.iter().all(|f| f.status == FileStatus::Missing));
    let missing = import_orb(&*t.store, &orb.path().join("nowhere")).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::InvalidInput, "{}: a directory that is not there", t.name);
    assert!(missing.to_string().contains("nowhere"), "{missing}");
    if let Some(store) = t.reopen().await {
        cleanup(&t, &store).await;
    }
}

async fn a_file_with_bad_json_is_refused_with_its_line_and_column_and_nothing_of_it_is_written(t: Target) {
    let dir = emotistream_dir(true);
    // A truncated write: the second pair is cut off in the middle of line 3.
    write(
        dir.path(),
        "experiences.json",
        "[\n  [\"exp-000\", {\"id\": \"exp-000\"}],\n  [\"exp-001\", {\"id\": \n",
    );
    let report = import_emotistream(&*t.store, dir.path()).await.unwrap();
    assert_eq!(
        statuses(&report),
        [
            ("qtable.json", FileStatus::Imported, 3),
            ("experiences.json", FileStatus::Failed, 0),
            ("user-profiles.json", FileStatus::Imported, 2),
        ],
        "{}",
        t.name
    );
    assert!(!report.is_success());
    let err = report.files[1].error.as_deref().unwrap();
    assert!(err.starts_with("experiences.json: not valid JSON: "), "{err}");
    assert!(err.contains("line 4 column 0"), "{err}");
    assert_eq!(ExperienceStore::open(&*t.store, None).await.unwrap().len(), 0, "{}", t.name);

    // Orb: Te's file is bad, Luna's is still imported.
    let orb = orb_dir();
    write(orb.path(), "te/reflections.json", "{\"sessions\": {\"s\": [}}");
    let report = import_orb(&*t.store, orb.path()).await.unwrap();
    assert_eq!(report.files[0].status, FileStatus::Imported);
    let err = report.failed().next().unwrap().error.clone().unwrap();
    assert!(
        err.starts_with("te/reflections.json: not valid JSON: ") && err.contains("line 1 column 21"),
        "{err}"
    );
    assert_eq!(TeReflectionStore::open(&*t.store).await.unwrap().count().await.unwrap(), 0);
    if let Some(store) = t.reopen().await {
        cleanup(&t, &store).await;
    }
}

async fn a_wrongly_shaped_file_is_refused_naming_the_entry_and_nothing_of_it_is_written(t: Target) {
    let dir = emotistream_dir(true);
    // Two good entries first: an import writing as it reads would have stored them.
    let mut q = q_entries();
    q.push((
        "s1:c2".into(),
        json!({"stateHash": "s1", "contentId": "c2", "qValue": "x", "visitCount": 1,
                                     "lastUpdated": 1_714_564_800_000u64}),
    ));
    write(dir.path(), "qtable.json", &as_pairs(&q));
    let mut profiles = profile_entries();
    profiles[1].1["explorationRate"] = json!(1.5);
    write(dir.path(), "user-profiles.json", &as_object(&profiles));
    let report = import_emotistream(&*t.store, dir.path()).await.unwrap();
    assert_eq!(
        statuses(&report),
        [
            ("qtable.json", FileStatus::Failed, 0),
            ("experiences.json", FileStatus::Imported, 4),
            ("user-profiles.json", FileStatus::Failed, 0),
        ],
        "{}",
        t.name
    );
    assert_eq!(
        report.files[0].error.as_deref(),
        Some(r#"qtable.json: entry "s1:c2": qValue must be a number, got "x""#)
    );
    assert_eq!(
        report.files[2].error.as_deref(),
        Some(r#"user-profiles.json: entry "user-bob": explorationRate must be within 0 and 1, got 1.5"#)
    );
    assert_eq!(
        QTable::open(&*t.store).await.unwrap().stats().entries,
        0,
        "{}: nothing of qtable.json",
        t.name
    );
    assert_eq!(UserProfileStore::open(&*t.store).await.unwrap().global_stats().await.unwrap().users, 0);

    // Orb: a reflection's tags are not strings; a profile filed under the wrong user.
    let orb = orb_dir();
    let path = orb.path().join("te/reflections.json");
    let mut te: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    te["sessions"]["sess-2"][0]["tags"] = json!(["sleep", 7]);
    write(orb.path(), "te/reflections.json", &pretty(&te));
    let path = orb.path().join("luna/profiles.json");
    let mut luna: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    luna["user-bob"]["profiles"]["focus"]["userId"] = json!("user-ada");
    write(orb.path(), "luna/profiles.json", &pretty(&luna));
    let report = import_orb(&*t.store, orb.path()).await.unwrap();
    assert_eq!(
        report.files[0].error.as_deref(),
        Some(
            r#"luna/profiles.json: user "user-bob", profile "focus": userId is "user-ada" but the profile is filed under "user-bob""#
        )
    );
    assert_eq!(
        report.files[1].error.as_deref(),
        Some(
            r#"te/reflections.json: session "sess-2", reflection "r-1": tags must be an array of strings, got ["sleep",7]"#
        )
    );
    assert_eq!(LunaPreferenceStore::open(&*t.store).await.unwrap().count().await.unwrap(), 0, "{}", t.name);
    assert_eq!(TeReflectionStore::open(&*t.store).await.unwrap().count().await.unwrap(), 0);
    if let Some(store) = t.reopen().await {
        cleanup(&t, &store).await;
    }
}
