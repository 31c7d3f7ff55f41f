//! [`Index`]: what a replay buffer keeps in memory, compactly. Each experience is a slot: a
//! number into columns of fixed-size fields (its id in 16 bytes, user, timestamp, reward, flags
//! and, in memory mode, interned state, action and next state and the watch duration), with no
//! allocation of its own. Each user has the slots it holds (the positions its sum tree of
//! priorities follows) and their insertion order for eviction.
//!
//! Slots are reused after removal; a slot's generation changes with each reuse, so that a slot
//! number remembered earlier (in the eviction order, among the priorities to save) is known to
//! be stale.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use orbstore_core::Result;
use rand::Rng;

use super::key::Key;
use super::strings::{Strings, Sym};
use super::Experience;
use crate::sumtree::SumTree;

/// The fields of an experience, borrowed (from an [`Experience`], or from a stored document).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub id: &'a str,
    pub user: &'a str,
    pub state: &'a str,
    pub action: &'a str,
    pub next_state: &'a str,
    pub reward: f64,
    pub timestamp: u64,
    pub completed: bool,
    pub watch_duration: Option<f64>,
}

impl<'a> From<&'a Experience> for Fields<'a> {
    fn from(e: &'a Experience) -> Fields<'a> {
        Fields {
            id: &e.id,
            user: &e.user,
            state: &e.state,
            action: &e.action,
            next_state: &e.next_state,
            reward: e.reward,
            timestamp: e.timestamp,
            completed: e.completed,
            watch_duration: e.watch_duration,
        }
    }
}

/// A slot's flags.
const LIVE: u8 = 1;
const COMPLETED: u8 = 2;
/// The id is [`Key::Named`] (its symbol in the id column's low half), not a UUID.
const NAMED: u8 = 4;

/// The columns, one entry per slot.
#[derive(Default)]
struct Slots {
    /// The id: a UUID's two halves, or a named id's symbol in the second.
    id: Vec<[u64; 2]>,
    user: Vec<Sym>,
    /// The slot's position in its user's `live` (and sum tree).
    pos: Vec<u32>,
    generation: Vec<u32>,
    timestamp: Vec<u64>,
    reward: Vec<f64>,
    flags: Vec<u8>,
    /// Memory mode only (empty otherwise): state, action, next state.
    text: Vec<[Sym; 3]>,
    /// Memory mode only: the watch duration, NaN for none (a stored one is never NaN: JSON has
    /// no NaN, and a NaN given is stored as null).
    watch: Vec<f64>,
    free: Vec<u32>,
}

/// One user's experiences.
#[derive(Default)]
struct UserBuffer {
    /// Its slots; a slot's `pos` is its place here and in `priorities`.
    live: Vec<u32>,
    /// Slots (with their generation) in insertion order; stale ones are skipped when met.
    fifo: VecDeque<(u32, u32)>,
    priorities: SumTree,
    max_priority: f64,
}

/// The in-memory index of a replay buffer.
pub(crate) struct Index {
    strings: Strings,
    slots: Slots,
    /// Live slots, found by their id's hash.
    ids: HashTable<u32>,
    hasher: DefaultHashBuilder,
    users: HashMap<Sym, UserBuffer>,
    /// Slots whose priority was set since the last save, with their generation then.
    dirty: HashMap<u32, u32>,
    /// Whether the state, action, next state and watch duration are held (memory mode).
    payload: bool,
    live: usize,
}

/// The priority a new experience gets: the highest seen, 1 at first.
fn new_priority(max_priority: f64) -> f64 {
    if max_priority > 0.0 {
        max_priority
    } else {
        1.0
    }
}

impl Index {
    /// An empty index; `payload`: whether it holds whole experiences (memory mode) or only what
    /// sampling and selection need (disk-backed mode).
    pub(crate) fn new(payload: bool) -> Index {
        Index {
            strings: Strings::default(),
            slots: Slots::default(),
            ids: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            users: HashMap::new(),
            dirty: HashMap::new(),
            payload,
            live: 0,
        }
    }

    /// Makes room for `n` more experiences (a load knows how many are coming).
    pub(crate) fn reserve(&mut self, n: usize) {
        let s = &mut self.slots;
        s.id.reserve_exact(n);
        s.user.reserve_exact(n);
        s.pos.reserve_exact(n);
        s.generation.reserve_exact(n);
        s.timestamp.reserve_exact(n);
        s.reward.reserve_exact(n);
        s.flags.reserve_exact(n);
        if self.payload {
            s.text.reserve_exact(n);
            s.watch.reserve_exact(n);
            // States are mostly distinct, and a next state is usually the next experience's state.
            self.strings.reserve(n, 16);
        }
        let Index { ids, slots, hasher, .. } = self;
        ids.reserve(n, |&slot| hasher.hash_one(key_of(slots, slot)));
    }

