//! The replay buffer's draws, counted (memory mode, over the memory backend): uniform sampling
//! picks each of a user's experiences about equally often, never one twice in a draw, never one
//! of another user or an evicted one (whose slot was reused); prioritized sampling picks each
//! experience in proportion to its priority, never a zero one, over enough experiences for the
//! sum tree to have several levels and after evictions moved priorities around in it; the batch
//! forms make the same draws as the owned ones.
//!
//! Guards the compact index (one record per slot) and the 8-ary sum tree: a slot read from the
//! wrong record, a position mapped to the wrong slot or a wrong descent of the tree shows up as a
//! foreign experience or as counts far from the expected ones. The rngs are seeded, so each run
//! draws the same; the bounds are wide enough (7 standard deviations for the uniform counts; for
//! the stratified draws, the bounds stratification guarantees whatever the random numbers) that
//! another version of `rand` cannot make them fail, and narrow enough that an experience drawn
//! at twice or half its share does.

use std::collections::{HashMap, HashSet};

use orbstore::{BackendConfig, Config};
use orbstore_rl::{Experience, ExperienceStore};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn exp(user: &str, i: usize) -> Experience {
    let mut e = Experience::new(user, &format!("{user}-s{i}"), &format!("a{}", i % 5), i as f64, "next");
    e.timestamp = 1_000_000 + i as u64;
    e
}

/// A buffer over a fresh memory backend (returned too: it stays open while the buffer is used).
async fn store(capacity: Option<usize>) -> (orbstore::Store, ExperienceStore) {
    let store = orbstore::open(Config::new(BackendConfig::Memory)).await.unwrap();
    let xs = ExperienceStore::open(&*store, capacity).await.unwrap();
    (store, xs)
}

#[tokio::test]
async fn uniform_samples_are_uniform_over_the_users_held_experiences() {
    let (_store, xs) = store(Some(200)).await;
    // Two users interleaved, so that their slots interleave; then more of `a`, evicting its
    // oldest and reusing their slots.
    let both: Vec<Experience> = (0..600).map(|i| exp(if i % 2 == 0 { "a" } else { "b" }, i)).collect();
    xs.add_batch(both).await.unwrap();
    xs.add_batch((600..650).map(|i| exp("a", i)).collect()).await.unwrap();
    let held: HashMap<String, Experience> = xs.by_user("a").into_iter().map(|e| (e.id.clone(), e)).collect();
    assert_eq!(held.len(), 200);

    let mut rng = StdRng::seed_from_u64(11);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let draws = 4000;
    for _ in 0..draws {
        let s = xs.sample("a", 10, &mut rng);
        let distinct: HashSet<&str> = s.iter().map(|e| e.id.as_str()).collect();
        assert_eq!((s.len(), distinct.len()), (10, 10), "10 distinct experiences");
        for e in s {
            assert_eq!(held.get(&e.id), Some(&e), "a held experience of `a`, as stored");
            *counts.entry(e.id).or_default() += 1;
        }
    }
    // Each of the 200 is in a draw with probability 10/200: 200 times in 4000 draws, standard
    // deviation sqrt(4000 * 0.05 * 0.95) = 13.8.
    assert_eq!(counts.len(), 200, "every held experience is drawn");
    for (id, &n) in &counts {
        assert!((104..=296).contains(&n), "{id} drawn {n} times, expected 200 +- 96");
    }
    let all = xs.sample("a", 1000, &mut rng);
    assert_eq!(all.iter().map(|e| &e.id).collect::<HashSet<_>>(), held.keys().collect(), "all when fewer");
    assert!(xs.sample("nobody", 10, &mut rng).is_empty());
}

