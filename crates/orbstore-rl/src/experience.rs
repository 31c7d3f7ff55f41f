//! [`ExperienceStore`]: an experience-replay buffer per user, written through to a collection,
//! with an in-memory index so that sampling never scans the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use orbstore_core::{
    CollectionRef, Error, ErrorKind, Filter, IndexSpec, PersistenceBackend, Projection, Query, Result,
    TypedCollection,
};
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::qtable::now_ms;
use crate::saver::{AutoSaver, SaveChanges, SavePolicy};
use crate::sumtree::SumTree;

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

/// One user's buffer: live experiences with O(1) removal, insertion order, priorities.
#[derive(Default)]
struct UserBuffer {
    live: Vec<Arc<Experience>>,
    pos: HashMap<String, usize>,
    /// Ids in insertion order (removed ones are skipped when met).
    fifo: VecDeque<String>,
    priorities: SumTree,
    max_priority: f64,
}

impl UserBuffer {
    /// Adds an experience with its stored priority, or the highest seen (1 at first).
    fn push(&mut self, e: Arc<Experience>, stored: Option<f64>) {
        let p = match stored {
            Some(p) => {
                self.max_priority = self.max_priority.max(p);
                p
            }
            None if self.max_priority > 0.0 => self.max_priority,
            None => 1.0,
        };
        self.pos.insert(e.id.clone(), self.live.len());
        self.fifo.push_back(e.id.clone());
        self.live.push(e);
        self.priorities.push(p);
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.pos.remove(id) else { return false };
        self.live.swap_remove(i);
        self.priorities.swap_remove(i);
        if let Some(moved) = self.live.get(i) {
            self.pos.insert(moved.id.clone(), i);
        }
        true
    }

    /// The oldest live id.
    fn oldest(&mut self) -> Option<String> {
        while let Some(id) = self.fifo.front() {
            if self.pos.contains_key(id) {
                return Some(id.clone());
            }
            self.fifo.pop_front();
        }
        None
    }
}

#[derive(Default)]
struct Index {
    users: HashMap<String, UserBuffer>,
    owner: HashMap<String, String>,
    /// Priorities set since the last save, by experience id.
    dirty: HashMap<String, f64>,
}

/// The field of an experience's document holding its priority (absent: never set).
const PRIORITY_FIELD: &str = "priority";

/// What saves the priorities: each set priority written into its experience's document.
struct Priorities {
    raw: CollectionRef,
    index: Arc<Mutex<Index>>,
}

#[async_trait::async_trait]
impl SaveChanges for Priorities {
    async fn save_changes(&self) -> Result<usize> {
        let dirty: Vec<(String, f64)> = std::mem::take(&mut self.index.lock().dirty).into_iter().collect();
        let mut done = 0;
        for (id, p) in &dirty {
            // An update, not a replacement: an experience deleted meanwhile (evicted, cleaned
            // up, erased) is not brought back.
            let update = orbstore_core::Update::new().set(PRIORITY_FIELD, *p);
            if let Err(e) = self.raw.update_one(&Filter::eq("_id", id.as_str()), &update).await {
                // Keep what was not saved for the next attempt, unless set again meanwhile.
                let mut idx = self.index.lock();
                for (id, p) in &dirty[done..] {
                    idx.dirty.entry(id.clone()).or_insert(*p);
                }
                return Err(e);
            }
            done += 1;
        }
        Ok(done)
    }
}

/// Experience replay over a collection; reads and sampling come from memory.
#[derive(Clone)]
pub struct ExperienceStore {
    coll: TypedCollection<Experience>,
    raw: CollectionRef,
    index: Arc<Mutex<Index>>,
    capacity_per_user: Option<usize>,
    /// Keeps the priorities' saver alive (it holds only a weak reference).
    _priorities: Arc<Priorities>,
    saver: AutoSaver,
}

impl std::fmt::Debug for ExperienceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperienceStore").field("experiences", &self.index.lock().owner.len()).finish()
    }
}

