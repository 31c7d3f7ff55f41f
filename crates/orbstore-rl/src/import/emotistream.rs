//! EmotiStream's three files, each a JavaScript `Map`, read into the stores' types.
//!
//! An entry's own fields say what it is (`stateHash` and `contentId`, `id`, `userId`); its key
//! only names it in messages. When two entries describe the same record (the same experience id,
//! say), the later one wins, as it would in `new Map(entries)`.

use std::collections::HashMap;

use serde_json::Value;

use super::shape::{map_entries, Fields};
use crate::{Experience, QEntry, UserProfile};

/// `qtable.json`: `{stateHash, contentId, qValue, visitCount, lastUpdated}` per entry.
pub(crate) fn qtable(v: &Value) -> Result<Vec<QEntry>, String> {
    let mut out = Keyed::default();
    for (key, value) in map_entries(v)? {
        let f = Fields::of(format!("entry {key:?}"), value)?;
        let e = QEntry {
            state: non_empty(&f, "stateHash")?,
            action: non_empty(&f, "contentId")?,
            value: f.number("qValue")?,
            visits: f.count("visitCount")?,
            updated_at: f.time_ms("lastUpdated")?,
        };
        // The id the Q-table stores it under must be storable, or the write would fail midway.
        orbstore_core::validate_id(&format!("{}\u{1f}{}", e.state, e.action))
            .map_err(|err| format!("{}: {}", f.at(), err.message()))?;
        out.put(format!("{}\u{1f}{}", e.state, e.action), e);
    }
    Ok(out.into_vec())
}

/// `experiences.json`: `{id, userId, stateHash, contentId, reward, nextStateHash, timestamp,
/// completed, watchDuration}` per entry; `watchDuration` may be absent or null.
pub(crate) fn experiences(v: &Value) -> Result<Vec<Experience>, String> {
    let mut out = Keyed::default();
    for (key, value) in map_entries(v)? {
        let f = Fields::of(format!("entry {key:?}"), value)?;
        let e = Experience {
            id: non_empty(&f, "id")?,
            user: non_empty(&f, "userId")?,
            state: f.string("stateHash")?,
            action: f.string("contentId")?,
            reward: f.number("reward")?,
            next_state: f.string("nextStateHash")?,
            timestamp: f.time_ms("timestamp")?,
            completed: f.boolean("completed")?,
            watch_duration: f.opt_number("watchDuration")?,
        };
        orbstore_core::validate_id(&e.id).map_err(|err| format!("{}: id: {}", f.at(), err.message()))?;
        out.put(e.id.clone(), e);
    }
    Ok(out.into_vec())
}

/// `user-profiles.json`: `{userId, explorationRate, totalExperiences, policyVersion, createdAt,
/// updatedAt}` per entry.
pub(crate) fn profiles(v: &Value) -> Result<Vec<UserProfile>, String> {
    let mut out = Keyed::default();
    for (key, value) in map_entries(v)? {
        let f = Fields::of(format!("entry {key:?}"), value)?;
        let p = UserProfile {
            user: non_empty(&f, "userId")?,
            exploration_rate: f.number("explorationRate")?,
            experiences: f.count("totalExperiences")?,
            policy_version: f.count("policyVersion")?,
            created_at: f.time_ms("createdAt")?,
            updated_at: f.time_ms("updatedAt")?,
        };
        if !(0.0..=1.0).contains(&p.exploration_rate) {
            return Err(format!(
                "{}: explorationRate must be within 0 and 1, got {}",
                f.at(),
                p.exploration_rate
            ));
        }
        orbstore_core::validate_id(&p.user)
            .map_err(|err| format!("{}: userId: {}", f.at(), err.message()))?;
        out.put(p.user.clone(), p);
    }
    Ok(out.into_vec())
}

/// A string field that is not empty (it becomes part of an id).
pub(crate) fn non_empty(f: &Fields<'_>, name: &str) -> Result<String, String> {
    let s = f.string(name)?;
    if s.is_empty() {
        return Err(format!("{}: {name} must not be empty", f.at()));
    }
    Ok(s)
}

/// Records in first-seen order, a later one with the same id replacing the earlier.
pub(crate) struct Keyed<T> {
    at: HashMap<String, usize>,
    items: Vec<T>,
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed { at: HashMap::new(), items: Vec::new() }
    }
}

impl<T> Keyed<T> {
    pub(crate) fn put(&mut self, id: String, item: T) {
        match self.at.get(&id) {
            Some(&i) => self.items[i] = item,
            None => {
                self.at.insert(id, self.items.len());
                self.items.push(item);
            }
        }
    }

    pub(crate) fn into_vec(self) -> Vec<T> {
        self.items
    }
}
