//! [`Index`]: what a replay buffer keeps in memory, compactly. Each experience is a slot: a
//! number into records of fixed-size fields (its id in 16 bytes, user, timestamp, reward, flags
//! and, in memory mode, interned state, action and next state and the watch duration: one 64-byte
//! record, a cache line, per slot), with no allocation of its own. Each user has the slots it
//! holds (the positions its sum tree of priorities follows) and their insertion order for
//! eviction.
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

use super::key::{format_uuid, Key};
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
/// The id is [`Key::Named`] (its symbol in the id's low half), not a UUID.
const NAMED: u8 = 4;

/// The fields of a slot that both modes hold (40 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Common {
    /// The id: a UUID's two halves, or a named id's symbol in the second.
    id: [u64; 2],
    timestamp: u64,
    reward: f64,
    user: Sym,
    flags: u8,
}

/// The fields only memory mode holds (24 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Payload {
    /// State, action, next state.
    text: [Sym; 3],
    /// The watch duration, NaN for none (a stored one is never NaN: JSON has no NaN, and a NaN
    /// given is stored as null).
    watch: f64,
}

/// A memory-mode slot: every field sampling reads, in one 64-byte record, so that building a
/// sampled experience reads one cache line of the slots (seven, in columns).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Full {
    common: Common,
    payload: Payload,
}

// One cache line exactly: a field added beyond it would make sampling read two.
const _: () = assert!(std::mem::size_of::<Full>() == 64 && std::mem::size_of::<Common>() == 40);

/// The slots' records: whole in memory mode, without the payload in disk-backed mode.
enum Records {
    Full(Vec<Full>),
    Lean(Vec<Common>),
}

/// The slots: a record each, and what only writing needs in columns beside.
struct Slots {
    records: Records,
    /// The slot's position in its user's `live` (and sum tree).
    pos: Vec<u32>,
    generation: Vec<u32>,
    free: Vec<u32>,
}

impl Slots {
    fn new(payload: bool) -> Slots {
        let records = if payload { Records::Full(Vec::new()) } else { Records::Lean(Vec::new()) };
        Slots { records, pos: Vec::new(), generation: Vec::new(), free: Vec::new() }
    }

    /// How many slots there are, live or free.
    fn len(&self) -> usize {
        self.pos.len()
    }

    fn reserve(&mut self, n: usize) {
        match &mut self.records {
            Records::Full(v) => v.reserve_exact(n),
            Records::Lean(v) => v.reserve_exact(n),
        }
        self.pos.reserve_exact(n);
        self.generation.reserve_exact(n);
    }

    /// A slot's common fields.
    fn c(&self, i: usize) -> &Common {
        match &self.records {
            Records::Full(v) => &v[i].common,
            Records::Lean(v) => &v[i],
        }
    }

    fn c_mut(&mut self, i: usize) -> &mut Common {
        match &mut self.records {
            Records::Full(v) => &mut v[i].common,
            Records::Lean(v) => &mut v[i],
        }
    }

    /// A slot's payload (memory mode).
    fn payload(&self, i: usize) -> Option<&Payload> {
        match &self.records {
            Records::Full(v) => Some(&v[i].payload),
            Records::Lean(_) => None,
        }
    }

    fn payload_mut(&mut self, i: usize) -> Option<&mut Payload> {
        match &mut self.records {
            Records::Full(v) => Some(&mut v[i].payload),
            Records::Lean(_) => None,
        }
    }

    /// A slot's record, whole (a copy; the payload is the default in disk-backed mode).
    fn full(&self, i: usize) -> Full {
        match &self.records {
            Records::Full(v) => v[i],
            Records::Lean(v) => Full { common: v[i], payload: Payload::default() },
        }
    }

    /// Writes a slot's fields, into slot `i` or (`i` the number of slots) a new one.
    fn write(&mut self, i: usize, common: Common, payload: Payload) {
        if i == self.len() {
            match &mut self.records {
                Records::Full(v) => v.push(Full { common, payload }),
                Records::Lean(v) => v.push(common),
            }
            self.pos.push(0);
            self.generation.push(0);
        } else {
            match &mut self.records {
                Records::Full(v) => v[i] = Full { common, payload },
                Records::Lean(v) => v[i] = common,
            }
        }
    }

    /// Whether slot `i` exists and holds an experience.
    fn is_live(&self, i: usize) -> bool {
        i < self.len() && self.c(i).flags & LIVE != 0
    }
}