    /// How many experiences are held.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The slot holding this id.
    pub(crate) fn find(&self, id: &str) -> Option<u32> {
        let key = Key::lookup(id, &self.strings)?;
        let hash = self.hasher.hash_one(key);
        self.ids.find(hash, |&slot| key_of(&self.slots, slot) == key).copied()
    }

    /// The slot's id.
    pub(crate) fn key(&self, slot: u32) -> Key {
        key_of(&self.slots, slot)
    }

    /// The slot's id as a string.
    pub(crate) fn id_string(&self, slot: u32) -> String {
        self.key(slot).id_string(&self.strings)
    }

    /// Whether `slot` still holds the experience it held at `generation`.
    pub(crate) fn is_current(&self, slot: u32, generation: u32) -> bool {
        let i = slot as usize;
        self.slots.flags.get(i).is_some_and(|f| f & LIVE != 0) && self.slots.generation[i] == generation
    }

    /// The experience in a slot, built (memory mode; in disk-backed mode its text fields are
    /// empty: the caller reads the document instead).
    pub(crate) fn experience(&self, slot: u32) -> Experience {
        let i = slot as usize;
        let s = &self.slots;
        let (text, watch) = if self.payload {
            let [state, action, next] = s.text[i];
            let g = |sym| self.strings.get(sym).to_owned();
            let w = s.watch[i];
            ([g(state), g(action), g(next)], (!w.is_nan()).then_some(w))
        } else {
            (Default::default(), None)
        };
        let [state, action, next_state] = text;
        Experience {
            id: self.id_string(slot),
            user: self.strings.get(s.user[i]).to_owned(),
            state,
            action,
            reward: s.reward[i],
            next_state,
            timestamp: s.timestamp[i],
            completed: s.flags[i] & COMPLETED != 0,
            watch_duration: watch,
        }
    }

    /// Writes the experiences in `picks` (slot, priority) into a batch (memory mode). In passes
    /// over all of them (the fixed-size fields, then the strings), so that the memory reads of
    /// different experiences overlap rather than wait on one another.
    pub(crate) fn fill_batch(&self, picks: &[(u32, f64)], out: &mut super::batch::ExperienceBatch) {
        let s = &self.slots;
        let fixed: Vec<(Key, [Sym; 4], f64, u64, u8, f64)> = picks
            .iter()
            .map(|&(slot, _)| {
                let i = slot as usize;
                let [state, action, next] = s.text[i];
                (
                    self.key(slot),
                    [s.user[i], state, action, next],
                    s.reward[i],
                    s.timestamp[i],
                    s.flags[i],
                    s.watch[i],
                )
            })
            .collect();
        out.rows.reserve(picks.len());
        for (&(_, priority), (key, syms, reward, timestamp, flags, watch)) in picks.iter().zip(fixed) {
            let span = |text: &mut String, v: &str| {
                let start = text.len() as u32;
                text.push_str(v);
                (start, v.len() as u32)
            };
            let id = match key {
                Key::Uuid(v) => span(&mut out.text, super::key::format_uuid(v, &mut [0; 36])),
                Key::Named(sym) => span(&mut out.text, self.strings.get(sym)),
            };
            let [user, state, action, next] = syms.map(|sym| span(&mut out.text, self.strings.get(sym)));
            out.rows.push(super::batch::Row {
                spans: [id, user, state, action, next],
                reward,
                timestamp,
                completed: flags & COMPLETED != 0,
                watch_duration: (!watch.is_nan()).then_some(watch),
                priority,
            });
        }
    }

    /// Interns the strings an experience needs beyond its user: its id if named, its state,
    /// action and next state in memory mode. On failure nothing stays interned.
    fn intern_payload(&mut self, f: &Fields<'_>) -> Result<(Key, [Sym; 3])> {
        let key = Key::intern(f.id, &mut self.strings)?;
        if !self.payload {
            return Ok((key, [0; 3]));
        }
        let mut text = [0; 3];
        for (k, s) in [f.state, f.action, f.next_state].into_iter().enumerate() {
            match self.strings.intern(s) {
                Ok(sym) => text[k] = sym,
                Err(e) => {
                    for &sym in &text[..k] {
                        self.strings.release(sym);
                    }
                    if let Key::Named(sym) = key {
                        self.strings.release(sym);
                    }
                    return Err(e);
                }
            }
        }
        Ok((key, text))
    }

