//! Every store on every backend, one test per store and backend (`<test>::sqlite`): memory, file
//! and SQLite always; PostgreSQL and MongoDB (each in a schema or database of its own) ignored when
//! `ORBSTORE_TEST_POSTGRES_URL` / `ORBSTORE_TEST_MONGODB_URL` was not set at build time (see
//! `build.rs`). Persistence across a restart on the persistent ones.

use std::time::Duration;

use orbstore::{BackendConfig, Config, ErrorKind, Store};
use orbstore_rl::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

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
        "memory" => return Target { name, config: None, store: memory().await, _dir: None },
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

async fn memory() -> Store {
    orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap()
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
    qtable_learns_by_the_formula_and_survives_a_restart,
    experiences_are_queried_sampled_evicted_and_survive_a_restart,
    disk_backed_experiences_are_the_stored_ones_and_keep_their_priorities,
    experiences_of_one_time_are_ordered_by_id_as_the_collection_sorts_them,
    profiles_decay_exploration_and_keep_their_counts,
    metrics_are_queried_by_type_and_time,
    twenty_concurrent_policy_saves_leave_one_active_version_and_a_lineage,
    configuration_is_versioned_with_parents,
    events_are_queried_newest_first_joined_with_metadata_and_archived,
);

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

#[test]
fn exploration_decays_as_computed_by_hand() {
    assert_eq!(decayed_exploration(0), 0.3);
    assert!((decayed_exploration(1) - 0.2985).abs() < 1e-12);
    assert!((decayed_exploration(100) - 0.3 * 0.995f64.powi(100)).abs() < 1e-12);
    assert!((decayed_exploration(100) - 0.181_730_359).abs() < 1e-6);
    assert_eq!(decayed_exploration(1_000), 0.05);
    assert_eq!(decayed_exploration(u64::MAX), 0.05);
}

