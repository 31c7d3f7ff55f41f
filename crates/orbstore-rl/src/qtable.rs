//! [`QTable`]: tabular Q-values, served from memory and saved by a [`SavePolicy`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use orbstore_core::{CollectionRef, Document, Error, Filter, PersistenceBackend, Query, Result};
use parking_lot::Mutex;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::saver::{AutoSaver, SaveChanges, SavePolicy, SaveStatus};

/// The collection holding Q-values.
pub const Q_COLLECTION: &str = "q_values";

/// One Q-value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QEntry {
    /// The state's hash.
    pub state: String,
    /// The action's id.
    pub action: String,
    /// Q(state, action).
    pub value: f64,
    /// How many times it was set or updated.
    pub visits: u64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_at: u64,
}

/// Counts and values of a Q-table.
#[derive(Debug, Clone, PartialEq)]
pub struct QStats {
    /// Q-values stored.
    pub entries: usize,
    /// Distinct states.
    pub states: usize,
    /// Mean Q-value (0 when empty).
    pub mean: f64,
    /// Largest Q-value (`None` when empty).
    pub max: Option<f64>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn key(state: &str, action: &str) -> String {
    // `\u{1f}` (unit separator) cannot clash with ordinary state and action names.
    format!("{state}\u{1f}{action}")
}

#[derive(Default)]
struct Table {
    entries: HashMap<(String, String), QEntry>,
    /// Each state's actions, so that an update's `max_a' Q(s', a')` reads only its state's
    /// entries (a scan of every entry made each update O(n): 4.7 µs at 4,000 entries).
    actions: HashMap<String, HashSet<String>>,
    /// Changed since the last save.
    dirty: HashSet<(String, String)>,
    /// `clear()` happened since the last save.
    cleared: bool,
}

impl Table {
    /// Stores an entry, indexed by its state.
    fn insert(&mut self, e: QEntry) {
        self.actions.entry(e.state.clone()).or_default().insert(e.action.clone());
        self.entries.insert((e.state.clone(), e.action.clone()), e);
    }
}

struct Inner {
    coll: CollectionRef,
    table: Mutex<Table>,
}

#[async_trait]
impl SaveChanges for Inner {
    async fn save_changes(&self) -> Result<usize> {
        let (cleared, changed): (bool, Vec<QEntry>) = {
            let mut t = self.table.lock();
            let dirty = std::mem::take(&mut t.dirty);
            let cleared = std::mem::take(&mut t.cleared);
            (cleared, dirty.iter().filter_map(|k| t.entries.get(k).cloned()).collect())
        };
        let result = async {
            if cleared {
                self.coll.delete_many(&Filter::All).await?;
            }
            // One batched write per save: one transaction and one fsync on the backends that have
            // them, instead of one per entry.
            // In batches of SAVE_BATCH, so that a large dirty set (after an outage) stays within
            // the servers' statement and command sizes.
            for chunk in changed.chunks(SAVE_BATCH) {
                let docs = chunk.iter().map(entry_doc).collect::<Result<Vec<_>>>()?;
                self.coll.upsert_many(docs).await?;
            }
            Ok(changed.len())
        }
        .await;
        if result.is_err() {
            // Keep the changes for the next attempt.
            let mut t = self.table.lock();
            t.cleared |= cleared;
            t.dirty.extend(changed.into_iter().map(|e| (e.state, e.action)));
        }
        result
    }
}

/// The most entries one save writes in one `upsert_many`.
const SAVE_BATCH: usize = 1_000;

fn entry_doc(e: &QEntry) -> Result<Document> {
    let mut doc = match serde_json::to_value(e) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Error::invalid("a Q-entry did not serialize")),
    };
    doc.insert("_id".into(), serde_json::Value::String(key(&e.state, &e.action)));
    Ok(doc)
}