    /// Puts an experience into a free slot, not yet in its user's buffer ([`Index::attach`]).
    /// Its id must not be held.
    pub(crate) fn store(&mut self, f: &Fields<'_>) -> Result<u32> {
        let user = self.strings.intern(f.user)?;
        let (key, text) = match self.intern_payload(f) {
            Ok(x) => x,
            Err(e) => {
                self.strings.release(user);
                return Err(e);
            }
        };
        let id = match key {
            Key::Uuid(v) => [(v >> 64) as u64, v as u64],
            Key::Named(sym) => [0, u64::from(sym)],
        };
        let mut flags = LIVE;
        if f.completed {
            flags |= COMPLETED;
        }
        if matches!(key, Key::Named(_)) {
            flags |= NAMED;
        }
        let watch = f.watch_duration.unwrap_or(f64::NAN);
        let s = &mut self.slots;
        let slot = match s.free.pop() {
            Some(slot) => {
                let i = slot as usize;
                (s.id[i], s.user[i], s.timestamp[i], s.reward[i], s.flags[i]) =
                    (id, user, f.timestamp, f.reward, flags);
                if self.payload {
                    (s.text[i], s.watch[i]) = (text, watch);
                }
                slot
            }
            None => {
                let slot = s.id.len() as u32;
                s.id.push(id);
                s.user.push(user);
                s.pos.push(0);
                s.generation.push(0);
                s.timestamp.push(f.timestamp);
                s.reward.push(f.reward);
                s.flags.push(flags);
                if self.payload {
                    s.text.push(text);
                    s.watch.push(watch);
                }
                slot
            }
        };
        let Index { ids, slots, hasher, .. } = self;
        ids.insert_unique(hasher.hash_one(key), slot, |&other| hasher.hash_one(key_of(slots, other)));
        self.live += 1;
        Ok(slot)
    }

    /// Adds a stored slot to its user's buffer, with its stored priority or the highest seen.
    pub(crate) fn attach(&mut self, slot: u32, stored: Option<f64>) {
        let i = slot as usize;
        let user = self.slots.user[i];
        let strings = &mut self.strings;
        let buf = self.users.entry(user).or_insert_with(|| {
            // The buffer outlives its experiences (it keeps the highest priority seen), so it
            // holds its user's name too.
            strings.retain(user);
            UserBuffer::default()
        });
        let p = match stored {
            Some(p) => {
                buf.max_priority = buf.max_priority.max(p);
                p
            }
            None => new_priority(buf.max_priority),
        };
        self.slots.pos[i] = buf.live.len() as u32;
        buf.live.push(slot);
        buf.fifo.push_back((slot, self.slots.generation[i]));
        buf.priorities.push(p);
    }

    /// Holds an experience just written to the collection: a new one at the end of its user's
    /// eviction order; one replacing a held experience of the same user in its place (its
    /// priority back to the highest seen, as a new one's); one moving to another user at the
    /// end of that user's order.
    pub(crate) fn put(&mut self, f: &Fields<'_>) -> Result<()> {
        if let Some(slot) = self.find(f.id) {
            let i = slot as usize;
            if self.strings.get(self.slots.user[i]) == f.user {
                return self.replace(slot, f);
            }
            self.remove(slot);
        }
        let slot = self.store(f)?;
        self.attach(slot, None);
        Ok(())
    }

    /// Replaces the fields of a held experience of the same user and id.
    fn replace(&mut self, slot: u32, f: &Fields<'_>) -> Result<()> {
        let i = slot as usize;
        if self.payload {
            let mut text = [0; 3];
            for (k, s) in [f.state, f.action, f.next_state].into_iter().enumerate() {
                match self.strings.intern(s) {
                    Ok(sym) => text[k] = sym,
                    Err(e) => {
                        for &sym in &text[..k] {
                            self.strings.release(sym);
                        }
                        return Err(e);
                    }
                }
            }
            for sym in std::mem::replace(&mut self.slots.text[i], text) {
                self.strings.release(sym);
            }
            self.slots.watch[i] = f.watch_duration.unwrap_or(f64::NAN);
        }
        let s = &mut self.slots;
        s.timestamp[i] = f.timestamp;
        s.reward[i] = f.reward;
        s.flags[i] = (s.flags[i] & !COMPLETED) | if f.completed { COMPLETED } else { 0 };
        self.dirty.remove(&slot);
        if let Some(buf) = self.users.get_mut(&s.user[i]) {
            buf.priorities.set(s.pos[i] as usize, new_priority(buf.max_priority));
        }
        Ok(())
    }

