//! [`Key`]: an experience's `_id` in 16 bytes. Generated ids (`orbstore_core::generate_id`: a
//! UUIDv7 in canonical lowercase hyphenated form, 36 characters) are held as their 128 bits and
//! written back on demand, exactly; any other id (an import's `exp-002`) is an interned string.

use std::cmp::Ordering;

use super::strings::{Strings, Sym};

/// An experience's id, compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A canonical UUID (lowercase hex, hyphens at 8, 13, 18, 23): its value.
    Uuid(u128),
    /// Any other id: its interned string.
    Named(Sym),
}

const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// The value of a canonical UUID string, or `None` for any other string (uppercase, braces,
/// no hyphens: those are not what `generate_id` writes, and would not be written back the same).
pub(crate) fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || HYPHENS.iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'-' if HYPHENS.contains(&i) => continue,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// Writes a UUID's canonical form into `out`, the inverse of [`parse_uuid`].
pub(crate) fn format_uuid(v: u128, out: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut o = 0;
    // A byte at a time, a hyphen before bytes 4, 6, 8 and 10 (characters 8, 13, 18, 23).
    for (k, b) in v.to_be_bytes().into_iter().enumerate() {
        if matches!(k, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[usize::from(b >> 4)];
        out[o + 1] = HEX[usize::from(b & 0xf)];
        o += 2;
    }
    // Only ASCII hex digits and hyphens were written.
    std::str::from_utf8(out).unwrap_or_default()
}

impl Key {
    /// The key of an id already held: `None` when no experience can have it.
    pub(crate) fn lookup(id: &str, strings: &Strings) -> Option<Key> {
        match parse_uuid(id) {
            Some(v) => Some(Key::Uuid(v)),
            None => strings.find(id).map(Key::Named),
        }
    }

    /// The key of a new experience's id (interning a named one: the caller holds a reference).
    pub(crate) fn intern(id: &str, strings: &mut Strings) -> orbstore_core::Result<Key> {
        match parse_uuid(id) {
            Some(v) => Ok(Key::Uuid(v)),
            None => strings.intern(id).map(Key::Named),
        }
    }

    /// The id as a string.
    pub(crate) fn id_string(self, strings: &Strings) -> String {
        match self {
            Key::Uuid(v) => format_uuid(v, &mut [0; 36]).to_owned(),
            Key::Named(sym) => strings.get(sym).to_owned(),
        }
    }

    /// The order of the ids as strings (the order `_id` sorts in), without allocating.
    pub(crate) fn cmp_ids(self, other: Key, strings: &Strings) -> Ordering {
        match (self, other) {
            // Same length, same hyphens, hex digits ordered as their values: numeric order is
            // string order.
            (Key::Uuid(a), Key::Uuid(b)) => a.cmp(&b),
            (Key::Named(a), Key::Named(b)) => strings.get(a).cmp(strings.get(b)),
            (Key::Uuid(a), Key::Named(b)) => format_uuid(a, &mut [0; 36]).cmp(strings.get(b)),
            (Key::Named(a), Key::Uuid(b)) => strings.get(a).cmp(format_uuid(b, &mut [0; 36])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_others_are_named() {
        for _ in 0..100 {
            let id = orbstore_core::generate_id();
            let v = parse_uuid(&id).unwrap();
            assert_eq!(format_uuid(v, &mut [0; 36]), id);
        }
        for other in
            ["exp-002", "", "0190A0B0-0000-7000-8000-000000000000", "{0190a0b0-0000-7000-8000-00000000000}"]
        {
            assert_eq!(parse_uuid(other), None, "{other}");
        }
        let mut strings = Strings::default();
        let a = Key::intern("0190a0b0-0000-7000-8000-000000000000", &mut strings).unwrap();
        let b = Key::intern("0190a0b0-0000-7000-8000-00000000000a", &mut strings).unwrap();
        let n = Key::intern("exp-002", &mut strings).unwrap();
        assert_eq!(Key::lookup("exp-002", &strings), Some(n));
        assert_eq!(Key::lookup("exp-003", &strings), None);
        assert_eq!(a.cmp_ids(b, &strings), Ordering::Less);
        assert_eq!(a.cmp_ids(n, &strings), "0190a0b0".cmp("exp-002"));
        assert_eq!(n.id_string(&strings), "exp-002");
    }
}