/// A Q-table: `(state, action) -> value`, read from memory, saved to a collection by a
/// [`SavePolicy`].
#[derive(Clone)]
pub struct QTable {
    inner: Arc<Inner>,
    saver: AutoSaver,
}

impl std::fmt::Debug for QTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QTable").field("entries", &self.inner.table.lock().entries.len()).finish()
    }
}

impl QTable {
    /// Loads the Q-table from `store` (collection [`Q_COLLECTION`]) with the default policy.
    pub async fn open(store: &dyn PersistenceBackend) -> Result<QTable> {
        QTable::open_with(store, SavePolicy::default()).await
    }

    /// Loads the Q-table with a save policy of your choice.
    pub async fn open_with(store: &dyn PersistenceBackend, policy: SavePolicy) -> Result<QTable> {
        let coll = store.collection(Q_COLLECTION).await?;
        let mut table = Table::default();
        for doc in coll.find(&Query::all()).await? {
            let id = doc.get("_id").cloned();
            let e: QEntry = serde_json::from_value(serde_json::Value::Object(doc)).map_err(|e| {
                Error::corrupt(format!("Q-value {id:?} in {Q_COLLECTION:?} is unreadable: {e}"))
            })?;
            table.insert(e);
        }
        let inner = Arc::new(Inner { coll, table: Mutex::new(table) });
        let weak: std::sync::Weak<dyn SaveChanges> = Arc::downgrade(&inner) as _;
        let saver = AutoSaver::start(policy, weak);
        Ok(QTable { inner, saver })
    }

    /// The entry for `(state, action)`.
    pub fn get(&self, state: &str, action: &str) -> Option<QEntry> {
        self.inner.table.lock().entries.get(&(state.to_owned(), action.to_owned())).cloned()
    }

    /// Q(state, action), 0 when unknown.
    pub fn q_value(&self, state: &str, action: &str) -> f64 {
        self.get(state, action).map_or(0.0, |e| e.value)
    }

    fn put(&self, state: &str, action: &str, value: f64) -> Result<()> {
        if !value.is_finite() {
            return Err(Error::invalid(format!(
                "Q-value for ({state:?}, {action:?}) must be finite, got {value}"
            )));
        }
        let k = (state.to_owned(), action.to_owned());
        let mut t = self.inner.table.lock();
        if !t.entries.contains_key(&k) {
            t.insert(QEntry {
                state: k.0.clone(),
                action: k.1.clone(),
                value: 0.0,
                visits: 0,
                updated_at: 0,
            });
        }
        let e = t.entries.get_mut(&k).expect("inserted above");
        e.value = value;
        e.visits += 1;
        e.updated_at = now_ms();
        t.dirty.insert(k);
        Ok(())
    }

    /// Stores entries as given (value, visits and update time kept, not counted as new updates),
    /// replacing those of the same (state, action), and saves them before returning; returns how
    /// many distinct (state, action) pairs were stored. Storing the same entries again leaves the
    /// same data, so an import can be repeated. A non-finite value or a (state, action) pair
    /// longer than an id may be is `InvalidInput` and nothing changes. When the save fails the
    /// entries stay in memory, unsaved, and the policy retries them as after any change.
    pub async fn put_entries(&self, entries: Vec<QEntry>) -> Result<usize> {
        for e in &entries {
            if !e.value.is_finite() {
                return Err(Error::invalid(format!(
                    "Q-value for ({:?}, {:?}) must be finite, got {}",
                    e.state, e.action, e.value
                )));
            }
            orbstore_core::validate_id(&key(&e.state, &e.action))?;
        }
        let stored = {
            let mut t = self.inner.table.lock();
            let mut keys = HashSet::new();
            for e in entries {
                let k = (e.state.clone(), e.action.clone());
                t.dirty.insert(k.clone());
                t.insert(e);
                keys.insert(k);
            }
            keys.len()
        };
        self.saver.mark_unsaved(stored);
        self.saver.flush().await?;
        Ok(stored)
    }