/// How many experiences [`Index::experiences`] builds in one round of passes (its scratch
/// arrays are on the stack).
const ROUND: usize = 32;

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
            slots: Slots::new(payload),
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
        self.slots.reserve(n);
        if self.payload {
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
        self.slots.is_live(i) && self.slots.generation[i] == generation
    }

    /// The experience in a slot, built (memory mode; in disk-backed mode its text fields are
    /// empty: the caller reads the document instead).
    #[cfg(test)]
    pub(crate) fn experience(&self, slot: u32) -> Experience {
        let mut out = Vec::with_capacity(1);
        self.experiences(&[slot], &mut out);
        out.remove(0)
    }

    /// Reads a round of (at most [`ROUND`]) slots: their records into `recs`, and their
    /// strings into `strs` (id if named, user, state, action, next state; empty for none). In
    /// passes over all of them, so that the memory reads of different experiences overlap
    /// rather than wait on one another: the records (one cache line each), then where each
    /// string is, then the strings themselves (slicing reads a string's first byte).
    fn gather<'a, T>(
        &'a self,
        round: &[T],
        slot: impl Fn(&T) -> u32,
        recs: &mut [Full; ROUND],
        strs: &mut [[&'a str; 5]; ROUND],
    ) {
        for (rec, t) in recs.iter_mut().zip(round) {
            *rec = self.slots.full(slot(t) as usize);
        }
        let mut spans = [[(0u32, 0u32); 5]; ROUND];
        for (rec, sp) in recs.iter().zip(spans.iter_mut()).take(round.len()) {
            let c = &rec.common;
            if c.flags & NAMED != 0 {
                sp[0] = self.strings.span(c.id[1] as Sym);
            }
            sp[1] = self.strings.span(c.user);
            if self.payload {
                let [state, action, next] = rec.payload.text;
                sp[2] = self.strings.span(state);
                sp[3] = self.strings.span(action);
                sp[4] = self.strings.span(next);
            }
        }
        for (s, sp) in strs.iter_mut().zip(&spans).take(round.len()) {
            *s = sp.map(|span| self.strings.at(span));
        }
    }

    /// Appends the experiences in `slots` to `out`, built (memory mode; in disk-backed mode their
    /// text fields are empty), read in rounds of [`Index::gather`].
    pub(crate) fn experiences(&self, slots: &[u32], out: &mut Vec<Experience>) {
        out.reserve(slots.len());
        let mut recs = [Full::default(); ROUND];
        let mut strs = [[""; 5]; ROUND];
        for round in slots.chunks(ROUND) {
            self.gather(round, |&s| s, &mut recs, &mut strs);
            for (rec, [id, user, state, action, next]) in recs.iter().zip(&strs).take(round.len()) {
                let c = &rec.common;
                let id = if c.flags & NAMED != 0 {
                    (*id).to_owned()
                } else {
                    format_uuid(uuid_of(c), &mut [0; 36]).to_owned()
                };
                out.push(Experience {
                    id,
                    user: (*user).to_owned(),
                    state: (*state).to_owned(),
                    action: (*action).to_owned(),
                    reward: c.reward,
                    next_state: (*next).to_owned(),
                    timestamp: c.timestamp,
                    completed: c.flags & COMPLETED != 0,
                    watch_duration: self.watch(rec),
                });
            }
        }
    }

    /// A record's watch duration (none in disk-backed mode).
    fn watch(&self, rec: &Full) -> Option<f64> {
        let w = rec.payload.watch;
        (self.payload && !w.is_nan()).then_some(w)
    }

    /// Writes the experiences in `picks` (slot, priority) into a batch (memory mode), read in
    /// rounds of [`Index::gather`], each round's text reserved whole before it is written.
    pub(crate) fn fill_batch(&self, picks: &[(u32, f64)], out: &mut super::batch::ExperienceBatch) {
        out.rows.reserve(picks.len());
        let mut recs = [Full::default(); ROUND];
        let mut strs = [[""; 5]; ROUND];
        for round in picks.chunks(ROUND) {
            self.gather(round, |&(s, _)| s, &mut recs, &mut strs);
            let len: usize = recs
                .iter()
                .zip(&strs)
                .take(round.len())
                .map(|(rec, ss)| {
                    let id = if rec.common.flags & NAMED != 0 { 0 } else { 36 };
                    id + ss.iter().map(|s| s.len()).sum::<usize>()
                })
                .sum();
            out.text.reserve(len);
            for ((rec, ss), &(_, priority)) in recs.iter().zip(&strs).zip(round) {
                let c = &rec.common;
                let text = &mut out.text;
                let mut span = |v: &str| {
                    let start = text.len() as u32;
                    text.push_str(v);
                    (start, v.len() as u32)
                };
                let id = if c.flags & NAMED != 0 {
                    span(ss[0])
                } else {
                    span(format_uuid(uuid_of(c), &mut [0; 36]))
                };
                let [user, state, action, next] = [ss[1], ss[2], ss[3], ss[4]].map(&mut span);
                out.rows.push(super::batch::Row {
                    spans: [id, user, state, action, next],
                    reward: c.reward,
                    timestamp: c.timestamp,
                    completed: c.flags & COMPLETED != 0,
                    watch_duration: self.watch(rec),
                    priority,
                });
            }
        }
    }

    /// Interns the strings an experience needs beyond its user: its id if named, its state,
    /// action and next state in memory mode. On failure nothing stays interned.
    fn intern_payload(&mut self, f: &Fields<'_>) -> Result<(Key, [Sym; 3])> {
        let key = Key::intern(f.id, &mut self.strings)?;
        if !self.payload {
            return Ok((key, [0; 3]));
        }
        match self.intern_text(f) {
            Ok(text) => Ok((key, text)),
            Err(e) => {
                if let Key::Named(sym) = key {
                    self.strings.release(sym);
                }
                Err(e)
            }
        }
    }

    /// Interns an experience's state, action and next state. On failure nothing stays interned.
    fn intern_text(&mut self, f: &Fields<'_>) -> Result<[Sym; 3]> {
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
        Ok(text)
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
        let common = Common { id, timestamp: f.timestamp, reward: f.reward, user, flags };
        let payload = Payload { text, watch: f.watch_duration.unwrap_or(f64::NAN) };
        let s = &mut self.slots;
        let slot = s.free.pop().unwrap_or(s.len() as u32);
        s.write(slot as usize, common, payload);
        let Index { ids, slots, hasher, .. } = self;
        ids.insert_unique(hasher.hash_one(key), slot, |&other| hasher.hash_one(key_of(slots, other)));
        self.live += 1;
        Ok(slot)
    }

    /// Adds a stored slot to its user's buffer, with its stored priority or the highest seen.
    pub(crate) fn attach(&mut self, slot: u32, stored: Option<f64>) {
        let i = slot as usize;
        let user = self.slots.c(i).user;
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
            if self.strings.get(self.slots.c(slot as usize).user) == f.user {
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
            let text = self.intern_text(f)?;
            if let Some(p) = self.slots.payload_mut(i) {
                let old = std::mem::replace(&mut p.text, text);
                p.watch = f.watch_duration.unwrap_or(f64::NAN);
                for sym in old {
                    self.strings.release(sym);
                }
            }
        }
        let c = self.slots.c_mut(i);
        c.timestamp = f.timestamp;
        c.reward = f.reward;
        c.flags = (c.flags & !COMPLETED) | if f.completed { COMPLETED } else { 0 };
        let user = c.user;
        self.dirty.remove(&slot);
        if let Some(buf) = self.users.get_mut(&user) {
            buf.priorities.set(self.slots.pos[i] as usize, new_priority(buf.max_priority));
        }
        Ok(())
    }

    /// Forgets a held experience.
    pub(crate) fn remove(&mut self, slot: u32) {
        let i = slot as usize;
        if !self.slots.is_live(i) {
            return;
        }
        let key = self.key(slot);
        let user = self.slots.c(i).user;
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
                let slots = &self.slots;
                buf.fifo.retain(|&(s, g)| {
                    slots.is_live(s as usize) && slots.generation[s as usize] == g && s != slot
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
        if let Some(p) = self.slots.payload(i) {
            for sym in p.text {
                self.strings.release(sym);
            }
        }
        let s = &mut self.slots;
        s.c_mut(i).flags = 0;
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
            if s.is_live(i) && s.generation[i] == generation && s.c(i).user == sym {
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
        let t = |s: u32| self.slots.c(s as usize).timestamp;
        t(a).cmp(&t(b)).then_with(|| self.key(a).cmp_ids(self.key(b), &self.strings))
    }

    /// Whether the slot's experience was completed.
    pub(crate) fn completed(&self, slot: u32) -> bool {
        self.slots.c(slot as usize).flags & COMPLETED != 0
    }

    /// The slot's reward.
    pub(crate) fn reward(&self, slot: u32) -> f64 {
        self.slots.c(slot as usize).reward
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
    /// equal slice of the total), with their priorities. The sum tree is descended for all `n`
    /// together ([`SumTree::find_many`]).
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
        let xs: Vec<f64> = (0..n)
            .map(|k| (slice * (k as f64 + rng.random::<f64>())).min(total * (1.0 - f64::EPSILON)))
            .collect();
        let mut found = Vec::with_capacity(n);
        buf.priorities.find_many(&xs, &mut found);
        found.into_iter().map(|i| (buf.live[i], buf.priorities.get(i))).collect()
    }

    /// Sets the priority of the experience with this id; `false` when none is held.
    pub(crate) fn set_priority(&mut self, id: &str, p: f64) -> bool {
        let Some(slot) = self.find(id) else { return false };
        let i = slot as usize;
        let Some(buf) = self.users.get_mut(&self.slots.c(i).user) else { return false };
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
        self.users.get(&self.slots.c(i).user).map_or(0.0, |b| b.priorities.get(self.slots.pos[i] as usize))
    }

    /// The slots of experiences older than `cutoff` (timestamp before it).
    pub(crate) fn older_than(&self, cutoff: u64) -> Vec<u32> {
        let s = &self.slots;
        (0..s.len() as u32)
            .filter(|&slot| s.is_live(slot as usize) && s.c(slot as usize).timestamp < cutoff)
            .collect()
    }
}

/// A UUID id's value, from its record's two halves.
fn uuid_of(c: &Common) -> u128 {
    let [hi, lo] = c.id;
    (u128::from(hi) << 64) | u128::from(lo)
}

/// A slot's key, from the records alone (so that the id table's hasher can borrow them while
/// the table itself is borrowed mutably).
fn key_of(slots: &Slots, slot: u32) -> Key {
    let c = slots.c(slot as usize);
    if c.flags & NAMED != 0 {
        Key::Named(c.id[1] as Sym)
    } else {
        Key::Uuid(uuid_of(c))
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
