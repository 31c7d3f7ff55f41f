//! [`ExperienceStore`]: an experience-replay buffer per user, written through to a collection,
//! with an in-memory index so that sampling never scans the store; [`DiskExperienceStore`]: the
//! same buffer for more experiences than memory holds, keeping in memory only what sampling and
//! selection need and reading the experiences themselves from the collection, by id.
//!
//! The index is compact ([`index`]): an experience is a slot, one record of fixed-size fields (a
//! 64-byte cache line in memory mode), its id in 16 bytes ([`key`]), its user, state and action
//! interned ([`strings`]); each user's priorities are in a [`SumTree`](crate::SumTree). It is read at
//! open as a stream ([`load`]). Both stores share the writing ([`buffer`]) and the saving of
//! priorities ([`priorities`]).

use std::time::Duration;

use orbstore_core::{PersistenceBackend, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::qtable::now_ms;

mod batch;
mod buffer;
mod disk;
mod index;
mod key;
mod load;
mod priorities;
mod strings;

pub use batch::{ExperienceBatch, ExperienceRef};
pub use disk::DiskExperienceStore;

use buffer::Buffer;

/// The collection holding experiences.
pub const EXPERIENCE_COLLECTION: &str = "experiences";

/// One experience: a state, the action taken, what it earned and where it led.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experience {
    /// The experience's id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Whose experience it is.
    pub user: String,
    /// The state's hash.
    pub state: String,
    /// The action (or content) id.
    pub action: String,
    /// The reward.
    pub reward: f64,
    /// The next state's hash.
    pub next_state: String,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Whether the episode (or the content) was completed.
    pub completed: bool,
    /// How long the content was watched, in seconds, if that applies.
    pub watch_duration: Option<f64>,
}

impl Experience {
    /// An experience now, with a generated id.
    pub fn new(user: &str, state: &str, action: &str, reward: f64, next_state: &str) -> Experience {
        Experience {
            id: orbstore_core::generate_id(),
            user: user.to_owned(),
            state: state.to_owned(),
            action: action.to_owned(),
            reward,
            next_state: next_state.to_owned(),
            timestamp: now_ms(),
            completed: false,
            watch_duration: None,
        }
    }
}

/// A user's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperienceStats {
    /// Experiences held.
    pub count: usize,
    /// Mean reward (0 when none).
    pub mean_reward: f64,
    /// Share completed (0 when none).
    pub completion_rate: f64,
}

/// The field of an experience's document holding its priority (absent: never set).
const PRIORITY_FIELD: &str = "priority";

/// Experience replay over a collection; reads and sampling come from memory. Each experience
/// costs about 105 bytes of fixed-size fields and tables plus its distinct strings (171 bytes of
/// heap each for 1M experiences with distinct 16-character state hashes, `experience_open_1m` in
/// the crate's benchmarks); for more than memory holds, see [`DiskExperienceStore`].
#[derive(Clone)]
pub struct ExperienceStore {
    buffer: Buffer,
}

impl std::fmt::Debug for ExperienceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperienceStore").field("experiences", &self.len()).finish()
    }
}

impl ExperienceStore {
    /// Loads the experiences of `store` (collection [`EXPERIENCE_COLLECTION`]); with a capacity,
    /// each user keeps at most that many, the oldest evicted first.
    pub async fn open(
        store: &dyn PersistenceBackend,
        capacity_per_user: Option<usize>,
    ) -> Result<ExperienceStore> {
        Ok(ExperienceStore { buffer: Buffer::open(store, capacity_per_user, true).await? })
    }

    /// Stores one experience.
    pub async fn add(&self, e: Experience) -> Result<()> {
        self.buffer.add_batch(vec![e]).await
    }

    /// Stores experiences atomically, then evicts each user's oldest beyond the capacity.
    pub async fn add_batch(&self, batch: Vec<Experience>) -> Result<()> {
        self.buffer.add_batch(batch).await
    }

    /// Stores experiences under their ids as given, replacing any stored with the same id, then
    /// evicts each user's oldest beyond the capacity; returns how many distinct experiences were
    /// stored. Storing the same experiences again leaves the same data, so an import can be
    /// repeated; an id given twice keeps the last. Everything is checked first: a non-finite
    /// reward or an invalid id is `InvalidInput` and nothing is written. Ids not stored yet go
    /// in one atomic insert, stored ones are then replaced one at a time, so a write failing
    /// midway can leave part of the batch stored (storing it again completes it). A replaced
    /// experience keeps its place in its user's eviction order.
    pub async fn put_batch(&self, batch: Vec<Experience>) -> Result<usize> {
        self.buffer.put_batch(batch).await
    }

    /// The experience with this id.
    pub fn get(&self, id: &str) -> Option<Experience> {
        let idx = self.buffer.index.lock();
        let slot = idx.find(id)?;
        let mut out = Vec::with_capacity(1);
        idx.experiences(&[slot], &mut out);
        out.pop()
    }