    /// Sets Q(state, action).
    pub async fn set(&self, state: &str, action: &str, value: f64) -> Result<()> {
        self.put(state, action, value)?;
        self.saver.changed(1).await;
        Ok(())
    }

    /// The Q-learning update: Q(s,a) <- Q(s,a) + alpha [r + gamma max_a' Q(s',a') - Q(s,a)],
    /// where the max is 0 when `next_state` has no Q-values. Returns the new value.
    pub async fn update(
        &self,
        state: &str,
        action: &str,
        reward: f64,
        next_state: &str,
        alpha: f64,
        gamma: f64,
    ) -> Result<f64> {
        if !(0.0..=1.0).contains(&alpha) || !(0.0..=1.0).contains(&gamma) {
            return Err(Error::invalid(format!("alpha ({alpha}) and gamma ({gamma}) must be within 0..=1")));
        }
        let best_next = self.max_value(next_state).unwrap_or(0.0);
        let old = self.q_value(state, action);
        let new = old + alpha * (reward + gamma * best_next - old);
        self.set(state, action, new).await?;
        Ok(new)
    }

    fn max_value(&self, state: &str) -> Option<f64> {
        let t = self.inner.table.lock();
        let actions = t.actions.get(state)?;
        let key = |a: &String| (state.to_owned(), a.clone());
        actions.iter().filter_map(|a| t.entries.get(&key(a))).map(|e| e.value).reduce(f64::max)
    }

    /// The actions known for a state with their values, best first (ties by action id).
    pub fn state_actions(&self, state: &str) -> Vec<(String, f64)> {
        let t = self.inner.table.lock();
        let Some(actions) = t.actions.get(state) else { return Vec::new() };
        let mut out: Vec<(String, f64)> = actions
            .iter()
            .filter_map(|a| t.entries.get(&(state.to_owned(), a.clone())))
            .map(|e| (e.action.clone(), e.value))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// The best known action for a state.
    pub fn best_action(&self, state: &str) -> Option<String> {
        self.state_actions(state).into_iter().next().map(|(a, _)| a)
    }

    /// Epsilon-greedy: with probability `epsilon` the candidates in random order, otherwise by
    /// Q-value, best first (unknown actions count 0; ties keep the candidates' order). The first
    /// is the action to take.
    pub fn select_actions<R: Rng + ?Sized>(
        &self,
        state: &str,
        candidates: &[String],
        epsilon: f64,
        rng: &mut R,
    ) -> Vec<String> {
        let mut out = candidates.to_vec();
        if rng.random::<f64>() < epsilon {
            out.shuffle(rng);
        } else {
            let t = self.inner.table.lock();
            let value = |a: &String| t.entries.get(&(state.to_owned(), a.clone())).map_or(0.0, |e| e.value);
            out.sort_by(|a, b| value(b).total_cmp(&value(a)));
        }
        out
    }

    /// Entries, states, mean and max value.
    pub fn stats(&self) -> QStats {
        let t = self.inner.table.lock();
        let n = t.entries.len();
        let sum: f64 = t.entries.values().map(|e| e.value).sum();
        QStats {
            entries: n,
            states: t.actions.len(),
            mean: if n == 0 { 0.0 } else { sum / n as f64 },
            max: t.entries.values().map(|e| e.value).reduce(f64::max),
        }
    }

    /// Saves unsaved changes now.
    pub async fn flush(&self) -> Result<()> {
        self.saver.flush().await
    }

    /// Forgets every Q-value (saved by the policy like any change).
    pub async fn clear(&self) -> Result<()> {
        let n = {
            let mut t = self.inner.table.lock();
            let n = t.entries.len();
            t.entries.clear();
            t.actions.clear();
            t.dirty.clear();
            t.cleared = true;
            n
        };
        self.saver.changed(n.max(1)).await;
        Ok(())
    }

    /// Where saving stands.
    pub fn status(&self) -> SaveStatus {
        self.saver.status()
    }
}
