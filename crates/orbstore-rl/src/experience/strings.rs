//! [`Strings`]: the interned users, states and actions of a replay buffer, each distinct string
//! held once whatever the number of experiences naming it.
//!
//! Hand-written rather than a crate (`lasso`, `string-interner`): a replay buffer evicts, and
//! the interners on crates.io never free a string, so a buffer of 1M turning over for weeks would
//! hold every state it ever saw. Here each symbol counts its references and a string is freed
//! with its last one; the bytes of freed strings are reclaimed by compacting the buffer once they
//! are the larger part of it.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use orbstore_core::{Error, Result};

/// A string's symbol: its number in [`Strings`].
pub(crate) type Sym = u32;

/// Reference-counted interned strings, all in one buffer.
#[derive(Default)]
pub(crate) struct Strings {
    /// Every live string, one after another (freed ones stay until [`Strings::compact`]).
    bytes: String,
    /// Where each symbol's string is in `bytes`: start, length.
    spans: Vec<(u32, u32)>,
    /// How many holders each symbol has (0: free, listed in `free`).
    refs: Vec<u32>,
    free: Vec<Sym>,
    /// The live symbols, found by their string's hash.
    table: HashTable<Sym>,
    hasher: DefaultHashBuilder,
    /// Bytes of `bytes` that belong to freed strings.
    dead: usize,
}

impl Strings {
    /// The string of a live symbol.
    pub(crate) fn get(&self, sym: Sym) -> &str {
        let (start, len) = self.spans[sym as usize];
        &self.bytes[start as usize..start as usize + len as usize]
    }

    /// Where a live symbol's string is: start and length, for [`Strings::at`]. Looking up the
    /// places of several strings before reading any lets their memory reads overlap.
    pub(crate) fn span(&self, sym: Sym) -> (u32, u32) {
        self.spans[sym as usize]
    }

    /// The string at a span given by [`Strings::span`] (valid until the next change).
    pub(crate) fn at(&self, (start, len): (u32, u32)) -> &str {
        &self.bytes[start as usize..start as usize + len as usize]
    }

    /// The symbol of `s`, if it is interned.
    pub(crate) fn find(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table.find(hash, |&sym| self.get(sym) == s).copied()
    }

    /// The symbol of `s`, with one more reference (interned if new). `InvalidInput` once the
    /// distinct strings held would pass 4 GiB (their offsets are 32-bit to keep symbols small).
    pub(crate) fn intern(&mut self, s: &str) -> Result<Sym> {
        let hash = self.hasher.hash_one(s);
        if let Some(&sym) = self.table.find(hash, |&sym| self.get(sym) == s) {
            self.retain(sym);
            return Ok(sym);
        }
        if self.bytes.len() + s.len() > u32::MAX as usize && self.dead > 0 {
            self.compact();
        }
        if self.bytes.len() + s.len() > u32::MAX as usize {
            return Err(Error::invalid(
                "a replay buffer holds at most 4 GiB of distinct user, state and action strings",
            ));
        }
        let span = (self.bytes.len() as u32, s.len() as u32);
        self.bytes.push_str(s);
        let sym = match self.free.pop() {
            Some(sym) => {
                self.spans[sym as usize] = span;
                self.refs[sym as usize] = 1;
                sym
            }
            None => {
                self.spans.push(span);
                self.refs.push(1);
                (self.spans.len() - 1) as Sym
            }
        };
        let Strings { table, hasher, bytes, spans, .. } = self;
        table.insert_unique(hash, sym, |&other| {
            let (start, len) = spans[other as usize];
            hasher.hash_one(&bytes[start as usize..start as usize + len as usize])
        });
        Ok(sym)
    }

    /// One more reference to a live symbol.
    pub(crate) fn retain(&mut self, sym: Sym) {
        // Saturating: a symbol with u32::MAX holders is never freed, rather than freed early.
        let r = &mut self.refs[sym as usize];
        *r = r.saturating_add(1);
    }

    /// One reference fewer to a live symbol; the last frees its string.
    pub(crate) fn release(&mut self, sym: Sym) {
        let r = &mut self.refs[sym as usize];
        if *r == u32::MAX {
            return;
        }
        *r -= 1;
        if *r > 0 {
            return;
        }
        let hash = self.hasher.hash_one(self.get(sym));
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == sym) {
            entry.remove();
        }
        self.dead += self.spans[sym as usize].1 as usize;
        self.spans[sym as usize] = (0, 0);
        self.free.push(sym);
        // Compacting copies the live bytes: worth it once the freed ones are most of the buffer.
        if self.dead > 1 << 16 && self.dead * 2 > self.bytes.len() {
            self.compact();
        }
    }

    /// Copies the live strings into a buffer of their size, dropping the freed bytes.
    fn compact(&mut self) {
        let mut bytes = String::with_capacity(self.bytes.len() - self.dead);
        for (sym, span) in self.spans.iter_mut().enumerate() {
            if self.refs[sym] > 0 {
                let (start, len) = *span;
                let s = &self.bytes[start as usize..start as usize + len as usize];
                *span = (bytes.len() as u32, len);
                bytes.push_str(s);
            }
        }
        self.bytes = bytes;
        self.dead = 0;
    }

    /// Makes room for about `n` more distinct strings of about `len` bytes each.
    pub(crate) fn reserve(&mut self, n: usize, len: usize) {
        self.bytes.reserve(n.saturating_mul(len));
        self.spans.reserve(n);
        self.refs.reserve(n);
        let Strings { table, hasher, bytes, spans, .. } = self;
        table.reserve(n, |&other| {
            let (start, len) = spans[other as usize];
            hasher.hash_one(&bytes[start as usize..start as usize + len as usize])
        });
    }

    /// How many distinct strings are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_is_held_once_and_freed_with_its_last_reference() {
        let mut s = Strings::default();
        let a = s.intern("state-a").unwrap();
        assert_eq!(s.intern("state-a").unwrap(), a);
        let b = s.intern("b").unwrap();
        assert_eq!((s.get(a), s.get(b), s.len()), ("state-a", "b", 2));
        s.release(a);
        assert_eq!(s.find("state-a"), Some(a), "one reference left");
        s.release(a);
        assert_eq!((s.find("state-a"), s.len()), (None, 1));
        let c = s.intern("c").unwrap();
        assert_eq!(c, a, "the freed symbol is reused");
        s.compact();
        assert_eq!((s.get(b), s.get(c), s.bytes.as_str()), ("b", "c", "cb"), "in symbol order");
    }

    #[test]
    fn freed_bytes_are_reclaimed() {
        let mut s = Strings::default();
        for round in 0..20 {
            let syms: Vec<Sym> = (0..1000).map(|i| s.intern(&format!("{round}-{i:0>60}")).unwrap()).collect();
            for sym in syms {
                s.release(sym);
            }
        }
        assert!(s.bytes.len() < 200_000, "{} bytes kept for no live string", s.bytes.len());
        assert_eq!(s.len(), 0);
    }
}