async fn qtable_learns_by_the_formula_and_survives_a_restart(t: Target) {
    let q = QTable::open(&*t.store).await.unwrap();
    // Q(s,a) = 0 + 0.1 * (1 + 0.9 * 0 - 0) = 0.1 (s2 unknown: max is 0)
    assert!((q.update("s1", "a", 1.0, "s2", 0.1, 0.9).await.unwrap() - 0.1).abs() < 1e-12, "{}", t.name);
    q.set("s2", "b", 2.0).await.unwrap();
    q.set("s2", "c", -1.0).await.unwrap();
    // 0.1 + 0.1 * (1 + 0.9 * 2 - 0.1) = 0.37
    assert!((q.update("s1", "a", 1.0, "s2", 0.1, 0.9).await.unwrap() - 0.37).abs() < 1e-12);
    assert_eq!(q.q_value("nowhere", "x"), 0.0);
    assert_eq!(q.best_action("s2").as_deref(), Some("b"));
    assert_eq!(q.state_actions("s2"), vec![("b".to_owned(), 2.0), ("c".to_owned(), -1.0)]);
    assert_eq!(q.get("s1", "a").unwrap().visits, 2);
    let st = q.stats();
    assert_eq!((st.entries, st.states, st.max), (3, 2, Some(2.0)));
    assert!((st.mean - (0.37 + 2.0 - 1.0) / 3.0).abs() < 1e-12);
    assert_eq!(q.update("s", "a", 1.0, "t", 1.5, 0.9).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    q.flush().await.unwrap();
    assert_eq!(q.status().unsaved, 0);
    if let Some(store) = t.reopen().await {
        let q2 = QTable::open(&*store).await.unwrap();
        assert_eq!(q2.q_value("s1", "a"), 0.37, "{}", t.name);
        assert_eq!(q2.stats().entries, 3);
        // The per-state index is rebuilt at open.
        assert_eq!(q2.state_actions("s2"), vec![("b".to_owned(), 2.0), ("c".to_owned(), -1.0)]);
        assert_eq!(q2.stats().states, 2);
        q2.clear().await.unwrap();
        assert!(q2.state_actions("s2").is_empty() && q2.best_action("s1").is_none());
        q2.flush().await.unwrap();
        assert_eq!(QTable::open(&*store).await.unwrap().stats().entries, 0, "{}", t.name);
        cleanup(&t, &store).await;
    }
}

#[tokio::test]
async fn epsilon_greedy_selection_is_reproducible_with_a_seed() {
    let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    let q = QTable::open(&*store).await.unwrap();
    q.set("s", "b", 1.0).await.unwrap();
    q.set("s", "c", 3.0).await.unwrap();
    let cands: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut rng = StdRng::seed_from_u64(7);
    assert_eq!(q.select_actions("s", &cands, 0.0, &mut rng), ["c", "b", "a"]);
    let explored: Vec<Vec<String>> = (0..20).map(|_| q.select_actions("s", &cands, 1.0, &mut rng)).collect();
    let mut again = StdRng::seed_from_u64(7);
    let _ = q.select_actions("s", &cands, 0.0, &mut again);
    let replay: Vec<Vec<String>> = (0..20).map(|_| q.select_actions("s", &cands, 1.0, &mut again)).collect();
    assert_eq!(explored, replay, "the same seed gives the same choices");
    assert!(explored.iter().any(|o| o[0] != "c"), "exploration picks other actions");
}

#[tokio::test]
async fn the_save_policy_saves_by_count_by_quiet_period_and_keeps_data_when_saving_fails() {
    let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    let policy = SavePolicy {
        every_updates: 10,
        interval: Duration::from_secs(3600),
        debounce: Duration::from_secs(3600),
    };
    let q = QTable::open_with(&*store, policy).await.unwrap();
    let coll = store.collection(Q_COLLECTION).await.unwrap();
    for i in 0..9 {
        q.set("s", &format!("a{i}"), i as f64).await.unwrap();
    }
    assert_eq!(coll.count(&orbstore::Filter::All).await.unwrap(), 0, "9 updates: not yet");
    assert_eq!(q.status().unsaved, 9);
    q.set("s", "a9", 9.0).await.unwrap();
    assert_eq!(coll.count(&orbstore::Filter::All).await.unwrap(), 10, "the 10th update saves");
    assert!(q.status().last_save.is_some());

    let quick = SavePolicy {
        every_updates: 1000,
        interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
    };
    let store2 = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    let q2 = QTable::open_with(&*store2, quick).await.unwrap();
    q2.set("s", "a", 1.0).await.unwrap();
    let c2 = store2.collection(Q_COLLECTION).await.unwrap();
    for _ in 0..100 {
        if c2.count(&orbstore::Filter::All).await.unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c2.count(&orbstore::Filter::All).await.unwrap(), 1, "saved after the quiet period");

    // Saving fails (the store is closed): the value stays, the error is reported, and
    // flush_all reports it too.
    q2.set("s", "a", 5.0).await.unwrap();
    store2.close().await.unwrap();
    assert!(q2.flush().await.is_err());
    let status = q2.status();
    assert!(status.unsaved >= 1 && status.last_error.is_some(), "{status:?}");
    assert_eq!(q2.q_value("s", "a"), 5.0);
    assert!(flush_all().await.is_err());
}

fn exp(user: &str, i: usize, reward: f64, completed: bool) -> Experience {
    let mut e =
        Experience::new(user, &format!("s{i}"), &format!("a{}", i % 3), reward, &format!("s{}", i + 1));
    e.timestamp = 1_000_000 + i as u64;
    e.completed = completed;
    e
}

async fn experiences_are_queried_sampled_evicted_and_survive_a_restart(t: Target) {
    let xs = ExperienceStore::open(&*t.store, Some(50)).await.unwrap();
    let batch: Vec<Experience> = (0..60).map(|i| exp("u1", i, i as f64 / 10.0, i % 4 == 0)).collect();
    xs.add_batch(batch).await.unwrap();
    xs.add(exp("u2", 0, 1.0, true)).await.unwrap();
    assert_eq!(xs.by_user("u1").len(), 50, "{}: capacity 50, FIFO", t.name);
    assert_eq!(xs.by_user("u1")[0].state, "s10", "the 10 oldest were evicted");
    assert_eq!(
        xs.recent("u1", 3).iter().map(|e| e.state.as_str()).collect::<Vec<_>>(),
        ["s59", "s58", "s57"]
    );
    assert_eq!(xs.completed("u1").len(), 12); // i % 4 == 0 within 10..60: 12, 16, ..., 56
    assert_eq!(xs.high_reward("u1", 5.5).len(), 5);
    let st = xs.stats("u1");
    assert_eq!(st.count, 50);
    assert!((st.mean_reward - 3.45).abs() < 1e-9, "{st:?}");
    let mut rng = StdRng::seed_from_u64(1);
    let s = xs.sample("u1", 32, &mut rng);
    let distinct: std::collections::HashSet<&str> = s.iter().map(|e| e.id.as_str()).collect();
    assert_eq!((s.len(), distinct.len()), (32, 32), "without replacement");
    assert_eq!(xs.sample("u2", 10, &mut rng).len(), 1);
    // A batch holds the same experiences, borrowed from one buffer.
    let batch = xs.sample_batch("u1", 32, &mut rng);
    assert_eq!(batch.len(), 32);
    for e in batch.iter() {
        assert_eq!(xs.get(e.id), Some(e.to_experience()), "{}", t.name);
    }
    let first = xs.by_user("u1")[0].id.clone();
    assert_eq!(xs.get(&first).unwrap().state, "s10");
    if let Some(store) = t.reopen().await {
        let again = ExperienceStore::open(&*store, Some(50)).await.unwrap();
        assert_eq!(again.by_user("u1").len(), 50, "{}: evictions were persisted", t.name);
        assert_eq!(again.len(), 51);
        assert_eq!(again.cleanup(Duration::from_secs(1)).await.unwrap(), 51, "all are old");
        assert!(again.is_empty());
        cleanup(&t, &store).await;
    }
}

/// The disk-backed mode holds only ids, priorities and what selection needs: everything it
/// returns is read from the collection, so each must be the stored experience (compared with a
/// memory-mode store over the same collection), in the memory mode's order; priorities set and
/// flushed are what a reopened disk-backed store samples by.
async fn disk_backed_experiences_are_the_stored_ones_and_keep_their_priorities(t: Target) {
    let xs = DiskExperienceStore::open(&*t.store, Some(50)).await.unwrap();
    let mut batch: Vec<Experience> = (0..60).map(|i| exp("u1", i, i as f64 / 10.0, i % 4 == 0)).collect();
    batch[59].watch_duration = Some(12.5);
    xs.add_batch(batch).await.unwrap();
    xs.add(exp("u2", 0, 1.0, true)).await.unwrap();
    let memory = ExperienceStore::open(&*t.store, Some(50)).await.unwrap();
    let by_user = xs.by_user("u1").await.unwrap();
    assert_eq!(by_user, memory.by_user("u1"), "{}: the same experiences in the same order", t.name);
    assert_eq!((by_user.len(), by_user[0].state.as_str()), (50, "s10"), "capacity 50, FIFO");
    assert_eq!(by_user[49].watch_duration, Some(12.5));
    assert_eq!(xs.recent("u1", 3).await.unwrap(), memory.recent("u1", 3));
    assert_eq!(xs.completed("u1").await.unwrap(), memory.completed("u1"));
    assert_eq!(xs.high_reward("u1", 5.5).await.unwrap().len(), 5);
    let (a, b) = (xs.stats("u1"), memory.stats("u1"));
    assert!(a.count == b.count && (a.mean_reward - b.mean_reward).abs() < 1e-9, "{a:?} {b:?}");
    assert!((a.completion_rate - b.completion_rate).abs() < 1e-9, "{a:?} {b:?}");
    assert_eq!(xs.get(&by_user[0].id).await.unwrap().as_ref(), Some(&by_user[0]));
    assert_eq!(xs.get("nowhere").await.unwrap(), None);
    let mut rng = StdRng::seed_from_u64(1);
    let s = xs.sample("u1", 32, &mut rng).await.unwrap();
    let distinct: std::collections::HashSet<&str> = s.iter().map(|e| e.id.as_str()).collect();
    assert_eq!((s.len(), distinct.len()), (32, 32), "{}: without replacement", t.name);
    for e in &s {
        assert_eq!(memory.get(&e.id).as_ref(), Some(e), "{}: a sampled experience is the stored one", t.name);
    }
    assert_eq!(xs.sample("u2", 10, &mut rng).await.unwrap().len(), 1);

    // One experience of priority 9 among 49 of 0.01: about 95% of the draws.
    let heavy = by_user[20].id.clone();
    let updates: Vec<(String, f64)> =
        by_user.iter().map(|e| (e.id.clone(), if e.id == heavy { 9.0 } else { 0.01 })).collect();
    xs.update_priorities(&updates).unwrap();
    xs.flush().await.unwrap();
    let check = |draws: Vec<(Experience, f64)>, when: &str| {
        let n = draws.iter().filter(|(e, p)| e.id == heavy && *p == 9.0).count();
        assert!((900..=990).contains(&n), "{}, {when}: {n} of 1000 draws for priority 9 of 9.49", t.name);
        for (e, _) in &draws {
            assert_eq!(
                memory.get(&e.id).as_ref(),
                Some(e),
                "{}: a drawn experience is the stored one",
                t.name
            );
        }
    };
    check(xs.sample_prioritized("u1", 1000, &mut rng).await.unwrap(), "as set");
    let second = DiskExperienceStore::open(&*t.store, Some(50)).await.unwrap();
    check(second.sample_prioritized("u1", 1000, &mut rng).await.unwrap(), "opened again");

    // Deleted behind the store's back: left out of what it returns, and forgotten.
    let raw = t.store.collection(EXPERIENCE_COLLECTION).await.unwrap();
    assert_eq!(raw.delete_one(&orbstore::Filter::eq("_id", by_user[0].id.as_str())).await.unwrap(), 1);
    assert_eq!(xs.sample("u1", 100, &mut rng).await.unwrap().len(), 49, "{}", t.name);
    assert_eq!((xs.len(), xs.stats("u1").count), (50, 49));

    if let Some(store) = t.reopen().await {
        let again = DiskExperienceStore::open(&*store, Some(50)).await.unwrap();
        assert_eq!(again.len(), 50, "{}", t.name);
        let draws = again.sample_prioritized("u1", 1000, &mut rng).await.unwrap();
        let n = draws.iter().filter(|(e, p)| e.id == heavy && *p == 9.0).count();
        assert!((900..=990).contains(&n), "{}, reopened: {n} of 1000 draws for priority 9", t.name);
        assert_eq!(again.cleanup(Duration::from_secs(1)).await.unwrap(), 50, "all are old");
        assert!(again.is_empty());
        cleanup(&t, &store).await;
    }
}

fn with_id(id: &str) -> Experience {
    let mut e = Experience::new("u", "s", "a", 1.0, "t");
    e.id = id.to_owned();
    e
}

/// Experiences of the same timestamp come in `_id` order, as the collection sorts them, in
/// both modes: the compact index compares generated ids (held as numbers) and other ids (held as
/// strings) as the strings they are.
async fn experiences_of_one_time_are_ordered_by_id_as_the_collection_sorts_them(t: Target) {
    let xs = ExperienceStore::open(&*t.store, None).await.unwrap();
    let mut batch: Vec<Experience> = ["zeta", "0190", "Alpha", "01", "ffff", "exp-002"]
        .iter()
        .map(|id| with_id(id))
        .chain((0..4).map(|_| with_id(&orbstore::generate_id())))
        .collect();
    for e in &mut batch {
        e.timestamp = 5;
    }
    xs.put_batch(batch).await.unwrap();
    let raw = t.store.collection(EXPERIENCE_COLLECTION).await.unwrap();
    let stored: Vec<String> = raw
        .find(&orbstore::Query::all().sort_asc("timestamp"))
        .await
        .unwrap()
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    let ids = |v: Vec<Experience>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(xs.by_user("u")), stored, "{}", t.name);
    let disk = DiskExperienceStore::open(&*t.store, None).await.unwrap();
    assert_eq!(ids(disk.by_user("u").await.unwrap()), stored, "{}", t.name);
    assert_eq!(ids(ExperienceStore::open(&*t.store, None).await.unwrap().by_user("u")), stored);
    if let Some(store) = t.reopen().await {
        cleanup(&t, &store).await;
    }
}