#[tokio::test]
async fn batches_hold_the_same_draws_as_owned_samples() {
    let (_store, xs) = store(None).await;
    let mut batch: Vec<Experience> = (0..500).map(|i| exp("u", i)).collect();
    batch[7].id = "named-7".into();
    batch[8].watch_duration = Some(2.5);
    xs.add_batch(batch).await.unwrap();
    for seed in 0..20 {
        let owned = xs.sample("u", 64, &mut StdRng::seed_from_u64(seed));
        let batch = xs.sample_batch("u", 64, &mut StdRng::seed_from_u64(seed));
        let from_batch: Vec<Experience> = batch.iter().map(|e| e.to_experience()).collect();
        assert_eq!(owned, from_batch, "seed {seed}");
        assert!(batch.iter().all(|e| e.priority == 0.0));
        let owned = xs.sample_prioritized("u", 64, &mut StdRng::seed_from_u64(seed));
        let batch = xs.sample_prioritized_batch("u", 64, &mut StdRng::seed_from_u64(seed));
        let from_batch: Vec<(Experience, f64)> =
            batch.iter().map(|e| (e.to_experience(), e.priority)).collect();
        assert_eq!(owned, from_batch, "seed {seed}");
    }
    let all = xs.sample_batch("u", 500, &mut StdRng::seed_from_u64(1));
    let named = all.iter().find(|e| e.id == "named-7").map(|e| e.to_experience());
    assert_eq!(named, xs.get("named-7"));
    assert!(all.iter().any(|e| e.watch_duration == Some(2.5)));
}

#[tokio::test]
async fn prioritized_draws_follow_the_priorities_across_a_deep_tree() {
    // 3000 held of 3100 stored: 100 evicted, each eviction moving the last priority of the sum
    // tree into its place. 3000 priorities make a tree of 4 levels.
    let (_store, xs) = store(Some(3000)).await;
    for chunk in (0..3100).collect::<Vec<usize>>().chunks(1000) {
        xs.add_batch(chunk.iter().map(|&i| exp("u", i)).collect()).await.unwrap();
    }
    xs.add_batch((0..50).map(|i| exp("other", i)).collect()).await.unwrap();
    let held = xs.by_user("u");
    assert_eq!(held.len(), 3000);
    // Priorities 0 to 6 by the experience's number: a seventh are zero, never to be drawn.
    let priority = |e: &Experience| (e.timestamp % 7) as f64;
    let updates: Vec<(String, f64)> = held.iter().map(|e| (e.id.clone(), priority(e))).collect();
    xs.update_priorities(&updates).unwrap();
    let expected: HashMap<&str, f64> = held.iter().map(|e| (e.id.as_str(), priority(e))).collect();
    let total: f64 = expected.values().sum();

    let n = 20_000;
    let mut rng = StdRng::seed_from_u64(5);
    let draws = xs.sample_prioritized("u", n, &mut rng);
    assert_eq!(draws.len(), n);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (e, p) in &draws {
        let want = expected.get(e.id.as_str()).copied();
        assert_eq!(want, Some(*p), "{}: a held experience of `u`, with its priority", e.id);
        assert!(*p > 0.0, "a zero priority is never drawn");
        *counts.entry(e.id.as_str()).or_default() += 1;
    }
    // Stratified: one draw in each of n equal slices of the total, so an experience whose
    // priority spans `w` slices is drawn floor(w) - 1 to ceil(w) + 1 times, whatever the random
    // numbers (one more either side for rounding).
    let slice = total / n as f64;
    for (id, &p) in &expected {
        let w = p / slice;
        let got = counts.get(id).copied().unwrap_or(0) as f64;
        assert!(
            got >= (w.floor() - 2.0).max(0.0) && got <= w.ceil() + 2.0,
            "{id}: priority {p} of {total}, drawn {got} times of {n}, expected {w:.1}"
        );
    }
    // By class: priority c holds c/21 of the total.
    for c in 1..7 {
        let got: usize = counts.iter().filter(|(id, _)| expected[*id] == c as f64).map(|(_, &k)| k).sum();
        let share = got as f64 / n as f64;
        let want: f64 = expected.values().filter(|&&p| p == c as f64).sum::<f64>() / total;
        assert!((share - want).abs() < 0.005, "priority {c}: share {share:.4}, expected {want:.4}");
    }
}
