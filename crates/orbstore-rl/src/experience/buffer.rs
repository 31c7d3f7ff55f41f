//! [`Buffer`]: a replay buffer's collection and in-memory index together, what both modes
//! share: opening, writing (through to the collection first, then into the index), evicting
//! beyond the capacity, saving priorities, cleaning up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use orbstore_core::{
    CollectionRef, Error, ErrorKind, Filter, IndexSpec, PersistenceBackend, Projection, Query, Result,
    TypedCollection,
};
use parking_lot::Mutex;

use super::index::{Fields, Index};
use super::priorities::Priorities;
use super::{load, Experience, ExperienceStats, EXPERIENCE_COLLECTION};
use crate::qtable::now_ms;
use crate::saver::{AutoSaver, SaveChanges, SavePolicy};

/// A replay buffer over a collection.
#[derive(Clone)]
pub(super) struct Buffer {
    pub(super) coll: TypedCollection<Experience>,
    pub(super) raw: CollectionRef,
    pub(super) index: Arc<Mutex<Index>>,
    capacity_per_user: Option<usize>,
    /// Keeps the priorities' saver alive (it holds only a weak reference).
    _priorities: Arc<Priorities>,
    saver: AutoSaver,
}

impl Buffer {
    /// Opens the buffer of `store`; `payload`: whether the index holds whole experiences.
    pub(super) async fn open(
        store: &dyn PersistenceBackend,
        capacity_per_user: Option<usize>,
        payload: bool,
    ) -> Result<Buffer> {
        if capacity_per_user == Some(0) {
            return Err(Error::invalid("the experience capacity per user must be at least 1"));
        }
        let raw = store.collection(EXPERIENCE_COLLECTION).await?;
        raw.create_index(IndexSpec::new(["timestamp"])).await?;
        let coll = TypedCollection::<Experience>::new(raw.clone());
        let index = Arc::new(Mutex::new(load::load(&raw, payload).await?));
        let priorities = Arc::new(Priorities { raw: raw.clone(), index: index.clone() });
        let weak: std::sync::Weak<dyn SaveChanges> = Arc::downgrade(&priorities) as _;
        let saver = AutoSaver::start(SavePolicy::default(), weak);
        Ok(Buffer { coll, raw, index, capacity_per_user, _priorities: priorities, saver })
    }

    /// Stores experiences atomically, then evicts each user's oldest beyond the capacity.
    pub(super) async fn add_batch(&self, batch: Vec<Experience>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for e in &batch {
            check_reward(e)?;
        }
        self.coll.insert_many(&batch).await?;
        let evicted = self.index_stored(&batch)?;
        self.delete_ids(evicted).await
    }

    /// See [`ExperienceStore::put_batch`](super::ExperienceStore::put_batch).
    pub(super) async fn put_batch(&self, batch: Vec<Experience>) -> Result<usize> {
        let mut unique: Vec<Experience> = Vec::with_capacity(batch.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for e in batch {
            check_reward(&e)?;
            orbstore_core::validate_id(&e.id)?;
            match at.get(&e.id) {
                Some(&i) => unique[i] = e,
                None => {
                    at.insert(e.id.clone(), unique.len());
                    unique.push(e);
                }
            }
        }
        if unique.is_empty() {
            return Ok(0);
        }
        // Ask the collection, not the in-memory index, which ids exist: another handle may have
        // stored some since this one was opened.
        let mut stored = HashSet::new();
        for chunk in unique.chunks(1000) {
            let ids = chunk.iter().map(|e| serde_json::Value::String(e.id.clone()));
            let q = Query::new(Filter::is_in("_id", ids)).project(Projection::include(["_id"]));
            for doc in self.raw.find(&q).await? {
                if let Some(id) = doc.get("_id").and_then(serde_json::Value::as_str) {
                    stored.insert(id.to_owned());
                }
            }
        }
        let (known, new): (Vec<&Experience>, Vec<&Experience>) =
            unique.iter().partition(|e| stored.contains(&e.id));
        if !new.is_empty() {
            let new: Vec<Experience> = new.into_iter().cloned().collect();
            match self.coll.insert_many(&new).await {
                Ok(_) => {}
                // Another writer stored one of them meanwhile: replace them one by one instead.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    for x in &new {
                        self.coll.upsert(x).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for x in known {
            self.coll.upsert(x).await?;
        }
        let evicted = self.index_stored(&unique)?;
        self.delete_ids(evicted).await?;
        Ok(unique.len())
    }

    /// Puts stored experiences into the index (replacing any with the same id, also of another
    /// user) and returns the ids evicted beyond the capacity, still to be deleted from the
    /// collection.
    fn index_stored(&self, batch: &[Experience]) -> Result<Vec<String>> {
        let mut idx = self.index.lock();
        let mut evicted = Vec::new();
        for e in batch {
            idx.put(&Fields::from(e))?;
            if let Some(cap) = self.capacity_per_user {
                idx.evict(&e.user, cap, &mut evicted);
            }
        }
        Ok(evicted)
    }

    async fn delete_ids(&self, ids: Vec<String>) -> Result<()> {
        for chunk in ids.chunks(1000) {
            if !chunk.is_empty() {
                let f = Filter::is_in("_id", chunk.iter().map(|s| serde_json::Value::String(s.clone())));
                self.raw.delete_many(&f).await?;
            }
        }
        Ok(())
    }

    /// See [`ExperienceStore::update_priorities`](super::ExperienceStore::update_priorities).
    pub(super) fn update_priorities(&self, updates: &[(String, f64)]) -> Result<()> {
        for (id, p) in updates {
            if !p.is_finite() || *p < 0.0 {
                return Err(Error::invalid(format!("priority of {id:?} must be finite and >= 0, got {p}")));
            }
        }
        let mut idx = self.index.lock();
        let changed = updates.iter().filter(|(id, p)| idx.set_priority(id, *p)).count();
        drop(idx);
        if changed > 0 {
            self.saver.changed_later(changed);
        }
        Ok(())
    }

    /// Saves the priorities set since the last save now.
    pub(super) async fn flush(&self) -> Result<()> {
        self.saver.flush().await
    }

    /// Deletes experiences older than `max_age`; returns how many.
    pub(super) async fn cleanup(&self, max_age: Duration) -> Result<u64> {
        let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
        let n = self.raw.delete_many(&Filter::lt("timestamp", cutoff)).await?;
        let mut idx = self.index.lock();
        for slot in idx.older_than(cutoff) {
            idx.remove(slot);
        }
        Ok(n)
    }

    /// A user's count, mean reward and completion rate.
    pub(super) fn stats(&self, user: &str) -> ExperienceStats {
        let (n, reward, done) = self.index.lock().totals(user);
        if n == 0 {
            return ExperienceStats { count: 0, mean_reward: 0.0, completion_rate: 0.0 };
        }
        ExperienceStats { count: n, mean_reward: reward / n as f64, completion_rate: done as f64 / n as f64 }
    }

    /// How many experiences are held, for every user.
    pub(super) fn len(&self) -> usize {
        self.index.lock().len()
    }
}

fn check_reward(e: &Experience) -> Result<()> {
    if e.reward.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(format!("experience {:?} has a reward of {}", e.id, e.reward)))
    }
}