impl ExperienceStore {
    /// Loads the experiences of `store` (collection [`EXPERIENCE_COLLECTION`]); with a capacity,
    /// each user keeps at most that many, the oldest evicted first.
    pub async fn open(
        store: &dyn PersistenceBackend,
        capacity_per_user: Option<usize>,
    ) -> Result<ExperienceStore> {
        if capacity_per_user == Some(0) {
            return Err(Error::invalid("the experience capacity per user must be at least 1"));
        }
        let raw = store.collection(EXPERIENCE_COLLECTION).await?;
        raw.create_index(IndexSpec::new(["timestamp"])).await?;
        let coll = TypedCollection::<Experience>::new(raw.clone());
        let mut index = Index::default();
        for doc in raw.find(&Query::all().sort_asc("timestamp")).await? {
            let priority = doc
                .get(PRIORITY_FIELD)
                .and_then(serde_json::Value::as_f64)
                .filter(|p| p.is_finite() && *p >= 0.0);
            let id = doc.get("_id").cloned();
            let e: Experience = serde_json::from_value(serde_json::Value::Object(doc)).map_err(|e| {
                Error::corrupt(format!("experience {id:?} in {EXPERIENCE_COLLECTION:?} is unreadable: {e}"))
            })?;
            index.owner.insert(e.id.clone(), e.user.clone());
            index.users.entry(e.user.clone()).or_default().push(Arc::new(e), priority);
        }
        let index = Arc::new(Mutex::new(index));
        let priorities = Arc::new(Priorities { raw: raw.clone(), index: index.clone() });
        let weak: std::sync::Weak<dyn SaveChanges> = Arc::downgrade(&priorities) as _;
        let saver = AutoSaver::start(SavePolicy::default(), weak);
        Ok(ExperienceStore { coll, raw, index, capacity_per_user, _priorities: priorities, saver })
    }

    /// Stores one experience.
    pub async fn add(&self, e: Experience) -> Result<()> {
        self.add_batch(vec![e]).await
    }