#[tokio::test]
async fn prioritized_sampling_follows_the_priorities() {
    let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    let xs = ExperienceStore::open(&*store, None).await.unwrap();
    xs.add_batch(vec![exp("u", 0, 0.0, false), exp("u", 1, 0.0, false)]).await.unwrap();
    let ids: Vec<String> = xs.by_user("u").iter().map(|e| e.id.clone()).collect();
    xs.update_priorities(&[(ids[0].clone(), 1.0), (ids[1].clone(), 9.0)]).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let draws = xs.sample_prioritized("u", 10_000, &mut rng);
    let heavy = draws.iter().filter(|(e, _)| e.id == ids[1]).count();
    assert!((8_800..=9_200).contains(&heavy), "{heavy} of 10000 draws for priority 9 of 10");
    assert_eq!(xs.update_priorities(&[(ids[0].clone(), -1.0)]).unwrap_err().kind(), ErrorKind::InvalidInput);
    // A new experience gets the highest priority seen.
    xs.add(exp("u", 2, 0.0, false)).await.unwrap();
    let newest = xs.recent("u", 1)[0].id.clone();
    let d = xs.sample_prioritized("u", 1900, &mut rng);
    assert!(d.iter().any(|(e, p)| e.id == newest && *p == 9.0));
    let b = xs.sample_prioritized_batch("u", 1900, &mut rng);
    assert!(b.iter().any(|e| e.id == newest && e.priority == 9.0));
    assert_eq!(
        b.iter().filter(|e| e.id == ids[1]).count() + b.iter().filter(|e| e.id != ids[1]).count(),
        1900
    );
}