    /// Forgets a held experience.
    pub(crate) fn remove(&mut self, slot: u32) {
        let i = slot as usize;
        if self.slots.flags[i] & LIVE == 0 {
            return;
        }
        let key = self.key(slot);
        let user = self.slots.user[i];
        if let Some(buf) = self.users.get_mut(&user) {
            let p = self.slots.pos[i] as usize;
            buf.live.swap_remove(p);
            buf.priorities.swap_remove(p);
            if let Some(&moved) = buf.live.get(p) {
                self.slots.pos[moved as usize] = p as u32;
            }
            // Stale entries are dropped when they reach the front; without eviction they might
            // not, so they are swept once they outnumber the live ones.
            if buf.fifo.len() > 2 * buf.live.len() + 64 {
                let (flags, generation) = (&self.slots.flags, &self.slots.generation);
                buf.fifo.retain(|&(s, g)| {
                    flags[s as usize] & LIVE != 0 && generation[s as usize] == g && s != slot
                });
            }
        }
        let hash = self.hasher.hash_one(key);
        if let Ok(entry) = self.ids.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.strings.release(user);
        if let Key::Named(sym) = key {
            self.strings.release(sym);
        }
        if self.payload {
            for sym in self.slots.text[i] {
                self.strings.release(sym);
            }
        }
        let s = &mut self.slots;
        s.flags[i] = 0;
        s.generation[i] = s.generation[i].wrapping_add(1);
        s.free.push(slot);
        self.dirty.remove(&slot);
        self.live -= 1;
    }

    /// Evicts a user's oldest experiences beyond `cap`, adding their ids to `evicted`.
    pub(crate) fn evict(&mut self, user: &str, cap: usize, evicted: &mut Vec<String>) {
        let Some(sym) = self.strings.find(user) else { return };
        loop {
            let Some(buf) = self.users.get_mut(&sym) else { return };
            if buf.live.len() <= cap {
                return;
            }
            let Some((slot, generation)) = buf.fifo.pop_front() else { return };
            let i = slot as usize;
            let s = &self.slots;
            if s.flags[i] & LIVE != 0 && s.generation[i] == generation && s.user[i] == sym {
                evicted.push(self.id_string(slot));
                self.remove(slot);
            }
        }
    }

    /// A user's buffer.
    fn user(&self, user: &str) -> Option<&UserBuffer> {
        self.users.get(&self.strings.find(user)?)
    }

    /// A user's slots that `keep` accepts, oldest first (by timestamp, then id, as the
    /// collection sorts them).
    pub(crate) fn select(&self, user: &str, keep: impl Fn(&Index, u32) -> bool) -> Vec<u32> {
        let Some(buf) = self.user(user) else { return Vec::new() };
        let mut out: Vec<u32> = buf.live.iter().copied().filter(|&s| keep(self, s)).collect();
        out.sort_by(|&a, &b| self.cmp_age(a, b));
        out
    }

    /// Whether slot `a` is older than `b`: by timestamp, then by id.
    fn cmp_age(&self, a: u32, b: u32) -> Ordering {
        let t = &self.slots.timestamp;
        t[a as usize].cmp(&t[b as usize]).then_with(|| self.key(a).cmp_ids(self.key(b), &self.strings))
    }

    /// Whether the slot's experience was completed.
    pub(crate) fn completed(&self, slot: u32) -> bool {
        self.slots.flags[slot as usize] & COMPLETED != 0
    }

    /// The slot's reward.
    pub(crate) fn reward(&self, slot: u32) -> f64 {
        self.slots.reward[slot as usize]
    }

    /// A user's count, reward sum and completed count.
    pub(crate) fn totals(&self, user: &str) -> (usize, f64, usize) {
        let Some(buf) = self.user(user) else { return (0, 0.0, 0) };
        let reward = buf.live.iter().map(|&s| self.reward(s)).sum();
        let done = buf.live.iter().filter(|&&s| self.completed(s)).count();
        (buf.live.len(), reward, done)
    }

