//! [`DiskExperienceStore`]: a replay buffer larger than memory. Memory holds only what sampling,
//! selection and the statistics need (id, user, timestamp, reward, completed, priority: 81 bytes
//! of heap an experience for 1M, whatever its states' length); the experiences themselves are read
//! from the collection by id, the ones a call returns in one batched read (`_id` in a list).

use std::collections::HashMap;
use std::time::Duration;

use orbstore_core::{Filter, PersistenceBackend, Query, Result};
use rand::Rng;

use super::buffer::Buffer;
use super::index::Index;
use super::{Experience, ExperienceStats};

/// How many ids one read asks for (a sample's batch is one read; a whole user's list is read
/// in chunks of this many, so that no statement holds an unbounded list of parameters).
const READ_IDS: usize = 1000;

/// Experience replay over a collection for buffers larger than memory: the same buffer as
/// [`ExperienceStore`](crate::ExperienceStore) (the same documents, capacity, eviction order,
/// priorities and their saving), with the experiences read from the collection when asked for.
/// Either store can open the other's collection.
///
/// What it returns comes from the collection as stored now: an experience deleted behind the
/// store's back (by another handle, an erasure) is left out of what a call returns, and
/// forgotten, so that it is not sampled again.
#[derive(Clone)]
pub struct DiskExperienceStore {
    buffer: Buffer,
}

impl std::fmt::Debug for DiskExperienceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskExperienceStore").field("experiences", &self.len()).finish()
    }
}

impl DiskExperienceStore {
    /// Loads what sampling needs of the experiences of `store` (collection
    /// [`EXPERIENCE_COLLECTION`](crate::EXPERIENCE_COLLECTION)); with a capacity, each user keeps
    /// at most that many, the oldest evicted first.
    pub async fn open(
        store: &dyn PersistenceBackend,
        capacity_per_user: Option<usize>,
    ) -> Result<DiskExperienceStore> {
        Ok(DiskExperienceStore { buffer: Buffer::open(store, capacity_per_user, false).await? })
    }

    /// Stores one experience.
    pub async fn add(&self, e: Experience) -> Result<()> {
        self.buffer.add_batch(vec![e]).await
    }

    /// Stores experiences atomically, then evicts each user's oldest beyond the capacity.
    pub async fn add_batch(&self, batch: Vec<Experience>) -> Result<()> {
        self.buffer.add_batch(batch).await
    }

    /// Stores experiences under their ids as given, replacing any stored with the same id; as
    /// [`ExperienceStore::put_batch`](crate::ExperienceStore::put_batch).
    pub async fn put_batch(&self, batch: Vec<Experience>) -> Result<usize> {
        self.buffer.put_batch(batch).await
    }

    /// The experience with this id, if the store holds it.
    pub async fn get(&self, id: &str) -> Result<Option<Experience>> {
        if self.buffer.index.lock().find(id).is_none() {
            return Ok(None);
        }
        Ok(self.read(vec![id.to_owned()]).await?.pop().flatten())
    }

    /// A user's experiences that `keep` accepts, oldest first, read from the collection.
    async fn of_user(&self, user: &str, keep: impl Fn(&Index, u32) -> bool) -> Result<Vec<Experience>> {
        let ids = {
            let idx = self.buffer.index.lock();
            idx.select(user, keep).into_iter().map(|slot| idx.id_string(slot)).collect()
        };
        Ok(self.read(ids).await?.into_iter().flatten().collect())
    }

    /// A user's experiences, oldest first.
    pub async fn by_user(&self, user: &str) -> Result<Vec<Experience>> {
        self.of_user(user, |_, _| true).await
    }

    /// A user's `n` most recent experiences, newest first.
    pub async fn recent(&self, user: &str, n: usize) -> Result<Vec<Experience>> {
        let ids = {
            let idx = self.buffer.index.lock();
            idx.select(user, |_, _| true).into_iter().rev().take(n).map(|slot| idx.id_string(slot)).collect()
        };
        Ok(self.read(ids).await?.into_iter().flatten().collect())
    }

    /// A user's completed experiences, oldest first.
    pub async fn completed(&self, user: &str) -> Result<Vec<Experience>> {
        self.of_user(user, |idx, slot| idx.completed(slot)).await
    }

    /// A user's experiences with a reward of at least `min`, oldest first.
    pub async fn high_reward(&self, user: &str, min: f64) -> Result<Vec<Experience>> {
        self.of_user(user, |idx, slot| idx.reward(slot) >= min).await
    }

    /// `n` of a user's experiences, uniformly at random without replacement (all of them when
    /// there are fewer), chosen in memory and read in one batched read.
    pub async fn sample<R: Rng + ?Sized>(
        &self,
        user: &str,
        n: usize,
        rng: &mut R,
    ) -> Result<Vec<Experience>> {
        let ids = {
            let idx = self.buffer.index.lock();
            idx.sample(user, n, rng).into_iter().map(|slot| idx.id_string(slot)).collect()
        };
        Ok(self.read(ids).await?.into_iter().flatten().collect())
    }

    /// `n` of a user's experiences drawn in proportion to their priorities (stratified: one draw
    /// per equal slice of the total), with their priorities, read in one batched read. New
    /// experiences get the highest priority seen.
    pub async fn sample_prioritized<R: Rng + ?Sized>(
        &self,
        user: &str,
        n: usize,
        rng: &mut R,
    ) -> Result<Vec<(Experience, f64)>> {
        let (ids, priorities): (Vec<String>, Vec<f64>) = {
            let idx = self.buffer.index.lock();
            idx.sample_prioritized(user, n, rng).into_iter().map(|(slot, p)| (idx.id_string(slot), p)).unzip()
        };
        let read = self.read(ids).await?;
        Ok(read.into_iter().zip(priorities).filter_map(|(e, p)| Some((e?, p))).collect())
    }

    /// Sets priorities of experiences by id; as
    /// [`ExperienceStore::update_priorities`](crate::ExperienceStore::update_priorities).
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

    /// A user's count, mean reward and completion rate (from memory).
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

    /// The experiences with these ids, in their order (an id given twice, twice), `None` for
    /// one the collection no longer has (then forgotten here). One read per [`READ_IDS`] ids.
    async fn read(&self, ids: Vec<String>) -> Result<Vec<Option<Experience>>> {
        let mut found: HashMap<String, Experience> = HashMap::with_capacity(ids.len());
        let mut distinct: Vec<&String> = ids.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        for chunk in distinct.chunks(READ_IDS) {
            let filter =
                Filter::is_in("_id", chunk.iter().map(|id| serde_json::Value::String((*id).clone())));
            for e in self.buffer.coll.find(&Query::new(filter)).await? {
                found.insert(e.id.clone(), e);
            }
        }
        let mut missing = Vec::new();
        let out = ids
            .iter()
            .map(|id| {
                let e = found.get(id).cloned();
                if e.is_none() {
                    missing.push(id.as_str());
                }
                e
            })
            .collect();
        if !missing.is_empty() {
            let mut idx = self.buffer.index.lock();
            for id in missing {
                if let Some(slot) = idx.find(id) {
                    idx.remove(slot);
                }
            }
        }
        Ok(out)
    }
}