/// Priorities are saved into the experiences' documents and read back at open: a reopened
/// buffer samples as before (they used to restart at 1). Saved by `flush`, and by the quiet
/// period without one; an experience evicted meanwhile is not brought back by its save.
#[tokio::test]
async fn priorities_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.sqlite3").display());
    let config = || Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap();
    let store = orbstore::open(config()).await.unwrap();
    let xs = ExperienceStore::open(&*store, Some(3)).await.unwrap();
    xs.add_batch((0..3).map(|i| exp("u", i, 0.0, false)).collect()).await.unwrap();
    let ids: Vec<String> = xs.by_user("u").iter().map(|e| e.id.clone()).collect();
    xs.update_priorities(&[(ids[0].clone(), 0.5), (ids[1].clone(), 9.0), (ids[2].clone(), 0.0)]).unwrap();
    xs.flush().await.unwrap();
    // Set again, then the oldest evicted before the quiet period saves: its save is a no-op.
    xs.update_priorities(&[(ids[0].clone(), 4.0), (ids[2].clone(), 2.0)]).unwrap();
    xs.add(exp("u", 9, 0.0, false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    drop(xs);
    store.close().await.unwrap();

    let store = orbstore::open(config()).await.unwrap();
    let raw = store.collection(EXPERIENCE_COLLECTION).await.unwrap();
    assert!(raw.find_by_id(&ids[0]).await.unwrap().is_none(), "the evicted experience stays deleted");
    let xs = ExperienceStore::open(&*store, Some(3)).await.unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let draws = xs.sample_prioritized("u", 3_000, &mut rng);
    let priority_of = |id: &str| draws.iter().find(|(e, _)| e.id == id).map(|(_, p)| *p);
    assert_eq!(priority_of(&ids[1]), Some(9.0), "saved by flush");
    assert_eq!(priority_of(&ids[2]), Some(2.0), "saved by the quiet period");
    let newest = xs.recent("u", 1)[0].id.clone();
    assert_eq!(
        priority_of(&newest),
        Some(9.0),
        "a new one had the highest priority seen: it was not saved, and is the highest at open"
    );
    let heavy = draws.iter().filter(|(e, _)| e.id == ids[1] || e.id == newest).count();
    assert!(heavy > 2_500, "{heavy} of 3000 draws for priorities 9 + 9 of 20");
    store.close().await.unwrap();
}

async fn profiles_decay_exploration_and_keep_their_counts(t: Target) {
    let p = UserProfileStore::open(&*t.store).await.unwrap();
    let created = p.create("ana").await.unwrap();
    assert_eq!(created.exploration_rate, 0.3);
    assert_eq!(p.create("ana").await.unwrap_err().kind(), ErrorKind::Conflict, "{}", t.name);
    assert_eq!(p.get_or_create("bo").await.unwrap().experiences, 0);
    let after = p.increment_experiences("ana", 100).await.unwrap();
    assert_eq!(after.experiences, 100);
    assert!((after.exploration_rate - 0.3 * 0.995f64.powi(100)).abs() < 1e-12);
    assert_eq!(p.update_exploration_rate("ana", 1.5).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(p.update_exploration_rate("ana", 0.7).await.unwrap().exploration_rate, 0.7);
    assert_eq!(p.increment_policy_version("ana").await.unwrap().policy_version, 1);
    assert_eq!(p.reset_exploration("ana").await.unwrap().exploration_rate, 0.3);
    let g = p.global_stats().await.unwrap();
    assert_eq!(g.users, 2);
    assert_eq!(g.most_experienced, Some(("ana".to_owned(), 100)));
    assert!((g.mean_exploration_rate - 0.3).abs() < 1e-12);
    if let Some(store) = t.reopen().await {
        let again = UserProfileStore::open(&*store).await.unwrap();
        assert_eq!(again.get("ana").await.unwrap().unwrap().policy_version, 1, "{}", t.name);
        cleanup(&t, &store).await;
    }
}

async fn metrics_are_queried_by_type_and_time(t: Target) {
    let m = LearningMetrics::open(&*t.store).await.unwrap();
    let before =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    m.record("episode_reward", json!({"episode": 1, "reward": 3.5}), None).await.unwrap();
    m.record("episode_reward", json!({"episode": 2, "reward": 4.0}), Some("policy-1")).await.unwrap();
    m.record("loss", json!(0.25), None).await.unwrap();
    let got = m.query("episode_reward", before, u64::MAX / 2).await.unwrap();
    assert_eq!(got.len(), 2, "{}", t.name);
    assert_eq!(got[1].related.as_deref(), Some("policy-1"));
    assert_eq!(m.count("loss").await.unwrap(), 1);
    assert!(m.query("episode_reward", 0, before).await.unwrap().is_empty());
    if let Some(store) = t.reopen().await {
        let again = LearningMetrics::open(&*store).await.unwrap();
        assert_eq!(again.count("episode_reward").await.unwrap(), 2, "{}", t.name);
        cleanup(&t, &store).await;
    }
}

async fn twenty_concurrent_policy_saves_leave_one_active_version_and_a_lineage(t: Target) {
    let p = PolicyStore::open(&*t.store).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let weights = std::collections::BTreeMap::from([("left".to_owned(), i as f64)]);
                p.save_policy("bin-1", &format!("rule-{i}"), weights, json!({"writer": i})).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let history = p.history("bin-1").await.unwrap();
    assert_eq!(history.len(), 20, "{}", t.name);
    assert_eq!(history.iter().map(|h| h.version).collect::<Vec<_>>(), (1..=20).rev().collect::<Vec<_>>());
    assert_eq!(history.iter().filter(|h| h.active).count(), 1, "{}: exactly one active", t.name);
    assert!(history[0].active && history[0].version == 20);
    for w in history.windows(2) {
        assert_eq!(w[0].parent.as_deref(), Some(w[1].id.as_str()), "{}: lineage", t.name);
    }
    assert_eq!(history[19].parent, None);
    let active = p.load_policy("bin-1").await.unwrap().unwrap();
    assert_eq!(active.version, 20);
    assert!(p.record_execution(&active.id, 1.0).await.unwrap());
    assert!(p.record_execution(&active.id, 0.5).await.unwrap());
    assert!(!p.record_execution("bin-1:v99", 1.0).await.unwrap());
    let again = p.load_policy("bin-1").await.unwrap().unwrap();
    assert_eq!(again.executions, 2);
    assert!((again.mean_reward() - 0.75).abs() < 1e-12);
    p.save_policy("bin-2", "r", Default::default(), json!(null)).await.unwrap();
    let best = p.active_by_mean_reward().await.unwrap();
    assert_eq!(best.iter().map(|b| b.state_bin.as_str()).collect::<Vec<_>>(), ["bin-1", "bin-2"]);
    if let Some(store) = t.reopen().await {
        let p2 = PolicyStore::open(&*store).await.unwrap();
        assert_eq!(p2.load_policy("bin-1").await.unwrap().unwrap().executions, 2, "{}", t.name);
        cleanup(&t, &store).await;
    }
}

async fn configuration_is_versioned_with_parents(t: Target) {
    let c = ConfigStore::open(&*t.store).await.unwrap();
    assert_eq!(c.load_config("router", "alpha").await.unwrap(), None);
    c.save_config("router", "alpha", json!(0.1)).await.unwrap();
    c.save_config("router", "alpha", json!(0.2)).await.unwrap();
    c.save_config("router", "gamma", json!({"v": 0.9})).await.unwrap();
    assert_eq!(c.load_config("router", "alpha").await.unwrap(), Some(json!(0.2)), "{}", t.name);
    let h = c.history("router", "alpha").await.unwrap();
    assert_eq!(h.iter().map(|e| e.value.clone()).collect::<Vec<_>>(), [json!(0.2), json!(0.1)]);
    assert_eq!(h[0].parent.as_deref(), Some(h[1].id.as_str()));
    assert_eq!(c.save_config("a/b", "k", json!(1)).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    if let Some(store) = t.reopen().await {
        let again = ConfigStore::open(&*store).await.unwrap();
        assert_eq!(again.load_config("router", "alpha").await.unwrap(), Some(json!(0.2)), "{}", t.name);
        assert_eq!(again.history("router", "gamma").await.unwrap().len(), 1);
        cleanup(&t, &store).await;
    }
}

#[test]
fn the_score_cache_expires_drifts_and_counts() {
    let cache = ScoreCache::new(Duration::from_millis(200));
    assert_eq!(cache.get("a"), None);
    cache.put("a", 0.9, 10.0);
    assert_eq!(cache.get("a"), Some(0.9));
    // Within 20 % of the baseline: kept.
    for v in [10.0, 11.0, 9.5] {
        assert!(!cache.record_performance("a", v));
    }
    assert_eq!(cache.get("a"), Some(0.9));
    // The recent mean drops more than 20 % below 10: dropped.
    let dropped: Vec<bool> = (0..10).map(|_| cache.record_performance("a", 5.0)).collect();
    assert_eq!(dropped.iter().filter(|d| **d).count(), 1, "dropped once: {dropped:?}");
    assert_eq!(cache.get("a"), None);
    assert_eq!(cache.history("a").len(), HISTORY, "only the last 10 are kept");
    cache.put("b", 1.0, 1.0);
    assert!(cache.invalidate("b"));
    assert!(!cache.invalidate("b"));
    cache.put("c", 2.0, 1.0);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(cache.get("c"), None, "expired");
    let m = cache.metrics();
    assert_eq!((m.hits, m.misses, m.size), (2, 3, 0));
}

fn event(id: u128, t: u64, goal: f64) -> Event {
    Event {
        id,
        timestamp_us: t,
        episode: t / 100,
        step: (t % 100) as u32,
        event_type: "step".into(),
        flags: 0b101,
        state: [0.5; 8],
        action: [-1.0, 0.0, 1.0, 0.25, 0.0, 0.0, 0.0, 1e-9],
        rewards: Rewards { homeostasis: 0.1, curiosity: 0.2, efficiency: 0.3, goal },
        policy_version: "p-abc".into(),
        sequence: t,
    }
}

async fn events_are_queried_newest_first_joined_with_metadata_and_archived(t: Target) {
    let ev = EventStore::open(&*t.store).await.unwrap();
    let big = u128::MAX - 7;
    ev.write_event(&event(big, 1_000, 5.0)).await.unwrap();
    ev.write_batch(&(1..=10).map(|i| event(i, 1_000 + i as u64 * 10, i as f64)).collect::<Vec<_>>())
        .await
        .unwrap();
    let meta = ActionMetadata {
        intent_type: "move".into(),
        executor_id: "arm-1".into(),
        parameters: json!({"speed": 2}),
    };
    ev.write_event_with_metadata(&event(99, 5_000, 0.0), &meta).await.unwrap();
    let recent = ev.query_events(0, u64::MAX / 2, 3).await.unwrap();
    assert_eq!(recent.iter().map(|e| e.id).collect::<Vec<_>>(), [99, 10, 9], "{}", t.name);
    assert_eq!(recent[1].state, [0.5; 8]);
    assert_eq!(recent[1].action[7], 1e-9);
    let with = ev.query_events_with_metadata(0, u64::MAX / 2, 2).await.unwrap();
    assert_eq!(with[0].1.as_ref(), Some(&meta));
    assert_eq!(with[1].1, None);
    let high = ev.high_reward(1_000, 8.0, 10).await.unwrap();
    assert_eq!(high.iter().map(|e| e.id).collect::<Vec<_>>(), [10, 9, 8], "total = 0.6 + goal >= 8");
    assert!(
        ev.query_events(0, 2_000, 100).await.unwrap().iter().any(|e| e.id == big),
        "128-bit ids round-trip"
    );
    assert_eq!(ev.archive_events(1_050).await.unwrap(), 5, "{}: 1000 (x1), 1010..1040", t.name);
    assert_eq!(ev.query_events(0, u64::MAX / 2, 100).await.unwrap().len(), 7);
    assert_eq!(ev.archive_events(1_050).await.unwrap(), 0, "already archived");
    let mut bad = event(7, 1, 0.0);
    bad.state[3] = f64::NAN;
    assert_eq!(ev.write_event(&bad).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    if let Some(store) = t.reopen().await {
        let again = EventStore::open(&*store).await.unwrap();
        let kept = again.query_events(0, u64::MAX / 2, 100).await.unwrap();
        assert_eq!(kept.len(), 7, "{}: archived ones stay out after a restart", t.name);
        let with = again.query_events_with_metadata(5_000, 5_001, 1).await.unwrap();
        assert_eq!(with[0].1.as_ref(), Some(&meta));
        cleanup(&t, &store).await;
    }
}