    /// `n` of a user's slots, uniformly without replacement.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, user: &str, n: usize, rng: &mut R) -> Vec<u32> {
        let Some(buf) = self.user(user) else { return Vec::new() };
        let n = n.min(buf.live.len());
        rand::seq::index::sample(rng, buf.live.len(), n).into_iter().map(|i| buf.live[i]).collect()
    }

    /// `n` of a user's slots drawn in proportion to their priorities (stratified: one draw per
    /// equal slice of the total), with their priorities.
    pub(crate) fn sample_prioritized<R: Rng + ?Sized>(
        &self,
        user: &str,
        n: usize,
        rng: &mut R,
    ) -> Vec<(u32, f64)> {
        let Some(buf) = self.user(user) else { return Vec::new() };
        let total = buf.priorities.total();
        if buf.live.is_empty() || total <= 0.0 || n == 0 {
            return Vec::new();
        }
        let slice = total / n as f64;
        (0..n)
            .map(|k| {
                let x = slice * (k as f64 + rng.random::<f64>());
                let i = buf.priorities.find(x.min(total * (1.0 - f64::EPSILON)));
                (buf.live[i], buf.priorities.get(i))
            })
            .collect()
    }

    /// Sets the priority of the experience with this id; `false` when none is held.
    pub(crate) fn set_priority(&mut self, id: &str, p: f64) -> bool {
        let Some(slot) = self.find(id) else { return false };
        let i = slot as usize;
        let Some(buf) = self.users.get_mut(&self.slots.user[i]) else { return false };
        buf.priorities.set(self.slots.pos[i] as usize, p);
        buf.max_priority = buf.max_priority.max(p);
        self.dirty.insert(slot, self.slots.generation[i]);
        true
    }

    /// The priorities set since the last save, as (slot, generation), forgotten here.
    pub(crate) fn take_dirty(&mut self) -> Vec<(u32, u32)> {
        self.dirty.drain().collect()
    }

    /// Marks priorities unsaved again (a save failed); stale slots are left out.
    pub(crate) fn restore_dirty(&mut self, slots: &[(u32, u32)]) {
        for &(slot, generation) in slots {
            if self.is_current(slot, generation) {
                self.dirty.insert(slot, generation);
            }
        }
    }

    /// A held slot's current priority.
    pub(crate) fn priority(&self, slot: u32) -> f64 {
        let i = slot as usize;
        self.users.get(&self.slots.user[i]).map_or(0.0, |b| b.priorities.get(self.slots.pos[i] as usize))
    }

    /// The slots of experiences older than `cutoff` (timestamp before it).
    pub(crate) fn older_than(&self, cutoff: u64) -> Vec<u32> {
        let s = &self.slots;
        (0..s.flags.len() as u32)
            .filter(|&slot| s.flags[slot as usize] & LIVE != 0 && s.timestamp[slot as usize] < cutoff)
            .collect()
    }
}

/// A slot's key, from the columns alone (so that the id table's hasher can borrow them while
/// the table itself is borrowed mutably).
fn key_of(slots: &Slots, slot: u32) -> Key {
    let i = slot as usize;
    let [hi, lo] = slots.id[i];
    if slots.flags[i] & NAMED != 0 {
        Key::Named(lo as Sym)
    } else {
        Key::Uuid((u128::from(hi) << 64) | u128::from(lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(id: &'a str, user: &'a str, state: &'a str, t: u64) -> Fields<'a> {
        Fields {
            id,
            user,
            state,
            action: "a",
            next_state: "n",
            reward: t as f64,
            timestamp: t,
            completed: t.is_multiple_of(2),
            watch_duration: None,
        }
    }

    #[test]
    fn slots_are_reused_and_stale_positions_are_known() {
        let mut idx = Index::new(true);
        let ids: Vec<String> = (0..5).map(|_| orbstore_core::generate_id()).collect();
        for (t, id) in ids.iter().enumerate() {
            idx.put(&fields(id, "u", &format!("s{t}"), t as u64)).unwrap();
        }
        idx.put(&fields("named", "u", "s9", 9)).unwrap();
        assert_eq!(idx.len(), 6);
        let mut evicted = Vec::new();
        idx.evict("u", 3, &mut evicted);
        assert_eq!(evicted, ids[..3]);
        assert_eq!(idx.find(&ids[0]), None);
        let slot = idx.find("named").unwrap();
        assert_eq!(idx.experience(slot).state, "s9");
        // A replaced experience keeps its place; a new one takes a freed slot.
        idx.put(&fields(&ids[3], "u", "again", 20)).unwrap();
        idx.put(&fields("other", "u", "s10", 10)).unwrap();
        idx.evict("u", 3, &mut evicted);
        assert_eq!(evicted[3..], [ids[3].clone()]);
        let sel: Vec<String> = idx.select("u", |_, _| true).into_iter().map(|s| idx.id_string(s)).collect();
        assert_eq!(sel, [ids[4].as_str(), "named", "other"]);
        assert!(idx.strings.find("again").is_none(), "an evicted experience's strings are freed");
        assert_eq!(idx.totals("u"), (3, 4.0 + 9.0 + 10.0, 2));
    }
}