    /// Stores experiences atomically, then evicts each user's oldest beyond the capacity.
    pub async fn add_batch(&self, batch: Vec<Experience>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for e in &batch {
            if !e.reward.is_finite() {
                return Err(Error::invalid(format!("experience {:?} has a reward of {}", e.id, e.reward)));
            }
        }
        self.coll.insert_many(&batch).await?;
        let evicted = self.index_stored(batch);
        self.delete_ids(evicted).await
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
        let mut unique: Vec<Experience> = Vec::with_capacity(batch.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for e in batch {
            if !e.reward.is_finite() {
                return Err(Error::invalid(format!("experience {:?} has a reward of {}", e.id, e.reward)));
            }
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
        let mut stored = std::collections::HashSet::new();
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
        let n = unique.len();
        let evicted = self.index_stored(unique);
        self.delete_ids(evicted).await?;
        Ok(n)
    }

    /// Puts stored experiences into the in-memory index (replacing any with the same id, also
    /// of another user) and returns the ids evicted beyond the capacity, still to be deleted
    /// from the collection.
    fn index_stored(&self, batch: Vec<Experience>) -> Vec<String> {
        let mut idx = self.index.lock();
        let mut evicted = Vec::new();
        for e in batch {
            if let Some(previous) = idx.owner.insert(e.id.clone(), e.user.clone()) {
                if let Some(buf) = idx.users.get_mut(&previous) {
                    buf.remove(&e.id);
                }
            }
            let user = e.user.clone();
            let buf = idx.users.entry(user.clone()).or_default();
            buf.push(Arc::new(e), None);
            if let Some(cap) = self.capacity_per_user {
                while buf.live.len() > cap {
                    let Some(old) = buf.oldest() else { break };
                    buf.remove(&old);
                    evicted.push(old);
                }
            }
        }
        for id in &evicted {
            idx.owner.remove(id);
        }
        evicted
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

    /// The experience with this id.
    pub fn get(&self, id: &str) -> Option<Experience> {
        let idx = self.index.lock();
        let user = idx.owner.get(id)?;
        let buf = idx.users.get(user)?;
        buf.pos.get(id).map(|&i| (*buf.live[i]).clone())
    }

    fn of_user(&self, user: &str, keep: impl Fn(&Experience) -> bool) -> Vec<Experience> {
        let idx = self.index.lock();
        let mut out: Vec<Experience> = idx
            .users
            .get(user)
            .map(|b| b.live.iter().filter(|e| keep(e)).map(|e| (**e).clone()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// A user's experiences, oldest first.
    pub fn by_user(&self, user: &str) -> Vec<Experience> {
        self.of_user(user, |_| true)
    }

    /// A user's `n` most recent experiences, newest first.
    pub fn recent(&self, user: &str, n: usize) -> Vec<Experience> {
        let mut all = self.by_user(user);
        all.reverse();
        all.truncate(n);
        all
    }

    /// A user's completed experiences, oldest first.
    pub fn completed(&self, user: &str) -> Vec<Experience> {
        self.of_user(user, |e| e.completed)
    }

    /// A user's experiences with a reward of at least `min`, oldest first.
    pub fn high_reward(&self, user: &str, min: f64) -> Vec<Experience> {
        self.of_user(user, |e| e.reward >= min)
    }

    /// `n` of a user's experiences, uniformly at random without replacement (all of them when
    /// there are fewer).
    pub fn sample<R: Rng + ?Sized>(&self, user: &str, n: usize, rng: &mut R) -> Vec<Arc<Experience>> {
        let idx = self.index.lock();
        let Some(buf) = idx.users.get(user) else { return Vec::new() };
        let n = n.min(buf.live.len());
        rand::seq::index::sample(rng, buf.live.len(), n).into_iter().map(|i| buf.live[i].clone()).collect()
    }

    /// `n` of a user's experiences drawn in proportion to their priorities (stratified: one draw
    /// per equal slice of the total), with their priorities. New experiences get the highest
    /// priority seen.
    pub fn sample_prioritized<R: Rng + ?Sized>(
        &self,
        user: &str,
        n: usize,
        rng: &mut R,
    ) -> Vec<(Arc<Experience>, f64)> {
        let idx = self.index.lock();
        let Some(buf) = idx.users.get(user) else { return Vec::new() };
        let total = buf.priorities.total();
        if buf.live.is_empty() || total <= 0.0 || n == 0 {
            return Vec::new();
        }
        let slice = total / n as f64;
        (0..n)
            .map(|k| {
                let x = slice * (k as f64 + rng.random::<f64>());
                let i = buf.priorities.find(x.min(total * (1.0 - f64::EPSILON)));
                (buf.live[i].clone(), buf.priorities.get(i))
            })
            .collect()
    }

    /// Sets priorities (for example |TD error| + a small constant) of experiences by id; unknown
    /// ids are skipped. They are saved into the experiences' documents (field `priority`) by the
    /// default save policy, outside this call: after a quiet second, at least every 5 minutes,
    /// on [`ExperienceStore::flush`] and on shutdown (`orbstore_rl::flush_all`), so a reopened
    /// store samples as before. An experience stored again (`put_batch`) starts at the highest
    /// priority seen, as a new one does.
    pub fn update_priorities(&self, updates: &[(String, f64)]) -> Result<()> {
        for (id, p) in updates {
            if !p.is_finite() || *p < 0.0 {
                return Err(Error::invalid(format!("priority of {id:?} must be finite and >= 0, got {p}")));
            }
        }
        let mut idx = self.index.lock();
        let mut changed = 0;
        for (id, p) in updates {
            let Some(user) = idx.owner.get(id).cloned() else { continue };
            let Some(buf) = idx.users.get_mut(&user) else { continue };
            if let Some(&i) = buf.pos.get(id) {
                buf.priorities.set(i, *p);
                buf.max_priority = buf.max_priority.max(*p);
                idx.dirty.insert(id.clone(), *p);
                changed += 1;
            }
        }
        drop(idx);
        if changed > 0 {
            self.saver.changed_later(changed);
        }
        Ok(())
    }

    /// Saves the priorities set since the last save now.
    pub async fn flush(&self) -> Result<()> {
        self.saver.flush().await
    }

    /// Deletes experiences older than `max_age`; returns how many.
    pub async fn cleanup(&self, max_age: Duration) -> Result<u64> {
        let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
        let n = self.raw.delete_many(&Filter::lt("timestamp", cutoff)).await?;
        let mut idx = self.index.lock();
        let old: Vec<String> = idx
            .users
            .values()
            .flat_map(|b| b.live.iter().filter(|e| e.timestamp < cutoff).map(|e| e.id.clone()))
            .collect();
        for id in old {
            if let Some(user) = idx.owner.remove(&id) {
                if let Some(b) = idx.users.get_mut(&user) {
                    b.remove(&id);
                }
            }
        }
        Ok(n)
    }

    /// A user's count, mean reward and completion rate.
    pub fn stats(&self, user: &str) -> ExperienceStats {
        let idx = self.index.lock();
        let Some(buf) = idx.users.get(user) else {
            return ExperienceStats { count: 0, mean_reward: 0.0, completion_rate: 0.0 };
        };
        let n = buf.live.len();
        if n == 0 {
            return ExperienceStats { count: 0, mean_reward: 0.0, completion_rate: 0.0 };
        }
        let reward: f64 = buf.live.iter().map(|e| e.reward).sum();
        let done = buf.live.iter().filter(|e| e.completed).count();
        ExperienceStats { count: n, mean_reward: reward / n as f64, completion_rate: done as f64 / n as f64 }
    }

    /// How many experiences are held, for every user.
    pub fn len(&self) -> usize {
        self.index.lock().owner.len()
    }

    /// Whether no experience is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