    fn of_user(&self, user: &str, keep: impl Fn(&index::Index, u32) -> bool) -> Vec<Experience> {
        let idx = self.buffer.index.lock();
        let mut out = Vec::new();
        idx.experiences(&idx.select(user, keep), &mut out);
        out
    }

    /// A user's experiences, oldest first.
    pub fn by_user(&self, user: &str) -> Vec<Experience> {
        self.of_user(user, |_, _| true)
    }

    /// A user's `n` most recent experiences, newest first.
    pub fn recent(&self, user: &str, n: usize) -> Vec<Experience> {
        let idx = self.buffer.index.lock();
        let slots: Vec<u32> = idx.select(user, |_, _| true).into_iter().rev().take(n).collect();
        let mut out = Vec::new();
        idx.experiences(&slots, &mut out);
        out
    }

    /// A user's completed experiences, oldest first.
    pub fn completed(&self, user: &str) -> Vec<Experience> {
        self.of_user(user, |idx, slot| idx.completed(slot))
    }

    /// A user's experiences with a reward of at least `min`, oldest first.
    pub fn high_reward(&self, user: &str, min: f64) -> Vec<Experience> {
        self.of_user(user, |idx, slot| idx.reward(slot) >= min)
    }

    /// `n` of a user's experiences, uniformly at random without replacement (all of them when
    /// there are fewer).
    ///
    /// Each experience returned owns five `String`s: 32 cost at least their 160 allocations
    /// (about 5.5 µs with the system allocator, `raw_build_32_owned` in the crate's benchmarks,
    /// of about 8-10 µs for the call over 1M). A training step that samples every step can read
    /// the same draw from [`ExperienceStore::sample_batch`] (2-5 µs), its strings in one buffer.
    pub fn sample<R: Rng + ?Sized>(&self, user: &str, n: usize, rng: &mut R) -> Vec<Experience> {
        let idx = self.buffer.index.lock();
        let mut out = Vec::new();
        idx.experiences(&idx.sample(user, n, rng), &mut out);
        out
    }

    /// The same draw as [`ExperienceStore::sample`], as a batch: the experiences' strings in one
    /// buffer instead of five `String`s each, for a training step that samples every step.
    pub fn sample_batch<R: Rng + ?Sized>(&self, user: &str, n: usize, rng: &mut R) -> ExperienceBatch {
        let idx = self.buffer.index.lock();
        let picks: Vec<(u32, f64)> = idx.sample(user, n, rng).into_iter().map(|slot| (slot, 0.0)).collect();
        let mut batch = ExperienceBatch::default();
        idx.fill_batch(&picks, &mut batch);
        batch
    }

    /// The same draw as [`ExperienceStore::sample_prioritized`], as a batch (each experience with
    /// its priority).
    pub fn sample_prioritized_batch<R: Rng + ?Sized>(
        &self,
        user: &str,
        n: usize,
        rng: &mut R,
    ) -> ExperienceBatch {
        let idx = self.buffer.index.lock();
        let picks = idx.sample_prioritized(user, n, rng);
        let mut batch = ExperienceBatch::default();
        idx.fill_batch(&picks, &mut batch);
        batch
    }

    /// `n` of a user's experiences drawn in proportion to their priorities (stratified: one draw
    /// per equal slice of the total), with their priorities. New experiences get the highest
    /// priority seen.
    pub fn sample_prioritized<R: Rng + ?Sized>(
        &self,
        user: &str,
        n: usize,
        rng: &mut R,
    ) -> Vec<(Experience, f64)> {
        let idx = self.buffer.index.lock();
        let (slots, priorities): (Vec<u32>, Vec<f64>) =
            idx.sample_prioritized(user, n, rng).into_iter().unzip();
        let mut out = Vec::new();
        idx.experiences(&slots, &mut out);
        out.into_iter().zip(priorities).collect()
    }

    /// Sets priorities (for example |TD error| + a small constant) of experiences by id; unknown
    /// ids are skipped. They are saved into the experiences' documents (field `priority`) by the
    /// default save policy, outside this call: after a quiet second, at least every 5 minutes,
    /// on [`ExperienceStore::flush`] and on shutdown (`orbstore_rl::flush_all`), so a reopened
    /// store samples as before. An experience stored again (`put_batch`) starts at the highest
    /// priority seen, as a new one does.
    pub fn update_priorities(&self, updates: &[(String, f64)]) -> Result<()> {
        self.buffer.update_priorities(updates)
    }

    /// Saves the priorities set since the last save now.
    pub async fn flush(&self) -> Result<()> {
        self.buffer.flush().await
    }

    /// Deletes experiences older than `max_age`; returns how many.
    pub async fn cleanup(&self, max_age: Duration) -> Result<u64> {
        self.buffer.cleanup(max_age).await
    }

    /// A user's count, mean reward and completion rate.
    pub fn stats(&self, user: &str) -> ExperienceStats {
        self.buffer.stats(user)
    }

    /// How many experiences are held, for every user.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Whether no experience is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
